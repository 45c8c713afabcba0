"""The signed maps of a few sampled neurons, kept beside a layer's statistics (docs/formats.md
§6: `sample_ids`, `sample_maps`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xinc.stats.layout import FrameLayout, Spec


def sample_neurons(n_neurons: int, k: int, seed: int) -> np.ndarray:
    """min(k, N) distinct neuron ids drawn with `np.random.default_rng(seed)`, sorted (int64)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_neurons, size=min(k, n_neurons), replace=False)).astype(np.int64)


class Samples:
    """Pass 1: the maps, as float16, of the neurons `ids` (each in [0, N); kept sorted and
    distinct)."""

    def __init__(self, ids: Sequence[int] | np.ndarray, n_neurons: int, height: int,
                 width: int) -> None:
        self.ids = np.unique(np.asarray(ids, dtype=np.int64))
        if self.ids.size and not 0 <= self.ids[0] <= self.ids[-1] < n_neurons:
            raise ValueError(f"sample ids must lie in [0, {n_neurons})")
        self.maps = np.zeros((len(self.ids), height, width), dtype=np.float16)

    @staticmethod
    def outputs(layout: FrameLayout) -> Spec:
        """`sample_ids` [k] and `sample_maps` [k, H, W]."""
        k = layout.samples
        return {"sample_ids": (np.int64, (k,)),
                "sample_maps": (np.float16, (k, layout.height, layout.width))}

    def add(self, idx: np.ndarray, maps: torch.Tensor) -> None:
        """Keep the maps [n, H, W] of neurons `idx` that are sampled."""
        pos = np.searchsorted(self.ids, idx)
        hit = pos < len(self.ids)
        hit[hit] = self.ids[pos[hit]] == idx[hit]
        if hit.any():
            rows = torch.from_numpy(np.flatnonzero(hit)).to(maps.device)
            self.maps[pos[hit]] = maps[rows].to(torch.float16).cpu().numpy()

    def values(self) -> dict[str, np.ndarray]:
        """The arrays of `outputs`."""
        return {"sample_ids": self.ids, "sample_maps": self.maps}
