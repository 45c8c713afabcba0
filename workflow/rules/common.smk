# Shared definitions: config validation and checks, folder layout, dataset tables, wildcard
# constraints, input functions.
import re
import sys

# xinc.config and xinc.config_checks need only PyYAML and jsonschema (Snakemake's own
# dependencies), so the main Snakemake process needs none of xinc's others under --use-conda.
# The schema is xinc's package data (xinc/config.schema.yaml), the file `xinc` itself reads.
sys.path.insert(0, workflow.basedir)
from xinc.config import ConfigError, validate
from xinc.config_checks import (
    check_workflow_config,
    recorded_config,
    recorded_differences,
)
from xinc.data_plan import (
    DATASET_ARCHIVES,
    EXTRACTED,
    SEQUENCE_ARCHIVE,
    analysed_videos,
    dataset_origin,
    selection_csv,
)
from xinc.gpu_plan import gpu_resources
from xinc.figure_plan import (
    FIGURES as FIGURE_SPECS,
    Selection,
    figure_panels,
    figure_selection,
    without_videos,
)

config.update(validate(config))

DATASETS = [ds for ds, spec in config["datasets"].items() if spec["videos"]]
if not DATASETS:
    raise ConfigError(
        "config key datasets: no dataset lists any video; set datasets.<name>.videos"
    )
SEEDS = config["seeds"]
ARCHS = ["nerv", "ffn"]
LAYERS = config["canvas"]["layers"]
WORK = "{}x{}".format(*config["working_size"])

# ---------------------------------------------------------------- data origin
# Data folders are named by what determines their content, so that runs of other settings
# never replace them; everything else belongs to the run (config `run`).
SYNTH_TAG = "{scale}-seed{seed}".format(**config["synthetic"])
SYNTH = f"data/synthetic/{SYNTH_TAG}"
# per dataset: synthetic | root | download | custom (xinc.data_plan)
ORIGINS = {ds: dataset_origin(config, ds) for ds in config["datasets"]}


def _variant(ds, spec):
    """Name of a dataset's prepared data: where its frames come from and how they are cropped."""
    crop = spec.get("crop")
    if ds == "custom":
        if crop == "aspect":
            return f"custom-aspect{WORK}"
        return "custom-crop{}x{}".format(*crop) if crop else "custom-nocrop"
    origin = {"synthetic": f"synthetic-{SYNTH_TAG}", "root": "real"}.get(ORIGINS[ds])
    if origin is None:  # downloaded
        origin = f"real-{_vipseg_tag(spec)}" if ds == "vipseg" else "real"
    return "{}-crop{}x{}".format(origin, *crop) if crop else origin


def _vipseg_tag(spec):
    """The 720p conversion's settings, in the names of the folders it determines."""
    jpeg = "jpeg75" if spec["emulate_720p_jpeg"] else "lossless"
    return f"{spec['target_height']}p-{jpeg}"


# official layouts prepared from the downloads, one folder per video
XINC_LAYOUT = {
    "cityscapes_vps": "data/xinc_layout/cityscapes_vps",
    "vipseg": f"data/xinc_layout/vipseg/{_vipseg_tag(config['datasets']['vipseg'])}",
}
VARIANT = {ds: _variant(ds, spec) for ds, spec in config["datasets"].items()}
# what the numbers of the findings table come from
DATA_LABEL = "+".join(
    dict.fromkeys("synthetic" if ORIGINS[ds] == "synthetic" else ds for ds in DATASETS)
)

# Videos and their lengths. Downloaded and custom videos are known from videos.csv (rule
# select_videos); until it exists only the data stage is planned (PENDING), since the frame
# indices name the analyses' files. Cityscapes-VPS snippets always have 30 frames.
VIDEOS, KNOWN, MASKLESS, PENDING = {}, {}, set(), []
for _ds in DATASETS:
    if ORIGINS[_ds] not in ("download", "custom"):
        if config["datasets"][_ds]["videos"] == "all":
            raise ConfigError(
                f"config key datasets.{_ds}.videos: 'all' needs the dataset downloaded by "
                f"the workflow (source: real, datasets.{_ds}.root: null); list the videos"
            )
        VIDEOS[_ds] = list(config["datasets"][_ds]["videos"])
        continue
    _videos, _rows = analysed_videos(config, _ds, VARIANT[_ds])
    VIDEOS[_ds] = _videos or []
    if _rows is not None:
        KNOWN[_ds] = {v: (_rows[v].n_frames, list(_rows[v].annotated)) for v in _videos}
        MASKLESS |= {(_ds, v) for v in _videos if not _rows[v].has_masks}
    elif _ds != "cityscapes_vps" or _videos is None:
        PENDING.append(_ds)
if PENDING:
    print(
        "xinc: the frames of "
        + ", ".join(
            f"{ds} (data/prepared/{ds}/{VARIANT[ds]}/videos.csv)" for ds in PENDING
        )
        + " are known once select_videos has run; this invocation plans the data "
        "stage only; run the same command again afterwards to plan the analyses.",
        file=sys.stderr,
    )

# The data stage's targets: every selection, and every video known by its id.
DATA_TARGETS = [
    selection_csv(ds, VARIANT[ds])
    for ds in DATASETS
    if ORIGINS[ds] in ("download", "custom")
] + [
    f"data/work/{ds}/{VARIANT[ds]}/{vid}/{WORK}/meta.json"
    for ds in DATASETS
    for vid in VIDEOS[ds]
]

