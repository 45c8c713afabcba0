"""Fig 10 (main) / Fig 14 (supp): neuron clusters across seeds, one UMAP per layer.

docs/method.md §9 and §10 Fig 10. Each cluster file (`xinc.cluster.layer`, rule `cluster_layer`)
holds one layer's alive neurons of every seed embedded by UMAP (`xy`) and clustered by k-means
on the embedding (`labels`, 0 = the largest cluster). One figure row per (dataset, video,
frame), one column per (arch, layer), both in order of first appearance; a joint file (meta arch
"joint": FFN and NeRV neurons in one embedding) is the column "FFN + NeRV". Points are coloured
by seed (viridis over the sorted seeds of all files), a joint file's by architecture (red FFN,
grey NeRV), and drawn in a fixed shuffled order so that no group hides another. Each cluster's
id is written at the median of its points. Panel titles give the number of points and the
layer's seed mixing H (`trust.mixing`, the size-weighted mean over clusters; "–" when
undefined).

CSV (one row per panel, cluster and group; groups with no point in the cluster included):
dataset, video, frame, arch, layer, cluster, group (the seed, or for a joint file the
architecture), count (points of the group in the cluster), share (count / cluster_size),
cluster_size, cluster_mixing (the cluster's normalised mixing entropy over the groups,
`xinc.cluster.trust.mixing_entropy`; NaN for one group), x_median, y_median (where the id is
written). Rows follow the panels (row, then column), then cluster, then group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke

from xinc.cluster.layer import read_clusters
from xinc.cluster.trust import mixing_entropy
from xinc.plots.style import (
    arch_label,
    bare_axis,
    figure_style,
    layer_label,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "compute", "draw", "read_panel", "render"]

COLUMNS = ["dataset", "video", "frame", "arch", "layer", "cluster", "group", "count", "share",
           "cluster_size", "cluster_mixing", "x_median", "y_median"]

JOINT = "joint"
#: Colours of groups other than seeds (FFN, NeRV in a joint file): none of them in viridis.
GROUP_COLORS = ("#d62728", "#7f7f7f", "#8c564b", "#e377c2")
FEATURE_LABELS = {"gabor": "Gabor", "rgb": "RGB", "spatial16": "16×16 spatial"}
PANEL = 1.9        # inches per square UMAP panel
MARKER_SIZE = 3.0  # points², no edge
DRAW_ORDER_SEED = 0


@dataclass(frozen=True)
class Panel:
    """One cluster file: its labels and the arrays drawn."""

    path: Path
    dataset: str
    video: str
    frame: int | None
    arch: str
    layer: str
    mix: str
    feature: str
    mixing: float
    xy: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    @property
    def row(self) -> tuple[str, str, int | None]:
        return (self.dataset, self.video, self.frame)

    @property
    def column(self) -> tuple[str, str]:
        return (self.arch, self.layer)


def read_panel(path: str | Path) -> Panel:
    """A cluster file as a :class:`Panel`; missing labels or mismatched arrays name the file."""
    c = read_clusters(path)
    meta = c["meta"]
    missing = [k for k in ("dataset", "video", "arch", "layer", "mix") if k not in meta]
    if missing:
        raise ValueError(f"{path}: meta_json lacks {missing}; rerun rule cluster_layer")
    if meta["mix"] not in c:
        raise ValueError(f"{path}: mixing of {meta['mix']!r}, which the file does not hold")
    xy, labels = np.asarray(c["xy"], np.float64), np.asarray(c["labels"], np.int64)
    if xy.ndim != 2 or xy.shape[1] != 2 or not len(xy) == len(labels) == len(c[meta["mix"]]):
        raise ValueError(f"{path}: xy {xy.shape}, labels {labels.shape} and "
                         f"{meta['mix']} {np.shape(c[meta['mix']])} do not match")
    frame = meta.get("frame")
    return Panel(Path(path), str(meta["dataset"]), str(meta["video"]),
                 None if frame is None else int(frame), str(meta["arch"]), str(meta["layer"]),
                 str(meta["mix"]), str(meta.get("feature", "")),
                 float(c["trust"].get("mixing", math.nan)), xy, labels,
                 np.asarray(c[meta["mix"]]))


def _panels(clusters: Sequence[str | Path]) -> list[Panel]:
    """The files read, ordered as drawn: by row, then column, each in first-appearance order."""
    if not clusters:
        raise ValueError("fig10 needs at least one cluster file")
    panels = [read_panel(p) for p in clusters]
    seen: dict[tuple, Path] = {}
    for p in panels:
        key = (*p.row, *p.column)
        if key in seen:
            raise ValueError(f"two cluster files for the same panel {key}: {seen[key]}, {p.path}")
        seen[key] = p.path
    rows = list(dict.fromkeys(p.row for p in panels))
    columns = list(dict.fromkeys(p.column for p in panels))
    return sorted(panels, key=lambda p: (rows.index(p.row), columns.index(p.column)))


def _group_name(value: object) -> str:
    return str(int(value)) if isinstance(value, np.integer) else str(value)


def _panel_table(p: Panel) -> pd.DataFrame:
    """The CSV rows of one panel: every cluster × every group of the file."""
    h, _ = mixing_entropy(p.labels, p.groups)
    names = np.unique(p.groups)
    rows = []
    for c in range(len(h)):
        inside = p.labels == c
        x, y = np.median(p.xy[inside], axis=0)
        counts = [int((p.groups[inside] == g).sum()) for g in names]
        size = int(inside.sum())
        rows += [{"dataset": p.dataset, "video": p.video, "frame": p.frame, "arch": p.arch,
                  "layer": p.layer, "cluster": c, "group": _group_name(g), "count": n,
                  "share": n / size, "cluster_size": size, "cluster_mixing": float(h[c]),
                  "x_median": float(x), "y_median": float(y)}
                 for g, n in zip(names, counts, strict=True)]
    return pd.DataFrame.from_records(rows, columns=COLUMNS)


def _table(panels: Sequence[Panel]) -> pd.DataFrame:
    return pd.concat([_panel_table(p) for p in panels], ignore_index=True)[COLUMNS]


def compute(clusters: Sequence[str | Path]) -> pd.DataFrame:
    """Cluster × group counts of every cluster file (:data:`COLUMNS`), in panel order."""
    return _table(_panels(clusters))


def _palette(panels: Sequence[Panel]) -> dict[tuple[str, str], tuple]:
    """{(mix, group): colour}: seeds in viridis over the sorted seeds of every file mixed by
    seed, other groups (a joint file's architectures) in :data:`GROUP_COLORS` by sorted name."""
    seeds = sorted({int(s) for p in panels if p.mix == "seed" for s in np.unique(p.groups)})
    others = sorted({(p.mix, _group_name(g)) for p in panels if p.mix != "seed"
                     for g in np.unique(p.groups)})
    spots = np.linspace(0.0, 1.0, len(seeds)) if len(seeds) > 1 else [0.0]
    viridis = mpl.colormaps["viridis"]
    palette = {("seed", str(s)): viridis(x) for s, x in zip(seeds, spots, strict=True)}
    palette.update({key: mpl.colors.to_rgba(GROUP_COLORS[i % len(GROUP_COLORS)])
                    for i, key in enumerate(others)})
    return palette


def _colors(p: Panel, palette: dict[tuple[str, str], tuple]) -> np.ndarray:
    """RGBA [N, 4] per point: the colour of its group."""
    return np.array([palette[(p.mix, _group_name(g))] for g in p.groups])


def _column_label(arch: str, layer: str) -> str:
    return "FFN + NeRV" if arch == JOINT else layer_label(arch, layer)


def _umap_axis(ax: Axes) -> None:
    """An image panel's bare axis (UMAP units mean nothing) with a light frame."""
    bare_axis(ax)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("0.75")
        spine.set_linewidth(0.5)


def _draw_panel(ax: Axes, p: Panel, part: pd.DataFrame,
                palette: dict[tuple[str, str], tuple]) -> None:
    """Scatter coloured by group, cluster ids at their medians, title with n and H."""
    _umap_axis(ax)
    order = np.random.default_rng(DRAW_ORDER_SEED).permutation(len(p.xy))
    ax.scatter(p.xy[order, 0], p.xy[order, 1], s=MARKER_SIZE, c=_colors(p, palette)[order],
               linewidths=0)
    ax.set_aspect("equal", adjustable="datalim")
    centres = part.drop_duplicates("cluster")
    for c in centres.itertuples(index=False):
        ax.text(c.x_median, c.y_median, str(c.cluster), ha="center", va="center", fontsize=6,
                fontweight="bold", path_effects=[withStroke(linewidth=2, foreground="white")])
    mixing = "–" if math.isnan(p.mixing) else f"{p.mixing:.2f}"
    ax.set_title(f"{_column_label(p.arch, p.layer)}\nn={len(p.xy)} · H={mixing}", pad=2)


def _row_label(row: tuple[str, str, int | None]) -> str:
    dataset, video, frame = row
    return "\n".join(x for x in (dataset, video, "" if frame is None else f"f{frame}") if x)


def _legend(fig: Figure, palette: dict[tuple[str, str], tuple]) -> None:
    """One legend: the seeds, then the architectures of joint files."""
    handles = [Line2D([], [], marker="o", linestyle="", markersize=4, markeredgewidth=0,
                      color=c, label=f"seed {name}" if mix == "seed" else arch_label(name))
               for (mix, name), c in palette.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8),
               handletextpad=0.2, columnspacing=1.0)


