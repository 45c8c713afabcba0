"""Fig 18 (supp): distribution of neuron contributions (docs/method.md §10 Fig 18;
the authors have no plotting code, so the drawing is our choice).

Per layer, all N·P values |C_n(p)| pooled: the stored quantile curve `value_curve` (ascending
value at level `value_curve_q`) on a log y axis, with τ₀.₁ and τ₀.₅ (`tau_10`, `tau_50`) as
horizontal lines, and on a twin (linear) axis the cumulative mass `value_curve_mass`: the share of
Σ|C| carried by the values up to that quantile. τ_a is where the largest values reach 1 − a of
the mass, so the values below it carry about a: a dot at the level where the value curve reaches
τ_a marks the mass of the levels below it, ≈ a. Zeros cannot be drawn on the log axis: they are
left out of the value curve (their share is printed in the panel); a layer whose values are all
zero is drawn on a linear axis.

One panel per layer: one row per (dataset, video, arch, seed, frame), one column per layer.

CSV (one row per quantile level, all of them, including the zeros): dataset, video, arch, layer,
seed, frame, q, value, mass, tau_10, tau_50.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from xinc.plots import StatsInput, as_inputs, read_stats
from xinc.plots.style import (
    CURVE_PANEL,
    figure_style,
    group_title,
    layer_label,
    line_colors,
    new_figure,
    save_figure,
    save_table,
)

__all__ = ["COLUMNS", "compute", "draw", "render", "tau_level"]

IDS = ["dataset", "video", "arch", "layer", "seed", "frame"]
COLUMNS = [*IDS, "q", "value", "mass", "tau_10", "tau_50"]
PANEL = ["dataset", "video", "arch", "seed", "frame"]
KEYS = ("value_curve", "value_curve_q", "value_curve_mass", "tau_10", "tau_50")
VALUE_COLOR, TAU_COLORS = line_colors(3)[0], {"tau_10": line_colors(3)[1],
                                               "tau_50": line_colors(3)[2]}
TAU_STYLES = {"tau_10": "--", "tau_50": ":"}
TAU_LABELS = {"tau_10": "τ₀.₁", "tau_50": "τ₀.₅"}
MASS_COLOR = "0.45"
DEFAULT_TITLE = "Distribution of |C| per layer (sorted values, cumulative mass, τ₀.₁ and τ₀.₅)"


def _rows(item: StatsInput) -> pd.DataFrame:
    st = read_stats(item.path, KEYS)
    missing = [k for k in KEYS if k not in st]
    if missing:
        raise ValueError(f"{item.path}: no {missing} (statistics written before they existed); "
                         "rerun the canvas rules")
    q = np.asarray(st["value_curve_q"], dtype=np.float64)
    return pd.DataFrame({**{k: [v] * q.size for k, v in item.labels().items()}, "q": q,
                         "value": np.asarray(st["value_curve"], dtype=np.float64),
                         "mass": np.asarray(st["value_curve_mass"], dtype=np.float64),
                         "tau_10": float(st["tau_10"]), "tau_50": float(st["tau_50"])})


def compute(inputs: Sequence[StatsInput | str | Path]) -> pd.DataFrame:
    """Every stored quantile point of every input (:data:`COLUMNS`)."""
    items = as_inputs(inputs)
    if not items:
        raise ValueError("fig18 needs at least one statistics input")
    return pd.concat([_rows(item) for item in items], ignore_index=True)[COLUMNS]


def tau_level(value: np.ndarray, tau: float) -> int | None:
    """Index of the first quantile whose value reaches `tau` (None if none does)."""
    hits = np.flatnonzero(np.asarray(value) >= tau)
    return int(hits[0]) if hits.size else None


def _key(values: Sequence[object]) -> tuple:
    return tuple(None if pd.isna(v) else v for v in values)


def _draw_panel(ax: Axes, curve: pd.DataFrame) -> None:
    q, value, mass = (curve[k].to_numpy() for k in ("q", "value", "mass"))
    positive = value > 0
    ax.plot(q[positive], value[positive], color=VALUE_COLOR)
    if positive.any():
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "all |C| = 0", ha="center", va="center", transform=ax.transAxes)
    twin = ax.twinx()
    twin.grid(False)
    twin.spines["right"].set_visible(True)
    twin.plot(q, mass, color=MASS_COLOR, linewidth=0.9)
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("cumulative share of Σ|C|", fontsize=7)
    for key in ("tau_10", "tau_50"):
        tau = float(curve[key].iloc[0])
        if tau > 0:
            ax.axhline(tau, color=TAU_COLORS[key], linestyle=TAU_STYLES[key], linewidth=0.9)
            at = tau_level(value, tau)
            if at is not None:  # the mass of the values below τ: up to the level before
                below = mass[at - 1] if at > 0 else 0.0
                twin.plot([q[at]], [below], "o", color=TAU_COLORS[key], markersize=3)
    zeros = float(np.mean(~positive))
    if 0 < zeros < 1:
        ax.text(0.02, 0.97, f"zeros: {100 * zeros:.1f} % (not drawn)", transform=ax.transAxes,
                ha="left", va="top", fontsize=6, color="0.3")
    ax.set_xlabel("quantile level q")
    ax.set_ylabel("|C| at q")


def _legend(fig: Figure) -> None:
    handles = [Line2D([], [], color=VALUE_COLOR, label="|C| quantile (left, log)"),
               Line2D([], [], color=MASS_COLOR, label="cumulative share of Σ|C| (right)"),
               *(Line2D([], [], color=TAU_COLORS[k], linestyle=TAU_STYLES[k], marker="o",
                        markersize=3, label=f"{TAU_LABELS[k]} (dot: its mass share)")
                 for k in TAU_STYLES)]
    fig.legend(handles=handles, loc="outside lower center", ncol=4)


def draw(df: pd.DataFrame, *, title: str | None = None) -> Figure:
    """One row per (dataset, video, arch, seed, frame) of `df`, one panel per layer."""
    positions: dict[tuple, list[int]] = {}
    for i, v in enumerate(df[IDS].itertuples(index=False)):
        positions.setdefault(_key(v), []).append(i)
    rows: dict[tuple, list[tuple]] = {}
    for key in positions:
        rows.setdefault((*key[:3], *key[4:]), []).append(key)
    ncols = max((len(v) for v in rows.values()), default=1)
    with figure_style():
        fig = new_figure(CURVE_PANEL[0] * 1.15 * ncols, CURVE_PANEL[1] * max(len(rows), 1) + 0.7)
        axes = fig.subplots(max(len(rows), 1), ncols, squeeze=False)
        for r, (panel, layers) in enumerate(rows.items()):
            for c in range(ncols):
                if c >= len(layers):
                    axes[r, c].set_axis_off()
                    continue
                _draw_panel(axes[r, c], df.iloc[positions[layers[c]]])
                axes[r, c].set_title(f"{group_title(panel[0], panel[1], panel[3], panel[4])}"
                                     f" · {layer_label(panel[2], layers[c][3])}", fontsize=7)
        _legend(fig)
        fig.suptitle(title if title is not None else DEFAULT_TITLE)
    return fig


def render(inputs: Sequence[StatsInput | str | Path], png_path: str | Path,
           csv_path: str | Path, *, title: str | None = None,
           dpi: float | None = None) -> pd.DataFrame:
    """compute → CSV, draw → PNG; returns the CSV table."""
    table = compute(inputs)
    save_table(table, csv_path)
    with figure_style():
        save_figure(draw(table, title=title), png_path, dpi=dpi)
    return table
