"""Mass thresholds τ_a, the value curve and neurons per pixel above τ_a (docs/formats.md §6).

Pass 1 histograms every |C| by coarse bin (`xinc.stats.mass.MassHistogram`: the high 16 bits of
the float32 pattern), which already gives the value curve and fixes the coarse bin b that holds
τ_a. For float32 maps pass 2 then counts, per pixel, the values of higher bins (all > τ_a) and
keeps the (pixel, value) pairs of bin b (at most `AMBIGUOUS_CAP` pairs in all, typically < 1 %
of the values). Those are all the values of bin b, so the end builds τ_a's fine histogram from
them, finds the exact τ_a and counts the kept values above it. Otherwise (other dtypes, or more
pairs) pass 2 feeds every value to the fine histogram and a pass 3 counts |C_n(p)| > τ_a
directly: `Thresholds.needs_pixel_pass` says which.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from xinc.stats.layout import FrameLayout, Spec
from xinc.stats.mass import MassHistogram, scan_bins
from xinc.stats.workspace import Workspaces

TAU_AREAS = {"10": 0.1, "50": 0.5}  # key suffix → mass fraction a of τ_a
VALUE_LEVELS = np.linspace(0.0, 1.0, 2001)
AMBIGUOUS_CAP = 1 << 23  # (pixel, value) pairs kept in pass 2 for neurons_per_pixel (≤ 64 MiB)


class KeptPairs:
    """The (pixel, value) pairs inside τ_a's coarse bin, per key of TAU_AREAS, in preallocated
    arrays of AMBIGUOUS_CAP pairs (untouched pages cost nothing; many small arrays would
    fragment the C heap)."""

    def __init__(self) -> None:
        self.seen = 0  # pairs offered so far, over all keys
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._fill: dict[str, int] = {}

    def add(self, key: str, pixels: np.ndarray, values: np.ndarray) -> None:
        """Append the pairs of one chunk (the caller keeps `seen` within AMBIGUOUS_CAP)."""
        m, fill = len(pixels), self._fill.get(key, 0)
        if not m:
            return
        if key not in self._arrays:
            self._arrays[key] = (np.empty(AMBIGUOUS_CAP, dtype=np.int32),
                                 np.empty(AMBIGUOUS_CAP, dtype=np.float32))
        self._arrays[key][0][fill:fill + m] = pixels
        self._arrays[key][1][fill:fill + m] = values
        self._fill[key] = fill + m

    def items(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(key, pixels, values) of every key holding pairs."""
        for key, (pixels, values) in self._arrays.items():
            yield key, pixels[:self._fill[key]], values[:self._fill[key]]

    def clear(self) -> None:
        """Let go of the arrays (views handed out by `items` stay valid)."""
        self._arrays, self._fill = {}, {}


