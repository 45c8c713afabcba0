"""Per-neuron contribution maps ("the implicit neural canvas") of NeRV and FFN models.

`iter_canvas` streams the maps of one layer in chunks of neurons, so no caller needs a whole
layer in memory (NeRV block 1 at 128×256 is 2.4 GB); `ffn_canvas` and `nerv_canvas` write the
same chunks straight into dense tensors (`fill_ffn`, `fill_nerv`). Modes: `reference` = the
authors' definitions (docs/method.md §3), `exact` (below). Another mode is added by
registering a map function in `ffn.MODES` / `nerv.MODES`.

Switches (`iter_canvas`, `nerv_canvas`, `ffn_canvas`, `n_neurons`): `bias="split"` (default, the
authors' β/C_in share in every kernel) or `"separate"` (no share, one bias pseudo-neuron per
conv output channel appended after the kernels); `neuron="kernel"` (default, id i·K + k) or
`"channel"` (id i = sum of input channel i's kernel maps). Mode `exact` (docs/method.md §4,
NeRV rescale rule / FFN gated path rule) sums to the head pre-activation h / the FFN output
y with `nerv.exact_bias_terms` / `ffn.exact_bias_terms`.

Maps are computed without gradients, in the model's dtype and on the model's device; every
yielded tensor is freshly allocated and belongs to the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import ModuleType

import torch
from torch import nn

from xinc.canvas import ffn, nerv
from xinc.models.ffn import FFN, ffn_coords
from xinc.models.nerv import NeRV

CHUNK_BYTES = 16 << 20  # one streamed chunk of maps (`iter_canvas`)
DENSE_CHUNK_BYTES = 128 << 20  # one chunk written into a dense result (`nerv_canvas`)

__all__ = ["CHUNK_BYTES", "DENSE_CHUNK_BYTES", "canvas_size", "default_chunk", "ffn_canvas",
           "iter_canvas", "layer_names", "n_neurons", "nerv_canvas"]


def _arch(model: nn.Module) -> ModuleType:
    if isinstance(model, NeRV):
        return nerv
    if isinstance(model, FFN):
        return ffn
    raise TypeError(f"no contribution maps for {type(model).__name__}; expected NeRV or FFN")


def layer_names(model: nn.Module) -> list[str]:
    """Layers with maps: NeRV `head, bJ, …, b1`; FFN `l1, …, lL`."""
    return _arch(model).layer_names(model)


def n_neurons(model: nn.Module, layer: str, *, bias: str = "split",
              neuron: str = "kernel") -> int:
    """Number of neurons (maps) of `layer` under the `bias` / `neuron` switches."""
    return _arch(model).n_neurons(model, layer, bias, neuron)


def canvas_size(model: nn.Module, height: int | None = None,
                width: int | None = None) -> tuple[int, int]:
    """(H, W) of the maps: NeRV's output size, or the FFN grid the caller asks for."""
    if isinstance(model, NeRV):
        return model.cfg.output_size
    _arch(model)
    if height is None or width is None:
        raise ValueError("FFN maps need height and width")
    return height, width


