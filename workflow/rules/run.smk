# The run's record beside its results: its resolved config (results/<run>/config.yaml) and its
# provenance (results/<run>/provenance.json: the config's hash, the code version and the hashes
# of the files the results are made from).
from xinc.config_checks import pretrained_paths

# a video's working-resolution files (rule working_res): what its models and analyses read
WORK_FILES = [
    "frames_bicubic.npy",
    "frames_pil.npy",
    "panoptic.npy",
    "segments.csv",
    "meta.json",
]
FFN_FRAMES = {ds: {vid: FRAMES[ds][vid].ffn for vid in VIDEOS[ds]} for ds in DATASETS}


rule run_config:
    input:
        work=[
            work_path(ds, vid, name)
            for ds in DATASETS
            for vid in VIDEOS[ds]
            for name in WORK_FILES
        ],
        # the checkpoints imported instead of trained (config pretrained.<arch>)
        pretrained=[
            path
            for arch in ARCHS
            if config["pretrained"][arch]
            for path in pretrained_paths(config, arch, FFN_FRAMES)
        ],
    output:
        config=CONFIG_RECORD,
        provenance=f"{RESULTS}/provenance.json",
    log:
        f"{LOGS}/run_config.log",
    benchmark:
        f"{BENCHMARKS}/run_config.tsv"
    localrule: True
    conda:
        "../../envs/xinc.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        config=RECORDED_CONFIG,
    script:
        "../scripts/run_config.py"