class Thresholds:
    """Passes 1–3 of τ_a, the value curve and `neurons_per_pixel_*`, on |C| rows [n, H·W]."""

    def __init__(self, layout: FrameLayout, work: Workspaces) -> None:
        self.layout, self.work = layout, work
        self.hist = MassHistogram(TAU_AREAS.values(), VALUE_LEVELS)
        self.taus: dict[str, float] | None = None
        self.above = {k: torch.zeros(layout.pixels, dtype=torch.int64) for k in TAU_AREAS}
        self.shortcut: bool | None = None  # pass 2 counts neurons per pixel (no pass 3)
        self._bins: dict[str, int] = {}  # the coarse bin of each τ_a
        self._pairs = KeptPairs()
        self._resolved = False  # the kept pairs went to `above`

    @staticmethod
    def outputs(layout: FrameLayout) -> Spec:
        """`tau_<a>`, `neurons_per_pixel_<a>`, `value_curve`, `value_curve_mass`,
        `value_curve_q`."""
        spec: Spec = {}
        for k in TAU_AREAS:
            spec[f"tau_{k}"] = (np.float64, ())
            spec[f"neurons_per_pixel_{k}"] = (np.float32, (layout.height, layout.width))
        for key in ("value_curve", "value_curve_mass", "value_curve_q"):
            spec[key] = (np.float64, (len(VALUE_LEVELS),))
        return spec

    @property
    def needs_pixel_pass(self) -> bool:
        """Whether neurons per pixel need pass 3 (`add_pixels`), known after pass 2."""
        return not self.shortcut

    def add_coarse(self, flat: torch.Tensor) -> None:
        """Pass 1: the coarse histogram."""
        self.hist.add_coarse(flat)

    def add_counts(self, flat: torch.Tensor) -> None:
        """Pass 2: scan τ_a's bins (float32) or feed the fine histogram (otherwise); the dtype
        of the first chunk decides."""
        if self.shortcut is None:
            self.shortcut = flat.dtype == torch.float32
            self._bins = {k: self.hist.tau_bin(a) for k, a in TAU_AREAS.items()}
        if self.shortcut:
            self._scan(flat)
        if not self.shortcut:
            self.hist.add_fine(flat)

    def _scan(self, flat: torch.Tensor) -> None:
        """Values of bins above τ_a's coarse bin count; keep those in it. Past AMBIGUOUS_CAP
        pairs fall back to pass 3."""
        scans = scan_bins(flat, self._bins, self.work)
        self._pairs.seen += sum(len(pixels) for _, pixels, _ in scans.values())
        if self._pairs.seen > AMBIGUOUS_CAP:
            self._drop_shortcut()
            return
        for k, (above, pixels, values) in scans.items():
            self.above[k] += above
            self._pairs.add(k, pixels, values)

    def _feed_pairs(self) -> None:
        """Pass the kept values of the τ bins (each bin once) to the fine histogram."""
        self.hist.select()
        fed = set()
        for k, _, values in self._pairs.items():
            if self._bins[k] not in fed:
                fed.add(self._bins[k])
                self.hist.add_fine(torch.from_numpy(values))
        self._pairs.clear()

    def _drop_shortcut(self) -> None:
        """Count neurons per pixel in pass 3 instead; the τ-bin values kept so far go to the
        fine histogram (pass 2 then feeds it every value)."""
        self._feed_pairs()
        self.shortcut = False
        for counts in self.above.values():
            counts.zero_()

    def start_pixel_pass(self) -> None:
        """Before pass 3: an explicit pass 3 replaces the pass-2 counts."""
        if self.shortcut:
            self._drop_shortcut()

    def add_pixels(self, flat: torch.Tensor) -> None:
        """Pass 3: count |C_n(p)| > τ_a per pixel."""
        if self.taus is None:
            self.taus = self._taus()
        for k, tau in self.taus.items():
            self.above[k] += (flat > tau).sum(0, dtype=torch.int32).cpu()

    def _taus(self) -> dict[str, float]:
        return {k: self.hist.tau(a) for k, a in TAU_AREAS.items()}

    def _resolve(self) -> None:
        """End of a pass 2 with the shortcut: exact τ_a from the kept values, and those of
        them above τ_a counted."""
        pairs = list(self._pairs.items())
        self._feed_pairs()
        self.taus = self._taus()
        for k, pixels, values in pairs:
            self.above[k] += torch.from_numpy(np.bincount(
                pixels[values > self.taus[k]], minlength=self.layout.pixels))
        self._resolved = True

    def values(self) -> dict[str, np.ndarray]:
        """The arrays of `outputs` (after pass 2, and pass 3 if `needs_pixel_pass`)."""
        if self.shortcut and not self._resolved:
            self._resolve()
        if self.taus is None:
            self.taus = self._taus()
        out: dict[str, np.ndarray] = {}
        shape, n = (self.layout.height, self.layout.width), self.layout.neurons
        for k in TAU_AREAS:
            out[f"tau_{k}"] = np.array(self.taus[k], dtype=np.float64)
            out[f"neurons_per_pixel_{k}"] = (self.above[k].double() / n).reshape(shape).numpy()
        out["value_curve"], out["value_curve_mass"] = self.hist.curve()
        out["value_curve_q"] = VALUE_LEVELS
        return out
