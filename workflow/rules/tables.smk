# Tables: numbers of the supplement computed from the trained models' metrics, and the paper's
# claims restated as measured numbers over every video and seed.


rule table_s1:
    input:
        metrics=all_model_metrics(),
    output:
        csv=report(
            f"{RESULTS}/tables/table_s1.csv",
            caption="../report/table_s1.rst",
            category="Tables",
            labels={
                "table": "S1",
                "content": "parameters, PSNR and bpp per architecture",
            },
        ),
    log:
        f"{LOGS}/tables/table_s1.log",
    benchmark:
        f"{BENCHMARKS}/tables/table_s1.tsv"
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/table_s1.py"


rule findings:
    input:
        stats=panel_paths(FINDINGS_KEY),
        nerv_stats=panel_paths(FINDINGS_OVER_TIME),
        tables=INSTANCE_TABLES,
        pairs=PAIRS,
        flows=FLOWS,
        clusters=f"{RESULTS}/tables/clusters.csv",
        frames=[
            work_path(ds, vid, "frames_pil.npy")
            for ds in DATASETS
            for vid in VIDEOS[ds]
        ],
    output:
        csv=report(
            f"{RESULTS}/tables/findings.csv",
            caption="../report/findings.rst",
            category="Tables",
            labels={
                "table": "findings",
                "content": "the paper's claims as measured numbers",
            },
        ),
    log:
        f"{LOGS}/tables/findings.log",
    benchmark:
        f"{BENCHMARKS}/tables/findings.tsv"
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        labels={
            "panels": FINDINGS_KEY,
            "nerv_panels": FINDINGS_OVER_TIME,
            "videos": [[ds, vid] for ds in DATASETS for vid in VIDEOS[ds]],
            "masked": [list(pair) for pair in MASKED_VIDEOS],
            "flows": [
                [ds, vid, t]
                for ds in DATASETS
                for vid in VIDEOS[ds]
                for t in PAIR_FRAMES
            ],
        },
        options={
            "grid": config["stats"]["gridcells"],
            "delta": config["stats"]["delta"],
            "other": config["stats"]["other_segment"],
            "data": DATA_LABEL,
            "seed": config["findings"]["seed"],
            "n_boot": config["findings"]["bootstrap"],
        },
    script:
        "../scripts/findings.py"
