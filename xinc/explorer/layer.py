"""What the explorer shows of one layer at one frame: every pixel's top-k neurons with their
shares, and the maps of a bounded set of neurons, from one pass over the layer's canvas plus
the few kept maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xinc.canvas import iter_canvas, n_neurons
from xinc.explorer.select import GRID_SOURCE, TOP_SOURCE, grid_pixels, grid_ranking, map_set
from xinc.explorer.topk import pixel_topk, shares

__all__ = ["LayerView", "layer_view"]


@dataclass(frozen=True)
class LayerView:
    """One layer at one frame. `ids` int64 [k, H, W] (−1 = no neuron: fewer than k neurons
    with nonzero |C| there), `shares` float64 [k, H, W] (|C_n(p)| / Σ_m |C_m(p)|), `maps`
    float32 [m, H, W] the signed maps of `kept` (m ≤ cap), `sources` why each is kept."""

    layer: str
    neurons: int
    ids: np.ndarray
    shares: np.ndarray
    kept: list[int]
    sources: list[str]
    maps: np.ndarray


def layer_view(model: torch.nn.Module, layer: str, *, t: float | None, height: int, width: int,
               canvas: Mapping[str, Any], top_k: int, cap: int, grid: Sequence[int],
               priority: Sequence[tuple[str, Sequence[int]]] = ()) -> LayerView:
    """Stream `layer`'s maps once for the top-k per pixel, then fetch only the kept maps.

    `canvas`: the run's switches (`mode`, `bias`, `neuron`, `chunk`). Kept: the neurons of
    `priority` `(source, ids)` (the statistics' samples, the cluster members) in that order,
    then those ranked by `grid_ranking` over the `grid` pixels, then over every pixel, at most
    `cap` in all.
    """
    switches = {key: canvas[key] for key in ("mode", "bias", "neuron")}
    total = n_neurons(model, layer, bias=switches["bias"], neuron=switches["neuron"])
    chunks = iter_canvas(model, layer, t=t, height=height, width=width,
                         chunk=canvas.get("chunk"), **switches)
    ids, values, sums = pixel_topk(chunks, min(top_k, total), height, width)
    share = shares(values, sums)
    ranked = grid_ranking(ids, share, grid_pixels(height, width, grid))
    everywhere = grid_ranking(ids, share, np.indices((height, width)).reshape(2, -1))
    kept, sources = map_set([*priority, (GRID_SOURCE, ranked), (TOP_SOURCE, everywhere)], cap)
    maps = np.zeros((len(kept), height, width), np.float32)
    if kept:
        done = 0
        for _, chunk in iter_canvas(model, layer, t=t, height=height, width=width, ids=kept,
                                    chunk=canvas.get("chunk"), **switches):
            maps[done:done + len(chunk)] = chunk.detach().to("cpu", torch.float32).numpy()
            done += len(chunk)
    return LayerView(layer, total, ids, share, kept, sources, maps)
