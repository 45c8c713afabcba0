"""Fig 1 (teaser): "the implicit neural canvas" (docs/method.md §10 Fig 1, layout [inferred]).

For one frame of one model pair (inputs: one video's key frame, one seed, several layers of FFN
and NeRV): the ground-truth frame, and next to it one row per layer with the first `neurons`
maps of the layer's stored seeded sample (`sample_ids` / `sample_maps`), |C| min-max normalised
per neuron, magma. The frame spans as many rows and columns as there are layers, so it keeps its
aspect next to the maps. Several (dataset, video, seed, frame) groups are stacked vertically.
Dead sampled neurons are drawn black and marked "dead".

CSV (one row per drawn map): dataset, video, arch, layer, seed, frame, panel, neuron_id, dead,
min, max, mean (of |C| before normalisation), source (the statistics file of the map).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure, SubFigure

from xinc.plots import Frames, StatsInput, as_inputs, fig03, frame_groups, read_frame
from xinc.plots.fig03 import sample_maps
from xinc.plots.style import (
    CMAP,
    MAP_PANEL,
    bare_axis,
    figure_style,
    group_title,
    layer_label,
    mark_dead,
    minmax,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "compute", "draw", "render"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "panel", "neuron_id", "dead", "min", "max", "mean", "source"]
DEFAULT_TITLE = "The implicit neural canvas: a frame and the contribution maps of sample neurons"


def compute(inputs: Sequence[StatsInput | str | Path], *, neurons: int = 3) -> pd.DataFrame:
    """The first `neurons` sampled maps of every input (:data:`COLUMNS`)."""
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig01 needs at least one statistics input")
    return fig03.sample_table(items, neurons)[COLUMNS]


def _draw_group(sub: SubFigure, part: pd.DataFrame, frames: Frames, ncols: int,
                maps: dict[str, dict[int, np.ndarray]]) -> None:
    """The frame and one row of maps per layer (source) of one group, with a colour bar."""
    first = part.iloc[0]
    layers = list(dict.fromkeys(part["source"]))
    nl = len(layers)
    grid = sub.add_gridspec(nl, nl + ncols)
    ax = sub.add_subplot(grid[:, :nl])
    bare_axis(ax)
    ax.imshow(read_frame(frames, first["dataset"], first["video"], first["frame"]))
    ax.set_title("frame (ground truth)", pad=2)
    image, drawn = None, []
    for r, source in enumerate(layers):
        rows = part[part["source"] == source]
        for c in range(ncols):
            ax = sub.add_subplot(grid[r, nl + c])
            bare_axis(ax)
            if c >= len(rows):
                ax.set_axis_off()
                continue
            row = rows.iloc[c]
            drawn.append(ax)
            image = ax.imshow(minmax(maps[source][int(row["neuron_id"])]), cmap=CMAP,
                              vmin=0.0, vmax=1.0)
            ax.set_title(f"#{int(row['neuron_id'])}", pad=2)
            if row["dead"]:
                mark_dead(ax)
            if c == 0:
                ax.set_ylabel(layer_label(row["arch"], row["layer"]))
    if image is not None:
        sub.colorbar(image, ax=drawn, shrink=0.8, aspect=25, pad=0.01,
                     label="|C| (min-max per neuron)")
    seed = None if pd.isna(first["seed"]) else int(first["seed"])
    sub.suptitle(group_title(first["dataset"], first["video"], seed, int(first["frame"])))


def draw(df: pd.DataFrame, frames: Frames, *, title: str | None = None) -> Figure:
    """One block per (dataset, video, seed, frame) of `df`: the frame, then the maps per
    layer."""
    if df.empty:
        raise ValueError("fig01: no sampled maps to draw")
    groups = frame_groups(df)
    maps = sample_maps(df)
    ncols = max(int(g.groupby("source", sort=False).size().max()) for g in groups)
    heights = [g["source"].nunique() for g in groups]
    width = MAP_PANEL[0] * (max(heights) + ncols) + 1.0
    with figure_style():
        fig = new_figure(width, sum(MAP_PANEL[1] * h + 0.4 for h in heights) + 0.5)
        subs = fig.subfigures(len(groups), 1, squeeze=False, height_ratios=heights)[:, 0]
        for sub, part in zip(subs, groups, strict=True):
            _draw_group(sub, part, frames, ncols, maps)
        fig.suptitle(title if title is not None else DEFAULT_TITLE)
    return fig


def render(inputs: Sequence[StatsInput | str | Path], frames: Frames, png_path: str | Path,
           csv_path: str | Path, *, neurons: int = 3, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    table = compute(inputs, neurons=neurons)
    save_table(table, csv_path)
    with figure_style():
        save_figure(draw(table, frames, title=title), png_path, dpi=dpi)
    return table
