"""NeRV exact maps: the rescale rule of docs/method.md §4.2 (additive, complete).

After the real forward pass every GELU becomes the fixed gain g(z) = GELU(z)/z at its actual
pre-activation z, so everything from a layer's pre-activation to the head pre-activation h is
linear. Kernel (i, k) of block j contributes
  R[i, k] = Head ∘ (g_J ⊙ Shuffle_J ∘ Conv_J) ∘ … ∘ (g_{j+1} ⊙ Shuffle_{j+1} ∘ Conv_{j+1})
            (g_j ⊙ S[i, k])
(convs without bias), an [3, H, W] tensor; S[i, k] carries the share β_k / C_in of its own
conv's bias (Steps A–B). Completeness: Σ_{i,k} R[i, k] + exact_bias_terms = h per RGB channel.
The exact neuron map is Σ_c R[i, k, c] (sum over RGB); `exact_rgb_maps` keeps the channels.
Head neurons are already exact: head map (i, c) = P[i, c] is the contribution to channel c only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xinc.canvas._common import InputCache, rescale_gain
from xinc.canvas.nerv.layers import (
    check_conv,
    layer_conv,
    layer_input,
    out_size,
    per_kernel_conv,
    placed_maps,
)
from xinc.canvas.nerv.probe import Prober
from xinc.models.nerv import NeRV

EXACT_BYTES = 128 << 20  # per downstream intermediate; peak ≈ 3× this per chunk
_GAINS = InputCache()
_PROBERS = InputCache()


def _block_index(model: NeRV, layer: str) -> int:
    layer_conv(model, layer)
    return 0 if layer == "head" else int(layer[1:])


@torch.no_grad()
def exact_gains(model: NeRV, x: torch.Tensor, layer: str) -> list[torch.Tensor]:
    """Gains g_m = GELU(z_m)/z_m [C_m, H_m, W_m] of blocks j…J (post-shuffle grid), from the
    real forward pass started at block j's input `x` [C_in, h, w]; [] for the head."""
    j = _block_index(model, layer)
    if j == 0:
        return []
    gains, v = [], x[None]
    for block in model.blocks[j - 1:]:
        z = block.shuffle(block.conv(v))
        gains.append(rescale_gain(block.act, z)[0])
        v = block.act(z)
    return gains


def _downstream_ops(model: NeRV, j: int, gains: list[torch.Tensor]):
    """(conv, shuffle or None, gain or None) of every layer after block j, head last."""
    ops = [(b.conv, b.shuffle, g) for b, g in zip(model.blocks[j:], gains[1:], strict=True)]
    return ops + [(model.head, None, None)]


