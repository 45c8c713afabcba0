"""NeRV contribution maps (models.md §4.3): one neuron per conv kernel slice (input i, output k).

Reference mode reproduces the authors' `ComputeContributions` (Steps A–D of the fixture README):
A. per-input-channel convolution P[i, k] = x_i ⋆ W[k, i] + β_k / C_in;
B. PixelShuffle phase placement of P[i, k] on the block's output grid (blocks only);
C. GELU;
D. the stand-ins Box(k) and Up(r) + GELU for every downstream layer, down to the image size.

Each block's own activation module (GELU) is used for C and for the re-applied GELU after Up(r).
It runs on the smaller grid, before each expansion: that is exact, because GELU is elementwise
with GELU(0) = 0, so it commutes with zero insertion and with nearest upsampling.

Exact mode (`exact_maps`, rescale rule of models.md §4.6 item 4): see the section below.
Switches: `bias="separate"` and `neuron="channel"` (`iter_nerv`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from xinc.canvas._common import InputCache, id_chunks, mode_fn, rescale_gain
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


BIAS_MODES = ("split", "separate")
NEURON_MODES = ("kernel", "channel")


def check_switches(bias: str, neuron: str) -> None:
    """ValueError unless `bias` ∈ BIAS_MODES and `neuron` ∈ NEURON_MODES."""
    if bias not in BIAS_MODES:
        raise ValueError(f"unknown bias mode {bias!r}; expected one of {BIAS_MODES}")
    if neuron not in NEURON_MODES:
        raise ValueError(f"unknown neuron mode {neuron!r}; expected one of {NEURON_MODES}")


def n_neurons(model: NeRV, layer: str, bias: str = "split", neuron: str = "kernel") -> int:
    """C_in·K kernels of the layer's conv (K counted before PixelShuffle), or C_in input
    channels for `neuron="channel"`; `bias="separate"` appends K bias pseudo-neurons."""
    check_switches(bias, neuron)
    conv = layer_conv(model, layer)
    base = conv.in_channels * (conv.out_channels if neuron == "kernel" else 1)
    return base + (conv.out_channels if bias == "separate" else 0)


def as_time(t: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Frame time as the float64 tensor [1] the authors' data loader produces.

    Pass a Python float or a float64 tensor: a float32 t is already rounded (models.md §1.1).
    """
    return torch.as_tensor(t, dtype=torch.float64, device=device).reshape(1)


def _check_conv(conv: nn.Conv2d) -> None:
    if conv.padding_mode != "zeros" or conv.groups != 1 or isinstance(conv.padding, str):
        raise ValueError(f"per-kernel maps need a zero-padded conv with groups=1, got {conv}")


def _out_size(conv: nn.Conv2d, h: int, w: int) -> tuple[int, int]:
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
        (h, w), conv.padding, conv.dilation, conv.kernel_size, conv.stride, strict=True))


def per_kernel_conv(x: torch.Tensor, conv: nn.Conv2d, ids: torch.Tensor,
                    bias: str = "split") -> torch.Tensor:
    """Step A for neurons `ids` (= i·K + k): x_i ⋆ W[k, i] + β_k / C_in, shape [n, h', w'].

    `x` is the layer input [C_in, h, w]; stride, padding and dilation are the conv's own.
    One grouped convolution (one group per neuron), no loop over neurons.
    `bias="separate"`: kernels carry no bias share, and ids C_in·K + k are bias pseudo-neurons
    whose piece is β_k everywhere (0 for a conv without bias).
    """
    _check_conv(conv)
    check_switches(bias, "kernel")
    n_out, n_kernel = conv.out_channels, conv.in_channels * conv.out_channels
    if bias == "split" or bool((ids < n_kernel).all()):
        kernel_ids, pseudo = ids, None
    else:
        pseudo = ids >= n_kernel
        kernel_ids = ids[~pseudo]
    full = x.new_zeros(len(ids), *_out_size(conv, *x.shape[1:])) if pseudo is not None else None
    if len(kernel_ids):
        i, k = kernel_ids // n_out, kernel_ids % n_out
        share = None
        if conv.bias is not None and bias == "split":
            share = conv.bias[k] / conv.in_channels
        out = F.conv2d(x[i].unsqueeze(0), conv.weight[k, i].unsqueeze(1), share, conv.stride,
                       conv.padding, conv.dilation, groups=len(kernel_ids))[0]
        if pseudo is None:
            return out
        full[~pseudo] = out
    if conv.bias is not None:
        full[pseudo] = conv.bias[ids[pseudo] % n_out][:, None, None]
    return full