# Everything the config names (sizes, dataset folders, pretrained checkpoints, frames) is
# checked now, before any job: errors raised later, inside input functions, are planned around
# by Snakemake. FRAMES[ds][vid]: the video's length, annotated, NeRV and FFN frames and key
# frame (xinc.frame_plan).
FRAMES = check_workflow_config(config, {} if PENDING else VIDEOS, KNOWN)

# ---------------------------------------------------------------- run folders
RUN = config["run"]
RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCHMARKS = f"benchmarks/{RUN}"
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
    vid="|".join(re.escape(v) for vids in VIDEOS.values() for v in vids) or r"[^/]+",
    variant="|".join(re.escape(v) for v in set(VARIANT.values())),
    seed=r"\d+",
    f=r"\d+",
    t=r"\d+",
    arch="nerv|ffn",
    layer=r"head|b\d+|l\d+",
    seedset=r"\d+(-\d+)*",


def dataset_root(wildcards):
    """The video's dataset in its official prepared layout: generated (synthetic), the user's
    folder (root; checked when the workflow loads), or prepared from the downloads (one
    folder per video, rule official_prep_<ds>)."""
    origin = ORIGINS[wildcards.ds]
    if origin == "synthetic":
        return f"{SYNTH}/{wildcards.ds}"
    if origin == "root":
        return config["datasets"][wildcards.ds]["root"]
    return f"{XINC_LAYOUT[wildcards.ds]}/{wildcards.vid}"


def download_source(name):
    """What determines a downloaded file: its url, size and hash overrides and the sites' base
    URLs (params: credentials, archive_dir and retries are read by the job itself)."""
    own = config["downloads"]
    return {
        "name": name,
        "overrides": own["archives"].get(name, {}),
        "cityscapes_base_url": own["cityscapes_base_url"],
        "drive_url": own["drive_url"],
    }


# the archives download_archive fetches whole (the sequence package: fetch_sequence_frames)
DOWNLOADED = [name for names in DATASET_ARCHIVES.values() for name in names.values()]


def download_path(ds, role):
    return f"data/downloads/{DATASET_ARCHIVES[ds][role]}"


def raw_marker(ds, role):
    """The .extracted marker of one of the dataset's archives (rule extract_archive)."""
    return f"data/raw/{DATASET_ARCHIVES[ds][role]}/.extracted"


def selection_inputs(wildcards):
    """What select_videos reads: the dataset's index files, or the custom videos' files."""
    if wildcards.ds == "cityscapes_vps":
        return {"vps": raw_marker("cityscapes_vps", "vps")}
    if wildcards.ds == "vipseg":
        return {
            "raw": raw_marker("vipseg", "raw"),
            "categories": download_path("vipseg", "categories"),
            "splits": [download_path("vipseg", s) for s in ("train", "val", "test")],
        }
    return {"files": [custom_files_of(vid)["path"] for vid in VIDEOS["custom"]]}


def selection_settings(wildcards):
    """The configured videos and the selection filters of the job's dataset."""
    spec = config["datasets"][wildcards.ds]
    keys = {
        "vipseg": ("min_frames", "max_frames", "require_size", "target_height"),
        "custom": ("files",),
    }.get(wildcards.ds, ())
    return {"videos": spec["videos"], **{key: spec[key] for key in keys}}


def custom_files_of(vid):
    """The files of custom video `vid`: the video or frame folder, and its masks if any."""
    entry = config["datasets"]["custom"]["files"][vid]
    files = {"path": entry["path"]}
    if entry["panoptic"]:
        files.update(
            masks_json=entry["panoptic"]["json"], masks_dir=entry["panoptic"]["dir"]
        )
    return files


def custom_files(wildcards):
    return custom_files_of(wildcards.vid)


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


# Training and canvas jobs request a GPU when they run on one (config device; xinc.gpu_plan).
GPU = gpu_resources(config["device"])


def canvas_groups(arch, ds):
    """Videos of `ds` grouped by the frames one canvas job of `arch` traces: {frames: [videos]}.
    One job per model (a NeRV: its frames; the FFNs of a video: one model per frame) pays
    start-up (torch, CUDA context, model load) once; one rule per frame list, since a rule's
    outputs cannot depend on its wildcards (one list unless videos differ in length).
    """
    groups = {}
    for vid in VIDEOS[ds]:
        frames = FRAMES[ds][vid].nerv if arch == "nerv" else FRAMES[ds][vid].ffn
        groups.setdefault(tuple(frames), []).append(vid)
    return groups


def canvas_ckpts(arch, frames):
    """Checkpoints of one canvas job: the NeRV, or the FFN of each frame."""
    if arch == "nerv":
        return [f"{RESULTS}/models/nerv/{{ds}}/{{vid}}/s{{seed}}/ckpt.pt"]
    return [
        f"{RESULTS}/models/ffn/{{ds}}/{{vid}}/f{f}/s{{seed}}/ckpt.pt" for f in frames
    ]


def wildcard_frame(wildcards):
    """The job's one frame, as the frame list of the canvas script."""
    return [int(wildcards.f)]


def canvas_resources(arch, n_frames):
    """Memory and minutes of one canvas job (a paper NeRV frame: ~3 GB and minutes on a CPU)."""
    per_frame = 20 if arch == "nerv" else 5
    return {
        "mem_mb": 3000 if arch == "nerv" else 2000,
        "runtime": 10 + per_frame * n_frames,
        **GPU,
    }


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
