"""Exact mass thresholds τ_a and a binned quantile curve of the pooled |C| of a layer.

The N·P values of a layer (600 M for NeRV block 1) are never held. A non-negative float32 is
ordered like its bit pattern read as an int32, so the bits split every value into a *coarse* key
(the high 16 bits: sign, exponent and 7 mantissa bits, i.e. 32,768 log-spaced bins of relative
width 2⁻⁷ ≈ 0.8 %) and a *fine* key (the low 16 bits). Together they are the value itself.

- Pass 1 (`add_coarse`): per coarse bin, the count and the float64 sum of the values.
- `select`: the coarse bins that hold τ_a (one per a).
- Pass 2 (`add_fine`): for the selected bins only, the count per fine key (65,536 per bin,
  float64 counters, 512 KiB per bin). Callers that already hold every value of those bins
  (`xinc.stats.tau.Thresholds` keeps them for neurons per pixel) pass just those.
- `tau`: exact for float32 values — the mass of one fine key is count × value, exact in float64
  below 2²⁹ equal values.
- `curve`: the quantiles and the mass below them, from the coarse bins alone (after pass 1):
  each quantile lies in the coarse bin of the exact one, placed by its rank inside the bin
  (exact when the bin holds one value, or only values equal to its lower edge, e.g. zeros).

Values of other dtypes are rounded to float32 first (so τ and the curve are those of the
float32-rounded values). The histograms are built on the CPU (chunks on a GPU are copied
over): pass 1 by the C kernel `xinc_coarse_hist` (xinc/native/hist.c: one read per value),
else by `np.bincount` (several times faster than torch's masked indexing; the same sums in
the same order). Pass 2 buffers the fine keys of up to `FLUSH` values before one
`np.bincount` into the counters.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from xinc.native import library, split_map
from xinc.stats.workspace import Workspaces

N_COARSE = 1 << 15  # high 16 bits of a non-negative float32 (sign bit 0)
N_FINE = 1 << 16
FLUSH = 1 << 22


PARALLEL_MIN = 1 << 20  # values per chunk below which the histograms stay on one thread


def _parallel(fn: Callable[[np.ndarray], object], flat: np.ndarray) -> list:
    """fn over contiguous parts of `flat`, one per torch thread (the C kernels and numpy's
    casts, shifts and `bincount` loops release the GIL, so the parts run concurrently)."""
    return split_map(lambda start, stop: fn(flat[start:stop]), len(flat), PARALLEL_MIN)


def _coarse(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(count, float64 mass) per coarse bin of non-negative float32 values (the C kernel, else
    numpy: the same sums in the same order)."""
    lib = library()
    if lib is None:
        hi = (flat.view(np.int32) >> 16).astype(np.intp)  # bincount rejects negative ones
        return (np.bincount(hi, minlength=N_COARSE),
                np.bincount(hi, weights=flat.astype(np.float64), minlength=N_COARSE))
    count, mass = np.zeros(N_COARSE, dtype=np.int64), np.zeros(N_COARSE, dtype=np.float64)
    flat = np.ascontiguousarray(flat, dtype=np.float32)
    if lib.xinc_coarse_hist(flat.ctypes.data, len(flat), count.ctypes.data, mass.ctypes.data):
        raise ValueError("histogram values must be non-negative (a sign bit is set)")
    return count, mass


def _np_values(values: torch.Tensor) -> np.ndarray:
    """Values as a flat float32 numpy array (CPU)."""
    return values.detach().reshape(-1).to(torch.float32).cpu().contiguous().numpy()


def _edge(coarse: np.ndarray) -> np.ndarray:
    """Lower edges (float64) of coarse bins: the float32 whose high 16 bits are the bin."""
    return (np.asarray(coarse, dtype=np.int64) << 16).astype(np.int32).view(
        np.float32).astype(np.float64)


def _fine_values(coarse: int) -> np.ndarray:
    """The 65,536 float32 values of one coarse bin, ascending, as float64."""
    bits = (np.int64(coarse) << 16) | np.arange(N_FINE, dtype=np.int64)
    return bits.astype(np.int32).view(np.float32).astype(np.float64)


def _positions(mask: torch.Tensor) -> np.ndarray:
    """Flat indices (int64) of the True entries of `mask` (numpy's `flatnonzero` on the CPU:
    several times faster than `torch.nonzero` there)."""
    if mask.device.type == "cpu":
        return np.flatnonzero(mask.contiguous().numpy())
    return torch.nonzero(mask.reshape(-1))[:, 0].cpu().numpy()


Scan = tuple[torch.Tensor, np.ndarray, np.ndarray]  # above [P] int32 (CPU), pixels, values


