"""Per-frame, per-layer statistics of |C| computed from streamed maps (docs/formats.md §6).

The canvas of a layer is never held whole: `FrameStats` consumes the `(ids, maps)` chunks of
`xinc.canvas.iter_canvas` in two or three passes (`frame_stats` calls the chunk factory once
per pass; the maps are recomputed, never stored) and hands each chunk's |C| to the statistic
families that need it:
- pass 1 (`update`): `PixelSums` (T_n, the group sums, the heat; `xinc.stats.sums`),
  `Features` (per-neuron min/max and pools; `xinc.stats.features`), `Samples`
  (`xinc.stats.samples`) and the coarse histogram of `Thresholds` (`xinc.stats.tau`);
- pass 2 (`update_counts`, needs the finished heat and histogram): `PixelsPerNeuron` and
  `Thresholds` (τ_a's bins, or the fine histogram);
- pass 3 (`update_pixels`, only when `needs_pixel_pass`): `Thresholds` (neurons per pixel).
Each family declares its arrays (`outputs`) beside the `values` that compute them;
`declared_outputs` is their union, and `FrameStats.result` writes exactly that
(`xinc.stats.layout.emit`).
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
from xinc.intermediate import read_npz
from xinc.io import save_npz
from xinc.models.nerv import NeRV
from xinc.stats.features import Features
from xinc.stats.labels import Groupings
from xinc.stats.layout import FrameLayout, Spec, emit, spec_nbytes
from xinc.stats.samples import Samples, sample_neurons
from xinc.stats.sums import Instances, PixelsPerNeuron, PixelSums, instance_ids, wide_rows
from xinc.stats.tau import Thresholds
from xinc.stats.workspace import Workspaces

Chunks = Iterable[tuple[torch.Tensor, torch.Tensor]]
REQUIRED_KEYS = ("total", "pixels_per_neuron", "heat", "sample_ids", "sample_maps", "meta_json")
FAMILIES = (PixelSums, PixelsPerNeuron, Samples, Thresholds, Instances, Features)
META: Spec = {"meta_json": (np.str_, ())}  # written by `FrameStats.result` itself


def frame_outputs(layout: FrameLayout) -> Spec:
    """Every array a statistics file of `layout` holds: {key: (dtype, shape)}."""
    spec: Spec = {}
    for family in FAMILIES:
        spec.update(family.outputs(layout))
    return {**spec, **META}


def declared_outputs(n_neurons: int, height: int, width: int, group_sizes: Mapping[str, int],
                     n_sample: int, instance_ids: bool = True) -> Spec:
    """{key: (dtype, shape)} of the docs/formats.md §6 arrays for N neurons, an H×W frame,
    groupings {name: G}, k sampled maps, and (`instance_ids`) groups that name the instance
    columns, as `pixel_groups` output does: what a statistics file holds."""
    layout = FrameLayout(n_neurons, height, width, dict(group_sizes), min(n_sample, n_neurons),
                         instance_ids)
    return frame_outputs(layout)


def declared_nbytes(n_neurons: int, height: int, width: int, group_sizes: Mapping[str, int],
                    n_sample: int) -> dict[str, int]:
    """Uncompressed bytes of every docs/formats.md §6 array (except `meta_json`) for N neurons, an
    H×W frame, groupings {name: G} and k sampled maps: what a statistics file may hold."""
    return spec_nbytes(declared_outputs(n_neurons, height, width, group_sizes, n_sample))


class Coverage:
    """The neurons one pass has seen, each exactly once."""

    def __init__(self, n_neurons: int) -> None:
        self.seen = np.zeros(n_neurons, dtype=bool)

    def mark(self, idx: np.ndarray) -> None:
        """Record the neurons `idx` of one chunk."""
        if self.seen[idx].any() or len(np.unique(idx)) != len(idx):
            raise ValueError("a neuron was passed twice in the same pass")
        self.seen[idx] = True

    @property
    def done(self) -> bool:
        """Whether every neuron was seen."""
        return bool(self.seen.all())


class FrameStats:
    """Accumulator of the docs/formats.md §6 arrays of one layer of one frame: passes 1, 2
    (and 3) feed the chunks to the statistic families, `result` collects their arrays."""

    def __init__(self, groups: Mapping[str, np.ndarray], n_neurons: int, height: int,
                 width: int, sample_ids: Sequence[int] | np.ndarray = (),
                 meta: Mapping[str, Any] | None = None) -> None:
        self.n, self.height, self.width = n_neurons, height, width
        self.groupings = Groupings(groups, height, width)
        self.samples = Samples(sample_ids, n_neurons, height, width)
        ids = instance_ids(groups, self.groupings)
        self.layout = FrameLayout(n_neurons, height, width, self.groupings.sizes,
                                  len(self.samples.ids), ids is not None)
        self.meta = dict(meta or {})
        self.work = Workspaces()
        self.sums = PixelSums(self.layout, self.groupings)
        self.counts = PixelsPerNeuron(self.layout, self.sums)
        self.thresholds = Thresholds(self.layout, self.work)
        self.instances = Instances(ids, self.sums)
        self.features = Features(self.layout, self.sums)
        self.families = (self.sums, self.counts, self.samples, self.thresholds, self.instances,
                         self.features)  # those of FAMILIES (`result` checks their keys)
        self.passes = tuple(Coverage(n_neurons) for _ in range(3))

    def _take(self, ids: torch.Tensor, maps: torch.Tensor,
              step: int) -> tuple[np.ndarray, torch.Tensor]:
        """(neuron ids, |maps| as [n, H·W] in a reused workspace) of a chunk of pass `step`."""
        idx = ids.cpu().numpy()
        if maps.shape != (len(idx), self.height, self.width):
            raise ValueError(f"maps {tuple(maps.shape)} do not match {len(idx)} ids and the "
                             f"frame size {self.height}×{self.width}")
        self.passes[step].mark(idx)
        flat = maps.reshape(maps.shape[0], -1)
        return idx, torch.abs(flat, out=self.work.get("abs", tuple(flat.shape), flat))

    @torch.no_grad()
    def update(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 1 for one chunk: maps [n, H, W] of neurons `ids` (each neuron once)."""
        idx, flat = self._take(ids, maps, 0)
        for part, wide in wide_rows(idx, flat, self.work):
            self.sums.add(part, wide)
            self.features.add_pools(part, wide)
        self.features.add_range(idx, flat)
        self.thresholds.add_coarse(flat)
        self.samples.add(idx, maps)

    @torch.no_grad()
    def update_counts(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 2 for one chunk (after pass 1 saw every neuron): pixels-per-neuron counts."""
        if not self.passes[0].done:
            raise RuntimeError("pass 2 needs the heat of all neurons: finish pass 1 first")
        idx, flat = self._take(ids, maps, 1)
        self.counts.add(idx, flat)
        self.thresholds.add_counts(flat)

    @property
    def needs_pixel_pass(self) -> bool:
        """Whether neurons per pixel need pass 3 (`update_pixels`), known after pass 2."""
        return self.thresholds.needs_pixel_pass

    @torch.no_grad()
    def update_pixels(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 3 for one chunk (after pass 2 saw every neuron): neurons per pixel above τ_a."""
        if not self.passes[1].done:
            raise RuntimeError("pass 3 needs τ from all neurons: finish pass 2 first")
        self.thresholds.start_pixel_pass()
        _, flat = self._take(ids, maps, 2)
        self.thresholds.add_pixels(flat)

    def result(self) -> dict[str, np.ndarray]:
        """The docs/formats.md §6 arrays (passes 1 and 2, and 3 if `needs_pixel_pass`, must be
        complete): exactly those of `declared_outputs`."""
        if not (self.passes[0].done and self.passes[1].done
                and (not self.needs_pixel_pass or self.passes[2].done)):
            raise RuntimeError("frame stats incomplete: every neuron must pass through passes "
                               "1 and 2 (and 3 if `needs_pixel_pass`)")
        values: dict[str, Any] = {}
        for family in self.families:
            values.update(family.values())
        meta = {**self.meta, "neurons": self.n, "height": self.height, "width": self.width,
                "groupings": list(self.groupings.labels)}
        values["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
        return emit(frame_outputs(self.layout), values)


def frame_stats(chunks: Callable[[], Chunks], groups: Mapping[str, np.ndarray], n_neurons: int,
                height: int, width: int, sample_ids: Sequence[int] | np.ndarray = (),
                meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Passes 1 and 2 (and 3 if `needs_pixel_pass`) over `chunks()`, which is called two or
    three times and must yield the same maps each time."""
    acc = FrameStats(groups, n_neurons, height, width, sample_ids, meta)
    for ids, maps in chunks():
        acc.update(ids, maps)
    for ids, maps in chunks():
        acc.update_counts(ids, maps)
    if acc.needs_pixel_pass:
        for ids, maps in chunks():
            acc.update_pixels(ids, maps)
    return acc.result()


def canvas_frame_stats(model: nn.Module, layer: str, groups: Mapping[str, np.ndarray], *,
                       t: float | torch.Tensor | None = None, height: int | None = None,
                       width: int | None = None, n_sample: int = 16, sample_seed: int = 0,
                       mode: str = "reference", chunk: int | None = None,
                       bias: str = "split", neuron: str = "kernel",
                       meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Stats of one layer of one frame straight from the model (maps computed 2–3 times).

    `bias` / `neuron`: the `xinc.canvas` switches. `meta` adds to the recorded arch, layer,
    mode, switches, t and sample seed (e.g. frame, seed).
    """
    h, w = canvas_size(model, height, width)
    n = n_neurons(model, layer, bias=bias, neuron=neuron)
    info = {"arch": "nerv" if isinstance(model, NeRV) else "ffn", "layer": layer, "mode": mode,
            "bias": bias, "neuron": neuron,
            "t": None if t is None else float(torch.as_tensor(t, dtype=torch.float64).item()),
            "sample_seed": sample_seed, **(meta or {})}
    return frame_stats(
        lambda: iter_canvas(model, layer, t=t, height=h, width=w, mode=mode, chunk=chunk,
                            bias=bias, neuron=neuron),
        groups, n, h, w, sample_neurons(n, n_sample, sample_seed), info)


def write_frame_stats(path: str | Path, stats: Mapping[str, np.ndarray]) -> None:
    """Write one layer's stats atomically (compressed npz)."""
    missing = [key for key in REQUIRED_KEYS if key not in stats]
    if missing:
        raise ValueError(f"frame stats lack {missing}")
    save_npz(path, **stats)


def read_frame_stats(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by `write_frame_stats` (no pickle needed); a damaged file raises an
    error naming it and the rule that writes it."""
    return read_npz(path, REQUIRED_KEYS, "frame-stats")
