"""Fig 6 (main) / Fig 15 (supp): pixels per neuron, "representation is distributed".

analyses.md §0.6 "Pixels per neuron" and §1 Fig 6. count_n = #{p : |C_n(p)| / Σ_m |C_m(p)| >
1/N_layer} is stored per layer as `pixels_per_neuron`. One panel per (dataset, video, arch, seed,
frame); in it one line per layer of the sorted counts (ascending) against neuron rank.

CSV (exactly the drawn points): dataset, video, arch, layer, seed, frame, rank (0-based), neuron_id,
pixels. Optional summary CSV (one row per layer): dataset, video, arch, layer, seed, frame,
neurons, pixels_total (H·W), mean, median, p10, p90 (numpy linear percentiles), gini, zero_fraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from xinc.plots import StatsInput, as_inputs, groups_in_order, read_stats
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

__all__ = ["COLUMNS", "SUMMARY_COLUMNS", "gini", "render", "summarise"]

COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "rank", "neuron_id", "pixels"]
SUMMARY_COLUMNS = ["dataset", "video", "arch", "layer", "seed", "frame", "neurons", "pixels_total",
                   "mean", "median", "p10", "p90", "gini", "zero_fraction"]


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = all equal; NaN when empty or all zero)."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n, total = x.size, float(x.sum()) if x.size else 0.0
    if n == 0 or total <= 0:
        return math.nan
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)


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


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, summary_path: str | Path | None = None, *,
           relative_rank: bool = False, yscale: str = "linear", max_cols: int = 4,
           title: str | None = None, dpi: float | None = None) -> pd.DataFrame:
    """Sorted pixels-per-neuron curves; returns the long CSV table (and writes the summary if
    `summary_path` is given). `relative_rank` draws rank / (N - 1) so layers of very different
    widths share the x axis (the CSV keeps the integer rank); `yscale`: 'linear' or 'log'
    (zeros are then not drawn)."""
    if yscale not in ("linear", "log"):
        raise ValueError(f"yscale must be 'linear' or 'log', not {yscale!r}")
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig06 needs at least one statistics input")
    groups = groups_in_order(items)
    ncols = max(1, min(max_cols, len(groups)))
    nrows = math.ceil(len(groups) / ncols)
    records: list[pd.DataFrame] = []
    summary: list[dict] = []

    with figure_style():
        fig = new_figure(CURVE_PANEL[0] * ncols, CURVE_PANEL[1] * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in axes.ravel()[len(groups):]:
            ax.set_axis_off()
        for ax, (key, layer_items) in zip(axes.ravel(), groups.items(), strict=False):
            colors = line_colors(len(layer_items))
            totals = set()
            for item, color in zip(layer_items, colors, strict=True):
                st = read_stats(item.path, ("pixels_per_neuron", "heat"))
                if "pixels_per_neuron" not in st:
                    raise ValueError(f"{item.path}: no 'pixels_per_neuron' array")
                counts = np.asarray(st["pixels_per_neuron"]).astype(np.int64)
                order = np.argsort(counts, kind="stable")
                ranks = np.arange(counts.size, dtype=np.int64)
                n_pix = _pixels_total(st)
                totals.add(n_pix)
                x = ranks / max(counts.size - 1, 1) if relative_rank else ranks
                ax.plot(x, counts[order], color=color,
                        label=f"{layer_label(item.arch, item.layer)} (N={counts.size})")
                records.append(pd.DataFrame({
                    **{k: [v] * counts.size for k, v in item.labels().items()},
                    "rank": ranks, "neuron_id": order.astype(np.int64),
                    "pixels": counts[order]}))
                summary.append({**item.labels(), "neurons": int(counts.size),
                                "pixels_total": n_pix, **summarise(counts)})
            if yscale == "log":
                ax.set_yscale("log", nonpositive="mask")
            ax.set_title(f"{group_title(key[0], key[1], key[3], key[4])} · {arch_label(key[2])}")
            ax.set_xlabel("neuron rank / (N-1)" if relative_rank else "neuron rank "
                          "(sorted by #pixels)")
            known = sorted(t for t in totals if t is not None)
            ax.set_ylabel("#pixels" + (f" (of {known[0]:,})" if len(known) == 1 else ""))
            ax.legend(loc="upper left" if relative_rank else "lower right")
        fig.suptitle(title if title is not None else
                     "Pixels per neuron (share of the pixel's total |C| > 1/N)")
        save_figure(fig, png_path, dpi=dpi)

    table = pd.concat(records, ignore_index=True)[COLUMNS]
    save_table(table, csv_path)
    if summary_path is not None:
        save_table(pd.DataFrame.from_records(summary, columns=SUMMARY_COLUMNS), summary_path)
    return table
