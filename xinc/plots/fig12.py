"""Figs 12 and 13 (supp): contribution maps of sampled neurons per cluster.

docs/method.md §9 and §10 Figs 12/13. Each members file (`xinc.cluster.members`, docs/formats.md
§9) holds, for one layer, the neurons drawn from clusters 0 … shown − 1 of its cluster file and
their signed contribution maps C. One block per (dataset, video, frame), in order of first
appearance: a top row of the video's `shown_frames` (the analysed frame with a red border;
left out without shown frames), then one row per members file in the order given. In a layer
row, column c is cluster c: a 2×2 montage of its members' |C| maps (slots 0-3, row by row), each
min-max normalised per neuron and drawn with magma; a cluster with fewer than four members
leaves black tiles. Thin white lines separate the tiles; one colour bar at the bottom.

CSV (one row per drawn map, in drawing order): dataset, video, frame, arch, layer, cluster, slot,
seed, neuron, min, max, mean, where min/max/mean are of |C| over the map before normalisation
(the drawn tile is (|C| − min) / (max − min), black when max == min).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure, SubFigure

from xinc.cluster.members import read_members
from xinc.plots import Frames, read_frame
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

__all__ = ["COLUMNS", "TILES", "compute", "draw", "montage", "read_layer", "render"]

COLUMNS = ["dataset", "video", "frame", "arch", "layer", "cluster", "slot", "seed", "neuron",
           "min", "max", "mean"]
TILES = (2, 2)  # members per cluster drawn: rows × columns of a montage
DEFAULT_TITLE = "Contribution maps of sampled neurons per cluster (|C|, min-max per neuron)"
BAR_HEIGHT = 0.6  # inches of the colour bar strip at the bottom


@dataclass(frozen=True)
class Layer:
    """One members file: its labels, the clusters shown and the drawn members."""

    dataset: str
    video: str
    frame: int
    arch: str
    layer: str
    shown: int
    cluster: np.ndarray
    slot: np.ndarray
    seed: np.ndarray
    neuron: np.ndarray
    maps: np.ndarray

    @property
    def block(self) -> tuple[str, str, int]:
        return (self.dataset, self.video, self.frame)

    def drawn(self) -> np.ndarray:
        """Indices of the members drawn (slots 0 … 3 of clusters 0 … shown − 1), in order."""
        keep = (self.slot < TILES[0] * TILES[1]) & (self.cluster < self.shown)
        idx = np.flatnonzero(keep)
        return idx[np.lexsort((self.slot[idx], self.cluster[idx]))]


def read_layer(path: str | Path) -> Layer:
    """A members file as a :class:`Layer`; missing labels or mismatched arrays name the file."""
    m = read_members(path)
    meta = m["meta"]
    missing = [k for k in ("dataset", "video", "frame", "arch", "layer", "shown")
               if k not in meta]
    if missing:
        raise ValueError(f"{path}: meta_json lacks {missing}; rerun the members rule")
    maps = np.asarray(m["maps"])
    sizes = {key: len(m[key]) for key in ("cluster", "slot", "seed", "neuron", "maps")}
    if maps.ndim != 3 or len(set(sizes.values())) > 1:
        raise ValueError(f"{path}: members arrays of different lengths {sizes} or maps not "
                         f"[M, H, W] ({maps.shape})")
    return Layer(str(meta["dataset"]), str(meta["video"]), int(meta["frame"]),
                 str(meta["arch"]), str(meta["layer"]), int(meta["shown"]),
                 *(np.asarray(m[key], np.int64) for key in ("cluster", "slot", "seed", "neuron")),
                 maps)


def _layers(members: Sequence[str | Path]) -> list[Layer]:
    """The files read, grouped by (dataset, video, frame) in first-appearance order."""
    if not members:
        raise ValueError("fig12 needs at least one members file")
    layers = [read_layer(p) for p in members]
    blocks = list(dict.fromkeys(x.block for x in layers))
    return sorted(layers, key=lambda x: blocks.index(x.block))


def _table(layers: Sequence[Layer]) -> pd.DataFrame:
    rows = []
    for x in layers:
        for i in x.drawn():
            a = np.abs(x.maps[i].astype(np.float64))
            rows.append({"dataset": x.dataset, "video": x.video, "frame": x.frame,
                         "arch": x.arch, "layer": x.layer, "cluster": int(x.cluster[i]),
                         "slot": int(x.slot[i]), "seed": int(x.seed[i]),
                         "neuron": int(x.neuron[i]), "min": float(a.min()),
                         "max": float(a.max()), "mean": float(a.mean())})
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def compute(members: Sequence[str | Path]) -> pd.DataFrame:
    """One row per drawn map of every members file (:data:`COLUMNS`), in drawing order."""
    return _table(_layers(members))


def montage(maps: Sequence[np.ndarray], sep: int) -> np.ndarray:
    """RGB float [2H + sep, 2W + sep, 3]: up to four |C| maps, min-max normalised each, in magma,
    row by row; missing tiles black, `sep` white pixels between tiles."""
    if len(maps) > TILES[0] * TILES[1]:
        raise ValueError(f"{len(maps)} maps for a {TILES[0]}×{TILES[1]} montage")
    h, w = np.shape(maps[0])
    out = np.ones((TILES[0] * (h + sep) - sep, TILES[1] * (w + sep) - sep, 3))
    cmap = mpl.colormaps[CMAP]
    for i in range(TILES[0] * TILES[1]):
        r, c = divmod(i, TILES[1])
        tile = (cmap(minmax(np.abs(maps[i])))[..., :3] if i < len(maps)
                else np.zeros((h, w, 3)))
        out[r * (h + sep):r * (h + sep) + h, c * (w + sep):c * (w + sep) + w] = tile
    return out


def _frame_row(axes: np.ndarray, frames: Frames, block: tuple[str, str, int],
               shown: Sequence[int]) -> None:
    """The video's shown frames; the analysed one framed in red."""
    dataset, video, analysed = block
    for ax, t in zip(axes, shown, strict=True):
        ax.imshow(read_frame(frames, dataset, video, t))
        ax.set_title(f"frame {t}", pad=2)
        if int(t) == analysed:
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color("red")
                spine.set_linewidth(2.0)
    axes[0].set_ylabel("frames", fontsize=7)


