"""Shared look of xinc figures and deterministic, atomic writers for figures and tables.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot, no global backend state)
inside :func:`figure_style`, which starts from matplotlib's built-in defaults (ignoring any user
matplotlibrc) and applies :data:`RC`. :func:`save_figure` strips dates from the metadata, so the
same inputs give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from xinc.io import atomic_path
from xinc.io import save_table as save_table  # the figures' CSV writer

CMAP = "magma"

#: Curve colours of the pixel groupings (docs/method.md §10 Fig 4: instances red, gridcells green,
#: RGB blue, Gabor magenta).
GROUPING_COLORS = {
    "instances": "#d62728",
    "grid_lattice": "#2ca02c",
    "grid_contiguous": "#2ca02c",
    "rgb": "#1f77b4",
    "gabor": "#bf00bf",
}
GROUPING_LABELS = {
    "instances": "instances",
    "grid_lattice": "gridcells (lattice)",
    "grid_contiguous": "gridcells (contiguous)",
    "rgb": "RGB clusters",
    "gabor": "Gabor clusters",
}

ARCH_LABELS = {"ffn": "FFN", "nerv": "NeRV"}
LAYER_LABELS = {"l1": "L1", "l2": "L2", "l3": "L3", "head": "head", "b3": "B3", "b2": "B2",
                "b1": "B1"}

#: Panel sizes in inches.
MAP_PANEL = (1.9, 1.15)   # one 1:2 contribution map with its title
CURVE_PANEL = (3.0, 2.3)  # one line plot

RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "figure.titlesize": 10,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.facecolor": "white",
    "image.cmap": CMAP,
    "image.interpolation": "nearest",
    "image.interpolation_stage": "data",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "svg.hashsalt": "xinc",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
}

_METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
    "svg": {"Date": None, "Creator": None},
    "ps": {"Creator": "xinc"},
    "eps": {"Creator": "xinc"},
}


@contextmanager
def figure_style() -> Iterator[None]:
    """matplotlib's built-in defaults plus :data:`RC`, restored on exit."""
    with mpl.rc_context():
        mpl.rcdefaults()
        mpl.rcParams.update(RC)
        yield


def new_figure(width: float, height: float) -> Figure:
    """A detached figure (no pyplot) with constrained layout; call inside :func:`figure_style`."""
    return Figure(figsize=(width, height), layout="constrained")


def arch_label(arch: str) -> str:
    return ARCH_LABELS.get(arch, arch)


def layer_label(arch: str, layer: str) -> str:
    """'FFN L2', 'NeRV head', 'NeRV B3'."""
    return f"{arch_label(arch)} {LAYER_LABELS.get(layer, layer)}"


def group_title(dataset: str, video: str, seed: int | None, frame: int | None) -> str:
    """'cityscapes_vps/0005 · f0 · s1' (parts that are unknown are left out)."""
    parts = [f"{dataset}/{video}" if dataset else video]
    if frame is not None:
        parts.append(f"f{frame}")
    if seed is not None:
        parts.append(f"s{seed}")
    return " · ".join(parts)


def line_colors(n: int) -> list[tuple[float, float, float, float]]:
    """`n` distinguishable colours from the magma map (its too-light end is avoided)."""
    cmap = mpl.colormaps[CMAP]
    return [cmap(x) for x in np.linspace(0.1, 0.75, n)] if n > 1 else [cmap(0.1)]


def minmax(abs_map: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min) in float64; a constant map gives zeros."""
    x = np.asarray(abs_map, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def bare_axis(ax: Axes) -> None:
    """No ticks, grid or spines: an image panel."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def mark_dead(ax: Axes) -> None:
    """The word "dead" in the middle of the panel."""
    ax.text(0.5, 0.5, "dead", ha="center", va="center", color="white", fontsize=9,
            fontweight="bold", transform=ax.transAxes)


def choose_yscale(values: Sequence[np.ndarray] | np.ndarray, decades: float = 2.0) -> str:
    """'log' when the positive finite values span at least `decades` decades, else 'linear'."""
    arrays = [values] if isinstance(values, np.ndarray) else list(values)
    if not arrays:
        return "linear"
    v = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < 2:
        return "linear"
    return "log" if np.log10(v.max() / v.min()) >= decades else "linear"


@contextmanager
def _fixed_source_date() -> Iterator[None]:
    """SOURCE_DATE_EPOCH=0 while saving: the PostScript backend takes its date only from there."""
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


def save_figure(fig: Figure, path: str | Path, *, dpi: float | None = None) -> Path:
    """Write `fig` atomically; the format follows the suffix (png by default), without dates,
    so the same figure gives the same bytes."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with (figure_style(), _fixed_source_date(), atomic_path(path) as tmp,
          open(tmp, "wb") as fh):  # a file object: no temporary name leaks into the file
        fig.savefig(fh, format=fmt, dpi=dpi if dpi is not None else RC["savefig.dpi"],
                    metadata=_METADATA.get(fmt))
    return path

