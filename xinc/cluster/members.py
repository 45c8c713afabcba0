"""Members of the shown clusters (Figs 12/13): drawn per cluster, then just their maps.

`draw_members` picks `per_cluster` points from each of clusters 0 … shown − 1 with a seeded
generator: without replacement (default; a cluster smaller than that gives all its points), or
with replacement as the authors' `np.random.choice` (`replace=True`, `draw: reference`; seeded
here too, so that a run repeats). `neuron_maps` computes the maps of only those neurons
(`iter_canvas(ids=…)`), not the layer's canvas.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xinc.intermediate import read_npz
from xinc.io import save_npz, save_table

DRAWS = ("without_replacement", "reference")


def draw_members(labels: np.ndarray, *, shown: int, per_cluster: int, seed: int,
                 draw: str = "without_replacement") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cluster, slot within the cluster, point index) of the drawn members, cluster by
    cluster; clusters 0 … shown − 1 that exist."""
    if draw not in DRAWS:
        raise ValueError(f"unknown draw {draw!r}; use one of {', '.join(DRAWS)}")
    rng = np.random.default_rng(seed)
    cluster, slot, index = [], [], []
    for c in range(min(shown, int(labels.max()) + 1 if len(labels) else 0)):
        pool = np.flatnonzero(labels == c)
        if draw == "reference":
            chosen = rng.choice(pool, size=per_cluster, replace=True)
        else:
            chosen = rng.choice(pool, size=min(per_cluster, len(pool)), replace=False)
        cluster += [c] * len(chosen)
        slot += list(range(len(chosen)))
        index += chosen.tolist()
    return (np.asarray(cluster, np.int64), np.asarray(slot, np.int64),
            np.asarray(index, np.int64))


def neuron_maps(model: Any, layer: str, ids: Sequence[int], *,
                t: float | None = None, height: int | None = None, width: int | None = None,
                mode: str = "reference", bias: str = "split",
                neuron: str = "kernel") -> np.ndarray:
    """Contribution maps C [len(ids), H, W] (float32) of neurons `ids` of `layer`, in the
    order given (repeats allowed); `model` a NeRV or FFN (torch is imported here only)."""
    import torch

    from xinc.canvas import iter_canvas

    unique, inverse = np.unique(np.asarray(ids, np.int64), return_inverse=True)
    found: list[np.ndarray] = []
    with torch.no_grad():
        for _, maps in iter_canvas(model, layer, t=t, height=height, width=width, mode=mode,
                                   bias=bias, neuron=neuron, ids=unique.tolist()):
            found.append(maps.float().cpu().numpy())
    stacked = np.concatenate(found) if found else np.zeros((0, 1, 1), np.float32)
    return stacked[inverse]


MEMBER_KEYS = ("cluster", "slot", "seed", "neuron", "maps", "meta_json")
MEMBER_COLUMNS = ["cluster", "slot", "seed", "neuron"]


def write_members(npz: str | Path, csv: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """The members file (docs/formats.md §9) and its CSV (cluster, slot, seed, neuron)."""
    save_npz(npz, **arrays)
    save_table(pd.DataFrame({key: arrays[key] for key in MEMBER_COLUMNS},
                            columns=MEMBER_COLUMNS), csv)


def read_members(path: str | Path) -> dict[str, Any]:
    """A members file's arrays, with `meta` decoded from its JSON."""
    arrays = read_npz(path, MEMBER_KEYS, "cluster members")
    arrays["meta"] = json.loads(str(arrays.pop("meta_json")))
    return arrays
