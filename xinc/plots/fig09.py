"""Fig 9 (main): contribution change between consecutive frames vs optical flow.

docs/method.md §10 Fig 9, §8.7 "Contribution change", B24. Per NeRV pair (raw frames t − 1, t) and
layer, Δ_t(p) = Σ_n | |C_{n,t}(p)| − |C_{n,t−1}(p)| | (pair npz, docs/formats.md §6b) is compared
with the magnitude of the optical flow from t − 1 to t (`xinc.flow`, pixels per frame) and, as a
control, with the frame difference |I_t − I_{t−1}| of the grey frames (luma 0.299 R + 0.587 G +
0.114 B of the working-resolution uint8 frames, `frames_pil.npy`, in float64: the weights OpenCV's
RGB→grey conversion uses for the flow, without its rounding).

One figure row per (dataset, video, seed, pair): GT frame t, |flow| (with a colour bar in px per
frame), then Δ_t min-max scaled per layer (magma), in the order the pairs are given.

CSV (one row per pair and layer): dataset, video, seed, layer, frame_prev, frame, spearman_flow,
spearman_diff, pearson_flow, pearson_diff, pixels — the Spearman (and Pearson) correlation over
all H·W pixels of Δ_t with |flow| and with |I_t − I_{t−1}|; NaN when either map is constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xinc.flow import read_flow
from xinc.intermediate import read_npy
from xinc.plots import grey_frame, map_correlations
from xinc.plots.style import (
    CMAP,
    MAP_PANEL,
    bare_axis,
    figure_style,
    minmax,
    new_figure,
    save_figure,
    save_table,
)
from xinc.stats import read_pair_stats

__all__ = ["COLUMNS", "compute", "draw", "frame_difference", "render"]

COLUMNS = ["dataset", "video", "seed", "layer", "frame_prev", "frame", "spearman_flow",
           "spearman_diff", "pearson_flow", "pearson_diff", "pixels"]
LUMA = np.array([0.299, 0.587, 0.114])  # OpenCV RGB2GRAY, the grey the flow sees
_ROW = ["dataset", "video", "seed", "frame_prev", "frame"]


def frame_difference(frames: np.ndarray, frame: int) -> np.ndarray:
    """|grey(I_t) − grey(I_{t−1})| in float64 [H, W] from uint8 RGB frames [T, H, W, 3]."""
    return np.abs(grey_frame(frames[frame], LUMA) - grey_frame(frames[frame - 1], LUMA))


def _pair(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    delta, meta = read_pair_stats(path)
    missing = [k for k in (*_ROW, "layer") if k not in meta]
    if missing:
        raise ValueError(f"{path}: meta_json lacks {missing}; rerun rule pair_stats")
    return delta, meta


def _flow(flows: Mapping[tuple, str | Path], meta: Mapping[str, Any], pair: str | Path
          ) -> np.ndarray:
    key = (meta["dataset"], meta["video"], int(meta["frame"]))
    if key not in flows:
        raise ValueError(f"{pair}: no flow file for {key}; add it to the flows of fig09")
    flow = read_flow(flows[key])
    if int(flow["meta"].get("frame_prev", -1)) != int(meta["frame_prev"]):
        raise ValueError(f"{flows[key]}: flow from frame {flow['meta'].get('frame_prev')}, but "
                         f"{pair} is a change from frame {meta['frame_prev']}")
    return np.asarray(flow["magnitude"], dtype=np.float64)


def _frames(frames: Mapping[tuple[str, str], str | Path], meta: Mapping[str, Any]) -> np.ndarray:
    key = (meta["dataset"], meta["video"])
    if key not in frames:
        raise ValueError(f"no frames file for {key}; add it to the frames of fig09")
    return read_npy(frames[key], mmap_mode="r")


def compute(pairs: Sequence[str | Path], flows: Mapping[tuple, str | Path],
            frames: Mapping[tuple[str, str], str | Path]) -> pd.DataFrame:
    """One row per pair file (:data:`COLUMNS`), in the given order."""
    rows = []
    for path in pairs:
        delta, meta = _pair(path)
        magnitude = _flow(flows, meta, path)
        diff = frame_difference(_frames(frames, meta), int(meta["frame"]))
        if not delta.shape == magnitude.shape == diff.shape:
            raise ValueError(f"{path}: Δ {delta.shape}, flow {magnitude.shape} and frames "
                             f"{diff.shape} differ in size")
        p_flow, s_flow = map_correlations(delta, magnitude)
        p_diff, s_diff = map_correlations(delta, diff)
        rows.append({**{k: meta[k] for k in _ROW}, "layer": meta["layer"],
                     "spearman_flow": s_flow, "spearman_diff": s_diff, "pearson_flow": p_flow,
                     "pearson_diff": p_diff, "pixels": int(delta.size)})
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def _layer_name(layer: str) -> str:
    return {"head": "head", "b3": "B3", "b2": "B2", "b1": "B1"}.get(layer, layer)


def draw(df: pd.DataFrame, pairs: Sequence[str | Path], flows: Mapping[tuple, str | Path],
         frames: Mapping[tuple[str, str], str | Path], *, title: str | None = None) -> Figure:
    """GT, |flow| and min-max Δ_t per layer for every (dataset, video, seed, pair) of `df`."""
    deltas = {}
    for path in pairs:
        delta, meta = _pair(path)
        deltas[(*(meta[k] for k in _ROW), meta["layer"])] = (delta, meta, path)
    rows = list(dict.fromkeys(tuple(r) for r in df[_ROW].itertuples(index=False)))
    ncols = 2 + max((sum(1 for k in deltas if k[:5] == r) for r in rows), default=0)
    fig = new_figure(MAP_PANEL[0] * ncols + 0.9, (MAP_PANEL[0] * 0.5 + 0.4) * len(rows) + 0.5)
    axes = fig.subplots(max(len(rows), 1), ncols, squeeze=False)
    for ax in axes.ravel():
        bare_axis(ax)
    for r, row in enumerate(rows):
        part = df[[tuple(x) == row for x in df[_ROW].itertuples(index=False)]]
        first = deltas[(*row, part["layer"].iloc[0])]
        axes[r, 0].imshow(_frames(frames, first[1])[int(row[4])])
        axes[r, 0].set_title(f"frame t = {row[4]}", pad=2)
        axes[r, 0].set_ylabel(f"{row[0]}\n{row[1]} · s{row[2]}\nt−1 = {row[3]} → t = {row[4]}",
                              fontsize=6)
        image = axes[r, 1].imshow(_flow(flows, first[1], first[2]), cmap=CMAP)
        axes[r, 1].set_title("|flow| (px/frame)", pad=2)
        fig.colorbar(image, ax=axes[r, 1], shrink=0.8, aspect=15, pad=0.01)
        for c, rec in enumerate(part.itertuples(), start=2):
            axes[r, c].imshow(minmax(deltas[(*row, rec.layer)][0]), cmap=CMAP, vmin=0, vmax=1)
            axes[r, c].set_title(f"Δ_t {_layer_name(rec.layer)} (min-max)\n"
                                 f"Spearman with |flow| {rec.spearman_flow:.2f}", pad=2)
    fig.suptitle(title if title is not None else
                 "Contribution change Δ_t between frames t−1 and t vs optical flow")
    return fig


def render(pairs: Sequence[str | Path], flows: Mapping[tuple, str | Path],
           frames: Mapping[tuple[str, str], str | Path], png_path: str | Path,
           csv_path: str | Path, *, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    if not pairs:
        raise ValueError("fig09 needs at least one pair file")
    table = compute(pairs, flows, frames)
    save_table(table, csv_path)
    with figure_style():
        save_figure(draw(table, pairs, flows, frames, title=title), png_path, dpi=dpi)
    return table
