"""Neuron feature vectors of one layer (or several) pooled over seeds: the points clustered.

A statistics file (docs/formats.md §6) stores, per neuron, `features_gabor` / `features_rgb`
(min-max |C| averaged over the K pixel clusters) and `features_spatial16` (16×16 average
pools), and `alive` (Σ_p |C| > 0). Dead neurons are dropped (docs/method.md §9.1).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xinc.intermediate import read_npz

FEATURES = ("gabor", "rgb", "spatial16")


@dataclass(frozen=True)
class Points:
    """N neurons: feature vectors [N, D] and, per point, its seed, neuron id, arch and layer."""

    features: np.ndarray
    seed: np.ndarray
    neuron: np.ndarray
    arch: np.ndarray
    layer: np.ndarray

    def __len__(self) -> int:
        return len(self.seed)


def read_points(paths: Sequence[str | Path], feature: str) -> tuple[Points, dict[str, int]]:
    """The alive neurons of every statistics file (one layer of one model each; its arch,
    layer and seed read from its `meta_json`), in file order then neuron id; also the number
    of dead neurons dropped per file (`"<arch>/<layer>/s<seed>"`)."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature kind {feature!r}; use one of {', '.join(FEATURES)}")
    if not paths:
        raise ValueError("no statistics files to cluster")
    key = f"features_{feature}"
    parts, dead = [], {}
    for path in paths:
        stats = read_npz(path, ("alive", "meta_json"), "frame statistics")
        src = _labels(path, stats)
        if key not in stats:
            held = sorted(k[len("features_"):] for k in stats if k.startswith("features_"))
            raise ValueError(f"{path}: no {key} (this file holds features "
                             f"{', '.join(held) or 'none'}); set clusters.feature to one of "
                             "them, or add the grouping it needs to the statistics")
        alive = np.asarray(stats["alive"], dtype=bool)
        vectors = np.asarray(stats[key], dtype=np.float32)
        if len(vectors) != len(alive):
            raise ValueError(f"{path}: {len(vectors)} feature vectors for {len(alive)} "
                             "neurons")
        ids = np.flatnonzero(alive)
        dead[f"{src['arch']}/{src['layer']}/s{src['seed']}"] = int(len(alive) - len(ids))
        parts.append((vectors[ids], ids, src))
    if len({p[0].shape[1] for p in parts}) > 1:
        raise ValueError(f"{key} vectors of different lengths across files "
                         f"({sorted({p[0].shape[1] for p in parts})}); the files come from "
                         "different stats.clusters settings")
    points = Points(
        features=np.concatenate([p[0] for p in parts]),
        seed=np.concatenate([np.full(len(p[1]), p[2]["seed"], np.int64) for p in parts]),
        neuron=np.concatenate([p[1].astype(np.int64) for p in parts]),
        arch=np.concatenate([np.full(len(p[1]), p[2]["arch"]) for p in parts]),
        layer=np.concatenate([np.full(len(p[1]), p[2]["layer"]) for p in parts]),
    )
    return points, dead


def _labels(path: str | Path, stats: dict[str, np.ndarray]) -> dict[str, Any]:
    """arch, layer and seed of a statistics file, from its `meta_json`."""
    meta = json.loads(str(stats["meta_json"]))
    missing = [key for key in ("arch", "layer", "seed") if meta.get(key) is None]
    if missing:
        raise ValueError(f"{path}: its meta_json records no {', '.join(missing)}; recompute "
                         "it with the canvas rules (xinc canvas stage)")
    return {"arch": meta["arch"], "layer": meta["layer"], "seed": int(meta["seed"])}
