"""The UMAP scatters of the neuron clusters (docs/formats.md §9) as the explorer's .js files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xinc.explorer.encode import id_dtype, js_number, pack, write_js

__all__ = ["XY_MAX", "scatter_data", "write_scatter"]

XY_MAX = 65535  # coordinates: round(XY_MAX · (v − min) / (max − min)) in uint16


def _unit(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)
    span = hi - lo if hi > lo else 1.0
    return np.rint((values.astype(np.float64) - lo) / span * XY_MAX).astype(np.uint16), lo, hi


def scatter_data(clusters: dict[str, Any]) -> dict[str, Any]:
    """The page's copy of one cluster file (`read_clusters`): per point x, y (uint16 over the
    embedding's range), cluster label, index into `seeds`, neuron id; packed arrays."""
    meta = clusters["meta"]
    seeds = [int(s) for s in meta["seeds"]]
    x, x_lo, x_hi = _unit(clusters["xy"][:, 0])
    y, y_lo, y_hi = _unit(clusters["xy"][:, 1])
    position = {seed: i for i, seed in enumerate(seeds)}
    seed_index = np.array([position[int(s)] for s in clusters["seed"]], np.int64)
    neurons = np.asarray(clusters["neuron"], np.int64)
    labels = np.asarray(clusters["labels"], np.int64)
    return {
        "arch": meta["arch"], "layer": meta["layer"], "frame": int(meta["frame"]),
        "seeds": seeds, "clusters": int(labels.max()) + 1 if len(labels) else 0,
        "range": [js_number(x_lo), js_number(x_hi), js_number(y_lo), js_number(y_hi)],
        "x": pack(x), "y": pack(y),
        "label": pack(labels.astype(id_dtype(int(labels.max(initial=0)) + 1))),
        "seed": pack(seed_index.astype(id_dtype(len(seeds)))),
        "neuron": pack(neurons.astype(id_dtype(int(neurons.max(initial=0)) + 1))),
    }


def write_scatter(path: str | Path, key: str, clusters: dict[str, Any]) -> None:
    write_js(path, "XINC.add", key, scatter_data(clusters))
