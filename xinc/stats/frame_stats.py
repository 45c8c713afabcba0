"""Per-frame, per-layer statistics of |C| computed from streamed maps (formats.md §6).

The canvas of a layer is never held whole: `FrameStats` consumes the `(ids, maps)` chunks of
`xinc.canvas.iter_canvas` in two passes. Pass 1 (`update`) accumulates T_n, the group sums, the
per-pixel heat Σ_m |C_m(p)| and the sampled maps. Pass 2 (`update_counts`) needs the finished
heat: it counts, per neuron, the pixels with |C_n(p)| / Σ_m |C_m(p)| > 1/N, evaluated as
|C_n(p)| > heat(p)/N in the maps' dtype (pixels with zero heat never count). The maps are
recomputed for pass 2 (`frame_stats` calls the chunk factory twice).

Sums over pixels are accumulated in the maps' dtype (float32: relative error ≈ 1e-6) and stored
as float64; the heat is accumulated over chunks in float64.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.canvas import canvas_size, iter_canvas, n_neurons
from xinc.io import save_npz
from xinc.models.nerv import NeRV

Chunks = Iterable[tuple[torch.Tensor, torch.Tensor]]
REQUIRED_KEYS = ("total", "pixels_per_neuron", "heat", "sample_ids", "sample_maps", "meta_json")


def sample_neurons(n_neurons: int, k: int, seed: int) -> np.ndarray:
    """min(k, N) distinct neuron ids drawn with `np.random.default_rng(seed)`, sorted (int64)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_neurons, size=min(k, n_neurons), replace=False)).astype(np.int64)


def label_maps(groups: Mapping[str, np.ndarray], height: int,
               width: int) -> dict[str, np.ndarray]:
    """The integer [H, W] entries of `groups` (so `pixel_groups` output can be passed as is)."""
    arrays = {name: np.asarray(arr) for name, arr in groups.items()}
    return {name: arr for name, arr in arrays.items()
            if arr.shape == (height, width) and np.issubdtype(arr.dtype, np.integer)}


