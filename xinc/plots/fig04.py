"""Fig 4 (main) / Fig 16 (supp): variance of neuron contribution deltas per pixel grouping.

analyses.md §0.6 "Group deltas" and §1 Fig 4. For each layer and grouping g, v_n is the unbiased
variance over groups of δ_{n,g} = |S - E| / E with E = T·A/(H·W) (signed (S - E)/E for gridcells by
default); it is computed by `xinc.stats.grouping_variance` from the stored `total`,
`group_sums_<g>` and `areas_<g>`. Per panel (one per dataset/video/arch/seed/frame row and layer
column) four curves of sorted v_n (ascending, NaN = dead neurons dropped) against neuron rank:
instances red, gridcells green, RGB clusters blue, Gabor clusters magenta. A grouping missing from
a statistics file (e.g. instances for a video without masks) is skipped.

CSV (long form, exactly the drawn points): dataset, video, arch, layer, seed, frame, grouping,
rank (0-based position in the sorted curve), neuron_id, v.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xinc.plots import StatsInput, as_inputs, groups_in_order, read_stats
from xinc.plots.style import (
    CURVE_PANEL,
    GROUPING_COLORS,
    GROUPING_LABELS,
    choose_yscale,
    figure_style,
    layer_label,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "GROUPINGS", "grouping_curves", "render", "sorted_curve"]

COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "grouping", "rank", "neuron_id",
           "v"]

#: Curves in drawing order; "grid" stands for `grid_<grid>` (render's `grid` option; 'both'
#: draws the lattice solid and the contiguous cells dashed).
GROUPINGS = ("instances", "grid", "rgb", "gabor")


def _grouping_variance(group_sums: np.ndarray, areas: np.ndarray, total: np.ndarray, *,
                       signed: bool) -> np.ndarray:
    """v_n by `xinc.stats.grouping_variance`, or by :func:`_local_grouping_variance` while the
    stats module does not provide it."""
    try:
        from xinc.stats import grouping_variance
    except ImportError:
        grouping_variance = _local_grouping_variance
    return np.asarray(grouping_variance(group_sums, areas, total, signed=signed),
                      dtype=np.float64)


def _local_grouping_variance(group_sums: np.ndarray, areas: np.ndarray, total: np.ndarray, *,
                             signed: bool = False) -> np.ndarray:
    """analyses.md §0.6: E = T·A/(H·W) with H·W = Σ A (the groups cover the frame);
    δ = |S - E|/E (signed: (S - E)/E); v_n = unbiased variance of δ over groups; T_n = 0 -> NaN."""
    s = np.asarray(group_sums, dtype=np.float64)
    a = np.asarray(areas, dtype=np.float64)
    t = np.asarray(total, dtype=np.float64)
    v = np.full(t.shape, np.nan)
    if a.size < 2:
        return v
    alive = t != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        e = t[alive, None] * a[None, :] / a.sum()
        d = (s[alive] - e) / e
        v[alive] = np.var(d if signed else np.abs(d), axis=1, ddof=1)
    return v


GRID_MODES = ("lattice", "contiguous", "both")
_SHORT = {"instances": "inst", "grid_lattice": "lattice", "grid_contiguous": "contiguous",
          "rgb": "RGB", "gabor": "Gabor"}


def _frame_seed(item: StatsInput) -> str:
    parts = [p for p in (f"f{item.frame}" if item.frame is not None else "",
                         f"s{item.seed}" if item.seed is not None else "") if p]
    return f" ({', '.join(parts)})" if parts else ""


def sorted_curve(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(neuron ids, values) of the finite v sorted ascending (stable: ties keep id order)."""
    v = np.asarray(v, dtype=np.float64)
    ids = np.flatnonzero(np.isfinite(v))
    order = np.argsort(v[ids], kind="stable")
    return ids[order], v[ids][order]