@torch.no_grad()
def placed_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                bias: str = "split") -> torch.Tensor:
    """Steps A–B for block neurons `ids`: S[i, k] [n, r·h, r·w], before GELU (exact pieces).

    S[i, k] holds P[i, k] at sub-pixel phase g = k mod r² (P(y, x) at (r·y + g div r,
    r·x + g mod r)) and 0 elsewhere; Σ_i Σ_{g<r²} S[i, c·r² + g] is the block's post-shuffle
    pre-activation z_c.
    """
    if layer == "head":
        raise ValueError("the head has no PixelShuffle: use per_kernel_conv")
    conv = layer_conv(model, layer)
    p = per_kernel_conv(x, conv, ids, bias)
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
def reference_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                   bias: str = "split") -> torch.Tensor:
    """Reference maps [n, H, W] of neurons `ids` of `layer`, whose input is `x` [C_in, h, w].

    Blocks: Box_k(Place_r(GELU(P))) and every later Box_k(GELU(Up_r(·))) are computed as
    separable r-periodic filters on the smaller grid; GELU runs before each expansion (it
    commutes with zero insertion and nearest upsampling), so each grid size is written once.
    """
    conv = layer_conv(model, layer)
    p = per_kernel_conv(x, conv, ids, bias)
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


# --------------------------------------------------------------------------- exact mode
#
# Rescale rule (models.md §4.6 item 4). After the real forward pass every GELU becomes the fixed
# gain g(z) = GELU(z)/z at its actual pre-activation z, so everything from a layer's
# pre-activation to the head pre-activation h is linear. Kernel (i, k) of block j contributes
#   R[i, k] = Head ∘ (g_J ⊙ Shuffle_J ∘ Conv_J) ∘ … ∘ (g_{j+1} ⊙ Shuffle_{j+1} ∘ Conv_{j+1})
#             (g_j ⊙ S[i, k])
# (convs without bias), an [3, H, W] tensor; S[i, k] carries the share β_k / C_in of its own
# conv's bias (Steps A–B). Completeness: Σ_{i,k} R[i, k] + exact_bias_terms = h per RGB channel.
# The exact neuron map is Σ_c R[i, k, c] (sum over RGB); `exact_rgb_maps` keeps the channels.
# Head neurons are already exact: head map (i, c) = P[i, c] is the contribution to channel c only.

EXACT_BYTES = 128 << 20  # per downstream intermediate; peak ≈ 3× this per chunk
_GAINS = InputCache()


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


