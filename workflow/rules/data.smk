# Data: the official archives (downloaded, verified, extracted, prepared as the official scripts
# do), the embedded synthetic datasets, your own videos, the common per-video format and the
# working resolution. Folders are named by what determines them (common.smk), not by the run.


localrules:
    download_archive,
    fetch_sequence_frames,


rule download_archive:
    output:
        archive="data/downloads/{archive}",
        sidecar="data/downloads/{archive}.json",
    log:
        "logs/data/download_archive/{archive}.log",
    benchmark:
        "benchmarks/data/download_archive/{archive}.tsv"
    wildcard_constraints:
        archive="|".join(re.escape(a) for a in DOWNLOADED),
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=600,
        net=1,
    params:
        # what determines the file; credentials, archive_dir and retries are read by the job
        source=lambda w: download_source(w.archive),
    script:
        "../scripts/download_archive.py"


rule extract_archive:
    input:
        "data/downloads/{archive}",
    output:
        "data/raw/{archive}/.extracted",
    log:
        "logs/data/extract_archive/{archive}.log",
    benchmark:
        "benchmarks/data/extract_archive/{archive}.tsv"
    wildcard_constraints:
        archive="|".join(re.escape(a) for a in EXTRACTED),
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
    script:
        "../scripts/extract_archive.py"


rule select_videos:
    input:
        unpack(selection_inputs),
    output:
        videos="data/prepared/{ds}/{variant}/videos.csv",
        categories="data/prepared/{ds}/{variant}/categories.csv",
    log:
        "logs/data/select_videos/{ds}/{variant}.log",
    benchmark:
        "benchmarks/data/select_videos/{ds}/{variant}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=selection_settings,
    script:
        "../scripts/select_videos.py"


rule fetch_sequence_frames:
    input:
        vps=raw_marker("cityscapes_vps", "vps"),
        videos=selection_csv("cityscapes_vps", VARIANT["cityscapes_vps"]),
    output:
        "data/raw/leftImg8bit_sequence/.complete",
    log:
        "logs/data/fetch_sequence_frames.log",
    benchmark:
        "benchmarks/data/fetch_sequence_frames.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=240,
        net=1,
    params:
        mode=config["datasets"]["cityscapes_vps"]["sequence_fetch"],
        source=download_source(SEQUENCE_ARCHIVE),
    script:
        "../scripts/fetch_sequence_frames.py"


rule official_prep_cityscapes_vps:
    input:
        vps=raw_marker("cityscapes_vps", "vps"),
        gtfine=raw_marker("cityscapes_vps", "gtfine"),
        frames=rules.fetch_sequence_frames.output[0],
    output:
        directory(f"{XINC_LAYOUT['cityscapes_vps']}/{{vid}}"),
    log:
        "logs/data/official_prep_cityscapes_vps/{vid}.log",
    benchmark:
        "benchmarks/data/official_prep_cityscapes_vps/{vid}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/official_prep.py"


rule official_prep_vipseg:
    input:
        raw=raw_marker("vipseg", "raw"),
        categories=download_path("vipseg", "categories"),
        splits=[download_path("vipseg", split) for split in ("train", "val", "test")],
    output:
        directory(f"{XINC_LAYOUT['vipseg']}/{{vid}}"),
    log:
        f"logs/data/official_prep_vipseg/{XINC_LAYOUT['vipseg'][5:]}/{{vid}}.log",
    benchmark:
        f"benchmarks/data/official_prep_vipseg/{XINC_LAYOUT['vipseg'][5:]}/{{vid}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        target_height=config["datasets"]["vipseg"]["target_height"],
        emulate_720p_jpeg=config["datasets"]["vipseg"]["emulate_720p_jpeg"],
    script:
        "../scripts/official_prep.py"


rule synth_dataset:
    output:
        root=directory(f"{SYNTH}/{{ds}}"),
        truth=f"{SYNTH}/{{ds}}.truth.npz",
    log:
        f"logs/data/synth_dataset/{SYNTH_TAG}/{{ds}}.log",
    benchmark:
        f"benchmarks/data/synth_dataset/{SYNTH_TAG}/{{ds}}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seed=config["synthetic"]["seed"],
        scale=config["synthetic"]["scale"],
    script:
        "../scripts/synth_dataset.py"


rule prepare_custom_video:
    input:
        unpack(custom_files),
    output:
        frames="data/prepared/custom/{variant}/{vid}/frames.npy",
        panoptic="data/prepared/custom/{variant}/{vid}/panoptic.npy",
        segments="data/prepared/custom/{variant}/{vid}/segments.csv",
        meta="data/prepared/custom/{variant}/{vid}/meta.json",
    log:
        "logs/data/prepare_custom_video/{variant}/{vid}.log",
    benchmark:
        "benchmarks/data/prepare_custom_video/{variant}/{vid}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        entry=lambda w: config["datasets"]["custom"]["files"][w.vid],
        crop=config["datasets"]["custom"]["crop"],
        size=config["working_size"],
    script:
        "../scripts/prepare_custom_video.py"


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
    benchmark:
        "benchmarks/data/prepare_video/{ds}/{variant}/{vid}.tsv"
    wildcard_constraints:
        ds="cityscapes_vps|vipseg",
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
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
    benchmark:
        f"benchmarks/data/working_res/{{ds}}/{{variant}}/{{vid}}/{WORK}.tsv"
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        size=config["working_size"],
    script:
        "../scripts/working_res.py"
