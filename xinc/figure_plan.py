"""The figures of the workflow and what each shows, decided when the workflow loads.

Standard library only (the Snakefile imports it). `FIGURES` is the one table of the figures:
the library module that draws each (`xinc.plots.<module>`), the kind of inputs it reads, the
paper's layers and the report label. `figure_selection` resolves a figure's config
(`figures.<figNN>.videos / .seeds / .layers`) against what the workflow trains and traces, and
`figure_panels` lists the statistics panels it reads.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from xinc.config import ConfigError
from xinc.frame_plan import VideoFrames

ALL_LAYERS = ("*",)  # every traced layer


@dataclass(frozen=True)
class FigureSpec:
    """One figure target: `module` draws it from inputs of `kind`.

    kind: `frame` = per-frame statistics at each video's key frame; `objects` = FFN statistics
    at the key frame and NeRV statistics over the analysed frames, plus instance tables;
    `motion` = contribution change, optical flow and frames of the configured pairs;
    `clusters` = cluster files (UMAP + k-means over the figure's seeds) at the key frame;
    `members` = the sampled members' maps of those clusters.
    videos / seeds: what `figures.<name>.videos / .seeds: null` stand for (`all` or `first`
    configured seed; `all`, `first` or `last` configured video).
    """

    name: str
    module: str
    kind: str
    layers: tuple[str, ...]
    content: str
    summary: bool = False  # also writes <name>_summary.csv
    frames: bool = False  # reads the working-resolution frames
    title: str | None = None  # None: the module's own title
    videos: str = "all"
    seeds: str = "first"
    masks: bool = False  # needs panoptic masks: videos without them are left out


FIGURES: dict[str, FigureSpec] = {spec.name: spec for spec in (
    FigureSpec("fig01", "fig01", "frame", ("l3", "head"), "teaser: frame and sample maps",
               frames=True),
    FigureSpec("fig03", "fig03", "frame", ("l2", "l3", "head", "b3", "b2"),
               "sample contribution maps"),
    FigureSpec("fig04", "fig04", "frame", ALL_LAYERS, "grouping variance", summary=True,
               masks=True),
    FigureSpec("fig05", "fig05", "frame", ("l1", "l2", "l3", "head", "b3"),
               "contribution heat vs intensity and edges", frames=True),
    FigureSpec("fig06", "fig06", "frame", ALL_LAYERS, "pixels per neuron", summary=True),
    FigureSpec("fig07", "fig07", "frame", ALL_LAYERS, "neurons per pixel", frames=True),
    FigureSpec("fig08", "fig08", "objects", ("l1", "l2", "l3", "head", "b3"),
               "contributions to segments over time", summary=True, masks=True),
    FigureSpec("fig09", "fig09", "motion", ("head", "b3"), "contribution change vs flow",
               frames=True),
    FigureSpec("fig10", "fig10", "clusters", ALL_LAYERS, "neuron clusters across seeds",
               videos="first", seeds="all"),
    FigureSpec("fig11", "fig03", "frame", ("l1", "b1"), "first-layer contribution maps",
               title="Contribution maps of sample first-layer neurons (|C|, min-max per "
                     "neuron)"),
    FigureSpec("fig12", "fig12", "members", ALL_LAYERS, "sampled neurons per cluster",
               frames=True, videos="first"),
    FigureSpec("fig13", "fig12", "members", ALL_LAYERS, "sampled neurons per cluster, "
               "second video", frames=True, videos="last"),
    FigureSpec("fig14", "fig10", "clusters", ALL_LAYERS, "neuron clusters across seeds, "
               "other videos", seeds="all",
               title="Neuron clusters across seeds on further videos"),
    FigureSpec("fig15", "fig06", "frame", ALL_LAYERS, "pixels per neuron, other videos",
               summary=True, title="Pixels per neuron on further videos"),
    FigureSpec("fig16", "fig04", "frame", ALL_LAYERS, "grouping variance, other videos",
               summary=True, title="Variance of neuron contribution deltas across pixel "
                                   "groupings, further videos", masks=True),
    FigureSpec("fig17", "fig07", "frame", ALL_LAYERS, "neurons per pixel, other videos",
               frames=True),
    FigureSpec("fig18", "fig18", "frame", ALL_LAYERS, "distribution of contributions"),
    FigureSpec("fig19", "fig08", "objects", ("b2", "b1"),
               "NeRV B2/B1 contributions to segments over time", summary=True,
               title="NeRV B2 and B1: contributions to segments over time", masks=True),
)}


def layer_arch(layer: str) -> str:
    """'ffn' for l1, l2, ...; 'nerv' for head, b1, ..."""
    return "ffn" if layer.startswith("l") else "nerv"


@dataclass(frozen=True)
class Selection:
    """What one figure shows: (dataset, video) pairs, seeds, layers per architecture."""

    videos: tuple[tuple[str, str], ...]
    seeds: tuple[int, ...]
    layers: dict[str, tuple[str, ...]]


def figure_selection(spec: FigureSpec, config: Mapping[str, Any],
                     videos: Mapping[str, Sequence[str]],
                     traced: Mapping[str, Sequence[str]]) -> Selection | None:
    """The figure's selection; None when none of its default layers is traced. Raises
    `ConfigError` for a video, seed or explicitly listed layer the workflow does not have."""
    own = config["figures"][spec.name]
    key = f"figures.{spec.name}"
    owner = {vid: ds for ds, vids in videos.items() for vid in vids}
    every = [vid for vids in videos.values() for vid in vids]
    chosen = own["videos"] or {"all": every, "first": every[:1], "last": every[-1:]}[spec.videos]
    unknown = [vid for vid in chosen if vid not in owner]
    if unknown:
        raise ConfigError(f"config key {key}.videos: {', '.join(unknown)} not among the "
                          f"configured videos ({', '.join(owner)}); add them to "
                          "datasets.<name>.videos or remove them here")
    seeds = own["seeds"] or (config["seeds"] if spec.seeds == "all" else config["seeds"][:1])
    missing = [s for s in seeds if s not in config["seeds"]]
    if missing:
        raise ConfigError(f"config key {key}.seeds: {missing} not among the trained seeds "
                          f"{config['seeds']}; add them to seeds or remove them here")
    if own["layers"]:
        untraced = [lay for lay in own["layers"] if lay not in traced[layer_arch(lay)]]
        if untraced:
            raise ConfigError(f"config key {key}.layers: {', '.join(untraced)} not traced "
                              f"(canvas.layers: {dict(traced)}); add them to canvas.layers "
                              "or remove them here")
        wanted = list(own["layers"])
    elif spec.layers == ALL_LAYERS:
        wanted = [*traced["ffn"], *traced["nerv"]]
    else:
        wanted = [lay for lay in spec.layers if lay in traced[layer_arch(lay)]]
    layers = {arch: tuple(lay for lay in wanted if layer_arch(lay) == arch)
              for arch in ("ffn", "nerv")}
    if spec.kind == "motion":  # contribution change over time: NeRVs only
        if own["layers"] and layers["ffn"]:
            raise ConfigError(f"config key {key}.layers: {', '.join(layers['ffn'])} are FFN "
                              "layers, but an FFN models one frame; list NeRV layers")
        layers["ffn"] = ()
    if not any(layers.values()):
        return None
    return Selection(tuple((owner[vid], vid) for vid in chosen), tuple(seeds), layers)


def without_videos(selection: Selection, dropped: Collection[tuple[str, str]]
                   ) -> Selection | None:
    """`selection` without the (dataset, video) pairs `dropped`; None when none is left."""
    kept = tuple(pair for pair in selection.videos if pair not in dropped)
    return replace(selection, videos=kept) if kept else None


def figure_panels(selection: Selection, frames: Mapping[str, Mapping[str, VideoFrames]], *,
                  arch: str, all_frames: bool = False) -> list[dict[str, Any]]:
    """Statistics panels (dataset, video, arch, layer, seed, frame) of one architecture, grouped
    by model and frame: at each video's key frame, or at every analysed frame (`all_frames`,
    NeRV over time)."""
    panels = []
    for ds, vid in selection.videos:
        plan = frames[ds][vid]
        shown = (plan.nerv if arch == "nerv" else plan.ffn) if all_frames else (plan.key,)
        for seed in selection.seeds:
            for frame in shown:
                panels.extend({"dataset": ds, "video": vid, "arch": arch, "layer": layer,
                               "seed": seed, "frame": frame}
                              for layer in selection.layers[arch])
    return panels