def _default_title(panels: Sequence[Panel]) -> str:
    features = dict.fromkeys(FEATURE_LABELS.get(p.feature, p.feature) for p in panels
                             if p.feature)
    what = f"UMAP of {' / '.join(features)} features" if features else "UMAP"
    return f"Neuron clusters across seeds ({what}, k-means)"


def _figure(panels: Sequence[Panel], df: pd.DataFrame, title: str | None) -> Figure:
    rows = list(dict.fromkeys(p.row for p in panels))
    columns = list(dict.fromkeys(p.column for p in panels))
    palette = _palette(panels)
    keys = [tuple(None if pd.isna(v) else v for v in r)
            for r in df[["dataset", "video", "frame", "arch", "layer"]].itertuples(index=False)]
    fig = new_figure(PANEL * len(columns) + 0.6, (PANEL + 0.3) * len(rows) + 0.8)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for ax in axes.ravel():
        bare_axis(ax)  # a (row, column) without a file stays blank
    for p in panels:
        ax = axes[rows.index(p.row), columns.index(p.column)]
        _draw_panel(ax, p, df[[k == (*p.row, *p.column) for k in keys]], palette)
    for r, row in enumerate(rows):
        axes[r, 0].set_ylabel(_row_label(row), fontsize=7)
    _legend(fig, palette)
    fig.suptitle(title if title is not None else _default_title(panels))
    return fig


def draw(df: pd.DataFrame, clusters: Sequence[str | Path], *, title: str | None = None
         ) -> Figure:
    """The UMAP panels of `clusters`, cluster ids placed at the medians of `df`
    (:data:`COLUMNS`, as :func:`compute` returns it); call inside `figure_style`."""
    return _figure(_panels(clusters), df, title)


def render(clusters: Sequence[str | Path], png_path: str | Path, csv_path: str | Path, *,
           title: str | None = None, dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    panels = _panels(clusters)
    table = _table(panels)
    save_table(table, csv_path)
    with figure_style():
        save_figure(_figure(panels, table, title), png_path, dpi=dpi)
    return table
