"""Per-frame, per-layer statistics of |C| computed from streamed maps (docs/formats.md §6).

The canvas of a layer is never held whole: `FrameStats` consumes the `(ids, maps)` chunks of
`xinc.canvas.iter_canvas` in two or three passes (`frame_stats` calls the chunk factory two or
three times; the maps are recomputed, never stored):
- Pass 1 (`update`): T_n, the group sums, the per-pixel heat Σ_m |C_m(p)|, the sampled maps,
  per-neuron min/max of |C|, the 16×16 average pools and the coarse histogram of all |C|
  (`xinc.stats.mass`), which already gives the quantile curve.
- Pass 2 (`update_counts`, needs the finished heat and histogram): per neuron the pixels with
  |C_n(p)| / Σ_m |C_m(p)| > 1/N, evaluated as |C_n(p)| > heat(p)/N in the maps' dtype (pixels
  with zero heat never count).
- Neurons per pixel above τ_a: pass 1 fixes the coarse bin b (high 16 bits of the float32
  pattern) that holds τ_a, so pass 2 already counts, per pixel, the values of higher bins (all
  > τ_a) and keeps the (pixel, value) pairs of bin b (float32 maps; at most `AMBIGUOUS_CAP`
  pairs in all, typically < 1 % of the values). Those values are all of bin b, so `result`
  builds τ_a's fine histogram from them and finishes with the exact τ_a. Otherwise (other
  dtypes, or more pairs) pass 2 feeds every value to the fine histogram and a pass 3
  (`update_pixels`) counts |C_n(p)| > τ_a directly: `needs_pixel_pass` says which, and
  `frame_stats` then calls the chunk factory a third time.

Every sum over pixels (T_n, the group sums, the pools) and the heat are accumulated in float64,
from a float64 copy of |C| (exact for float32 maps): they equal a float64 computation on the same
maps up to float64 rounding, whatever the summation order. This matters for v_n
(`xinc.stats.variance`): a neuron spread almost evenly over the groups has S ≈ E, and float32
sums (relative error ≈ 1e-7) gave v_n errors from 1e-3 up to tens of percent. Groupings without
a grid layout are summed by `scatter_add_` by label, grids and pools by reshaping; on the CPU
the copy is made `WIDE_BYTES` at a time, so that the sums read it from the cache.
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
from xinc.stats.groupings import grid_groups
from xinc.stats.mass import MassHistogram, scan_bins
from xinc.stats.workspace import Workspaces

Chunks = Iterable[tuple[torch.Tensor, torch.Tensor]]
REQUIRED_KEYS = ("total", "pixels_per_neuron", "heat", "sample_ids", "sample_maps", "meta_json")
TAU_AREAS = {"10": 0.1, "50": 0.5}  # key suffix → mass fraction a of τ_a
VALUE_LEVELS = np.linspace(0.0, 1.0, 2001)
FEATURE_GROUPINGS = ("gabor", "rgb")
POOL = 16
WIDE_BYTES = 4 << 20  # float64 |C| rows summed at a time on the CPU (`FrameStats.update`)
AMBIGUOUS_CAP = 1 << 23  # (pixel, value) pairs kept in pass 2 for neurons_per_pixel (≤ 64 MiB)


def sample_neurons(n_neurons: int, k: int, seed: int) -> np.ndarray:
    """min(k, N) distinct neuron ids drawn with `np.random.default_rng(seed)`, sorted (int64)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_neurons, size=min(k, n_neurons), replace=False)).astype(np.int64)


def grid_layout(labels: np.ndarray) -> tuple[str, int, int] | None:
    """("lattice" | "contiguous", sh, sw) when `labels` is exactly that `grid_groups` map on a
    grid dividing the frame (its group sums are then plain reshaped sums), else None."""
    height, width = labels.shape
    count = int(labels.max()) + 1 if labels.size else 0
    for sh in range(1, count + 1):
        sw = count // sh
        if sh * sw != count or height % sh or width % sw:
            continue
        grids = grid_groups(height, width, (sh, sw))
        for kind in ("lattice", "contiguous"):
            if np.array_equal(labels, grids[f"grid_{kind}"]):
                return kind, sh, sw
    return None


def label_maps(groups: Mapping[str, np.ndarray], height: int,
               width: int) -> dict[str, np.ndarray]:
    """The integer [H, W] entries of `groups` (so `pixel_groups` output can be passed as is)."""
    arrays = {name: np.asarray(arr) for name, arr in groups.items()}
    return {name: arr for name, arr in arrays.items()
            if arr.shape == (height, width) and np.issubdtype(arr.dtype, np.integer)}