class FrameStats:
    """Two-pass accumulator of the formats.md §6 arrays of one layer of one frame."""

    def __init__(self, groups: Mapping[str, np.ndarray], n_neurons: int, height: int,
                 width: int, sample_ids: Sequence[int] | np.ndarray = (),
                 meta: Mapping[str, Any] | None = None) -> None:
        self.n, self.height, self.width = n_neurons, height, width
        self.labels = label_maps(groups, height, width)
        self.areas: dict[str, np.ndarray] = {}
        for name, lab in self.labels.items():
            areas = np.bincount(lab.ravel()) if lab.min() >= 0 else np.zeros(1)
            if not areas.all():
                raise ValueError(f"grouping {name!r}: labels must be 0 … G−1, none empty")
            self.areas[name] = areas.astype(np.int64)
        self.sample_ids = np.unique(np.asarray(sample_ids, dtype=np.int64))
        if self.sample_ids.size and not 0 <= self.sample_ids[0] <= self.sample_ids[-1] < n_neurons:
            raise ValueError(f"sample ids must lie in [0, {n_neurons})")
        self.meta = dict(meta or {})
        self.total = np.zeros(n_neurons)
        self.group_sums = {g: np.zeros((n_neurons, len(a))) for g, a in self.areas.items()}
        self.counts = np.zeros(n_neurons, dtype=np.int64)
        self.sample_maps = np.zeros((len(self.sample_ids), height, width), dtype=np.float16)
        self._seen = np.zeros(n_neurons, dtype=bool)
        self._counted = np.zeros(n_neurons, dtype=bool)
        self._heat: torch.Tensor | None = None
        self._onehot: torch.Tensor | None = None
        self._threshold: torch.Tensor | None = None

    def _check(self, ids: torch.Tensor, maps: torch.Tensor, done: np.ndarray) -> np.ndarray:
        idx = ids.cpu().numpy()
        if maps.shape != (len(idx), self.height, self.width):
            raise ValueError(f"maps {tuple(maps.shape)} do not match {len(idx)} ids and the "
                             f"frame size {self.height}×{self.width}")
        if done[idx].any() or len(np.unique(idx)) != len(idx):
            raise ValueError("a neuron was passed twice in the same pass")
        done[idx] = True
        return idx

    def _group_matrix(self, like: torch.Tensor) -> torch.Tensor:
        """One-hot [H·W, Σ_g G_g] of every grouping, side by side, in the maps' dtype/device."""
        if self._onehot is None:
            cols, offset = [], 0
            for g, lab in self.labels.items():
                cols.append(lab.ravel() + offset)
                offset += len(self.areas[g])
            onehot = torch.zeros(self.height * self.width, offset, dtype=like.dtype)
            rows = torch.arange(self.height * self.width)
            for c in cols:
                onehot[rows, torch.from_numpy(c)] = 1
            self._onehot = onehot.to(like.device)
        return self._onehot

    @torch.no_grad()
    def update(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 1 for one chunk: maps [n, H, W] of neurons `ids` (each neuron once)."""
        idx = self._check(ids, maps, self._seen)
        flat = maps.reshape(len(idx), -1).abs()
        self.total[idx] = flat.sum(1).cpu().numpy()
        if self.labels:
            sums = (flat @ self._group_matrix(flat)).cpu().numpy()
            offset = 0
            for g, a in self.areas.items():
                self.group_sums[g][idx] = sums[:, offset:offset + len(a)]
                offset += len(a)
        heat = flat.sum(0).double()
        self._heat = heat if self._heat is None else self._heat.add_(heat)
        pos = np.searchsorted(self.sample_ids, idx)
        hit = pos < len(self.sample_ids)
        hit[hit] = self.sample_ids[pos[hit]] == idx[hit]
        if hit.any():
            rows = torch.from_numpy(np.flatnonzero(hit)).to(maps.device)
            self.sample_maps[pos[hit]] = maps[rows].to(torch.float16).cpu().numpy()

    @torch.no_grad()
    def update_counts(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 2 for one chunk (after pass 1 saw every neuron): pixels-per-neuron counts."""
        if not self._seen.all():
            raise RuntimeError("pass 2 needs the heat of all neurons: finish pass 1 first")
        idx = self._check(ids, maps, self._counted)
        if self._threshold is None:
            self._threshold = (self._heat / self.n).to(maps.dtype)
        flat = maps.reshape(len(idx), -1).abs()
        self.counts[idx] = (flat > self._threshold).sum(1).cpu().numpy()

    def result(self) -> dict[str, np.ndarray]:
        """The formats.md §6 arrays (both passes must be complete)."""
        if not (self._seen.all() and self._counted.all()):
            raise RuntimeError("frame stats incomplete: every neuron must pass through both passes")
        meta = {**self.meta, "neurons": self.n, "height": self.height, "width": self.width,
                "groupings": list(self.labels)}
        out: dict[str, np.ndarray] = {"total": self.total.copy()}
        for g in self.labels:
            out[f"group_sums_{g}"] = self.group_sums[g].copy()
            out[f"areas_{g}"] = self.areas[g].copy()
        out.update({
            "pixels_per_neuron": self.counts.copy(),
            "heat": self._heat.reshape(self.height, self.width).cpu().numpy().astype(np.float32),
            "sample_ids": self.sample_ids.copy(),
            "sample_maps": self.sample_maps.copy(),
            "meta_json": np.array(json.dumps(meta, sort_keys=True)),
        })
        return out


def frame_stats(chunks: Callable[[], Chunks], groups: Mapping[str, np.ndarray], n_neurons: int,
                height: int, width: int, sample_ids: Sequence[int] | np.ndarray = (),
                meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Both passes over `chunks()` (called twice: it must yield the same maps each time)."""
    acc = FrameStats(groups, n_neurons, height, width, sample_ids, meta)
    for ids, maps in chunks():
        acc.update(ids, maps)
    for ids, maps in chunks():
        acc.update_counts(ids, maps)
    return acc.result()


def canvas_frame_stats(model: nn.Module, layer: str, groups: Mapping[str, np.ndarray], *,
                       t: float | torch.Tensor | None = None, height: int | None = None,
                       width: int | None = None, n_sample: int = 16, sample_seed: int = 0,
                       mode: str = "reference", chunk: int | None = None,
                       meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Stats of one layer of one frame straight from the model (maps computed twice).

    `meta` adds to the recorded arch, layer, mode, t and sample seed (e.g. frame, seed).
    """
    h, w = canvas_size(model, height, width)
    n = n_neurons(model, layer)
    info = {"arch": "nerv" if isinstance(model, NeRV) else "ffn", "layer": layer, "mode": mode,
            "t": None if t is None else float(torch.as_tensor(t, dtype=torch.float64).item()),
            "sample_seed": sample_seed, **(meta or {})}
    return frame_stats(
        lambda: iter_canvas(model, layer, t=t, height=h, width=w, mode=mode, chunk=chunk),
        groups, n, h, w, sample_neurons(n, n_sample, sample_seed), info)


def write_frame_stats(path: str | Path, stats: Mapping[str, np.ndarray]) -> None:
    """Write one layer's stats atomically (compressed npz)."""
    missing = [key for key in REQUIRED_KEYS if key not in stats]
    if missing:
        raise ValueError(f"frame stats lack {missing}")
    save_npz(path, **stats)


def read_frame_stats(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by `write_frame_stats` (no pickle needed)."""
    with np.load(path, allow_pickle=False) as z:
        stats = {key: z[key] for key in z.files}
    missing = [key for key in REQUIRED_KEYS if key not in stats]
    if missing:
        raise ValueError(f"{path}: not a frame-stats file (missing {missing})")
    return stats
