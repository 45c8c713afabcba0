"""NeRV contribution maps (models.md §4.3): one neuron per conv kernel slice (input i, output k).

Reference mode reproduces the authors' `ComputeContributions` (Steps A–D of the fixture README):
A. per-input-channel convolution P[i, k] = x_i ⋆ W[k, i] + β_k / C_in;
B. PixelShuffle phase placement of P[i, k] on the block's output grid (blocks only);
C. GELU;
D. the stand-ins Box(k) and Up(r) + GELU for every downstream layer, down to the image size.

Each block's own activation module (GELU) is used for C and for the re-applied GELU after Up(r).
It runs on the smaller grid, before each expansion: that is exact, because GELU is elementwise
with GELU(0) = 0, so it commutes with zero insertion and with nearest upsampling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from xinc.canvas._common import id_chunks, mode_fn
from xinc.models.nerv import NeRV


def layer_names(model: NeRV) -> list[str]:
    """`head`, then the blocks from last to first: `bJ`, …, `b1`."""
    return ["head"] + [f"b{j}" for j in range(len(model.blocks), 0, -1)]


def layer_conv(model: NeRV, layer: str) -> nn.Conv2d:
    """The convolution whose kernels are the neurons of `layer`."""
    if layer == "head":
        return model.head
    if layer.startswith("b") and layer[1:].isdigit() and 1 <= int(layer[1:]) <= len(model.blocks):
        return model.blocks[int(layer[1:]) - 1].conv
    raise ValueError(f"unknown NeRV layer {layer!r}; expected one of {layer_names(model)}")


def n_neurons(model: NeRV, layer: str) -> int:
    """C_in·K kernels of the layer's conv (K counted before PixelShuffle)."""
    conv = layer_conv(model, layer)
    return conv.in_channels * conv.out_channels


