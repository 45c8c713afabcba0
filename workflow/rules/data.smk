# Data: the embedded synthetic datasets, the common per-video format, the working resolution.


rule synth_dataset:
    output:
        root=directory("data/synthetic/{ds}"),
        truth="data/synthetic/{ds}.truth.npz",
    log:
        "logs/data/synth_dataset/{ds}.log",
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
        frames="data/prepared/{ds}/{vid}/frames.npy",
        panoptic="data/prepared/{ds}/{vid}/panoptic.npy",
        segments="data/prepared/{ds}/{vid}/segments.csv",
        meta="data/prepared/{ds}/{vid}/meta.json",
    log:
        "logs/data/prepare_video/{ds}/{vid}.log",
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
        frames_bicubic=work_file("frames_bicubic.npy"),
        frames_pil=work_file("frames_pil.npy"),
        panoptic=work_file("panoptic.npy"),
        segments=work_file("segments.csv"),
        meta=work_file("meta.json"),
    log:
        f"logs/data/working_res/{{ds}}/{{vid}}/{WORK}.log",
    conda:
        "../../envs/xinc.yaml"
    params:
        size=config["working_size"],
    script:
        "../scripts/working_res.py"
