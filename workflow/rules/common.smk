# Shared definitions: config validation and checks, folder layout, dataset tables, wildcard
# constraints, input functions.
import re
import sys
from pathlib import Path

# xinc.config and xinc.config_checks need only PyYAML and jsonschema (Snakemake's own
# dependencies), so the main Snakemake process needs none of xinc's others under --use-conda.
sys.path.insert(0, workflow.basedir)
from xinc.config import ConfigError, validate
from xinc.config_checks import check_workflow_config, recorded_differences

config.update(validate(config, Path(workflow.basedir)))

DATASETS = [ds for ds, spec in config["datasets"].items() if spec["videos"]]
if not DATASETS:
    raise ConfigError(
        "config key datasets: no dataset lists any video; set datasets.<name>.videos"
    )
VIDEOS = {ds: config["datasets"][ds]["videos"] for ds in DATASETS}
SEEDS = config["seeds"]
ARCHS = ["nerv", "ffn"]
LAYERS = config["canvas"]["layers"]
# First annotated raw frame of a video (datasets.md §1): Cityscapes-VPS labels 4, 9, ..., 29.
# Mirrors xinc.data.first_annotated_frame (the Snakefile imports no module that needs numpy).
FIRST_ANNOTATED = {"cityscapes_vps": 4, "vipseg": 0}
# raw frames analysed per video (config canvas.frames: "first" = the first annotated frame)
ANALYSED_FRAMES = {ds: [FIRST_ANNOTATED[ds]] for ds in DATASETS}

# Everything the config names (sizes, dataset folders, pretrained checkpoints) is checked now,
# before any job: errors raised later, inside input functions, are planned around by Snakemake.
check_workflow_config(config, ANALYSED_FRAMES)

# ---------------------------------------------------------------- folder layout
# Data folders are named by what determines their content, so that runs of other settings
# never replace them; everything else belongs to the run (config `run`).
RUN = config["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCHMARKS = f"benchmarks/{RUN}"
SYNTH_TAG = "{scale}-seed{seed}".format(**config["synthetic"])
SYNTH = f"data/synthetic/{SYNTH_TAG}"
ORIGIN = f"synthetic-{SYNTH_TAG}" if config["source"] == "synthetic" else "real"
# per dataset: where its frames come from and how they are cropped
VARIANT = {
    ds: ORIGIN + ("-crop{}x{}".format(*spec["crop"]) if spec.get("crop") else "")
    for ds, spec in config["datasets"].items()
}
WORK = "{}x{}".format(*config["working_size"])
CONFIG_RECORD = f"{RESULTS}/config.yaml"

for _line in recorded_differences(CONFIG_RECORD, config):
    print(
        f"xinc: {CONFIG_RECORD} records another configuration ({_line}); the results of run "
        f"{RUN!r} will be recomputed for this one. Set `run:` to a new name to keep both.",
        file=sys.stderr,
    )


wildcard_constraints:
    ds="|".join(DATASETS),
    vid="|".join(re.escape(v) for vids in VIDEOS.values() for v in vids),
    variant="|".join(re.escape(v) for v in set(VARIANT.values())),
    seed=r"\d+",
    f=r"\d+",
    t=r"\d+",
    arch="nerv|ffn",
    layer=r"head|b\d+|l\d+",


def dataset_root(wildcards):
    """The dataset in its official layout: generated (synthetic) or the user's folder (real;
    checked when the workflow loads)."""
    if config["source"] == "synthetic":
        return f"{SYNTH}/{wildcards.ds}"
    return config["datasets"][wildcards.ds]["root"]


def dataset_crop(wildcards):
    return config["datasets"][wildcards.ds]["crop"]


def work_path(ds, vid, name):
    """A file of the working-resolution folder of one video."""
    return f"data/work/{ds}/{VARIANT[ds]}/{vid}/{WORK}/{name}"


def work_file(name):
    """Input function: a file of the working-resolution folder of the job's {ds}/{vid}."""

    def path(wildcards):
        return work_path(wildcards.ds, wildcards.vid, name)

    return path


def ffn_batch_outputs(ds, name):
    """Per-model files of the batched FFN job of one {vid} of dataset `ds` (frames x seeds)."""
    return [
        f"{RESULTS}/models/ffn/{ds}/{{vid}}/f{f}/s{seed}/{name}"
        for f in ANALYSED_FRAMES[ds]
        for seed in SEEDS
    ]


def nerv_frames(wildcards):
    """Frames a NeRV fits (config train.nerv_target)."""
    reference = config["train"]["nerv_target"] == "reference"
    name = "frames_bicubic.npy" if reference else "frames_pil.npy"
    return work_path(wildcards.ds, wildcards.vid, name)


def frames_for(wildcards):
    """Working-resolution frames a model of {arch} was trained on."""
    if wildcards.arch == "nerv":
        return nerv_frames(wildcards)
    return work_path(wildcards.ds, wildcards.vid, "frames_pil.npy")


def pretrained(arch):
    """Input function: the user's checkpoint for this job (config pretrained.<arch>)."""

    def path(wildcards):
        return config["pretrained"][arch].format(
            dataset=wildcards.ds,
            video=wildcards.vid,
            seed=wildcards.seed,
            frame=wildcards.get("f", ""),
        )

    return path


def stats_path(arch, ds, vid, seed, f, layer):
    return f"{RESULTS}/stats/{arch}/{ds}/{vid}/s{seed}/f{f}/{layer}.npz"


def figure_panels():
    """Every (arch, dataset, video, layer) panel of the per-frame figures: first seed and frame."""
    seed = SEEDS[0]
    return [
        {
            "arch": arch,
            "dataset": ds,
            "video": vid,
            "layer": layer,
            "seed": seed,
            "frame": f,
        }
        for arch in ARCHS
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for f in ANALYSED_FRAMES[ds]
        for layer in LAYERS[arch]
    ]


def figure_stats(wildcards):
    return [
        stats_path(
            p["arch"], p["dataset"], p["video"], p["seed"], p["frame"], p["layer"]
        )
        for p in figure_panels()
    ]


def all_model_metrics():
    """metrics.json of every trained model: one NeRV per video, one FFN per analysed frame."""
    return [
        f"{RESULTS}/models/nerv/{ds}/{vid}/s{seed}/metrics.json"
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for seed in SEEDS
    ] + [
        f"{RESULTS}/models/ffn/{ds}/{vid}/f{f}/s{seed}/metrics.json"
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for f in ANALYSED_FRAMES[ds]
        for seed in SEEDS
    ]


FIGURES = expand(f"{RESULTS}/figures/{{fig}}.png", fig=["fig03", "fig04", "fig06"])
PAIRS = [
    f"{RESULTS}/pair/nerv/{ds}/{vid}/s{seed}/t{t}/{layer}.npz"
    for ds in DATASETS
    for vid in VIDEOS[ds]
    for seed in SEEDS
    for t in config["canvas"]["pair_frames"]
    for layer in LAYERS["nerv"]
]
