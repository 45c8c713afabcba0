"""Fig 6 (main) / Fig 15 (supp): pixels per neuron, "representation is distributed".

docs/method.md §8.4 "Pixels per neuron" and §10 Fig 6. count_n = #{p : |C_n(p)| / Σ_m |C_m(p)| >
1/N_layer} is stored per layer as `pixels_per_neuron`. One panel per (dataset, video, arch, seed,
frame); in it one line per layer of the sorted counts (ascending) against neuron rank.

CSV (exactly the drawn points): dataset, video, arch, layer, seed, frame, rank (0-based), neuron_id,
pixels. Optional summary CSV (one row per layer): dataset, video, arch, layer, seed, frame,
neurons, pixels_total (H·W), mean, median, p10, p90 (numpy linear percentiles), gini, zero_fraction,
dead (neurons with T_n = 0: `alive` False, else `total` 0; they are drawn, with a count of 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xinc.plots import StatsInput, as_inputs, read_stats
from xinc.plots.style import (
    CURVE_PANEL,
    arch_label,
    figure_style,
    group_title,
    layer_label,
    line_colors,
    new_figure,
    save_figure,
    save_table,
)
from xinc.stats.spread import gini

__all__ = ["COLUMNS", "SUMMARY_COLUMNS", "compute", "draw", "render", "summarise",
           "summary_table"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "rank", "neuron_id", "pixels"]
SUMMARY_COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "neurons", "pixels_total",
                   "mean", "median", "p10", "p90", "gini", "zero_fraction", "dead"]


def summarise(counts: np.ndarray) -> dict[str, float]:
    """mean, median, p10, p90, gini and zero_fraction of one layer's pixel counts."""
    c = np.asarray(counts, dtype=np.float64)
    if c.size == 0:
        return dict.fromkeys(("mean", "median", "p10", "p90", "gini", "zero_fraction"), math.nan)
    return {"mean": float(c.mean()), "median": float(np.median(c)),
            "p10": float(np.percentile(c, 10)), "p90": float(np.percentile(c, 90)),
            "gini": gini(c), "zero_fraction": float(np.mean(c == 0))}


def _pixels_total(st: dict) -> int | None:
    meta = st.get("meta", {})
    if "height" in meta and "width" in meta:
        return int(meta["height"]) * int(meta["width"])
    if "heat" in st:
        return int(np.asarray(st["heat"]).size)
    return None


def _dead(st: dict) -> int | None:
    """Neurons with T_n = 0 (`alive`, else `total`; None when the file has neither)."""
    if "alive" in st:
        return int(np.count_nonzero(~np.asarray(st["alive"], dtype=bool)))
    if "total" in st:
        return int(np.count_nonzero(np.asarray(st["total"]) == 0))
    return None


def _read(item: StatsInput) -> tuple[np.ndarray, dict]:
    """(pixels_per_neuron int64, the file's other arrays)."""
    st = read_stats(item.path, ("pixels_per_neuron", "heat", "alive", "total"))
    if "pixels_per_neuron" not in st:
        raise ValueError(f"{item.path}: no 'pixels_per_neuron' array")
    return np.asarray(st["pixels_per_neuron"]).astype(np.int64), st


def _items(inputs: Sequence[StatsInput | str | Path]) -> list[StatsInput]:
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig06 needs at least one statistics input")
    return items


def compute(inputs: Sequence[StatsInput | str | Path]) -> pd.DataFrame:
    """Every layer's counts sorted ascending, with rank and neuron id (:data:`COLUMNS`)."""
    records = []
    for item in _items(inputs):
        counts, _ = _read(item)
        order = np.argsort(counts, kind="stable")
        records.append(pd.DataFrame({
            **{k: [v] * counts.size for k, v in item.labels().items()},
            "rank": np.arange(counts.size, dtype=np.int64),
            "neuron_id": order.astype(np.int64), "pixels": counts[order]}))
    return pd.concat(records, ignore_index=True)[COLUMNS]


