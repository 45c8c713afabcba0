# The analysis plan: what each figure shows and every target of the analyses. Included only
# when every analysed video's frames are known (common.smk PENDING).

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
    elif _spec.masks and MASKLESS:
        _selection = without_videos(_selection, MASKLESS)
        _skipped = sorted(vid for ds, vid in MASKLESS)
        if _selection is None:
            print(
                f"xinc: {_name} is left out: it needs panoptic masks, which "
                f"{', '.join(_skipped)} do not have (datasets.custom.files.<id>.panoptic)",
                file=sys.stderr,
            )
        else:
            SELECTIONS[_name] = _selection
    else:
        SELECTIONS[_name] = _selection

FINDINGS_KEY, FINDINGS_OVER_TIME = findings_panels()


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
# videos with panoptic masks: the instance tables and instance-based findings use these
MASKED_VIDEOS = [
    (ds, vid) for ds in DATASETS for vid in VIDEOS[ds] if (ds, vid) not in MASKLESS
]
INSTANCE_TABLES = [instance_table_path(ds, vid) for ds, vid in MASKED_VIDEOS]
FIGURES = [f"{RESULTS}/figures/{name}.png" for name in SELECTIONS]
STATS = every_stats("nerv") + every_stats("ffn")
TABLES = [
    f"{RESULTS}/tables/table_s1.csv",
    f"{RESULTS}/tables/findings.csv",
    f"{RESULTS}/tables/clusters.csv",
]
