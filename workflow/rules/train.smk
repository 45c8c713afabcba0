# Training: one NeRV per (dataset, video, seed), one FFN per (dataset, video, frame, seed).


rule train_nerv:
    input:
        frames=work_file("frames_bicubic.npy"),
        meta=work_file("meta.json"),
    output:
        ckpt="results/models/nerv/{ds}/{vid}/s{seed}/ckpt.pt",
        metrics="results/models/nerv/{ds}/{vid}/s{seed}/metrics.json",
    log:
        "logs/train/nerv/{ds}/{vid}/s{seed}.log",
    benchmark:
        "benchmarks/train/nerv/{ds}/{vid}/s{seed}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        model=config["models"]["nerv"],
        train=config["train"]["nerv"],
        device=config["device"],
    script:
        "../scripts/train_nerv.py"


rule train_ffn:
    input:
        frames=work_file("frames_pil.npy"),
        meta=work_file("meta.json"),
    output:
        ckpt="results/models/ffn/{ds}/{vid}/f{f}/s{seed}/ckpt.pt",
        metrics="results/models/ffn/{ds}/{vid}/f{f}/s{seed}/metrics.json",
    log:
        "logs/train/ffn/{ds}/{vid}/f{f}/s{seed}.log",
    benchmark:
        "benchmarks/train/ffn/{ds}/{vid}/f{f}/s{seed}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        model=config["models"]["ffn"],
        train=config["train"]["ffn"],
        device=config["device"],
    script:
        "../scripts/train_ffn.py"