def grouping_curves(path: str | Path, *, groupings: Sequence[str] = GROUPINGS,
                    grid: str = "lattice", signed_grid: bool = True
                    ) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """{grouping key: (neuron ids, sorted v, number of groups)} of one statistics file."""
    if grid not in GRID_MODES:
        raise ValueError(f"grid must be one of {GRID_MODES}, not {grid!r}")
    grid_keys = ["grid_lattice", "grid_contiguous"] if grid == "both" else [f"grid_{grid}"]
    keys = [k for g in groupings for k in (grid_keys if g == "grid" else [g])]
    st = read_stats(path, ["total", *(f"{p}_{k}" for k in keys
                                      for p in ("group_sums", "areas"))])
    if "total" not in st:
        raise ValueError(f"{path}: no 'total' array")
    out: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    for key in keys:
        if f"group_sums_{key}" not in st or f"areas_{key}" not in st:
            continue
        sums, areas = st[f"group_sums_{key}"], st[f"areas_{key}"]
        signed = key.startswith("grid_") and signed_grid
        v = _grouping_variance(sums, areas, st["total"], signed=signed)
        ids, vals = sorted_curve(v)
        out[key] = (ids, vals, int(np.asarray(areas).shape[0]))
    return out


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, *, groupings: Sequence[str] = GROUPINGS,
           grid: str = "lattice", signed_grid: bool = True, yscale: str = "auto",
           title: str | None = None, dpi: float | None = None) -> pd.DataFrame:
    """One panel per (dataset, video, arch, seed, frame) row and layer column; returns the CSV.

    `grid`: 'lattice' (the authors' interleaved gridcells), 'contiguous' or 'both';
    `signed_grid`: signed δ for gridcells as in the authors' code (False: |δ| as for the other
    groupings); `yscale`: 'auto' (log when the values span two decades or more; zeros are then
    not drawn), 'log' or 'linear'.
    """
    if yscale not in ("auto", "log", "linear"):
        raise ValueError(f"yscale must be 'auto', 'log' or 'linear', not {yscale!r}")
    unknown = set(groupings) - set(GROUPINGS)
    if unknown:
        raise ValueError(f"unknown groupings {sorted(unknown)}; choose from {GROUPINGS}")
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig04 needs at least one statistics input")
    groups = groups_in_order(items)
    ncols = max(len(v) for v in groups.values())
    records: list[pd.DataFrame] = []
    grid_note = "signed δ" if signed_grid else "absolute δ"

    with figure_style():
        fig = new_figure(CURVE_PANEL[0] * ncols, CURVE_PANEL[1] * len(groups) + 0.7)
        axes = fig.subplots(len(groups), ncols, squeeze=False)
        handles: dict[str, tuple[str, object]] = {}
        for r, (key, layer_items) in enumerate(groups.items()):
            for c in range(ncols):
                ax = axes[r, c]
                if c >= len(layer_items):
                    ax.set_axis_off()
                    continue
                item = layer_items[c]
                curves = grouping_curves(item.path, groupings=groupings, grid=grid,
                                         signed_grid=signed_grid)
                counts = []
                for gkey, (ids, vals, n_groups) in curves.items():
                    counts.append(f"{_SHORT[gkey]} {n_groups}")
                    if vals.size:
                        label = GROUPING_LABELS[gkey]
                        if gkey.startswith("grid_"):
                            label = f"gridcells ({_SHORT[gkey]}, {grid_note})"
                        (line,) = ax.plot(np.arange(vals.size), vals,
                                          color=GROUPING_COLORS[gkey], label=label,
                                          linestyle="--" if gkey == "grid_contiguous" else "-")
                        handles.setdefault(gkey, (label, line))
                        records.append(pd.DataFrame({
                            **{k: [v] * vals.size for k, v in item.labels().items()},
                            "grouping": gkey, "rank": np.arange(vals.size, dtype=np.int64),
                            "neuron_id": ids.astype(np.int64), "v": vals}))
                scale = yscale
                if scale == "auto":
                    scale = choose_yscale([v for _, v, _ in curves.values()])
                if scale == "log":
                    ax.set_yscale("log", nonpositive="mask")
                if not any(v.size for _, v, _ in curves.values()):
                    ax.text(0.5, 0.5, "no finite v", ha="center", va="center",
                            transform=ax.transAxes)
                ax.set_title(f"{item.video} · {layer_label(item.arch, item.layer)}"
                             f"{_frame_seed(item)}", fontsize=7, pad=10)
                ax.text(0.5, 1.0, "groups: " + " · ".join(counts), transform=ax.transAxes,
                        ha="center", va="bottom", fontsize=6, color="0.3")
                ax.set_xlabel("neuron rank (sorted by v)")
                if c == 0:
                    ax.set_ylabel((f"{key[0]}\n" if key[0] else "")
                                  + "v = variance of δ over groups")
        if handles:
            order = [k for k in GROUPING_LABELS if k in handles]
            fig.legend([handles[k][1] for k in order], [handles[k][0] for k in order],
                       loc="outside lower center", ncol=min(4, len(order)))
        fig.suptitle(title if title is not None else
                     "Variance of neuron contribution deltas across pixel groupings")
        save_figure(fig, png_path, dpi=dpi)

    table = (pd.concat(records, ignore_index=True) if records
             else pd.DataFrame(columns=COLUMNS))[COLUMNS]
    save_table(table, csv_path)
    return table