def _layer_row(axes: np.ndarray, x: Layer) -> None:
    """Column c: the montage of cluster c (clusters without members stay blank)."""
    idx = x.drawn()
    sep = max(1, x.maps.shape[-1] // 64)
    for c in range(x.shown):
        mine = idx[x.cluster[idx] == c]
        if mine.size:
            axes[c].imshow(montage([x.maps[i] for i in mine], sep), interpolation="nearest")
            axes[c].set_title(f"c{c}", pad=2)
    axes[0].set_ylabel(layer_label(x.arch, x.layer), fontsize=7)


def _block(sub: SubFigure, part: Sequence[Layer], frames: Frames, shown: Sequence[int],
           ncols: int, heights: tuple[float, float]) -> None:
    """One video: its title, the frame row (when frames are shown) and one row per layer;
    `heights` = (frame row, layer rows) in inches."""
    seeds = np.unique(np.concatenate([x.seed for x in part]))
    block = part[0].block
    sub.suptitle(group_title(block[0], block[1], int(seeds[0]) if len(seeds) == 1 else None,
                             block[2]), fontsize=8)
    rows = sub
    if shown:
        top, rows = sub.subfigures(2, 1, height_ratios=heights)
        axes = top.subplots(1, len(shown), squeeze=False)[0]
        for ax in axes:
            bare_axis(ax)
        _frame_row(axes, frames, block, shown)
    axes = rows.subplots(len(part), ncols, squeeze=False)
    for ax in axes.ravel():
        bare_axis(ax)
    for row, x in zip(axes, part, strict=True):
        _layer_row(row, x)


def _colorbar(sub: SubFigure) -> None:
    """One horizontal colour bar, centred in `sub` (the figure's bottom strip)."""
    cax = sub.add_axes((0.3, 0.62, 0.4, 0.2))
    sub.colorbar(ScalarMappable(mpl.colors.Normalize(0.0, 1.0), CMAP), cax=cax,
                 orientation="horizontal", label="|C| (min-max per neuron)")


def _figure(layers: Sequence[Layer], frames: Frames,
            shown_frames: Mapping[str, Sequence[int]] | None, title: str | None) -> Figure:
    blocks: dict[tuple[str, str, int], list[Layer]] = {}
    for x in layers:
        blocks.setdefault(x.block, []).append(x)
    shown = {b: list((shown_frames or {}).get(f"{b[0]}/{b[1]}", ())) for b in blocks}
    ncols = max(max(x.shown for x in layers), 1)
    aspect = max(x.maps.shape[-2] / x.maps.shape[-1] for x in layers)
    width = MAP_PANEL[0] * ncols
    heights = {b: ((width / len(shown[b]) * aspect + 0.3) if shown[b] else 0.0,
                   len(part) * (MAP_PANEL[0] * aspect + 0.3) + 0.3)
               for b, part in blocks.items()}
    ratios = [*(sum(h) for h in heights.values()), BAR_HEIGHT]
    fig = new_figure(width + 0.6, sum(ratios) + 0.4)
    *subs, bar = fig.subfigures(len(ratios), 1, height_ratios=ratios, squeeze=False)[:, 0]
    for sub, (b, part) in zip(subs, blocks.items(), strict=True):
        _block(sub, part, frames, shown[b], ncols, heights[b])
    _colorbar(bar)
    fig.suptitle(title if title is not None else DEFAULT_TITLE)
    return fig


def draw(members: Sequence[str | Path], frames: Frames, *,
         shown_frames: Mapping[str, Sequence[int]] | None = None,
         title: str | None = None) -> Figure:
    """The frame row and per-layer cluster montages of `members`; call inside `figure_style`."""
    return _figure(_layers(members), frames, shown_frames, title)


def render(members: Sequence[str | Path], frames: Frames, png_path: str | Path,
           csv_path: str | Path, *, shown_frames: Mapping[str, Sequence[int]] | None = None,
           title: str | None = None, dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    layers = _layers(members)
    table = _table(layers)
    save_table(table, csv_path)
    with figure_style():
        save_figure(_figure(layers, frames, shown_frames, title), png_path, dpi=dpi)
    return table
