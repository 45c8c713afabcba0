"""Fig 4 (main) / Fig 16 (supp): variance of neuron contribution deltas per pixel grouping.

docs/method.md §8.3 "Group deltas" and §10 Fig 4. For each layer and grouping g, v_n is the unbiased
variance over groups of δ_{n,g} = |S − E| / E with E = T·A/(H·W), computed by
`xinc.stats.grouping_variance` from the stored `total`, `group_sums_<g>` and `areas_<g>`.
Switches (defaults = corrected; the authors' choices in brackets, docs/method.md §6.3 B4, B5, B9):

- `grid`: 'contiguous' sh×sw blocks ['lattice': interleaved row/column remainders] or 'both'
  (lattice solid, contiguous dashed);
- `delta`: 'absolute' |δ| for every grouping ['reference': signed (S − E)/E for gridcells];
- `other`: 'complement' = "other" is the void pixels, as stored ['union': the union of all
  masks, which overlaps every segment; E then uses H·W, not Σ A] (`xinc.stats.instance_view`).

One panel per (dataset, video, arch, seed, frame) row and layer column; in it one curve per
grouping of sorted v_n (ascending) against neuron rank, NaN (dead neurons, T_n = 0) dropped and
counted: instances red, gridcells green, RGB clusters blue, Gabor clusters magenta. A grouping
missing from a statistics file (instances without masks) is skipped.

CSV (exactly the drawn points): dataset, video, arch, layer, seed, frame, grouping, rank (0-based
position in the sorted curve), neuron_id, v. Summary CSV (one row per panel and grouping):
identifiers, grouping, groups, neurons (in the layer), dead (NaN v, not drawn), median_v,
ratio_to_grid (median v / median v of the reference gridcell grouping of the panel: the
contiguous one when drawn, else the lattice; NaN without a gridcell curve or when its median
is 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xinc.plots import StatsInput, as_inputs, read_stats
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
from xinc.stats import grouping_variance, instance_view

__all__ = ["COLUMNS", "DELTA_MODES", "GRID_MODES", "GROUPINGS", "SUMMARY_COLUMNS", "compute",
           "draw", "grouping_curves", "render", "sorted_curve", "summarise"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "grouping", "rank", "neuron_id", "v"]
SUMMARY_COLUMNS = [*IDS, "grouping", "groups", "neurons", "dead", "median_v", "ratio_to_grid"]

#: Curves in drawing order; "grid" stands for `grid_<grid>` (both: lattice, then contiguous).
GROUPINGS = ("instances", "grid", "rgb", "gabor")
GRID_MODES = ("lattice", "contiguous", "both")
DELTA_MODES = ("absolute", "reference")
OTHER_MODES = ("complement", "union")
_SHORT = {"instances": "inst", "grid_lattice": "lattice", "grid_contiguous": "contiguous",
          "rgb": "RGB", "gabor": "Gabor"}


@dataclass(frozen=True)
class Curve:
    """One grouping of one layer: sorted finite v with their neuron ids, group/neuron counts."""

    ids: np.ndarray
    v: np.ndarray
    groups: int
    neurons: int


def sorted_curve(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(neuron ids, values) of the finite v sorted ascending (stable: ties keep id order)."""
    v = np.asarray(v, dtype=np.float64)
    ids = np.flatnonzero(np.isfinite(v))
    order = np.argsort(v[ids], kind="stable")
    return ids[order], v[ids][order]


