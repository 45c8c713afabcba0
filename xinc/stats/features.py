"""Neuron feature vectors (docs/formats.md §6): per group, or per POOL×POOL block, the mean of
the neuron's min-max-normalised |C| map, (|C_n| − min_n)/(max_n − min_n). The normalisation is
affine, so the means follow from the float64 group sums and pools of pass 1 and the neuron's own
min/max; rows of constant maps (dead ones included) are 0."""

from __future__ import annotations

import numpy as np
import torch

from xinc.stats.layout import POOL, FrameLayout, Spec
from xinc.stats.sums import PixelSums

FEATURE_GROUPINGS = ("gabor", "rgb")


class Features:
    """Pass 1: per-neuron min/max of |C| and the POOL×POOL average pools; at the end
    `features_<g>` (g in FEATURE_GROUPINGS) and `features_spatial16`."""

    def __init__(self, layout: FrameLayout, sums: PixelSums) -> None:
        self.layout, self.sums = layout, sums
        self.vmin = np.zeros(layout.neurons)
        self.vmax = np.zeros(layout.neurons)
        ph, pw = layout.pool_shape
        self.pools = np.zeros((layout.neurons, ph * pw))

    @staticmethod
    def outputs(layout: FrameLayout) -> Spec:
        """`features_<g>` per feature grouping present, `features_spatial16` when H, W ≥ 16."""
        n, (ph, pw) = layout.neurons, layout.pool_shape
        spec: Spec = {f"features_{g}": (np.float32, (n, layout.groups[g]))
                      for g in FEATURE_GROUPINGS if g in layout.groups}
        if ph * pw:
            spec["features_spatial16"] = (np.float32, (n, ph * pw))
        return spec

    def add_range(self, idx: np.ndarray, flat: torch.Tensor) -> None:
        """Min and max of the |C| rows `flat` [n, H·W] of neurons `idx`."""
        if len(idx):
            lo, hi = flat.amin(1), flat.amax(1)  # (several times faster than aminmax)
            self.vmin[idx] = lo.double().cpu().numpy()
            self.vmax[idx] = hi.double().cpu().numpy()

    def add_pools(self, idx: np.ndarray, wide: torch.Tensor) -> None:
        """Means of the POOL×POOL blocks of the float64 rows `wide` (the frame cropped to whole
        blocks)."""
        if not self.pools.shape[1]:
            return
        (ph, pw), height, width = self.layout.pool_shape, self.layout.height, self.layout.width
        crop = wide.view(-1, height, width)[:, :ph * POOL, :pw * POOL]
        pooled = crop.unflatten(1, (ph, POOL)).sum(2).unflatten(2, (pw, POOL)).sum(3)
        self.pools[idx] = (pooled.reshape(len(wide), -1) / POOL**2).cpu().numpy()

    def _normalised(self, mean: np.ndarray) -> np.ndarray:
        """Min-max-normalised means: (mean − min_n)/(max_n − min_n), 0 for constant maps."""
        span = self.vmax - self.vmin
        safe = np.where(span > 0, span, 1.0)[:, None]
        return np.where(span[:, None] > 0, (mean - self.vmin[:, None]) / safe, 0.0)

    def values(self) -> dict[str, np.ndarray]:
        """The arrays of `outputs` (float64; written as float32)."""
        areas = self.sums.groupings.areas
        out = {f"features_{g}": self._normalised(self.sums.group_sums[g] / areas[g])
               for g in FEATURE_GROUPINGS if g in areas}
        if self.pools.shape[1]:
            out["features_spatial16"] = self._normalised(self.pools)
        return out
