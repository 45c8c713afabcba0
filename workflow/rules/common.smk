# Shared definitions: config validation, dataset tables, wildcard constraints, input functions.
import re

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

DATASETS = [ds for ds, spec in config["datasets"].items() if spec["videos"]]
if not DATASETS:
    raise ValueError(
        "config: no dataset lists any video; set datasets.<name>.videos in config.yaml"
    )
VIDEOS = {ds: config["datasets"][ds]["videos"] for ds in DATASETS}
WORK = "{}x{}".format(*config["working_size"])
SEEDS = config["seeds"]
ARCHS = ["nerv", "ffn"]
LAYERS = config["canvas"]["layers"]
# First annotated raw frame of a video (datasets.md §1): Cityscapes-VPS labels 4, 9, ..., 29.
# Mirrors xinc.data.first_annotated_frame: the Snakefile itself does not import xinc, so the
# main Snakemake process needs none of xinc's dependencies under --use-conda.
FIRST_ANNOTATED = {"cityscapes_vps": 4, "vipseg": 0}
FIGURES = expand("results/figures/{fig}.png", fig=["fig03", "fig04", "fig06"])
PAIRS = [
    f"results/pair/nerv/{ds}/{vid}/s{seed}/t{t}/{layer}.npz"
    for ds in DATASETS
    for vid in VIDEOS[ds]
    for seed in SEEDS
    for t in config["canvas"]["pair_frames"]
    for layer in LAYERS["nerv"]
]


wildcard_constraints:
    ds="|".join(DATASETS),
    vid="|".join(re.escape(v) for vids in VIDEOS.values() for v in vids),
    seed=r"\d+",
    f=r"\d+",
    t=r"\d+",
    arch="nerv|ffn",
    layer=r"head|b\d+|l\d+",


def dataset_root(wildcards):
    """The dataset in its official layout: generated (synthetic) or the user's folder (real)."""
    if config["source"] == "synthetic":
        return f"data/synthetic/{wildcards.ds}"
    root = config["datasets"][wildcards.ds]["root"]
    if not root:
        raise ValueError(
            f"config: source is 'real' but datasets.{wildcards.ds}.root is not set"
        )
    return root


def dataset_crop(wildcards):
    return config["datasets"][wildcards.ds]["crop"]


def work_file(name):
    """A file of the working-resolution folder of the current {ds}/{vid}."""
    return f"data/work/{{ds}}/{{vid}}/{WORK}/{name}"


def analysed_frames(ds):
    """Raw frame indices analysed per video (config canvas.frames)."""
    return [FIRST_ANNOTATED[ds]]


def ffn_batch_outputs(ds, name):
    """Per-model files of the batched FFN job of one {vid} of dataset `ds` (frames x seeds)."""
    return [
        f"results/models/ffn/{ds}/{{vid}}/f{f}/s{seed}/{name}"
        for f in analysed_frames(ds)
        for seed in SEEDS
    ]


def model_checkpoint(wildcards):
    """Checkpoint that a canvas job of {arch} explains."""
    if wildcards.arch == "nerv":
        return f"results/models/nerv/{wildcards.ds}/{wildcards.vid}/s{wildcards.seed}/ckpt.pt"
    return f"results/models/ffn/{wildcards.ds}/{wildcards.vid}/f{wildcards.f}/s{wildcards.seed}/ckpt.pt"


def nerv_frames(wildcards):
    """Frames a NeRV fits (config train.nerv_target)."""
    reference = config["train"]["nerv_target"] == "reference"
    name = "frames_bicubic.npy" if reference else "frames_pil.npy"
    return f"data/work/{wildcards.ds}/{wildcards.vid}/{WORK}/{name}"


def frames_for(wildcards):
    """Working-resolution frames a model of {arch} was trained on."""
    if wildcards.arch == "nerv":
        return nerv_frames(wildcards)
    return f"data/work/{wildcards.ds}/{wildcards.vid}/{WORK}/frames_pil.npy"


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
    return f"results/stats/{arch}/{ds}/{vid}/s{seed}/f{f}/{layer}.npz"


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
        for f in analysed_frames(ds)
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
        f"results/models/nerv/{ds}/{vid}/s{seed}/metrics.json"
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for seed in SEEDS
    ] + [
        f"results/models/ffn/{ds}/{vid}/f{f}/s{seed}/metrics.json"
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for f in analysed_frames(ds)
        for seed in SEEDS
    ]
