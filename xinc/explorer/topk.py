"""The top-k neurons of every pixel, from one streamed pass over a layer's maps."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["PixelTopK", "pixel_topk", "shares"]


class PixelTopK:
    """Running top-k of |C| per pixel over chunks `(ids [n], maps [n, H, W])` given in
    increasing id order, with Σ_n |C_n(p)| accumulated in float64.

    Ties are broken by the lower neuron id: the kept rows precede the chunk's rows, whose ids
    are larger and increasing, so a stable descending sort of [kept; chunk] orders equal values
    by id. `torch.topk` (several times faster) selects the rows; only the pixels where it meets
    a tie among nonzero values (within the selection, or at its boundary) are sorted stably.
    """

    def __init__(self, k: int, height: int, width: int) -> None:
        if k < 1:
            raise ValueError(f"top_k must be positive, got {k}")
        self.k, self.shape = k, (height, width)
        self.values: torch.Tensor | None = None  # [≤ k, H·W] on the maps' device
        self.ids: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.last = -1

    def update(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """Merge one chunk: its ids must be increasing and above every id seen so far."""
        ids = ids.detach().to(maps.device, torch.int64)
        if len(ids) == 0:
            return
        if int(ids[0]) <= self.last or (len(ids) > 1 and bool((ids.diff() <= 0).any())):
            raise ValueError("PixelTopK needs chunks in increasing neuron-id order")
        self.last = int(ids[-1])
        flat = maps.detach().reshape(len(ids), -1).abs().float()
        if self.values is None:
            self.values = flat.new_empty(0, flat.shape[1])
            self.ids = ids.new_empty(0, flat.shape[1])
            self.total = torch.zeros(flat.shape[1], dtype=torch.float64, device=flat.device)
        self.total += flat.sum(0, dtype=torch.float64)
        if len(self.values) < self.k:  # not full yet: merge every pixel
            self.values, self.ids = _merge(self.values, self.ids, flat, ids, self.k)
            return
        # only pixels where the chunk beats the k-th value (an equal value has a larger id)
        cols = (flat > self.values[-1]).any(0).nonzero()[:, 0]
        if len(cols):
            self.values[:, cols], self.ids[:, cols] = _merge(
                self.values[:, cols], self.ids[:, cols], flat[:, cols], ids, self.k)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids int64 [k', H, W], |C| float32 [k', H, W], Σ|C| float64 [H, W]), k' = min(k, N);
        id −1 (and value 0) where a pixel has fewer than k' neurons with nonzero |C|."""
        if self.values is None:
            raise ValueError("PixelTopK got no maps")
        ids = self.ids.cpu().numpy().copy()
        values = self.values.cpu().numpy().copy()
        ids[values == 0] = -1
        shape = (len(ids), *self.shape)
        return ids.reshape(shape), values.reshape(shape), self.total.cpu().numpy().reshape(
            self.shape)


def _merge(values: torch.Tensor, rows: torch.Tensor, flat: torch.Tensor, ids: torch.Tensor,
           k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top min(k, m + n) of kept (`values`, `rows` [m, P]) and a chunk (`flat` [n, P], ids
    [n]), ranked as a stable descending sort of [kept; chunk] would."""
    both = torch.cat([values, flat])
    order = _ranked(both, min(k, len(both)))
    m = len(values)
    chunk_ids = ids[(order - m).clamp(min=0)]
    if m == 0:
        return both.gather(0, order), chunk_ids
    kept_ids = rows.gather(0, order.clamp(max=m - 1))
    return both.gather(0, order), torch.where(order < m, kept_ids, chunk_ids)


def _ranked(values: torch.Tensor, k: int) -> torch.Tensor:
    """Row indices [k, P] of the k largest values per column, descending, equal values in row
    order (what a stable descending sort gives; ties among zeros in any order)."""
    top, order = torch.topk(values, k, dim=0)
    kth = top[-1]
    # ties among nonzero values: inside the selection, or between its last and a value left out
    tied = ((top[1:] == top[:-1]) & (top[1:] > 0)).any(0)
    tied |= (kth > 0) & ((values >= kth).sum(0) > k)
    cols = tied.nonzero()[:, 0]
    if len(cols):
        order[:, cols] = torch.sort(values[:, cols], dim=0, descending=True,
                                    stable=True).indices[:k]
    return order


def pixel_topk(chunks: Iterable[tuple[torch.Tensor, torch.Tensor]], k: int, height: int,
               width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`PixelTopK.result()` of the chunks `(ids, maps)` of one layer (increasing ids)."""
    acc = PixelTopK(k, height, width)
    for ids, maps in chunks:
        acc.update(ids, maps)
    return acc.result()


def shares(values: np.ndarray, total: np.ndarray) -> np.ndarray:
    """|C_n(p)| / Σ_m |C_m(p)| (float64; 0 where the sum is 0)."""
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, values.astype(np.float64) / safe, 0.0)
