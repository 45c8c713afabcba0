"""Fig 5: where the total contribution goes, against intensity and edges (docs/method.md §10
Fig 5).

Per (dataset, video, seed, frame) and layer, from the stored `heat` = Σ_n |C_n(p)| and the
frame (working-resolution `frames_pil.npy`, uint8):
- intensity(p) = Σ_RGB of the frame min-max normalised globally (over all pixels and channels);
- edges(p) = √(sx² + sy²), `scipy.ndimage.sobel` along rows and columns of the grey frame
  (skimage's rgb2gray weights 0.2125 R + 0.7154 G + 0.0721 B of the frame / 255);
- diff(p) = minmax(heat) − minmax(intensity).

Figure: two rows per (dataset, video, seed, frame): [intensity, edges, heat per layer] (magma,
each min-max normalised; colour bar on the right) over [frame, —, diff per layer] (diverging
RdBu_r on [−1, 1]; colour bar at the bottom).

CSV (one row per layer and frame; the correlations are our addition, over all pixels, NaN when
either map is constant): dataset, video, arch, layer, seed, frame, pearson_intensity,
spearman_intensity, pearson_edges, spearman_edges, heat_min, heat_max, heat_mean, pixels, source
(the statistics file whose `heat` is drawn).

"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from scipy import ndimage

from xinc.plots import (
    Frames,
    StatsInput,
    as_inputs,
    frame_groups,
    grey_frame,
    map_correlations,
    read_frame,
    read_stats,
)
from xinc.plots.style import (
    CMAP,
    MAP_PANEL,
    bare_axis,
    figure_style,
    group_title,
    layer_label,
    minmax,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "DIFF_CMAP", "compute", "draw", "edges", "intensity", "render"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "pearson_intensity", "spearman_intensity", "pearson_edges", "spearman_edges",
           "heat_min", "heat_max", "heat_mean", "pixels", "source"]
DIFF_CMAP = "RdBu_r"
DEFAULT_TITLE = "Total contribution Σ|C| per layer vs intensity and edges"

def intensity(rgb: np.ndarray) -> np.ndarray:
    """Σ_RGB of the frame min-max normalised over all pixels and channels (float64 [H, W])."""
    return minmax(rgb).sum(axis=-1)


def edges(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the grey frame (float64 [H, W])."""
    grey = grey_frame(rgb) / 255.0
    return np.hypot(ndimage.sobel(grey, axis=0), ndimage.sobel(grey, axis=1))


def _heat(item: StatsInput) -> np.ndarray:
    st = read_stats(item.path, ("heat",))
    if "heat" not in st:
        raise ValueError(f"{item.path}: no 'heat' array")
    return np.asarray(st["heat"], dtype=np.float64)


def _row(item: StatsInput, heat: np.ndarray, rgb: np.ndarray) -> dict:
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"{item.path}: heat {heat.shape} but frame {rgb.shape[:2]}")
    p_int, s_int = map_correlations(heat, intensity(rgb))
    p_edge, s_edge = map_correlations(heat, edges(rgb))
    return {**item.labels(), "pearson_intensity": p_int, "spearman_intensity": s_int,
            "pearson_edges": p_edge, "spearman_edges": s_edge, "heat_min": float(heat.min()),
            "heat_max": float(heat.max()), "heat_mean": float(heat.mean()),
            "pixels": int(heat.size), "source": str(item.path)}


def compute(inputs: Sequence[StatsInput | str | Path], frames: Frames) -> pd.DataFrame:
    """One row per input (:data:`COLUMNS`)."""
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig05 needs at least one statistics input")
    rows = [_row(item, _heat(item), read_frame(frames, item.dataset, item.video, item.frame))
            for item in items]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def _image(ax: Axes, data: np.ndarray, title: str, **kwargs: Any) -> AxesImage:
    bare_axis(ax)
    ax.set_title(title, pad=2, fontsize=7)
    return ax.imshow(data, interpolation="nearest", **kwargs)


def _draw_group(axes: np.ndarray, part: pd.DataFrame, frames: Frames
                ) -> tuple[AxesImage, AxesImage | None]:
    """Rows `axes[0]` (magma maps) and `axes[1]` (frame, diffs) of one frame; two images."""
    first = part.iloc[0]
    seed = None if pd.isna(first["seed"]) else int(first["seed"])
    rgb = read_frame(frames, first["dataset"], first["video"], int(first["frame"]))
    inten = minmax(intensity(rgb))
    for ax in axes.ravel():
        bare_axis(ax)
    mapped = _image(axes[0, 0], inten, "intensity (Σ RGB)", cmap=CMAP, vmin=0, vmax=1)
    _image(axes[0, 1], minmax(edges(rgb)), "edges (Sobel)", cmap=CMAP, vmin=0, vmax=1)
    _image(axes[1, 0], rgb, "frame")
    axes[1, 1].set_axis_off()
    diff = None
    for c, row in enumerate(part.itertuples(index=False), start=2):
        heat = minmax(np.asarray(read_stats(row.source, ("heat",))["heat"], dtype=np.float64))
        name = layer_label(row.arch, row.layer)
        _image(axes[0, c], heat, f"Σ|C| {name}", cmap=CMAP, vmin=0, vmax=1)
        diff = _image(axes[1, c], heat - inten, f"diff {name}", cmap=DIFF_CMAP, vmin=-1,
                      vmax=1)
    for ax in axes[:, 2 + len(part):].ravel():
        ax.set_axis_off()
    axes[0, 0].set_ylabel(group_title(first["dataset"], first["video"], seed,
                                      int(first["frame"])), fontsize=6)
    return mapped, diff


def draw(df: pd.DataFrame, frames: Frames, *, title: str | None = None) -> Figure:
    """Two rows per (dataset, video, seed, frame) of `df`: intensity, edges and Σ|C| per layer;
    the frame and the diffs."""
    groups = frame_groups(df)
    ncols = 2 + max((len(g) for g in groups), default=0)
    with figure_style():
        fig = new_figure(MAP_PANEL[0] * ncols + 1.2, 2 * MAP_PANEL[1] * max(len(groups), 1)
                         + 0.9)
        axes = fig.subplots(2 * max(len(groups), 1), ncols, squeeze=False)
        images = [_draw_group(axes[2 * g:2 * g + 2], part, frames)
                  for g, part in enumerate(groups)]
        if images:
            fig.colorbar(images[0][0], ax=axes, shrink=0.8, aspect=30, pad=0.01,
                         label="min-max normalised")
        diffs = [d for _, d in images if d is not None]
        if diffs:
            fig.colorbar(diffs[0], ax=axes, location="bottom", shrink=0.4, aspect=40,
                         pad=0.01, label="diff = minmax(Σ|C|) − minmax(intensity)")
        fig.suptitle(title if title is not None else DEFAULT_TITLE)
    return fig


def render(inputs: Sequence[StatsInput | str | Path], frames: Frames, png_path: str | Path,
           csv_path: str | Path, *, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    table = compute(inputs, frames)
    save_table(table, csv_path)
    with figure_style():
        save_figure(draw(table, frames, title=title), png_path, dpi=dpi)
    return table