@torch.no_grad()
def push_exact(model: NeRV, j: int, v: torch.Tensor, channel: torch.Tensor,
               gains: list[torch.Tensor], summed: bool = False) -> torch.Tensor:
    """Push single-channel maps linearly from block j's output to the head pre-activation.

    `v` [n, H_j, W_j] is map number m placed on post-shuffle channel `channel[m]` of block j's
    output (already multiplied by g_j). The first downstream conv is one grouped convolution
    (one group per map, weights W[:, channel[m]]); the rest are batched over the n maps, in
    channels-last layout (about twice as fast on CPU). Returns [n, 3, H, W], or the sum over
    RGB [n, 1, H, W] when `summed` (one head output channel with the RGB-summed weights).
    """
    ops = _downstream_ops(model, j, gains)
    conv, shuffle, gain = ops[0]
    check_conv(conv)
    n = v.shape[0]
    # first conv: map m meets only W[:, channel[m]], as one batched matmul over im2col columns
    # whose [n, positions, out] result is already the channels-last layout of [n, out, h, w]
    weight = conv.weight[:, channel].permute(1, 2, 3, 0).reshape(n, -1, conv.out_channels)
    if summed and len(ops) == 1:
        weight = weight.sum(2, keepdim=True)
    cols = F.unfold(v[:, None], conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    h, w = out_size(conv, *v.shape[1:])
    out = torch.bmm(cols.transpose(1, 2), weight).view(n, h, w, -1).permute(0, 3, 1, 2)
    if shuffle is not None:
        out = shuffle(out).mul_(gain)
    for conv, shuffle, gain in ops[1:]:
        check_conv(conv)
        weight = conv.weight
        if summed and shuffle is None:
            weight = weight.sum(0, keepdim=True)
        out = F.conv2d(out.contiguous(memory_format=torch.channels_last), weight, None,
                       conv.stride, conv.padding, conv.dilation)
        if shuffle is not None:
            out = shuffle(out).mul_(gain)
    return out.contiguous()


def _exact_batch(model: NeRV, j: int, gains: list[torch.Tensor], itemsize: int) -> int:
    """Maps per batch so that the largest downstream intermediate stays near `EXACT_BYTES`."""
    h, w = model.cfg.output_size
    per_map = max([g.numel() for g in gains[1:]] + [3 * h * w])
    return max(1, EXACT_BYTES // (per_map * itemsize))


@torch.no_grad()
def exact_rgb_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                   bias: str = "split") -> torch.Tensor:
    """Exact per-RGB contributions R [n, 3, H, W] of neurons `ids` to the head pre-activation.

    Head: P[i, c] in channel c, zeros in the two others. Blocks: the rescale rule above,
    computed in batches of at most `EXACT_BYTES` of intermediate per batch.
    """
    conv = layer_conv(model, layer)
    if layer == "head":
        p = per_kernel_conv(x, conv, ids, bias)
        out = p.new_zeros(len(ids), 3, *p.shape[1:])
        out[torch.arange(len(ids), device=p.device), ids % conv.out_channels] = p
        return out
    j = _block_index(model, layer)
    gains = _GAINS.get(x, model, layer, lambda: exact_gains(model, x, layer))
    r = model.blocks[j - 1].shuffle.upscale_factor
    batch = _exact_batch(model, j, gains, x.element_size())
    parts = []
    for start in range(0, len(ids), batch):
        sub = ids[start:start + batch]
        channel = (sub % conv.out_channels) // (r * r)
        v = placed_maps(model, x, layer, sub, bias).mul_(gains[0][channel])
        parts.append(push_exact(model, j, v, channel, gains))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


@torch.no_grad()
def exact_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
               bias: str = "split", out: torch.Tensor | None = None) -> torch.Tensor:
    """Exact maps [n, H, W]: `exact_rgb_maps` summed over RGB (head: equal to reference);
    written into `out` when given. Blocks go through `Prober` (impulse combs) when it needs
    fewer pushes than one per kernel, else through one push per kernel."""
    conv = layer_conv(model, layer)
    if layer == "head":
        p = per_kernel_conv(x, conv, ids, bias)
        return p if out is None else out.copy_(p)
    j = _block_index(model, layer)
    gains = _GAINS.get(x, model, layer, lambda: exact_gains(model, x, layer))
    prober = _PROBERS.get(x, model, layer, lambda: Prober(model, x, layer, gains, push_exact))
    if prober.usable:
        batch = _exact_batch(model, j, gains, x.element_size())
        return prober.maps(per_kernel_conv(x, conv, ids, bias), ids % conv.out_channels, batch,
                           out)
    return torch.sum(exact_rgb_maps(model, x, layer, ids, bias), 1, out=out)


@torch.no_grad()
def exact_bias_terms(model: NeRV, t: float | torch.Tensor, layer: str) -> torch.Tensor:
    """Downstream bias paths [3, H, W] of `layer` for the rescale rule: the biases of every
    later conv (head included) pushed through the gained linear network; zeros for the head
    (its bias is shared among its neurons). Σ exact_rgb_maps + this = head pre-activation."""
    x = layer_input(model, t, layer)
    j = _block_index(model, layer)
    h, w = model.cfg.output_size
    if j == 0:
        return x.new_zeros(3, h, w)
    gains = exact_gains(model, x, layer)
    v = x.new_zeros(1, *gains[0].shape)
    for conv, shuffle, gain in _downstream_ops(model, j, gains):
        v = F.conv2d(v, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
        if shuffle is not None:
            v = shuffle(v) * gain
    return v[0]
