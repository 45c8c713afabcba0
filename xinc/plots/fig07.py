"""Fig 7 (main) / Fig 17 (supp): neurons per pixel at two thresholds (docs/method.md §8.5 and
§10 Fig 7; the authors never draw these maps, B11).

frac_a(p) = #{n : |C_n(p)| > τ_a} / N_layer is stored per layer as `neurons_per_pixel_10` and
`neurons_per_pixel_50` with τ_a (`tau_10`, `tau_50`) the value above which the largest |C| carry
1 − a of the layer's total mass. Per (dataset, video, seed, frame): the frame, then one heat map
per layer (FFN and NeRV side by side) in a row for τ₀.₁ and a row for τ₀.₅, magma, each panel
with its own colour bar from 0 to that map's maximum.

CSV (one row per heat map): dataset, video, arch, layer, seed, frame, area (0.1 | 0.5), tau, mean,
std (population, over pixels), cv (= std / mean, NaN when the mean is 0), min, max, source (the
statistics file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from xinc.plots import Frames, StatsInput, as_inputs, frame_groups, read_frame, read_stats
from xinc.plots.style import (
    CMAP,
    MAP_PANEL,
    bare_axis,
    figure_style,
    group_title,
    layer_label,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["AREAS", "COLUMNS", "compute", "draw", "map_stats", "render"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "area", "tau", "mean", "std", "cv", "min", "max", "source"]
AREAS = {0.1: "10", 0.5: "50"}  # mass fraction a → key suffix of tau_ / neurons_per_pixel_
ROW_LABELS = {0.1: "τ₀.₁ (top 90 % of mass)", 0.5: "τ₀.₅ (top 50 % of mass)"}
DEFAULT_TITLE = "Neurons per pixel: fraction of the layer's neurons with |C| > τ"


def map_stats(frac: np.ndarray) -> dict[str, float]:
    """mean, std, cv, min, max of one heat map (float64 over pixels)."""
    x = np.asarray(frac, dtype=np.float64)
    mean, std = float(x.mean()), float(x.std())
    return {"mean": mean, "std": std, "cv": std / mean if mean != 0 else math.nan,
            "min": float(x.min()), "max": float(x.max())}


def _keys(area: float) -> tuple[str, str]:
    return f"tau_{AREAS[area]}", f"neurons_per_pixel_{AREAS[area]}"


def _rows(item: StatsInput) -> list[dict]:
    keys = [k for a in AREAS for k in _keys(a)]
    st = read_stats(item.path, keys)
    missing = [k for k in keys if k not in st]
    if missing:
        raise ValueError(f"{item.path}: no {missing} (statistics written before they existed); "
                         "rerun the canvas rules")
    rows = []
    for area in AREAS:
        tau, npp = _keys(area)
        rows.append({**item.labels(), "area": area, "tau": float(st[tau]),
                     **map_stats(st[npp]), "source": str(item.path)})
    return rows


def compute(inputs: Sequence[StatsInput | str | Path]) -> pd.DataFrame:
    """Two rows (τ₀.₁, τ₀.₅) per input (:data:`COLUMNS`)."""
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig07 needs at least one statistics input")
    return pd.DataFrame.from_records([r for item in items for r in _rows(item)],
                                     columns=COLUMNS)


def _panel(fig: Figure, ax: Axes, row: Any, cache: dict[str, dict]) -> None:
    """One heat map with its own colour bar."""
    if row.source not in cache:
        cache[row.source] = read_stats(row.source, [_keys(a)[1] for a in AREAS])
    frac = np.asarray(cache[row.source][_keys(row.area)[1]], dtype=np.float64)
    bare_axis(ax)
    image = ax.imshow(frac, cmap=CMAP, vmin=0.0, vmax=row.max if row.max > 0 else 1.0)
    ax.set_title(f"{layer_label(row.arch, row.layer)} · τ = {row.tau:.3g}", pad=2, fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.9, aspect=12, pad=0.02)


def _draw_group(fig: Figure, axes: np.ndarray, part: pd.DataFrame, frames: Frames) -> None:
    first = part.iloc[0]
    seed = None if pd.isna(first["seed"]) else int(first["seed"])
    for ax in axes.ravel():
        bare_axis(ax)
    axes[0, 0].imshow(read_frame(frames, first["dataset"], first["video"], first["frame"]))
    axes[0, 0].set_title(group_title(first["dataset"], first["video"], seed,
                                     int(first["frame"])), pad=2, fontsize=7)
    axes[1, 0].set_axis_off()
    cache: dict[str, dict] = {}
    for r, area in enumerate(AREAS):
        rows = part[part["area"] == area]
        for c, row in enumerate(rows.itertuples(index=False), start=1):
            _panel(fig, axes[r, c], row, cache)
        for ax in axes[r, 1 + len(rows):]:
            ax.set_axis_off()
        axes[r, 1].set_ylabel(ROW_LABELS[area], fontsize=6)


def draw(df: pd.DataFrame, frames: Frames, *, title: str | None = None) -> Figure:
    """Per (dataset, video, seed, frame) of `df`: the frame, then a row of heat maps per τ."""
    groups = frame_groups(df)
    ncols = 1 + max((len(g) // len(AREAS) for g in groups), default=1)
    with figure_style():
        fig = new_figure((MAP_PANEL[0] + 0.35) * ncols,
                         2 * MAP_PANEL[1] * max(len(groups), 1) + 0.5)
        axes = fig.subplots(2 * max(len(groups), 1), ncols, squeeze=False)
        for g, part in enumerate(groups):
            _draw_group(fig, axes[2 * g:2 * g + 2], part, frames)
        fig.suptitle(title if title is not None else DEFAULT_TITLE)
    return fig


def render(inputs: Sequence[StatsInput | str | Path], frames: Frames, png_path: str | Path,
           csv_path: str | Path, *, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    table = compute(inputs)
    save_table(table, csv_path)
    with figure_style():
        save_figure(draw(table, frames, title=title), png_path, dpi=dpi)
    return table
