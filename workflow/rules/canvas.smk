# Canvas: every layer's contribution maps of one model at one frame, streamed into per-frame
# statistics in one job (a full canvas is never written).


rule canvas_nerv:
    input:
        ckpt="results/models/nerv/{ds}/{vid}/s{seed}/ckpt.pt",
        groups="results/pixel_groups/nerv/{ds}/{vid}/f{f}.npz",
        meta=work_file("meta.json"),
    output:
        stats=expand(
            "results/stats/nerv/{{ds}}/{{vid}}/s{{seed}}/f{{f}}/{layer}.npz",
            layer=LAYERS["nerv"],
        ),
    log:
        "logs/canvas/nerv/{ds}/{vid}/s{seed}/f{f}.log",
    benchmark:
        "benchmarks/canvas/nerv/{ds}/{vid}/s{seed}/f{f}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        layers=LAYERS["nerv"],
        canvas=config["canvas"],
        stats=config["stats"],
        device=config["device"],
    script:
        "../scripts/canvas_stats.py"


rule canvas_ffn:
    input:
        ckpt="results/models/ffn/{ds}/{vid}/f{f}/s{seed}/ckpt.pt",
        groups="results/pixel_groups/ffn/{ds}/{vid}/f{f}.npz",
        meta=work_file("meta.json"),
    output:
        stats=expand(
            "results/stats/ffn/{{ds}}/{{vid}}/s{{seed}}/f{{f}}/{layer}.npz",
            layer=LAYERS["ffn"],
        ),
    log:
        "logs/canvas/ffn/{ds}/{vid}/s{seed}/f{f}.log",
    benchmark:
        "benchmarks/canvas/ffn/{ds}/{vid}/s{seed}/f{f}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        layers=LAYERS["ffn"],
        canvas=config["canvas"],
        stats=config["stats"],
        device=config["device"],
    script:
        "../scripts/canvas_stats.py"


rule pair_stats:
    input:
        ckpt="results/models/nerv/{ds}/{vid}/s{seed}/ckpt.pt",
        meta=work_file("meta.json"),
    output:
        delta=expand(
            "results/pair/nerv/{{ds}}/{{vid}}/s{{seed}}/t{{t}}/{layer}.npz",
            layer=LAYERS["nerv"],
        ),
    log:
        "logs/pair/nerv/{ds}/{vid}/s{seed}/t{t}.log",
    benchmark:
        "benchmarks/pair/nerv/{ds}/{vid}/s{seed}/t{t}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        layers=LAYERS["nerv"],
        canvas=config["canvas"],
        device=config["device"],
    script:
        "../scripts/pair_stats.py"
