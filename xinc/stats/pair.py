"""Contribution change between consecutive frames (docs/method.md §8.7, Fig 9).

Δ_t(p) = Σ_n | |C_{n,t}(p)| − |C_{n,t−1}(p)| |, from two chunk streams of the same layer read in
lockstep (same neuron ids per chunk, e.g. two `iter_canvas` calls with the same chunk size), so
neither canvas is held whole. Each term is | |C_t| − |C_{t−1}| | in the maps' dtype (one rounding);
the terms are summed over the neurons in float64, and Δ is returned as float32 [H, W].
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.canvas import canvas_size, iter_canvas
from xinc.intermediate import read_intermediate
from xinc.io import save_npz
from xinc.stats.workspace import Workspaces

Chunks = Iterable[tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def pair_change(chunks_prev: Chunks, chunks_next: Chunks,
                n_neurons: int | None = None) -> np.ndarray:
    """Δ(p) = Σ_n | |C_next| − |C_prev| | over the chunks of two frames, float32 [H, W].

    Both streams must yield the same neuron ids in the same chunks; `n_neurons`, if given, is
    checked against the neurons seen (each exactly once).
    """
    delta: torch.Tensor | None = None
    work = Workspaces()
    seen: set[int] = set()
    sentinel = object()
    it_prev, it_next = iter(chunks_prev), iter(chunks_next)
    while True:
        a, b = next(it_prev, sentinel), next(it_next, sentinel)
        if a is sentinel or b is sentinel:
            if a is not b:
                raise ValueError("the two chunk streams have different lengths")
            break
        (ids_a, maps_a), (ids_b, maps_b) = a, b
        if not torch.equal(ids_a.cpu(), ids_b.cpu()) or maps_a.shape != maps_b.shape:
            raise ValueError("the two chunk streams must yield the same ids and shapes in lockstep")
        ids = ids_a.cpu().tolist()
        if seen.intersection(ids) or len(set(ids)) != len(ids):
            raise ValueError("a neuron was passed twice")
        seen.update(ids)
        change = torch.abs(maps_b, out=work.get("next", maps_b.shape, maps_b))
        change.sub_(torch.abs(maps_a, out=work.get("prev", maps_a.shape, maps_a))).abs_()
        # a float64 copy, then its sum: several times faster than sum(0, dtype=torch.float64)
        part = work.get("wide", change.shape, change, torch.float64).copy_(change).sum(0)
        delta = part if delta is None else delta.add_(part)
    if delta is None:
        raise ValueError("no chunks")
    if n_neurons is not None and seen != set(range(n_neurons)):
        raise ValueError(f"expected neurons 0 … {n_neurons - 1} exactly once, got {len(seen)}")
    return delta.cpu().numpy().astype(np.float32)


def canvas_pair_change(model: nn.Module, layer: str, t_prev: float | torch.Tensor,
                       t_next: float | torch.Tensor, *, mode: str = "reference",
                       chunk: int | None = None, bias: str = "split",
                       neuron: str = "kernel") -> np.ndarray:
    """Δ between the NeRV frames at times `t_prev` and `t_next` (float32 [H, W])."""
    h, w = canvas_size(model)
    kw = {"height": h, "width": w, "mode": mode, "chunk": chunk, "bias": bias, "neuron": neuron}
    return pair_change(iter_canvas(model, layer, t=t_prev, **kw),
                       iter_canvas(model, layer, t=t_next, **kw))


def write_pair_stats(path: str | Path, delta: np.ndarray, meta: Mapping[str, Any]) -> None:
    """Write one layer's Δ_t (docs/formats.md §6b): `delta` float32 [H, W] and `meta_json`."""
    save_npz(path, delta=np.asarray(delta, dtype=np.float32),
             meta_json=np.array(json.dumps(dict(meta), sort_keys=True)))


def read_pair_stats(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(`delta`, meta) of a file written by `write_pair_stats`; a damaged file raises an error
    naming it and the rule that writes it."""
    def read(file: Path) -> tuple[np.ndarray, dict[str, Any]]:
        with np.load(file, allow_pickle=False) as z:
            if "delta" not in z.files or "meta_json" not in z.files:
                raise ValueError("not a contribution-change file (needs delta, meta_json)")
            return z["delta"], json.loads(str(z["meta_json"]))

    return read_intermediate(path, read)
