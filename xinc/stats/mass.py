"""Exact mass thresholds τ_a and quantiles of the pooled |C| of a layer, in bounded memory.

The N·P values of a layer (600 M for NeRV block 1) are never held. A non-negative float32 is
ordered like its bit pattern read as an int32, so the bits split every value into a *coarse* key
(the high 16 bits: sign, exponent and 7 mantissa bits, i.e. 32,768 log-spaced bins of relative
width 2⁻⁷ ≈ 0.8 %) and a *fine* key (the low 16 bits). Together they are the value itself.

- Pass 1 (`add_coarse`): per coarse bin, the count and the float64 sum of the values.
- `select`: the coarse bins that contain the answers (τ_a for each a, the quantile ranks).
- Pass 2 (`add_fine`): for the selected bins only, the count per fine key (65,536 per bin,
  float64 counters, at most (len(a) + Q) · 512 KiB in all).
- `tau`, `quantiles`, `mass_below`: exact for float32 values — the mass of one fine key is
  count × value, exact in float64 below 2²⁹ equal values.

Values of other dtypes are rounded to float32 first (so τ and the quantiles are those of the
float32-rounded values). The histograms are built with numpy on the CPU (chunks on a GPU are
copied over): `np.bincount` is several times faster than torch's masked indexing here. Pass 2
buffers the fine keys of up to `FLUSH` values before one `np.bincount` into the counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

N_COARSE = 1 << 15  # high 16 bits of a non-negative float32 (sign bit 0)
N_FINE = 1 << 16
FLUSH = 1 << 22


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (workers, pool)
PARALLEL_MIN = 1 << 20  # values per chunk below which the histograms stay on one thread


def _parallel(fn: Callable[[np.ndarray], object], flat: np.ndarray) -> list:
    """fn over contiguous parts of `flat`, one per torch thread (numpy releases the GIL in
    the casts, shifts and `bincount` loops, so the parts run concurrently)."""
    global _POOL
    parts = max(1, min(torch.get_num_threads(), len(flat) // PARALLEL_MIN))
    if parts == 1:
        return [fn(flat)]
    if _POOL is None or _POOL[0] < parts:
        _POOL = (parts, ThreadPoolExecutor(parts, thread_name_prefix="xinc-hist"))
    return list(_POOL[1].map(fn, np.array_split(flat, parts)))


def _coarse(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(count, float64 mass) per coarse bin of float32 values."""
    hi = (flat.view(np.int32) >> 16).astype(np.intp)
    return (np.bincount(hi, minlength=N_COARSE),
            np.bincount(hi, weights=flat.astype(np.float64), minlength=N_COARSE))


def _np_values(values: torch.Tensor) -> np.ndarray:
    """Values as a flat float32 numpy array (CPU)."""
    return values.detach().reshape(-1).to(torch.float32).cpu().contiguous().numpy()


def _fine_values(coarse: int) -> np.ndarray:
    """The 65,536 float32 values of one coarse bin, ascending, as float64."""
    bits = (np.int64(coarse) << 16) | np.arange(N_FINE, dtype=np.int64)
    return bits.astype(np.int32).view(np.float32).astype(np.float64)


