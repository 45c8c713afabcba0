"""NeRV layer geometry shared by every map mode (docs/method.md §3.4).

A neuron is one conv kernel slice (input channel i, output channel k, id i·K + k); its piece is
Step A of the authors' algorithm, P[i, k] = x_i ⋆ W[k, i] + β_k / C_in, and Step B places it on
the block's PixelShuffle grid. Geometry (kernel, padding, stride, shuffle factor) is read from
the model's modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xinc.canvas._common import check_switches
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


def n_neurons(model: NeRV, layer: str, bias: str = "split", neuron: str = "kernel") -> int:
    """C_in·K kernels of the layer's conv (K counted before PixelShuffle), or C_in input
    channels for `neuron="channel"`; `bias="separate"` appends K bias pseudo-neurons."""
    check_switches(bias, neuron)
    conv = layer_conv(model, layer)
    base = conv.in_channels * (conv.out_channels if neuron == "kernel" else 1)
    return base + (conv.out_channels if bias == "separate" else 0)


def as_time(t: float | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Frame time as the float64 tensor [1] the authors' data loader produces.

    Pass a Python float or a float64 tensor: a float32 t is already rounded (docs/method.md §1.2).
    """
    return torch.as_tensor(t, dtype=torch.float64, device=device).reshape(1)


def check_conv(conv: nn.Conv2d) -> None:
    if conv.padding_mode != "zeros" or conv.groups != 1 or isinstance(conv.padding, str):
        raise ValueError(f"per-kernel maps need a zero-padded conv with groups=1, got {conv}")


def out_size(conv: nn.Conv2d, h: int, w: int) -> tuple[int, int]:
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, p, d, k, s in zip(
        (h, w), conv.padding, conv.dilation, conv.kernel_size, conv.stride, strict=True))


def per_kernel_conv(x: torch.Tensor, conv: nn.Conv2d, ids: torch.Tensor,
                    bias: str = "split") -> torch.Tensor:
    """Step A for neurons `ids` (= i·K + k): x_i ⋆ W[k, i] + β_k / C_in, shape [n, h', w'].

    `x` is the layer input [C_in, h, w]; stride, padding and dilation are the conv's own.
    One batched matmul over the `unfold` columns of the input channels the ids span,
    [C, K, k²] @ [C, k², h'·w'] (no loop over neurons); a contiguous id range is a view of it.
    `bias="separate"`: kernels carry no bias share, and ids C_in·K + k are bias pseudo-neurons
    whose piece is β_k everywhere (0 for a conv without bias).
    """
    check_conv(conv)
    check_switches(bias, "kernel")
    n_out, n_kernel = conv.out_channels, conv.in_channels * conv.out_channels
    size = out_size(conv, *x.shape[1:])
    pseudo = ids >= n_kernel
    kernel_ids = ids[~pseudo]
    if len(kernel_ids) == len(ids):
        return _kernel_pieces(x, conv, ids, bias == "split").unflatten(1, size)
    full = x.new_zeros(len(ids), *size)
    if len(kernel_ids):
        full[~pseudo] = _kernel_pieces(x, conv, kernel_ids, False).unflatten(1, size)
    if conv.bias is not None:
        full[pseudo] = conv.bias[ids[pseudo] % n_out][:, None, None]
    return full


def _kernel_pieces(x: torch.Tensor, conv: nn.Conv2d, ids: torch.Tensor,
                   share: bool) -> torch.Tensor:
    """Pieces [n, h'·w'] of kernel ids (all < C_in·K), with the bias share when `share`."""
    n_out = conv.out_channels
    lo, hi = int(ids.min()) // n_out, int(ids.max()) // n_out + 1
    cols = F.unfold(x[lo:hi, None], conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    weight = conv.weight[:, lo:hi].transpose(0, 1).reshape(hi - lo, n_out, -1)
    if share and conv.bias is not None:
        shares = (conv.bias / conv.in_channels)[None, :, None].expand(hi - lo, -1, 1)
        pieces = torch.baddbmm(shares, weight, cols).flatten(0, 1)
    else:
        pieces = torch.bmm(weight, cols).flatten(0, 1)
    first = int(ids[0]) - lo * n_out
    if bool(torch.equal(ids, torch.arange(int(ids[0]), int(ids[0]) + len(ids),
                                          device=ids.device))):
        return pieces[first:first + len(ids)]
    return pieces[ids - lo * n_out]


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
    r = model.blocks[int(layer[1:]) - 1].shuffle.upscale_factor
    return place(per_kernel_conv(x, conv, ids, bias), (ids % conv.out_channels) % (r * r), r)


def place(pieces: torch.Tensor, phase: torch.Tensor, r: int) -> torch.Tensor:
    """Place_r: piece m [h, w] at sub-pixel phase `phase[m]` of an [r·h, r·w] grid, zeros
    elsewhere (pieces [n, h, w] → [n, r·h, r·w]), as PixelShuffle places conv channel
    c·r² + phase."""
    n, h, w = pieces.shape
    out = pieces.new_zeros(n, r * r, h, w)
    out[torch.arange(n, device=pieces.device), phase] = pieces
    return out.view(n, r, r, h, w).permute(0, 3, 1, 4, 2).reshape(n, h * r, w * r)


def same_box(conv: nn.Conv2d) -> int:
    """Size k of the box stand-in for `conv` (its kernel); needs an odd, 'same' stride-1 conv."""
    k = conv.kernel_size[0]
    if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.padding != (k // 2, k // 2)
            or conv.stride != (1, 1) or conv.dilation != (1, 1)):
        raise ValueError(f"reference stand-ins need an odd square 'same' conv, got {conv}")
    return k


@torch.no_grad()
def layer_input(model: NeRV, t: float | torch.Tensor, layer: str) -> torch.Tensor:
    """Input [C_in, h, w] of `layer`'s conv for frame time t (one forward pass)."""
    layer_conv(model, layer)
    trace = model.trace(as_time(t, model.head.weight.device))
    x = trace.head_input if layer == "head" else trace.block_inputs[int(layer[1:]) - 1]
    return x[0]