def default_chunk(height: int, width: int, itemsize: int = 4,
                  budget: int = CHUNK_BYTES) -> int:
    """Neurons per chunk so that one chunk of maps is about `budget` bytes (at least 1), rounded
    down to a multiple of 16 from 16 up: whole PixelShuffle phase groups (r² neurons) for
    strides 2 and 4, so NeRV reference chunks need no padding to whole groups."""
    chunk = max(1, budget // (height * width * itemsize))
    return chunk - chunk % 16 if chunk >= 16 else chunk


def iter_canvas(model: nn.Module, layer: str, *, t: float | torch.Tensor | None = None,
                height: int | None = None, width: int | None = None, mode: str = "reference",
                chunk: int | None = None, bias: str = "split", neuron: str = "kernel",
                ids: Sequence[int] | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield `(neuron ids [n], maps [n, H, W])`, n ≤ chunk, covering `layer` in id order, or
    only the neurons `ids` in their order (a few maps without the layer's canvas).

    NeRV needs `t` (a Python float or float64 tensor, t = i/T); FFN needs `height`, `width`.
    NeRV neuron id = i·K + k (input channel i, conv output channel k before PixelShuffle).
    `chunk=None` picks `default_chunk`: small chunks stay in cache and are recycled by the
    C allocator, which is several times faster than chunks of hundreds of MB (fresh pages).
    `bias` / `neuron`: switches (module docstring; for the FFN both neuron values agree).
    """
    h, w = canvas_size(model, height, width)
    chunk = default_chunk(h, w) if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if isinstance(model, NeRV):
        if t is None:
            raise ValueError("NeRV maps need the frame time t")
        return nerv.iter_nerv(model, layer, t, mode=mode, chunk=chunk, bias=bias, neuron=neuron,
                              ids=ids)
    return ffn.iter_ffn(model, layer, h, w, mode=mode, chunk=chunk, bias=bias, neuron=neuron,
                        ids=ids)


@torch.no_grad()
def ffn_canvas(model: FFN, height: int, width: int, mode: str = "reference",
               layers: Sequence[str] | None = None, *, bias: str = "split",
               neuron: str = "kernel") -> dict[str, torch.Tensor]:
    """FFN maps `{"l1": [n_1, H, W], …}` for `layers` (default: all), from one forward pass;
    other first-axis sizes under the `bias` switch (`n_neurons`)."""
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list of layer names, got {layers!r}")
    names = ffn.layer_names(model) if layers is None else list(layers)
    indices = [ffn.layer_index(model, name) for name in names]
    coords = ffn_coords(height, width, model.cfg.coords).to(model.positional_encoding.B.device)
    inputs = model.inputs_t(coords, max(indices, default=0))
    chunk = default_chunk(height, width)
    weight = model.net[0].linear.weight
    return {name: ffn.fill_ffn(
                model, name, height, width,
                weight.new_empty(ffn.n_neurons(model, name, bias, neuron), height, width),
                mode=mode, chunk=chunk, bias=bias, neuron=neuron, u=inputs[i])
            for name, i in zip(names, indices, strict=True)}


def nerv_canvas(model: NeRV, t: float | torch.Tensor, layers: Sequence[str] | None = None,
                mode: str = "reference", *, bias: str = "split", neuron: str = "kernel",
                chunk: int | None = None,
                out: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """NeRV maps `{layer: [C_in·K, H, W]}` for `layers` (default: all, head first); other
    first-axis sizes under the `bias` / `neuron` switches (`n_neurons`).

    Each layer is written chunk by chunk straight into its dense tensor. `out` (e.g. the
    previous frame's result) supplies those tensors: reusing them across frames saves the
    page faults of fresh multi-GB allocations (block 1 is 2.4 GB at paper size). Reference
    chunks default to `DENSE_CHUNK_BYTES` of maps (their workspaces are small next to the
    result), exact ones to `CHUNK_BYTES` (they carry downstream activations per neuron).
    """
    if isinstance(layers, str):
        raise TypeError(f"layers must be a list of layer names, got {layers!r} (pass the mode "
                        "as mode=…)")
    names = nerv.layer_names(model) if layers is None else list(layers)
    h, w = model.cfg.output_size
    if chunk is None:
        chunk = default_chunk(h, w, budget=DENSE_CHUNK_BYTES if mode == "reference"
                              else CHUNK_BYTES)
    result = {}
    for name in names:
        total = nerv.n_neurons(model, name, bias, neuron)
        buf = (out or {}).get(name)
        if buf is None:
            buf = model.head.weight.new_empty(total, h, w)
        result[name] = nerv.fill_nerv(model, name, t, buf, mode=mode, chunk=chunk, bias=bias,
                                      neuron=neuron)
    return result