def summary_table(inputs: Sequence[StatsInput | str | Path]) -> pd.DataFrame:
    """One row per layer (:data:`SUMMARY_COLUMNS`)."""
    rows = []
    for item in _items(inputs):
        counts, st = _read(item)
        rows.append({**item.labels(), "neurons": int(counts.size),
                     "pixels_total": _pixels_total(st), **summarise(counts), "dead": _dead(st)})
    return pd.DataFrame.from_records(rows, columns=SUMMARY_COLUMNS)


def _key(values: Sequence[object]) -> tuple:
    return tuple(None if pd.isna(v) else v for v in values)


def _panels(df: pd.DataFrame) -> dict[tuple, dict[tuple, list[int]]]:
    """{(dataset, video, arch, seed, frame): {layer key: row positions}} in order."""
    panels: dict[tuple, dict[tuple, list[int]]] = {}
    for i, values in enumerate(df[IDS].itertuples(index=False)):
        key = _key(values)
        panels.setdefault((*key[:3], *key[4:]), {}).setdefault(key, []).append(i)
    return panels


def _totals(summary: pd.DataFrame | None, layers: Sequence[tuple]) -> list[int]:
    if summary is None:
        return []
    keys = [_key(v) for v in summary[IDS].itertuples(index=False)]
    return sorted({int(t) for k, t in zip(keys, summary["pixels_total"], strict=True)
                   if k in layers and not pd.isna(t)})


def draw(df: pd.DataFrame, summary: pd.DataFrame | None = None, *, relative_rank: bool = False,
         yscale: str = "linear", max_cols: int = 4, title: str | None = None) -> Figure:
    """One panel per (dataset, video, arch, seed, frame) of `df`, one line per layer; the
    y label gives H·W from `summary` when given."""
    if yscale not in ("linear", "log"):
        raise ValueError(f"yscale must be 'linear' or 'log', not {yscale!r}")
    panels = _panels(df)
    ncols = max(1, min(max_cols, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    with figure_style():
        fig = new_figure(CURVE_PANEL[0] * ncols, CURVE_PANEL[1] * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in axes.ravel()[len(panels):]:
            ax.set_axis_off()
        for ax, (key, layers) in zip(axes.ravel(), panels.items(), strict=False):
            for (layer, rows), color in zip(layers.items(), line_colors(len(layers)),
                                            strict=True):
                part = df.iloc[rows]
                ranks = part["rank"].to_numpy()
                x = ranks / max(ranks.size - 1, 1) if relative_rank else ranks
                ax.plot(x, part["pixels"].to_numpy(), color=color,
                        label=f"{layer_label(layer[2], layer[3])} (N={ranks.size})")
            if yscale == "log":
                ax.set_yscale("log", nonpositive="mask")
            ax.set_title(f"{group_title(key[0], key[1], key[3], key[4])} · {arch_label(key[2])}")
            ax.set_xlabel("neuron rank / (N-1)" if relative_rank else "neuron rank "
                          "(sorted by #pixels)")
            known = _totals(summary, list(layers))
            ax.set_ylabel("#pixels" + (f" (of {known[0]:,})" if len(known) == 1 else ""))
            ax.legend(loc="upper left" if relative_rank else "lower right")
        fig.suptitle(title if title is not None else
                     "Pixels per neuron (share of the pixel's total |C| > 1/N)")
    return fig


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, *, summary_csv: str | Path | None = None,
           relative_rank: bool = False, yscale: str = "linear", max_cols: int = 4,
           title: str | None = None, dpi: float | None = None) -> pd.DataFrame:
    """Sorted pixels-per-neuron curves; returns the long CSV table (and writes the summary if
    `summary_csv` is given). `relative_rank` draws rank / (N - 1) so layers of very different
    widths share the x axis (the CSV keeps the integer rank); `yscale`: 'linear' or 'log'
    (zeros are then not drawn)."""
    items = _items(inputs)
    table, summary = compute(items), summary_table(items)
    save_table(table, csv_path)
    if summary_csv is not None:
        save_table(summary, summary_csv)
    with figure_style():
        save_figure(draw(table, summary, relative_rank=relative_rank, yscale=yscale,
                         max_cols=max_cols, title=title), png_path, dpi=dpi)
    return table
