"""The 256-colour palettes of the explorer's PNGs (index = quantised value or group label)."""

from __future__ import annotations

import numpy as np

__all__ = ["DIVERGING", "LABELS", "SEQUENTIAL", "palette"]

DIVERGING = "RdBu_r"  # signed maps: blue < 0 < red, white at 0 (indices 127/128)
SEQUENTIAL = "magma"  # Σ|C| heat and neurons per pixel
LABELS = ("tab20", "tab20b", "tab20c")  # groupings: 60 colours, repeated


def palette(kind: str) -> np.ndarray:
    """[256, 3] uint8: `diverging` / `sequential` (a matplotlib colour map sampled at 256
    points) or `labels` (the qualitative colours of LABELS, cycled; index = group label)."""
    from matplotlib import colormaps

    if kind in ("diverging", "sequential"):
        cmap = colormaps[DIVERGING if kind == "diverging" else SEQUENTIAL]
        rgb = cmap(np.linspace(0.0, 1.0, 256))[:, :3]
    elif kind == "labels":
        colours = np.concatenate([colormaps[name].colors for name in LABELS])[:, :3]
        rgb = colours[np.arange(256) % len(colours)]
    else:
        raise ValueError(f"unknown palette {kind!r}; expected diverging, sequential or labels")
    return np.rint(np.asarray(rgb) * 255).astype(np.uint8)