def _check_options(grid: str, delta: str, other: str, groupings: Sequence[str]) -> None:
    for name, value, allowed in (("grid", grid, GRID_MODES), ("delta", delta, DELTA_MODES),
                                 ("other", other, OTHER_MODES)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, not {value!r}")
    unknown = set(groupings) - set(GROUPINGS)
    if unknown:
        raise ValueError(f"unknown groupings {sorted(unknown)}; choose from {GROUPINGS}")


def _grouping_keys(groupings: Sequence[str], grid: str) -> list[str]:
    grids = ["grid_lattice", "grid_contiguous"] if grid == "both" else [f"grid_{grid}"]
    return [k for g in groupings for k in (grids if g == "grid" else [g])]


def _instance_arrays(path: Path, st: dict, other: str
                     ) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(sums, areas, pixels for E) of the instance grouping with "other" as `other` says."""
    sums, areas = st["group_sums_instances"], st["areas_instances"]
    if other == "complement":
        return sums, areas, None
    if "instances_ids" not in st:
        raise ValueError(f"{path}: other='union' needs 'instances_ids' (statistics written "
                         "before it existed); rerun the canvas rules")
    s, a, _ = instance_view(sums, areas, st["instances_ids"], other)
    return s, a, int(np.asarray(areas, dtype=np.int64).sum())


def grouping_curves(path: str | Path, *, groupings: Sequence[str] = GROUPINGS,
                    grid: str = "contiguous", delta: str = "absolute",
                    other: str = "complement") -> dict[str, Curve]:
    """{grouping key: Curve} of one statistics file (groupings it lacks are left out)."""
    _check_options(grid, delta, other, groupings)
    keys = _grouping_keys(groupings, grid)
    wanted = ["total", "instances_ids",
              *(f"{p}_{k}" for k in keys for p in ("group_sums", "areas"))]
    st = read_stats(path, wanted)
    if "total" not in st:
        raise ValueError(f"{path}: no 'total' array")
    out: dict[str, Curve] = {}
    for key in keys:
        if f"group_sums_{key}" not in st or f"areas_{key}" not in st:
            continue
        sums, areas, pixels = st[f"group_sums_{key}"], st[f"areas_{key}"], None
        if key == "instances":
            sums, areas, pixels = _instance_arrays(Path(path), st, other)
        signed = key.startswith("grid_") and delta == "reference"
        ids, vals = sorted_curve(grouping_variance(sums, areas, st["total"], signed=signed,
                                                   pixels=pixels))
        out[key] = Curve(ids, vals, int(np.asarray(areas).shape[0]),
                         int(np.asarray(st["total"]).shape[0]))
    return out


def _panels(inputs: Sequence[StatsInput | str | Path], **options: object
            ) -> list[tuple[StatsInput, dict[str, Curve]]]:
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig04 needs at least one statistics input")
    return [(item, grouping_curves(item.path, **options)) for item in items]


def _curve_table(panels: list[tuple[StatsInput, dict[str, Curve]]]) -> pd.DataFrame:
    records = [pd.DataFrame({**{k: [v] * c.v.size for k, v in item.labels().items()},
                             "grouping": key, "rank": np.arange(c.v.size, dtype=np.int64),
                             "neuron_id": c.ids.astype(np.int64), "v": c.v})
               for item, curves in panels for key, c in curves.items() if c.v.size]
    return (pd.concat(records, ignore_index=True) if records
            else pd.DataFrame(columns=COLUMNS))[COLUMNS]


def _summary_table(panels: list[tuple[StatsInput, dict[str, Curve]]]) -> pd.DataFrame:
    rows = []
    for item, curves in panels:
        medians = {k: float(np.median(c.v)) if c.v.size else math.nan for k, c in curves.items()}
        ref = next((k for k in ("grid_contiguous", "grid_lattice") if k in curves), None)
        base = medians[ref] if ref is not None else math.nan
        for key, c in curves.items():
            ratio = medians[key] / base if base > 0 else math.nan
            rows.append({**item.labels(), "grouping": key, "groups": c.groups,
                         "neurons": c.neurons, "dead": c.neurons - c.v.size,
                         "median_v": medians[key], "ratio_to_grid": ratio})
    return pd.DataFrame.from_records(rows, columns=SUMMARY_COLUMNS)


def compute(inputs: Sequence[StatsInput | str | Path], *, grid: str = "contiguous",
            delta: str = "absolute", other: str = "complement",
            groupings: Sequence[str] = GROUPINGS) -> pd.DataFrame:
    """The sorted v curves (:data:`COLUMNS`) of every input and grouping."""
    return _curve_table(_panels(inputs, grid=grid, delta=delta, other=other,
                                groupings=groupings))


def summarise(inputs: Sequence[StatsInput | str | Path], *, grid: str = "contiguous",
              delta: str = "absolute", other: str = "complement",
              groupings: Sequence[str] = GROUPINGS) -> pd.DataFrame:
    """One row per (input, grouping) (:data:`SUMMARY_COLUMNS`)."""
    return _summary_table(_panels(inputs, grid=grid, delta=delta, other=other,
                                  groupings=groupings))


def _key(values: Sequence[object]) -> tuple:
    return tuple(None if pd.isna(x) else x for x in values)


def _panel_layout(frame: pd.DataFrame) -> dict[tuple, list[tuple]]:
    """{(dataset, video, arch, seed, frame): [panel keys (… + layer)]} in order of appearance."""
    rows: dict[tuple, list[tuple]] = {}
    for values in frame[IDS].drop_duplicates().itertuples(index=False):
        key = _key(values)
        rows.setdefault((*key[:3], *key[4:]), []).append(key)
    return rows


def _grid_label(key: str, delta: str) -> str:
    if not key.startswith("grid_"):
        return GROUPING_LABELS[key]
    return f"gridcells ({_SHORT[key]}, {'signed δ' if delta == 'reference' else '|δ|'})"


def _draw_panel(ax, part: pd.DataFrame, counts: str, title: str, delta: str,
                yscale: str, handles: dict) -> None:
    curves = list(part.groupby("grouping", sort=False))
    for key, curve in curves:
        label = _grid_label(key, delta)
        (line,) = ax.plot(curve["rank"].to_numpy(), curve["v"].to_numpy(),
                          color=GROUPING_COLORS[key], label=label,
                          linestyle="--" if key == "grid_contiguous" else "-")
        handles.setdefault(key, (label, line))
    scale = choose_yscale([c["v"].to_numpy() for _, c in curves]) if yscale == "auto" else yscale
    if scale == "log":
        ax.set_yscale("log", nonpositive="mask")
    if not curves:
        ax.text(0.5, 0.5, "no finite v", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=7, pad=10)
    if counts:
        ax.text(0.5, 1.0, counts, transform=ax.transAxes, ha="center", va="bottom", fontsize=6,
                color="0.3")
    ax.set_xlabel("neuron rank (sorted by v)")


def _counts(summary: pd.DataFrame | None, key: tuple) -> str:
    if summary is None:
        return ""
    rows = summary[[_key(v) == key for v in summary[IDS].itertuples(index=False)]]
    parts = [f"{_SHORT[r.grouping]} {r.groups}" for r in rows.itertuples()]
    dead = int(rows["dead"].max()) if len(rows) else 0
    return "groups: " + " · ".join(parts) + (f" · dead {dead}" if dead else "")


def draw(df: pd.DataFrame, summary: pd.DataFrame | None = None, *, delta: str = "absolute",
         yscale: str = "auto", title: str | None = None) -> Figure:
    """The curves of `df` (:data:`COLUMNS`); panels and group counts from `summary` when given
    (a panel without finite v then still shows, marked)."""
    if yscale not in ("auto", "log", "linear"):
        raise ValueError(f"yscale must be 'auto', 'log' or 'linear', not {yscale!r}")
    rows = _panel_layout(summary if summary is not None else df)
    ncols = max((len(v) for v in rows.values()), default=1)
    keys = [_key(v) for v in df[IDS].itertuples(index=False)]
    fig = new_figure(CURVE_PANEL[0] * ncols, CURVE_PANEL[1] * max(len(rows), 1) + 0.7)
    axes = fig.subplots(max(len(rows), 1), ncols, squeeze=False)
    handles: dict[str, tuple[str, object]] = {}
    for r, panels in enumerate(rows.values()):
        for c in range(ncols):
            if c >= len(panels):
                axes[r, c].set_axis_off()
                continue
            key = panels[c]
            part = df[[k == key for k in keys]]
            extra = ", ".join(p for p in (f"f{key[5]}" if key[5] is not None else "",
                                          f"s{key[4]}" if key[4] is not None else "") if p)
            name = f"{key[1]} · {layer_label(key[2], key[3])}" + (f" ({extra})" if extra else "")
            _draw_panel(axes[r, c], part, _counts(summary, key), name, delta, yscale, handles)
            if c == 0:
                axes[r, c].set_ylabel((f"{key[0]}\n" if key[0] else "")
                                      + "v = variance of δ over groups")
    if handles:
        order = [k for k in GROUPING_LABELS if k in handles]
        fig.legend([handles[k][1] for k in order], [handles[k][0] for k in order],
                   loc="outside lower center", ncol=min(4, len(order)))
    fig.suptitle(title if title is not None else
                 "Variance of neuron contribution deltas across pixel groupings")
    return fig


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, *, summary_csv: str | Path | None = None,
           grid: str = "contiguous", delta: str = "absolute", other: str = "complement",
           groupings: Sequence[str] = GROUPINGS, yscale: str = "auto",
           title: str | None = None, dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, summarise → `summary_csv` (if given), draw → PNG; returns the CSV table.

    `yscale`: 'auto' (log when the values span two decades or more; zeros are then not drawn),
    'log' or 'linear'.
    """
    panels = _panels(inputs, grid=grid, delta=delta, other=other, groupings=groupings)
    table, summary = _curve_table(panels), _summary_table(panels)
    save_table(table, csv_path)
    if summary_csv is not None:
        save_table(summary, summary_csv)
    with figure_style():
        save_figure(draw(table, summary, delta=delta, yscale=yscale, title=title), png_path,
                    dpi=dpi)
    return table
