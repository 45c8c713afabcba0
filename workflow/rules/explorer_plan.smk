# Plan of the canvas explorer (rules in explorer.smk): its folder, the files of one data job,
# the frames each model is explored at, the cluster files shown as scatters and the members
# whose maps are kept.
from xinc.explorer import layout as explorer_layout

EXPLORER = f"{RESULTS}/explorer"
EXPLORER_PAGE = [
    f"{EXPLORER}/{name}"
    for name in (*explorer_layout.PAGE_FILES, explorer_layout.MANIFEST)
]


def explorer_model_files(arch, frames):
    """Outputs of one data job (wildcards ds, vid, seed): every file of the model's folder."""
    folder = explorer_layout.model_dir(arch, "{ds}", "{vid}", "{seed}")
    return [
        f"{EXPLORER}/{folder}/{name}"
        for name in explorer_layout.model_files(frames, LAYERS[arch])
    ]


def explorer_groups(arch, ds):
    """Videos of `ds` grouped by the frames one data job of `arch` explores: {frames: [videos]}
    (explorer.frames: each video's key frame, or the frames its canvas job traces)."""
    if config["explorer"]["frames"] == "all":
        return canvas_groups(arch, ds)
    groups = {}
    for vid in VIDEOS[ds]:
        groups.setdefault((FRAMES[ds][vid].key,), []).append(vid)
    return groups


def explorer_cluster_keys():
    """(dataset, video, key frame, arch, layer, seeds) of every per-layer cluster file the run
    makes (Figs 10 and 12-14): each becomes a scatter of the page."""
    return list(
        dict.fromkeys(
            key
            for name, spec in FIGURE_SPECS.items()
            if spec.kind in ("clusters", "members") and name in SELECTIONS
            for key in figure_clusters(name)
        )
    )


def explorer_members(arch):
    """Input function: the cluster-members files (Figs 12/13) holding the job's model (video
    and seed), every member layer of `arch`: their neurons' maps are kept."""

    def members(wildcards):
        seed = int(wildcards.seed)
        keys = dict.fromkeys(
            (ds, vid, f, arch, layer, seeds)
            for name, spec in FIGURE_SPECS.items()
            if spec.kind == "members" and name in SELECTIONS
            for ds, vid, f, key_arch, _, seeds in figure_clusters(name)
            if (key_arch, ds, vid) == (arch, wildcards.ds, wildcards.vid)
            and seed in seeds
            for layer in member_layers(arch)
        )
        return [members_path(*key) for key in keys]

    return members
