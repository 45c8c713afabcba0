# Shared definitions: config validation and checks, folder layout, dataset tables, wildcard
# constraints, input functions.
import re
import sys
from pathlib import Path

# xinc.config and xinc.config_checks need only PyYAML and jsonschema (Snakemake's own
# dependencies), so the main Snakemake process needs none of xinc's others under --use-conda.
sys.path.insert(0, workflow.basedir)
from xinc.config import ConfigError, validate
from xinc.config_checks import (
    check_workflow_config,
    recorded_config,
    recorded_differences,
)
from xinc.figure_plan import (
    FIGURES as FIGURE_SPECS,
    Selection,
    figure_panels,
    figure_selection,
)

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

# Everything the config names (sizes, dataset folders, pretrained checkpoints, frames) is
# checked now, before any job: errors raised later, inside input functions, are planned around
# by Snakemake. FRAMES[ds][vid]: the video's length, annotated, NeRV and FFN frames and key
# frame (xinc.frame_plan).
FRAMES = check_workflow_config(config, VIDEOS)

# What each figure shows (xinc.figure_plan); a figure none of whose layers is traced is left out.
SELECTIONS = {}
for _name, _spec in FIGURE_SPECS.items():
    _selection = figure_selection(_spec, config, VIDEOS, LAYERS)
    if _selection is None:
        print(
            f"xinc: {_name} is left out: none of its layers ({', '.join(_spec.layers)}) is "
            f"in canvas.layers; add them there or set figures.{_name}.layers",
            file=sys.stderr,
        )
    else:
        SELECTIONS[_name] = _selection

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
# what the numbers of the findings table come from
DATA_LABEL = "synthetic" if config["source"] == "synthetic" else "+".join(DATASETS)
# per dataset: where its frames come from and how they are cropped
VARIANT = {
    ds: ORIGIN + ("-crop{}x{}".format(*spec["crop"]) if spec.get("crop") else "")
    for ds, spec in config["datasets"].items()
}
WORK = "{}x{}".format(*config["working_size"])
CONFIG_RECORD = f"{RESULTS}/config.yaml"
RECORDED_CONFIG = recorded_config(config)

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
    seedset=r"\d+(-\d+)*",


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


def ffn_groups(ds):
    """Videos of `ds` grouped by their FFN frames: {frames: [videos]} (one batched training
    rule per group; one group unless canvas.ffn_frames is `all` on videos of other lengths).
    """
    groups = {}
    for vid in VIDEOS[ds]:
        groups.setdefault(FRAMES[ds][vid].ffn, []).append(vid)
    return groups