def _conv_nobias(v: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(v, conv.weight, None, conv.stride, conv.padding, conv.dilation)


@torch.no_grad()
def push_exact(model: NeRV, j: int, v: torch.Tensor, channel: torch.Tensor,
               gains: list[torch.Tensor]) -> torch.Tensor:
    """Push single-channel maps linearly from block j's output to the head pre-activation.

    `v` [n, H_j, W_j] is map number m placed on post-shuffle channel `channel[m]` of block j's
    output (already multiplied by g_j). The first downstream conv is one grouped convolution
    (one group per map, weights W[:, channel[m]]); the rest are batched over the n maps.
    Returns [n, 3, H, W].
    """
    ops = _downstream_ops(model, j, gains)
    conv, shuffle, gain = ops[0]
    _check_conv(conv)
    n = v.shape[0]
    weight = conv.weight[:, channel].transpose(0, 1).reshape(-1, 1, *conv.kernel_size)
    out = F.conv2d(v[None], weight, None, conv.stride, conv.padding, conv.dilation, groups=n)
    out = out.view(n, conv.out_channels, *out.shape[2:])
    if shuffle is not None:
        out = shuffle(out).mul_(gain)
    for conv, shuffle, gain in ops[1:]:
        _check_conv(conv)
        out = _conv_nobias(out, conv)
        if shuffle is not None:
            out = shuffle(out).mul_(gain)
    return out


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
               bias: str = "split") -> torch.Tensor:
    """Exact maps [n, H, W]: `exact_rgb_maps` summed over RGB (head: equal to reference)."""
    if layer == "head":
        return per_kernel_conv(x, layer_conv(model, layer), ids, bias)
    return exact_rgb_maps(model, x, layer, ids, bias).sum(1)


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


MapFn = Callable[..., torch.Tensor]  # (model, x, layer, ids[, bias]) -> maps [n, H, W]
MODES: dict[str, MapFn] = {"reference": reference_maps, "exact": exact_maps}


@torch.no_grad()
def layer_input(model: NeRV, t: float | torch.Tensor, layer: str) -> torch.Tensor:
    """Input [C_in, h, w] of `layer`'s conv for frame time t (one forward pass)."""
    layer_conv(model, layer)
    trace = model.trace(as_time(t, model.head.weight.device))
    x = trace.head_input if layer == "head" else trace.block_inputs[int(layer[1:]) - 1]
    return x[0]


def _apply(fn: MapFn, model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
           bias: str) -> torch.Tensor:
    """fn(model, x, layer, ids[, bias]): a map function needs the `bias` argument only for
    `bias="separate"` (4-argument functions keep working in the default mode)."""
    return fn(model, x, layer, ids) if bias == "split" else fn(model, x, layer, ids, bias)


@torch.no_grad()
def channel_maps(fn: MapFn, model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                 bias: str = "split", chunk: int = 64) -> torch.Tensor:
    """`neuron="channel"` maps [n, H, W]: channel i (< C_in) = Σ_k fn's map of kernel (i, k),
    computed `chunk` kernels at a time; ids C_in + k are the bias pseudo-neurons of
    `bias="separate"` (kernel-mode id C_in·K + k)."""
    conv = layer_conv(model, layer)
    c_in, n_out = conv.in_channels, conv.out_channels
    out = []
    for i in ids.tolist():
        if i >= c_in:
            kid = torch.tensor([c_in * n_out + i - c_in], device=x.device)
            out.append(_apply(fn, model, x, layer, kid, bias)[0])
            continue
        total = None
        for kid in id_chunks(n_out, chunk, x.device):
            part = _apply(fn, model, x, layer, kid + i * n_out, bias).sum(0)
            total = part if total is None else total.add_(part)
        out.append(total)
    return torch.stack(out)


def iter_nerv(model: NeRV, layer: str, t: float | torch.Tensor, *, mode: str = "reference",
              chunk: int = 64, bias: str = "split",
              neuron: str = "kernel") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(neuron ids, maps [n ≤ chunk, H, W]) for all neurons of `layer`, in id order.

    `bias`: "split" (β_k / C_in inside every kernel's map, the authors' choice) or "separate"
    (no share; one bias pseudo-neuron per conv output channel k, appended after the others).
    `neuron`: "kernel" (id i·K + k) or "channel" (id i: the sum of input channel i's K kernel
    maps, in either mode).
    """
    fn = mode_fn(MODES, mode)
    total = n_neurons(model, layer, bias, neuron)
    x = layer_input(model, t, layer)
    if neuron == "channel":
        return ((ids, channel_maps(fn, model, x, layer, ids, bias, chunk))
                for ids in id_chunks(total, chunk, x.device))
    return ((ids, _apply(fn, model, x, layer, ids, bias))
            for ids in id_chunks(total, chunk, x.device))
