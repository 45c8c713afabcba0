"""The bounded set of neurons whose maps the explorer keeps for one (model, frame, layer)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["GRID_SOURCE", "TOP_SOURCE", "grid_pixels", "grid_ranking", "map_set"]

GRID_SOURCE = "grid"  # among the top neurons of the explorer.grid pixels
TOP_SOURCE = "top"  # among the top neurons of any pixel


def grid_pixels(height: int, width: int, grid: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixel grid: the centres ⌊(i + ½)·H/r⌋, ⌊(j + ½)·W/c⌋ of an r × c
    lattice (clipped to the frame's size), every combination, row-major."""
    r, c = min(int(grid[0]), height), min(int(grid[1]), width)
    ys = ((np.arange(r) + 0.5) * height / r).astype(np.int64)
    xs = ((np.arange(c) + 0.5) * width / c).astype(np.int64)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return yy.ravel(), xx.ravel()


def grid_ranking(ids: np.ndarray, shares: np.ndarray, pixels: tuple[np.ndarray, np.ndarray]
                 ) -> list[int]:
    """Neurons among the top-k (`ids`, `shares` [k, H, W]; id −1 = none) of `pixels` (rows,
    cols), ranked by their best rank at any of them (every pixel's first neuron before any
    second one), then by their summed share over them (descending), then by id."""
    top = ids[:, pixels[0], pixels[1]].astype(np.int64)
    share = shares[:, pixels[0], pixels[1]].astype(np.float64)
    rank = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)
    listed = top >= 0
    neurons, where = np.unique(top[listed], return_inverse=True)
    best = np.full(len(neurons), top.shape[0])
    np.minimum.at(best, where, rank[listed])
    strength = np.bincount(where, weights=share[listed], minlength=len(neurons))
    return neurons[np.lexsort((neurons, -strength, best))].tolist()


def map_set(groups: Iterable[tuple[str, Iterable[int]]], cap: int
            ) -> tuple[list[int], list[str]]:
    """(neurons, source of each): the union of `groups` `(source, ids)` in priority order,
    each neuron once (under its first source), at most `cap` of them."""
    chosen: dict[int, str] = {}
    for source, ids in groups:
        for neuron in ids:
            if len(chosen) >= cap:
                return list(chosen), list(chosen.values())
            chosen.setdefault(int(neuron), source)
    return list(chosen), list(chosen.values())