def as_time(t: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Frame time as the float64 tensor [1] the authors' data loader produces.

    Pass a Python float or a float64 tensor: a float32 t is already rounded (models.md §1.1).
    """
    return torch.as_tensor(t, dtype=torch.float64, device=device).reshape(1)


def _check_conv(conv: nn.Conv2d) -> None:
    if conv.padding_mode != "zeros" or conv.groups != 1 or isinstance(conv.padding, str):
        raise ValueError(f"per-kernel maps need a zero-padded conv with groups=1, got {conv}")


def per_kernel_conv(x: torch.Tensor, conv: nn.Conv2d, ids: torch.Tensor) -> torch.Tensor:
    """Step A for neurons `ids` (= i·K + k): x_i ⋆ W[k, i] + β_k / C_in, shape [n, h', w'].

    `x` is the layer input [C_in, h, w]; stride, padding and dilation are the conv's own.
    One grouped convolution (one group per neuron), no loop over neurons.
    """
    _check_conv(conv)
    n_out = conv.out_channels
    i, k = ids // n_out, ids % n_out
    weight = conv.weight[k, i].unsqueeze(1)
    bias = conv.bias[k] / conv.in_channels if conv.bias is not None else None
    out = F.conv2d(x[i].unsqueeze(0), weight, bias, conv.stride, conv.padding, conv.dilation,
                   groups=len(ids))
    return out[0]


@torch.no_grad()
def placed_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor) -> torch.Tensor:
    """Steps A–B for block neurons `ids`: S[i, k] [n, r·h, r·w], before GELU (exact pieces).

    S[i, k] holds P[i, k] at sub-pixel phase g = k mod r² (P(y, x) at (r·y + g div r,
    r·x + g mod r)) and 0 elsewhere; Σ_i Σ_{g<r²} S[i, c·r² + g] is the block's post-shuffle
    pre-activation z_c.
    """
    if layer == "head":
        raise ValueError("the head has no PixelShuffle: use per_kernel_conv")
    conv = layer_conv(model, layer)
    p = per_kernel_conv(x, conv, ids)
    r = model.blocks[int(layer[1:]) - 1].shuffle.upscale_factor
    n, h, w = p.shape
    out = p.new_zeros(n, r * r, h, w)
    out[torch.arange(n, device=p.device), (ids % conv.out_channels) % (r * r)] = p
    return out.view(n, r, r, h, w).permute(0, 3, 1, 4, 2).reshape(n, h * r, w * r)


def _same_box(conv: nn.Conv2d) -> int:
    """Size k of the box stand-in for `conv` (its kernel); needs an odd, 'same' stride-1 conv."""
    k = conv.kernel_size[0]
    if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.padding != (k // 2, k // 2)
            or conv.stride != (1, 1) or conv.dilation != (1, 1)):
        raise ValueError(f"reference stand-ins need an odd square 'same' conv, got {conv}")
    return k


def stage_taps(r: int, k: int, phase: int | None) -> torch.Tensor:
    """1-D taps of Box_k ∘ Place_r(phase), or of Box_k ∘ Up_r when `phase` is None.

    Place_r puts g[y] at r·y + phase (zeros elsewhere); Up_r repeats g[y] r times; Box_k is a
    k-point mean with zero padding k//2. Both are r-periodic, so with s = k//2 // r + 1:
    out[r·y + q] = Σ_j taps[q, j]·g[y + j − s] (g zero outside), taps of shape [r, 2s + 1].
    They are read off the impulse response of the 1-D operators themselves.
    """
    pad, span = k // 2, (k // 2) // r + 1
    size = 2 * span + 1
    g = torch.zeros(size, dtype=torch.float64)
    g[span] = 1.0
    if phase is None:
        s = g.repeat_interleave(r)
    else:
        s = torch.zeros(r * size, dtype=torch.float64)
        s[phase::r] = g
    out = F.avg_pool1d(s[None], k, stride=1, padding=pad, count_include_pad=True)[0]
    idx = r * (span - torch.arange(-span, span + 1))[None, :] + torch.arange(r)[:, None]
    return out[idx]


def expand(x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
    """Apply r-periodic 1-D taps (`stage_taps`) along `dim` (1 = rows, 2 = columns) of [n, h, w].

    `taps` is [r, D] (shared) or [n, r, D] (one table per map); the output is r times longer.
    Each output phase q is written once through a strided view, using only its non-zero taps.
    """
    if taps.dim() == 2:
        taps = taps[None]
    n, h, w = x.shape
    r, n_taps = taps.shape[1:]
    span = n_taps // 2
    taps = taps.to(x.dtype)[:, :, :, None, None]
    if dim == 2:
        xp = F.pad(x, (span, span))
        out = x.new_empty(n, h, w, r)
        shifts = [xp[:, :, j:j + w] for j in range(n_taps)]
    else:
        xp = F.pad(x, (0, 0, span, span))
        out = x.new_empty(n, h, r, w)
        shifts = [xp[:, j:j + h] for j in range(n_taps)]
    used = taps.ne(0).flatten(3).any(3).any(0).tolist()
    for q, view in enumerate(out.unbind(dim + 1)):
        js = [j for j in range(n_taps) if used[q][j]]
        if not js:
            view.zero_()
            continue
        torch.mul(shifts[js[0]], taps[:, q, js[0]], out=view)
        for j in js[1:]:
            view.addcmul_(shifts[j], taps[:, q, j])
    return out.reshape(n, h * r, w) if dim == 1 else out.reshape(n, h, w * r)


def _downstream(model: NeRV, j: int) -> list[tuple[int, nn.Module, int]]:
    """(r, activation, k) of every Box_k(GELU(Up_r(·))) stand-in for the blocks after block j."""
    convs = [b.conv for b in model.blocks[j:]] + [model.head]
    return [(block.shuffle.upscale_factor, block.act, _same_box(conv))
            for block, conv in zip(model.blocks[j:], convs[1:], strict=True)]


@torch.no_grad()
def reference_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor) -> torch.Tensor:
    """Reference maps [n, H, W] of neurons `ids` of `layer`, whose input is `x` [C_in, h, w].

    Blocks: Box_k(Place_r(GELU(P))) and every later Box_k(GELU(Up_r(·))) are computed as
    separable r-periodic filters on the smaller grid; GELU runs before each expansion (it
    commutes with zero insertion and nearest upsampling), so each grid size is written once.
    """
    conv = layer_conv(model, layer)
    p = per_kernel_conv(x, conv, ids)
    if layer == "head":
        return p
    j = int(layer[1:])
    block = model.blocks[j - 1]
    r = block.shuffle.upscale_factor
    k_next = _same_box(model.blocks[j].conv if j < len(model.blocks) else model.head)
    phase = (ids % conv.out_channels) % (r * r)
    table = torch.stack([stage_taps(r, k_next, a) for a in range(r)]).to(p.device)
    out = expand(expand(block.act(p), table[phase % r], 2), table[phase // r], 1)
    for r_m, act, k_m in _downstream(model, j):
        taps = stage_taps(r_m, k_m, None).to(p.device)
        out = expand(expand(act(out), taps, 2), taps, 1)
    return out


MapFn = Callable[[NeRV, torch.Tensor, str, torch.Tensor], torch.Tensor]
MODES: dict[str, MapFn] = {"reference": reference_maps}


@torch.no_grad()
def layer_input(model: NeRV, t: float | torch.Tensor, layer: str) -> torch.Tensor:
    """Input [C_in, h, w] of `layer`'s conv for frame time t (one forward pass)."""
    layer_conv(model, layer)
    trace = model.trace(as_time(t, model.head.weight.device))
    x = trace.head_input if layer == "head" else trace.block_inputs[int(layer[1:]) - 1]
    return x[0]


def iter_nerv(model: NeRV, layer: str, t: float | torch.Tensor, *, mode: str = "reference",
              chunk: int = 64) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(neuron ids, maps [n ≤ chunk, H, W]) for all neurons of `layer`, in id order."""
    fn = mode_fn(MODES, mode)
    x = layer_input(model, t, layer)
    return ((ids, fn(model, x, layer, ids))
            for ids in id_chunks(n_neurons(model, layer), chunk, x.device))