def ffn_batch_outputs(ds, frames, name):
    """Per-model files of the batched FFN job of one {vid} of dataset `ds` (frames x seeds)."""
    return [
        f"{RESULTS}/models/ffn/{ds}/{{vid}}/f{f}/s{seed}/{name}"
        for f in frames
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


def panel_paths(panels):
    return [
        stats_path(
            p["arch"], p["dataset"], p["video"], p["seed"], p["frame"], p["layer"]
        )
        for p in panels
    ]


def frames_files(selection):
    """Working-resolution frames of each video of a figure, in the order of its videos."""
    return [work_path(ds, vid, "frames_pil.npy") for ds, vid in selection.videos]


def pair_path(ds, vid, seed, t, layer):
    return f"{RESULTS}/pair/nerv/{ds}/{vid}/s{seed}/t{t}/{layer}.npz"


def flow_path(ds, vid, t):
    return f"{RESULTS}/flow/{ds}/{vid}/f{t}.npz"


def instance_table_path(ds, vid):
    return f"{RESULTS}/tables/instances/{ds}/{vid}.csv"


def all_model_metrics():
    """metrics.json of every trained model: one NeRV per video, one FFN per FFN frame."""
    return [
        f"{RESULTS}/models/nerv/{ds}/{vid}/s{seed}/metrics.json"
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for seed in SEEDS
    ] + [
        f"{RESULTS}/models/ffn/{ds}/{vid}/f{f}/s{seed}/metrics.json"
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for f in FRAMES[ds][vid].ffn
        for seed in SEEDS
    ]


def every_stats(arch):
    """Statistics of every model, traced frame and layer of one architecture."""
    return [
        stats_path(arch, ds, vid, seed, f, layer)
        for ds in DATASETS
        for vid in VIDEOS[ds]
        for seed in SEEDS
        for f in (FRAMES[ds][vid].nerv if arch == "nerv" else FRAMES[ds][vid].ffn)
        for layer in LAYERS[arch]
    ]


def canvas_params(keys=("mode", "bias", "neuron", "time_index")):
    return {key: config["canvas"][key] for key in keys}


def sample_params():
    return {key: config["stats"][key] for key in ("sample_neurons", "seed")}


def instance_table_stats(wildcards):
    """One statistics file per NeRV frame of the video (first seed and layer): each holds the
    frame's segment ids and areas."""
    layer, seed = LAYERS["nerv"][0], SEEDS[0]
    return [
        stats_path("nerv", wildcards.ds, wildcards.vid, seed, f, layer)
        for f in FRAMES[wildcards.ds][wildcards.vid].nerv
    ]


def findings_panels():
    """Every model at its video's key frame (all layers), and every NeRV over its frames."""
    every = figure_selection_all()
    key = [
        p for arch in ("ffn", "nerv") for p in figure_panels(every, FRAMES, arch=arch)
    ]
    over_time = figure_panels(every, FRAMES, arch="nerv", all_frames=True)
    return key, over_time


def figure_selection_all():
    """A selection of every video, seed and traced layer."""
    return Selection(
        tuple((ds, vid) for ds in DATASETS for vid in VIDEOS[ds]),
        tuple(SEEDS),
        {arch: tuple(LAYERS[arch]) for arch in ("ffn", "nerv")},
    )


FINDINGS_KEY, FINDINGS_OVER_TIME = findings_panels()


def figure_inputs(name):
    """Input function of figure `name`: its statistics (or pairs and flows), the frames and
    instance tables it reads."""
    spec, sel = FIGURE_SPECS[name], SELECTIONS[name]

    def inputs(wildcards):
        files = {}
        if spec.kind == "frame":
            files["stats"] = panel_paths(frame_panels(name))
        elif spec.kind == "objects":
            files["ffn_stats"] = panel_paths(figure_panels(sel, FRAMES, arch="ffn"))
            files["nerv_stats"] = panel_paths(
                figure_panels(sel, FRAMES, arch="nerv", all_frames=True)
            )
            files["tables"] = [instance_table_path(ds, vid) for ds, vid in sel.videos]
        elif spec.kind == "clusters":
            files["clusters"] = [
                cluster_path(*key) for key in figure_clusters(name, joint=True)
            ]
        elif spec.kind == "members":
            files["members"] = [members_path(*key) for key in figure_clusters(name)]
        else:
            files["pairs"] = [pair_path(*key) for key in motion_pairs(name)]
            files["flows"] = [flow_path(*key) for key in motion_flows(name)]
        if spec.frames:
            files["frames"] = frames_files(sel)
        return files

    return inputs


def frame_panels(name):
    sel = SELECTIONS[name]
    return [
        p for arch in ("ffn", "nerv") for p in figure_panels(sel, FRAMES, arch=arch)
    ]


def motion_pairs(name):
    """(dataset, video, seed, t, layer) of every pair figure `name` shows."""
    sel = SELECTIONS[name]
    return [
        (ds, vid, seed, t, layer)
        for ds, vid in sel.videos
        for seed in sel.seeds
        for t in PAIR_FRAMES
        for layer in sel.layers["nerv"]
    ]


def motion_flows(name):
    return [(ds, vid, t) for ds, vid in SELECTIONS[name].videos for t in PAIR_FRAMES]


def figure_params(name):
    """Labels of the inputs and the options of figure `name` (its config and the switches it
    uses, nothing else)."""
    spec, own, stats = FIGURE_SPECS[name], config["figures"][name], config["stats"]
    sel = SELECTIONS[name]
    options = {"title": spec.title} if spec.title else {}
    if spec.module in ("fig01", "fig03"):
        key = "neurons" if spec.module == "fig01" else "max_neurons"
        options[key] = own["neurons"]
    if spec.module == "fig04":
        options.update(
            grid=stats["gridcells"], delta=stats["delta"], other=stats["other_segment"]
        )
    if spec.module == "fig08":
        options.update(
            ffn_neurons=own["ffn_neurons"],
            nerv_neurons=own["nerv_neurons"],
            seed=stats["seed"],
            other=stats["other_segment"],
        )
    labels = {"videos": [list(v) for v in sel.videos]}
    if spec.kind == "members":
        options["shown_frames"] = {
            f"{ds}/{vid}": list(FRAMES[ds][vid].nerv) for ds, vid in sel.videos
        }
    if spec.kind == "frame":
        labels["panels"] = frame_panels(name)
    elif spec.kind == "objects":
        labels["ffn_panels"] = figure_panels(sel, FRAMES, arch="ffn")
        labels["nerv_panels"] = figure_panels(sel, FRAMES, arch="nerv", all_frames=True)
    else:
        labels["flows"] = [list(key) for key in motion_flows(name)]
    return {"labels": labels, "options": options}


def figure_outputs(name):
    spec = FIGURE_SPECS[name]
    outputs = {
        "png": report(
            f"{RESULTS}/figures/{name}.png",
            caption=f"../report/{name}.rst",
            category="Figures",
            labels={"figure": f"Fig {int(name[3:])}", "content": spec.content},
        ),
        "csv": f"{RESULTS}/figures/{name}.csv",
    }
    if spec.summary:
        outputs["summary"] = f"{RESULTS}/figures/{name}_summary.csv"
    return outputs


def seed_set(seeds):
    """Name of a set of seeds in cluster file names: '1-10-20'."""
    return "-".join(str(seed) for seed in seeds)


def cluster_path(ds, vid, f, arch, layer, seeds, suffix=".npz"):
    return f"{RESULTS}/clusters/{ds}/{vid}/f{f}/{arch}/{layer}/seeds_{seed_set(seeds)}{suffix}"


def members_path(ds, vid, f, arch, layer, seeds, suffix=".npz"):
    return cluster_path(ds, vid, f, arch, layer, seeds, f"_members{suffix}")


def untrained_stats_path(arch, ds, vid, seed, f, layer):
    return f"{RESULTS}/stats_untrained/{arch}/{ds}/{vid}/s{seed}/f{f}/{layer}.npz"


def figure_clusters(name, joint=False):
    """(dataset, video, key frame, arch, layer, seeds) of every cluster file figure `name`
    shows: each of its layers, and with `joint` the FFN + NeRV embedding (clusters.joint_archs).
    """
    sel = SELECTIONS[name]
    keys = []
    for ds, vid in sel.videos:
        key = FRAMES[ds][vid].key
        keys += [
            (ds, vid, key, arch, layer, sel.seeds)
            for arch in ("ffn", "nerv")
            for layer in sel.layers[arch]
        ]
        if joint and config["clusters"]["joint_archs"]:
            keys.append((ds, vid, key, "joint", "all", sel.seeds))
    return keys


def cluster_stats(wildcards, untrained=False):
    """Statistics files clustered by one cluster_layer job: its layer of every seed, or every
    traced layer of both architectures (arch `joint`); `untrained`: of the untrained models.
    """
    path = untrained_stats_path if untrained else stats_path
    seeds = [int(seed) for seed in wildcards.seedset.split("-")]
    if wildcards.arch == "joint":
        layers = [(arch, layer) for arch in ("ffn", "nerv") for layer in LAYERS[arch]]
    else:
        layers = [(wildcards.arch, wildcards.layer)]
    return [
        path(arch, wildcards.ds, wildcards.vid, seed, wildcards.f, layer)
        for arch, layer in layers
        for seed in seeds
    ]


def cluster_inputs(wildcards):
    """Input function of cluster_layer: the statistics, and those of the untrained models
    when the null model applies (clusters.null_model, two seeds or more)."""
    files = {"stats": cluster_stats(wildcards)}
    if config["clusters"]["null_model"] and "-" in wildcards.seedset:
        files["untrained"] = cluster_stats(wildcards, untrained=True)
    return files


def cluster_settings(wildcards):
    """UMAP and k-means settings of the job's layer (xinc.cluster.layer.ClusterSettings)."""
    own = config["clusters"]
    keys = (
        "k",
        "min_dist",
        "umap_seed",
        "epochs",
        "n_init",
        "stability",
        "silhouette_sample",
    )
    layer = "joint" if wildcards.arch == "joint" else wildcards.layer
    return {
        **{key: own[key] for key in keys},
        "kmeans_seed": own["seed"],
        "n_neighbors": own["n_neighbors"][layer],
    }


def member_layers(arch):
    """Layers of `arch` whose members a cluster_members job draws: those Figs 12/13 show."""
    shown = {
        layer
        for name, spec in FIGURE_SPECS.items()
        if spec.kind == "members" and name in SELECTIONS
        for layer in SELECTIONS[name].layers[arch]
    }
    return [layer for layer in LAYERS[arch] if layer in shown]


def model_ckpt(arch, ds, vid, seed, f):
    if arch == "nerv":
        return f"{RESULTS}/models/nerv/{ds}/{vid}/s{seed}/ckpt.pt"
    return f"{RESULTS}/models/ffn/{ds}/{vid}/f{f}/s{seed}/ckpt.pt"


def member_inputs(arch):
    """Input function of cluster_members_{arch}: the layers' cluster files and every seed's
    model."""

    def inputs(wildcards):
        w = wildcards
        seeds = [int(seed) for seed in w.seedset.split("-")]
        return {
            "clusters": [
                cluster_path(w.ds, w.vid, w.f, arch, layer, seeds)
                for layer in member_layers(arch)
            ],
            "ckpts": [model_ckpt(arch, w.ds, w.vid, seed, w.f) for seed in seeds],
            "meta": work_path(w.ds, w.vid, "meta.json"),
        }

    return inputs


# Cluster files of the trust table and the findings: those Figs 10 and 14 show (every seed by
# default), with the joint embedding when configured.
TRUST_CLUSTERS = list(
    dict.fromkeys(
        cluster_path(*key)
        for name, spec in FIGURE_SPECS.items()
        if spec.kind == "clusters" and name in SELECTIONS
        for key in figure_clusters(name, joint=True)
    )
)


# NeRV layers whose contribution change is computed (those Fig 9 shows), for every video and
# seed (the findings table uses them all), and the flow of every pair.
PAIR_LAYERS = SELECTIONS["fig09"].layers["nerv"] if "fig09" in SELECTIONS else ()
PAIR_FRAMES = config["canvas"]["pair_frames"] if PAIR_LAYERS else []
PAIRS = [
    pair_path(ds, vid, seed, t, layer)
    for ds in DATASETS
    for vid in VIDEOS[ds]
    for seed in SEEDS
    for t in PAIR_FRAMES
    for layer in PAIR_LAYERS
]
FLOWS = [
    flow_path(ds, vid, t) for ds in DATASETS for vid in VIDEOS[ds] for t in PAIR_FRAMES
]
INSTANCE_TABLES = [
    instance_table_path(ds, vid) for ds in DATASETS for vid in VIDEOS[ds]
]
FIGURES = [f"{RESULTS}/figures/{name}.png" for name in SELECTIONS]
STATS = every_stats("nerv") + every_stats("ffn")
TABLES = [
    f"{RESULTS}/tables/table_s1.csv",
    f"{RESULTS}/tables/findings.csv",
    f"{RESULTS}/tables/clusters.csv",
]
