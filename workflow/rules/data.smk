# Data: the embedded synthetic datasets, the common per-video format, the working resolution.
# Folders are named by what determines them (common.smk), not by the run.


rule synth_dataset:
    output:
        root=directory(f"{SYNTH}/{{ds}}"),
        truth=f"{SYNTH}/{{ds}}.truth.npz",
    log:
        f"logs/data/synth_dataset/{SYNTH_TAG}/{{ds}}.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        seed=config["synthetic"]["seed"],
        scale=config["synthetic"]["scale"],
    script:
        "../scripts/synth_dataset.py"


rule prepare_video:
    input:
        root=dataset_root,
    output:
        frames="data/prepared/{ds}/{variant}/{vid}/frames.npy",
        panoptic="data/prepared/{ds}/{variant}/{vid}/panoptic.npy",
        segments="data/prepared/{ds}/{variant}/{vid}/segments.csv",
        meta="data/prepared/{ds}/{variant}/{vid}/meta.json",
    log:
        "logs/data/prepare_video/{ds}/{variant}/{vid}.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        crop=dataset_crop,
    script:
        "../scripts/prepare_video.py"


rule working_res:
    input:
        frames=rules.prepare_video.output.frames,
        panoptic=rules.prepare_video.output.panoptic,
        segments=rules.prepare_video.output.segments,
        meta=rules.prepare_video.output.meta,
    output:
        frames_bicubic=f"data/work/{{ds}}/{{variant}}/{{vid}}/{WORK}/frames_bicubic.npy",
        frames_pil=f"data/work/{{ds}}/{{variant}}/{{vid}}/{WORK}/frames_pil.npy",
        panoptic=f"data/work/{{ds}}/{{variant}}/{{vid}}/{WORK}/panoptic.npy",
        segments=f"data/work/{{ds}}/{{variant}}/{{vid}}/{WORK}/segments.csv",
        meta=f"data/work/{{ds}}/{{variant}}/{{vid}}/{WORK}/meta.json",
    log:
        f"logs/data/working_res/{{ds}}/{{variant}}/{{vid}}/{WORK}.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        size=config["working_size"],
    script:
        "../scripts/working_res.py"