class FrameStats:
    """Three-pass accumulator of the docs/formats.md §6 arrays of one layer of one frame."""

    def __init__(self, groups: Mapping[str, np.ndarray], n_neurons: int, height: int,
                 width: int, sample_ids: Sequence[int] | np.ndarray = (),
                 meta: Mapping[str, Any] | None = None) -> None:
        self.n, self.height, self.width = n_neurons, height, width
        self.labels = label_maps(groups, height, width)
        self.layouts = {g: grid_layout(lab) for g, lab in self.labels.items()}
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
        # panoptic id of each instance group (`pixel_groups`' `instances_ids`), kept beside
        # the group sums so that the statistics name their segments
        self.instance_ids = (np.asarray(groups["instances_ids"], dtype=np.int64)
                             if "instances" in self.labels and "instances_ids" in groups
                             else None)
        if self.instance_ids is not None and len(self.instance_ids) != len(self.areas["instances"]):
            raise ValueError(f"instances_ids has {len(self.instance_ids)} entries for "
                             f"{len(self.areas['instances'])} instance groups")
        self.total = np.zeros(n_neurons)
        self.group_sums = {g: np.zeros((n_neurons, len(a))) for g, a in self.areas.items()}
        self.counts = np.zeros(n_neurons, dtype=np.int64)
        self.sample_maps = np.zeros((len(self.sample_ids), height, width), dtype=np.float16)
        self.vmin = np.zeros(n_neurons)
        self.vmax = np.zeros(n_neurons)
        self.pool_shape = (height // POOL, width // POOL)
        self.pools = np.zeros((n_neurons, self.pool_shape[0] * self.pool_shape[1]))
        self.hist = MassHistogram(TAU_AREAS.values(), VALUE_LEVELS)
        self.taus: dict[str, float] | None = None
        self.above = {k: torch.zeros(height * width, dtype=torch.int64) for k in TAU_AREAS}
        self._seen = np.zeros(n_neurons, dtype=bool)
        self._counted = np.zeros(n_neurons, dtype=bool)
        self._pixeled = np.zeros(n_neurons, dtype=bool)
        self._shortcut: bool | None = None  # pass 2 counts neurons per pixel (no pass 3)
        self._tau_bins: dict[str, int] = {}
        # (pixel, value) pairs inside τ_a's coarse bin, in preallocated arrays (untouched pages
        # cost nothing; many small arrays would fragment the C heap)
        self._pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._n_pairs = 0
        self._pair_fill = dict.fromkeys(TAU_AREAS, 0)
        self._finished = False
        self._heat: torch.Tensor | None = None
        self._index: dict[str, torch.Tensor] = {}  # labels [H·W] of `_label_sums`
        self._work = Workspaces()
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

    def _abs(self, maps: torch.Tensor) -> torch.Tensor:
        """|maps| as [n, H·W], in a reused workspace."""
        flat = maps.reshape(maps.shape[0], -1)
        return torch.abs(flat, out=self._work.get("abs", tuple(flat.shape), flat))

    def _wide(self, flat: torch.Tensor) -> torch.Tensor:
        """`flat` as float64 (a reused workspace unless it already is): every sum over pixels
        reads this copy, so sums do not depend on the summation order beyond float64 rounding."""
        if flat.dtype == torch.float64:
            return flat
        return self._work.get("wide", tuple(flat.shape), flat, torch.float64).copy_(flat)

    def _label_sums(self, wide: torch.Tensor, name: str) -> torch.Tensor:
        """Group sums [n, G] of a grouping without a grid layout: `scatter_add_` of the float64
        values by label (one pass, whatever G; a one-hot GEMM costs G multiply-adds a value)."""
        if name not in self._index:
            labels = torch.from_numpy(self.labels[name].ravel().astype(np.int64))
            self._index[name] = labels.to(wide.device)
        sums = wide.new_zeros(wide.shape[0], len(self.areas[name]))
        return sums.scatter_add_(1, self._index[name].expand_as(wide), wide)

    def _grid_sums(self, wide: torch.Tensor, kind: str, sh: int, sw: int) -> torch.Tensor:
        """Group sums [n, sh·sw] of a grid grouping by reshaping (labels row-major); rows
        first, then columns (two reductions over one axis are several times faster here than
        one over two)."""
        n, bh, bw = wide.shape[0], self.height // sh, self.width // sw
        if kind == "lattice":  # label (y mod sh, x mod sw)
            rows = wide.view(n, bh, sh * self.width).sum(1)
            return rows.view(n, sh, bw, sw).sum(2).reshape(n, -1)
        rows = wide.view(n, sh, bh, self.width).sum(2)
        return rows.view(n, sh, sw, bw).sum(3).reshape(n, -1)

    def _pools(self, wide: torch.Tensor) -> torch.Tensor:
        """Means [n, pools] of the POOL×POOL blocks (the frame cropped to whole blocks)."""
        ph, pw = self.pool_shape
        crop = wide.view(-1, self.height, self.width)[:, :ph * POOL, :pw * POOL]
        pooled = crop.unflatten(1, (ph, POOL)).sum(2).unflatten(2, (pw, POOL)).sum(3)
        return pooled.reshape(len(wide), -1) / POOL**2

    def _sums(self, idx: np.ndarray, flat: torch.Tensor) -> None:
        """T, the group sums, the pools and the heat of the rows `flat` (neurons `idx`), all
        from one float64 copy."""
        wide = self._wide(flat)
        self.total[idx] = wide.sum(1).cpu().numpy()
        for g, layout in self.layouts.items():
            sums = self._label_sums(wide, g) if layout is None else self._grid_sums(wide, *layout)
            self.group_sums[g][idx] = sums.cpu().numpy()
        if self.pools.shape[1]:
            self.pools[idx] = self._pools(wide).cpu().numpy()
        heat = wide.sum(0)
        self._heat = heat if self._heat is None else self._heat.add_(heat)

    @torch.no_grad()
    def update(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 1 for one chunk: maps [n, H, W] of neurons `ids` (each neuron once)."""
        idx = self._check(ids, maps, self._seen)
        flat = self._abs(maps)
        # on the CPU, float64 copies of WIDE_BYTES stay in the cache for the sums that read them
        step = max(1, WIDE_BYTES // (8 * flat.shape[1])) if flat.device.type == "cpu" else len(idx)
        for start in range(0, len(idx), step):
            self._sums(idx[start:start + step], flat[start:start + step])
        if len(idx):
            lo, hi = flat.amin(1), flat.amax(1)  # (several times faster than aminmax)
            self.vmin[idx] = lo.double().cpu().numpy()
            self.vmax[idx] = hi.double().cpu().numpy()
        self.hist.add_coarse(flat)
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
        flat = self._abs(maps)
        self.counts[idx] = (flat > self._threshold).sum(1, dtype=torch.int32).cpu().numpy()
        if self._shortcut is None:
            self._shortcut = maps.dtype == torch.float32
            self._tau_bins = {k: self.hist.tau_bin(a) for k, a in TAU_AREAS.items()}
        if self._shortcut:
            self._pixel_counts(flat)
        if not self._shortcut:
            self.hist.add_fine(flat)

    def _pixel_counts(self, flat: torch.Tensor) -> None:
        """Pass-2 part of neurons per pixel: values of bins above τ_a's coarse bin count; keep
        those in it (float32 `flat`: the bin is the pattern's high 16 bits). The kept values
        are all the values of the τ bins, so they also give τ's fine histogram."""
        scans = scan_bins(flat, self._tau_bins, self._work)
        self._n_pairs += sum(len(pixels) for _, pixels, _ in scans.values())
        if self._n_pairs > AMBIGUOUS_CAP:
            self._drop_shortcut()
            return
        for k, (above, pixels, values) in scans.items():
            self.above[k] += above
            m, fill = len(pixels), self._pair_fill[k]
            if m:
                if k not in self._pairs:
                    self._pairs[k] = (np.empty(AMBIGUOUS_CAP, dtype=np.int32),
                                      np.empty(AMBIGUOUS_CAP, dtype=np.float32))
                self._pairs[k][0][fill:fill + m] = pixels
                self._pairs[k][1][fill:fill + m] = values
                self._pair_fill[k] = fill + m

    def _feed_pairs(self) -> None:
        """Pass the kept values of the τ bins (each bin once) to the fine histogram."""
        self.hist.select()
        fed = set()
        for k, (_, vals) in self._pairs.items():
            if self._tau_bins[k] not in fed:
                fed.add(self._tau_bins[k])
                self.hist.add_fine(torch.from_numpy(vals[:self._pair_fill[k]]))
        self._pairs = {}

    def _drop_shortcut(self) -> None:
        """Count neurons per pixel in pass 3 instead; the τ-bin values kept so far go to the
        fine histogram (pass 2 then feeds it every value)."""
        self._feed_pairs()
        self._shortcut = False
        for counts in self.above.values():
            counts.zero_()

    @property
    def needs_pixel_pass(self) -> bool:
        """Whether neurons per pixel need pass 3 (`update_pixels`), known after pass 2."""
        return not self._shortcut

    @torch.no_grad()
    def update_pixels(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Pass 3 for one chunk (after pass 2 saw every neuron): neurons per pixel above τ_a."""
        if not self._counted.all():
            raise RuntimeError("pass 3 needs τ from all neurons: finish pass 2 first")
        if self._shortcut:  # an explicit pass 3 replaces the pass-2 counts
            self._drop_shortcut()
        self._check(ids, maps, self._pixeled)
        if self.taus is None:
            self.taus = {k: self.hist.tau(a) for k, a in TAU_AREAS.items()}
        flat = self._abs(maps)
        for k, tau in self.taus.items():
            self.above[k] += (flat > tau).sum(0, dtype=torch.int32).cpu()

    def _features(self, mean: np.ndarray) -> np.ndarray:
        """Min-max-normalised means: (mean − min_n)/(max_n − min_n), 0 for constant maps."""
        span = self.vmax - self.vmin
        safe = np.where(span > 0, span, 1.0)[:, None]
        return np.where(span[:, None] > 0, (mean - self.vmin[:, None]) / safe, 0.0)

    def result(self) -> dict[str, np.ndarray]:
        """The docs/formats.md §6 arrays (both passes must be complete)."""
        if not (self._seen.all() and self._counted.all()
                and (self._shortcut or self._pixeled.all())):
            raise RuntimeError("frame stats incomplete: every neuron must pass through passes "
                               "1 and 2 (and 3 if `needs_pixel_pass`)")
        if self._shortcut and not self._finished:
            pairs = {k: (cols[:self._pair_fill[k]], vals[:self._pair_fill[k]])
                     for k, (cols, vals) in self._pairs.items()}
            self._feed_pairs()
            self.taus = {k: self.hist.tau(a) for k, a in TAU_AREAS.items()}
            for k, (cols, vals) in pairs.items():
                self.above[k] += torch.from_numpy(np.bincount(
                    cols[vals > self.taus[k]], minlength=self.height * self.width))
            self._finished = True
        if self.taus is None:
            self.taus = {k: self.hist.tau(a) for k, a in TAU_AREAS.items()}
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
        for k in TAU_AREAS:
            out[f"tau_{k}"] = np.array(self.taus[k], dtype=np.float64)
            out[f"neurons_per_pixel_{k}"] = (self.above[k].double() / self.n).reshape(
                self.height, self.width).numpy().astype(np.float32)
        out["value_curve"], out["value_curve_mass"] = self.hist.curve()
        out["value_curve_q"] = VALUE_LEVELS.copy()
        if "instances" in self.labels:
            out["instance_means"] = self.group_sums["instances"] / self.areas["instances"]
        if self.instance_ids is not None:
            out["instances_ids"] = self.instance_ids.copy()
        out["alive"] = self.total > 0
        for g in FEATURE_GROUPINGS:
            if g in self.labels:
                mean = self.group_sums[g] / self.areas[g]
                out[f"features_{g}"] = self._features(mean).astype(np.float32)
        if self.pools.shape[1]:
            out["features_spatial16"] = self._features(self.pools).astype(np.float32)
        return out


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


def declared_nbytes(n_neurons: int, height: int, width: int, group_sizes: Mapping[str, int],
                    n_sample: int) -> dict[str, int]:
    """Uncompressed bytes of every docs/formats.md §6 array (except `meta_json`) for N neurons, an
    H×W frame, groupings {name: G} and k sampled maps: what a statistics file may hold."""
    n, pixels = n_neurons, height * width
    sizes = {"total": 8 * n, "pixels_per_neuron": 8 * n, "heat": 4 * pixels,
             "sample_ids": 8 * min(n_sample, n), "sample_maps": 2 * min(n_sample, n) * pixels,
             "value_curve": 8 * len(VALUE_LEVELS), "value_curve_q": 8 * len(VALUE_LEVELS),
             "value_curve_mass": 8 * len(VALUE_LEVELS), "alive": n}
    for k in TAU_AREAS:
        sizes[f"tau_{k}"] = 8
        sizes[f"neurons_per_pixel_{k}"] = 4 * pixels
    for g, count in group_sizes.items():
        sizes[f"group_sums_{g}"] = 8 * n * count
        sizes[f"areas_{g}"] = 8 * count
        if g == "instances":
            sizes["instance_means"] = 8 * n * count
            sizes["instances_ids"] = 8 * count
        if g in FEATURE_GROUPINGS:
            sizes[f"features_{g}"] = 4 * n * count
    pools = (height // POOL) * (width // POOL)
    if pools:
        sizes["features_spatial16"] = 4 * n * pools
    return sizes


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
