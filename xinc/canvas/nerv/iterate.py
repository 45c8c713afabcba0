"""Iteration over a NeRV layer's neurons in chunks, under the `bias` / `neuron` switches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from xinc.canvas._common import fill_chunks, id_chunks, mode_fn
from xinc.canvas.nerv.exact import exact_maps
from xinc.canvas.nerv.layers import layer_conv, layer_input, n_neurons
from xinc.canvas.nerv.reference import reference_maps
from xinc.models.nerv import NeRV

MapFn = Callable[..., torch.Tensor]  # (model, x, layer, ids, bias="split", out=None) -> [n, H, W]
MODES: dict[str, MapFn] = {"reference": reference_maps, "exact": exact_maps}


def channel_maps(fn: MapFn, model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                 bias: str = "split", chunk: int = 64,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """`neuron="channel"` maps [n, H, W]: channel i (< C_in) = Σ_k fn's map of kernel (i, k),
    computed `chunk` kernels at a time; ids C_in + k are the bias pseudo-neurons of
    `bias="separate"` (kernel-mode id C_in·K + k). Written into `out` when given."""
    conv = layer_conv(model, layer)
    c_in, n_out = conv.in_channels, conv.out_channels
    h, w = model.cfg.output_size
    dest = x.new_empty(len(ids), h, w) if out is None else out
    for m, i in enumerate(ids.tolist()):
        if i >= c_in:
            kid = torch.tensor([c_in * n_out + i - c_in], device=x.device)
            dest[m] = fn(model, x, layer, kid, bias)[0]
            continue
        dest[m] = 0
        for kid in id_chunks(n_out, chunk, x.device):
            dest[m] += fn(model, x, layer, kid + i * n_out, bias).sum(0)
    return dest


def _chunk_maps(fn: MapFn, model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                bias: str, neuron: str, chunk: int,
                out: torch.Tensor | None = None) -> torch.Tensor:
    if neuron == "channel":
        return channel_maps(fn, model, x, layer, ids, bias, chunk, out)
    return fn(model, x, layer, ids, bias, out=out)


def iter_nerv(model: NeRV, layer: str, t: float | torch.Tensor, *, mode: str = "reference",
              chunk: int = 64, bias: str = "split", neuron: str = "kernel",
              ids: Sequence[int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(neuron ids, maps [n ≤ chunk, H, W]) for all neurons of `layer`, in id order (or for
    `ids`, in their order).

    `bias`: "split" (β_k / C_in inside every kernel's map, the authors' choice) or "separate"
    (no share; one bias pseudo-neuron per conv output channel k, appended after the others).
    `neuron`: "kernel" (id i·K + k) or "channel" (id i: the sum of input channel i's K kernel
    maps, in either mode). Every yielded tensor is freshly allocated.
    """
    fn = mode_fn(MODES, mode)
    total = n_neurons(model, layer, bias, neuron)
    x = layer_input(model, t, layer)
    return ((part, _chunk_maps(fn, model, x, layer, part, bias, neuron, chunk))
            for part in id_chunks(total, chunk, x.device, ids))


def fill_nerv(model: NeRV, layer: str, t: float | torch.Tensor, out: torch.Tensor, *,
              mode: str = "reference", chunk: int = 64, bias: str = "split",
              neuron: str = "kernel") -> torch.Tensor:
    """All maps of `layer` written chunk by chunk into `out` [n_neurons, H, W] (contiguous)."""
    fn = mode_fn(MODES, mode)
    x = layer_input(model, t, layer)
    return fill_chunks(out, (n_neurons(model, layer, bias, neuron), *model.cfg.output_size),
                       chunk, lambda ids, part: _chunk_maps(fn, model, x, layer, ids, bias,
                                                            neuron, chunk, part))
