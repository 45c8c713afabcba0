# Analyses: pixel groupings of each analysed frame (instances, RGB and Gabor k-means, grid
# cells), shared by every grouping statistic of the canvas jobs; optical flow of the pairs
# of Fig 9; the per-video table of segments over time (Figs 8/19).


rule pixel_groups:
    input:
        frames=frames_for,
        panoptic=work_file("panoptic.npy"),
        meta=work_file("meta.json"),
    output:
        groups=f"{RESULTS}/pixel_groups/{{arch}}/{{ds}}/{{vid}}/f{{f}}.npz",
    log:
        f"{LOGS}/pixel_groups/{{arch}}/{{ds}}/{{vid}}/f{{f}}.log",
    benchmark:
        f"{BENCHMARKS}/pixel_groups/{{arch}}/{{ds}}/{{vid}}/f{{f}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        stats={
            key: config["stats"][key] for key in ("clusters", "grid", "seed", "gabor")
        },
    script:
        "../scripts/pixel_groups.py"


rule flow:
    input:
        frames=work_file("frames_pil.npy"),
        meta=work_file("meta.json"),
    output:
        flow=f"{RESULTS}/flow/{{ds}}/{{vid}}/f{{t}}.npz",
    log:
        f"{LOGS}/flow/{{ds}}/{{vid}}/f{{t}}.log",
    benchmark:
        f"{BENCHMARKS}/flow/{{ds}}/{{vid}}/f{{t}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        method=config["flow"]["method"],
    script:
        "../scripts/flow.py"


rule instance_table:
    input:
        stats=instance_table_stats,
        meta=work_file("meta.json"),
    output:
        table=f"{RESULTS}/tables/instances/{{ds}}/{{vid}}.csv",
    log:
        f"{LOGS}/tables/instances/{{ds}}/{{vid}}.log",
    benchmark:
        f"{BENCHMARKS}/tables/instances/{{ds}}/{{vid}}.tsv"
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/instance_table.py"