class MassHistogram:
    """Two-pass exact τ_a (mass thresholds) and quantiles of a stream of |C| values."""

    def __init__(self, areas: Sequence[float], levels: Sequence[float] | np.ndarray) -> None:
        self.areas = tuple(float(a) for a in areas)
        self.levels = np.asarray(levels, dtype=np.float64)
        self.count = np.zeros(N_COARSE, dtype=np.int64)
        self.mass = np.zeros(N_COARSE, dtype=np.float64)
        self._bins: np.ndarray | None = None  # selected coarse bins (sorted)
        self._lut: np.ndarray | None = None  # coarse bin → slot or −1
        self._fine: np.ndarray | None = None  # [slots · N_FINE] counts
        self._buffer: np.ndarray | None = None  # FLUSH pending fine keys (allocated once)
        self._buffered = 0

    # ------------------------------------------------------------------ passes
    def add_coarse(self, values: torch.Tensor) -> None:
        """Pass 1: non-negative values of any shape."""
        if self._bins is not None:
            raise RuntimeError("pass 1 is over: select() was called")
        for count, mass in _parallel(_coarse, _np_values(values)):
            self.count += count
            self.mass += mass

    def _tau_bin(self, area: float, total: float) -> tuple[int, float]:
        """(coarse bin of τ_area, mass of the bins above it)."""
        mass = self.mass
        cum = np.cumsum(mass[::-1])
        i = int(np.searchsorted(cum, (1.0 - area) * total, side="left"))
        i = min(i, N_COARSE - 1)
        b = N_COARSE - 1 - i
        return b, float(cum[i] - mass[b])

    def tau_edges(self, area: float) -> tuple[float, float]:
        """[lo, hi): the float32 range of the coarse bin holding τ_area (after pass 1)."""
        b = self._tau_bin(area, self.total)[0]
        lo = float(np.array(b << 16, dtype=np.int32).view(np.float32))
        top = (b + 1) << 16
        hi = float(np.array(top, dtype=np.int32).view(np.float32)) if top <= 0x7F800000 \
            else float("inf")
        return lo, hi

    def _ranks(self) -> np.ndarray:
        m = int(self.count.sum())
        return np.floor(self.levels * (m - 1)).astype(np.int64) if m else np.zeros(0, np.int64)

    def select(self) -> None:
        """End of pass 1: choose the coarse bins pass 2 resolves."""
        if self._bins is not None:
            return
        total = self.total
        bins = {self._tau_bin(a, total)[0] for a in self.areas}
        ranks = self._ranks()
        if len(ranks):
            cc = np.cumsum(self.count)
            bins |= set(np.searchsorted(cc, ranks, side="right").tolist())
        self._bins = np.array(sorted(bins), dtype=np.int64)
        self._lut = np.full(N_COARSE, -1, dtype=np.int32)
        self._lut[self._bins] = np.arange(len(self._bins))
        self._fine = np.zeros(len(self._bins) * N_FINE, dtype=np.int64)

    def add_fine(self, values: torch.Tensor) -> None:
        """Pass 2: the same values again (any chunking, any order)."""
        self.select()
        lut = self._lut

        def fine_keys(part: np.ndarray) -> np.ndarray:
            bits = part.view(np.int32)
            slot = lut[bits >> 16]
            keep = np.flatnonzero(slot >= 0)
            return (slot[keep].astype(np.int64) << 16) | (bits[keep] & 0xFFFF)

        for keys in _parallel(fine_keys, _np_values(values)):
            self._add_keys(keys)

    def _add_keys(self, keys: np.ndarray) -> None:
        if not len(keys):
            return
        if self._buffered + len(keys) > FLUSH:
            self._flush()
        if len(keys) > FLUSH:
            self._fine += np.bincount(keys, minlength=len(self._fine))
            return
        if self._buffer is None:
            # one preallocated buffer: many small long-lived arrays interleaved with the chunks'
            # temporaries fragment the C heap (RSS grew by GBs over NeRV block 1)
            self._buffer = np.empty(FLUSH, dtype=np.int64)
        self._buffer[self._buffered:self._buffered + len(keys)] = keys
        self._buffered += len(keys)

    def _flush(self) -> None:
        if self._buffered:
            self._fine += np.bincount(self._buffer[:self._buffered], minlength=len(self._fine))
        self._buffered = 0

    # ------------------------------------------------------------------ results
    @property
    def total(self) -> float:
        """Σ of all values (float64, summed per coarse bin)."""
        return float(self.mass.sum())

    def _fine_counts(self, b: int) -> np.ndarray:
        self._flush()
        s = int(np.searchsorted(self._bins, b))
        return self._fine[s * N_FINE:(s + 1) * N_FINE].astype(np.float64)

    def tau(self, area: float) -> float:
        """τ_area: sort the values descending; the first value where the running sum reaches
        (1 − area)·total (0 when every value is 0)."""
        if self._fine is None:
            raise RuntimeError("tau needs pass 2")
        total = self.total
        if total <= 0:
            return 0.0
        target = (1.0 - area) * total
        b, above = self._tau_bin(area, total)
        vals = _fine_values(b)
        cum = above + np.cumsum((self._fine_counts(b) * vals)[::-1])
        j = min(int(np.searchsorted(cum, target, side="left")), N_FINE - 1)
        return float(vals[N_FINE - 1 - j])

    def quantiles(self) -> np.ndarray:
        """The ascending-sorted value at rank ⌊q·(M − 1)⌋ for every level q (M values)."""
        if self._fine is None:
            raise RuntimeError("quantiles need pass 2")
        ranks = self._ranks()
        if not len(ranks):
            return np.full(len(self.levels), np.nan)
        counts = self.count
        cc = np.cumsum(counts)
        out = np.empty(len(ranks))
        for i, r in enumerate(ranks):
            b = int(np.searchsorted(cc, r, side="right"))
            within = r - (cc[b] - counts[b])
            sub = np.cumsum(self._fine_counts(b))
            out[i] = _fine_values(b)[int(np.searchsorted(sub, within, side="right"))]
        return out

    def mass_below(self, values: np.ndarray) -> np.ndarray:
        """Fraction of the total mass carried by the values ≤ v, for each v (a quantile value
        or τ, i.e. a value inside a selected bin); 0 when the total is 0."""
        total = self.total
        mass = np.concatenate([[0.0], np.cumsum(self.mass)])
        out = np.zeros(len(values))
        for i, v in enumerate(np.asarray(values, dtype=np.float64)):
            if total <= 0 or np.isnan(v):
                continue
            bits = int(np.array(v, dtype=np.float32).view(np.int32))
            b, lo = bits >> 16, bits & 0xFFFF
            fine = self._fine_counts(b)[:lo + 1] * _fine_values(b)[:lo + 1]
            out[i] = (mass[b] + fine.sum()) / total
        return out