def _scan_native(lib: ctypes.CDLL, flat: torch.Tensor, coarse: int) -> Scan:
    """`scan_bins` of one bin by the C kernel, on row ranges in parallel (each with its own
    counts and a buffer regrown to the exact size in the rare case it overflows)."""
    rows, cols = flat.shape
    base, itemsize = flat.data_ptr(), flat.element_size()

    def run(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        above = np.zeros(cols, dtype=np.int32)
        cap = max(4096, (stop - start) * cols // 64)  # a τ bin holds a small share
        while True:
            pixels, values = np.empty(cap, dtype=np.int32), np.empty(cap, dtype=np.float32)
            found = lib.xinc_tau_scan(base + start * cols * itemsize, stop - start, cols,
                                      coarse, above.ctypes.data, pixels.ctypes.data,
                                      values.ctypes.data, cap)
            if found < 0:
                raise ValueError("bin scan values must be non-negative (a sign bit is set)")
            if found <= cap:
                return above, pixels[:found], values[:found]
            cap, above[:] = found, 0

    parts = split_map(run, rows)
    return (torch.from_numpy(np.sum([p[0] for p in parts], axis=0, dtype=np.int32)),
            np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))


def scan_bins(flat: torch.Tensor, coarse: Mapping[str, int],
              work: Workspaces) -> dict[str, Scan]:
    """Per key k of `coarse`, for values `flat` [n, P] (non-negative): (the number of rows per
    column whose coarse bin is above coarse[k], and the column and value of each entry in
    that bin, in row-major order). By the C kernel `xinc_tau_scan` for contiguous float32 on
    the CPU (one read per value and bin), else with torch (bins in the workspace `work`)."""
    lib = library()
    if lib is not None and flat.device.type == "cpu" and flat.dtype == torch.float32 and \
            flat.is_contiguous():
        return {k: _scan_native(lib, flat, b) for k, b in coarse.items()}
    bins = torch.bitwise_right_shift(flat.view(torch.int32), 16,
                                     out=work.get("bins", tuple(flat.shape), flat, torch.int32))
    result = {}
    for k, b in coarse.items():
        pos = _positions(bins == b)
        values = flat.reshape(-1)[torch.from_numpy(pos).to(flat.device)].cpu().numpy()
        result[k] = ((bins > b).sum(0, dtype=torch.int32).cpu(),
                     (pos % flat.shape[1]).astype(np.int32), values)
    return result


class MassHistogram:
    """Two-pass exact τ_a (mass thresholds) and one-pass binned quantiles of a stream of |C|
    values."""

    def __init__(self, areas: Sequence[float], levels: Sequence[float] | np.ndarray) -> None:
        self.areas = tuple(float(a) for a in areas)
        self.levels = np.asarray(levels, dtype=np.float64)
        self.count = np.zeros(N_COARSE, dtype=np.int64)
        self.mass = np.zeros(N_COARSE, dtype=np.float64)
        self._bins: np.ndarray | None = None  # coarse bins of the τ_a (sorted)
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

    def tau_bin(self, area: float) -> int:
        """The coarse bin (high 16 bits of the float32 pattern) holding τ_area (after pass 1)."""
        return self._tau_bin(area, self.total)[0]

    def _ranks(self) -> np.ndarray:
        m = int(self.count.sum())
        return np.floor(self.levels * (m - 1)).astype(np.int64) if m else np.zeros(0, np.int64)

    def select(self) -> None:
        """End of pass 1: choose the coarse bins pass 2 resolves (those of the τ_a)."""
        if self._bins is not None:
            return
        self._bins = np.array(sorted({self.tau_bin(a) for a in self.areas}), dtype=np.int64)
        self._lut = np.full(N_COARSE, -1, dtype=np.int32)
        self._lut[self._bins] = np.arange(len(self._bins))
        self._fine = np.zeros(len(self._bins) * N_FINE, dtype=np.int64)

    def add_fine(self, values: torch.Tensor) -> None:
        """Pass 2: the same values again (any chunking, any order), or at least all of those in
        the τ bins."""
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

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, mass fractions) at every level q: the ascending-sorted value at rank
        r = ⌊q·(M − 1)⌋ (M values) and the fraction of the total mass carried by the values up
        to that rank, from the coarse bins (after pass 1). The value is placed inside the
        coarse bin b holding rank r by its rank within it, lo_b + (hi_b − lo_b)·(i + ½)/n_b
        (n_b values, i = r's rank among them), or is exact when the bin holds one value or
        only values equal to its lower edge (e.g. zeros); the mass adds (i + 1)/n_b of the
        bin's mass. NaN values and zero masses for an empty stream."""
        ranks = self._ranks()
        if not len(ranks):
            return np.full(len(self.levels), np.nan), np.zeros(len(self.levels))
        cum = np.cumsum(self.count)
        bins = np.searchsorted(cum, ranks, side="right")
        n_b = self.count[bins].astype(np.float64)
        within = (ranks - (cum[bins] - self.count[bins])).astype(np.float64)
        mass_b = self.mass[bins]
        lo, hi = _edge(bins), _edge(bins + 1)  # hi = inf above the largest finite bin
        equal = (n_b == 1) | (mass_b == n_b * lo) | np.isinf(hi)  # one value, or all = lo
        values = np.where(equal, mass_b / n_b, lo + (hi - lo) * (within + 0.5) / n_b)
        total = self.total
        below = np.concatenate([[0.0], np.cumsum(self.mass)])[bins]
        mass = (below + mass_b * (within + 1) / n_b) / total if total > 0 else \
            np.zeros(len(ranks))
        return values, mass
