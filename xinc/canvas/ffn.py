"""FFN contribution maps (docs/method.md §3.2): the neurons of layer l are the inputs of
linear layer l.

Reference mode (the authors' `get_mlp_mappings`): C_l[i, o, p] = u_i(p)·W[o, i] + β_o / n_l, and
  hidden layers: M_l[i, p] = ReLU(Σ_o C_l[i, o, p]);  last layer: M_L[i, p] = Σ_c C_L[i, c, p].
Σ_o C_l[i, o, p] = u_i(p)·Σ_o W[o, i] + Σ_o β_o / n_l, so the [i, o, p] tensor is never built.

Exact mode (`exact_maps`, gated path rule of docs/method.md §4.3): see the section below.

Switches (as NeRV's): `bias="split"` (β_o / n_l in every neuron, the authors' choice) or
`"separate"` (no share; one bias pseudo-neuron per output unit o of linear l, ids n_l + o, whose
piece is β_o); `neuron="kernel"` and `"channel"` are the same here: an FFN neuron is one input
unit of its linear layer, whose maps the authors already sum over the output units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from xinc.canvas._common import (
    InputCache,
    check_switches,
    fill_chunks,
    id_chunks,
    mode_fn,
    rescale_gain,
)
from xinc.models.ffn import FFN, ffn_coords


def layer_names(model: FFN) -> list[str]:
    """`l1` … `lL` (L = number of linear layers)."""
    return [f"l{i}" for i in range(1, len(model.net) + 1)]


def layer_index(model: FFN, layer: str) -> int:
    """0-based index of the linear layer whose inputs are `layer`'s neurons."""
    if layer in layer_names(model):
        return int(layer[1:]) - 1
    raise ValueError(f"unknown FFN layer {layer!r}; expected one of {layer_names(model)}")


def n_neurons(model: FFN, layer: str, bias: str = "split", neuron: str = "kernel") -> int:
    """Input width n_l of linear layer l, plus its m_l output units for `bias="separate"`."""
    check_switches(bias, neuron)
    linear = model.net[layer_index(model, layer)].linear
    return linear.in_features + (linear.out_features if bias == "separate" else 0)


def _split_ids(model: FFN, layer: str, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(input-unit ids, output units o of the bias pseudo-neurons n_l + o) among `ids`."""
    n_in = model.net[layer_index(model, layer)].linear.in_features
    return ids[ids < n_in], ids[ids >= n_in] - n_in


@torch.no_grad()
def layer_input(model: FFN, layer: str, height: int, width: int) -> torch.Tensor:
    """Input of linear layer l on the model's pixel grid, neuron-major: u^T [n_l, H·W]."""
    idx = layer_index(model, layer)
    coords = ffn_coords(height, width, model.cfg.coords).to(model.positional_encoding.B.device)
    return model.inputs_t(coords, idx)[idx]


@torch.no_grad()
def summed_contributions(model: FFN, u: torch.Tensor, layer: str, ids: torch.Tensor,
                         out: torch.Tensor | None = None, bias: str = "split") -> torch.Tensor:
    """Σ_o C_l[i, o, p] [n, H·W] for neurons i = `ids` (`u` = input [n_l, H·W]), before any ReLU
    (into `out` when given); bias pseudo-neurons (`bias="separate"`) give β_o everywhere.

    Summed over i this gives Σ_o z_{l,o}(p), the summed pre-activations of layer l.
    """
    linear = model.net[layer_index(model, layer)].linear
    units, pseudo = _split_ids(model, layer, ids)
    if len(pseudo):
        out = u.new_empty(len(ids), u.shape[1]) if out is None else out
        beta = linear.bias[pseudo] if linear.bias is not None else u.new_zeros(len(pseudo))
        out[len(units):] = beta[:, None]
        if len(units):
            summed_contributions(model, u, layer, units, out[:len(units)], bias)
        return out
    w_sum = linear.weight.sum(0)[ids]  # one reduction for all ids: the same bits in any chunk
    share = 0.0
    if linear.bias is not None and bias == "split":
        share = linear.bias.sum() / linear.in_features
    return torch.mul(_rows(u, ids), w_sum[:, None], out=out).add_(share)


def _rows(u: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """u[ids]; a view (no copy) when the ids are consecutive, as `iter_canvas` chunks are."""
    if len(ids) and int(ids[-1]) - int(ids[0]) + 1 == len(ids) and bool((ids.diff() == 1).all()):
        return u[int(ids[0]):int(ids[-1]) + 1]
    return u[ids]


def reference_maps(model: FFN, u: torch.Tensor, layer: str, ids: torch.Tensor,
                   bias: str = "split", out: torch.Tensor | None = None) -> torch.Tensor:
    """Reference maps [n, H·W]: ReLU of `summed_contributions` (no ReLU for the last layer)."""
    maps = summed_contributions(model, u, layer, ids, out, bias)
    return maps.relu_() if layer_index(model, layer) < len(model.net) - 1 else maps


# --------------------------------------------------------------------------- exact mode
#
# Gated path rule (docs/method.md §4.3). With the real forward pass's ReLU gates
# D_m(p) = diag(1[z_m(p) > 0]) the output is linear in the input u of linear layer l:
#   R[j, c, p] = u_j(p) · [W_L D_{L-1}(p) W_{L-1} … D_l(p) W_l]_{c, j},
# and Σ_j R[j, c, p] + bias_paths[c, p] = y_c(p). The layer's own bias β_o reaches the output
# as [B(p)]_{c, o}·β_o (B below): `bias="split"` adds Σ_o [B(p)]_{c, o}·β_o / n_l to every
# neuron, `"separate"` gives it to pseudo-neuron o; the bias paths (`exact_bias_terms`) are
# the biases of the later layers pushed through the gated network. The exact neuron map is
# Σ_c R[j, c, p] (sum over RGB); `exact_rgb_maps` keeps the channels. Gains are
# `rescale_gain` of each layer's activation (1[z > 0] for ReLU).

_PATHS = InputCache()


@torch.no_grad()
def exact_gains(model: FFN, u: torch.Tensor, layer: str) -> list[torch.Tensor]:
    """Gains [P, m] of the activations of linear layers l … L (ones for the output) from the
    real forward pass started at layer l's input `u` [n_l, P]."""
    idx = layer_index(model, layer)
    gains, v = [], u.T
    for mod in model.net[idx:]:
        z = mod.linear(v)
        gains.append(rescale_gain(mod.act, z))
        v = mod.act(z)
    return gains


@torch.no_grad()
def path_matrices(model: FFN, u: torch.Tensor, layer: str) -> torch.Tensor:
    """B(p) = W_L D_{L-1}(p) W_{L-1} … W_{l+1} D_l(p), shape [P, 3, m_l] (m_l = outputs of
    linear l), so that [B(p) W_l]_{c, j} is the gated path weight from input j to output c."""
    idx = layer_index(model, layer)
    gains = exact_gains(model, u, layer)
    mats = torch.diag_embed(gains[-1])  # output activation gain (identity here)
    for m in range(len(model.net) - 1, idx, -1):
        mats = (mats @ model.net[m].linear.weight) * gains[m - 1 - idx][:, None, :]
    return mats


def _paths(model: FFN, u: torch.Tensor, layer: str) -> torch.Tensor:
    return _PATHS.get(u, model, layer, lambda: path_matrices(model, u, layer))


@torch.no_grad()
def exact_rgb_maps(model: FFN, u: torch.Tensor, layer: str, ids: torch.Tensor,
                   bias: str = "split") -> torch.Tensor:
    """Exact per-RGB contributions R [n, 3, P] of neurons `ids` (gated path rule)."""
    linear = model.net[layer_index(model, layer)].linear
    paths = _paths(model, u, layer)  # [P, 3, m_l]
    units, pseudo = _split_ids(model, layer, ids)
    out = u.new_empty(len(ids), 3, u.shape[1])
    out[:len(units)] = (paths @ linear.weight[:, units]).permute(2, 1, 0).mul_(
        u[units][:, None, :])
    if linear.bias is not None and bias == "split":
        out[:len(units)] += (paths @ linear.bias).T / linear.in_features
    if len(pseudo):
        beta = linear.bias[pseudo] if linear.bias is not None else u.new_zeros(len(pseudo))
        out[len(units):] = (paths[:, :, pseudo] * beta).permute(2, 1, 0)
    return out


@torch.no_grad()
def exact_maps(model: FFN, u: torch.Tensor, layer: str, ids: torch.Tensor,
               bias: str = "split", out: torch.Tensor | None = None) -> torch.Tensor:
    """Exact maps [n, P]: `exact_rgb_maps` summed over RGB (into `out` when given)."""
    linear = model.net[layer_index(model, layer)].linear
    units, pseudo = _split_ids(model, layer, ids)
    if len(pseudo) or (linear.bias is not None and bias == "split"):
        return torch.sum(exact_rgb_maps(model, u, layer, ids, bias), 1, out=out)
    summed = _paths(model, u, layer).sum(1) @ linear.weight[:, ids]  # [P, n]
    return torch.mul(summed.T, u[ids], out=out)


@torch.no_grad()
def exact_bias_terms(model: FFN, layer: str, height: int, width: int) -> torch.Tensor:
    """Bias paths [3, H, W]: y − Σ_j R[j] for the path rule of `layer` (the biases of the linear
    layers after l through the gated network; l's own bias is in its neurons)."""
    u = layer_input(model, layer, height, width)
    idx = layer_index(model, layer)
    gains = exact_gains(model, u, layer)
    v = u.new_zeros(u.shape[1], model.net[idx].linear.out_features)
    for mod, gain in zip(model.net[idx + 1:], gains[1:], strict=True):
        v = F.linear(v, mod.linear.weight, mod.linear.bias) * gain
    return v.T.reshape(-1, height, width)


MapFn = Callable[..., torch.Tensor]  # (model, u, layer, ids, out=None) -> maps [n, H·W]
MODES: dict[str, MapFn] = {"reference": reference_maps, "exact": exact_maps}


def iter_ffn(model: FFN, layer: str, height: int, width: int, *, mode: str = "reference",
             chunk: int = 64, bias: str = "split", neuron: str = "kernel",
             ids: Sequence[int] | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(neuron ids, maps [n ≤ chunk, H, W]) for all neurons of `layer`, in id order (or for
    `ids`, in their order)."""
    fn = mode_fn(MODES, mode)
    total = n_neurons(model, layer, bias, neuron)
    u = layer_input(model, layer, height, width)
    return ((part, fn(model, u, layer, part, bias).reshape(len(part), height, width))
            for part in id_chunks(total, chunk, u.device, ids))


def fill_ffn(model: FFN, layer: str, height: int, width: int, out: torch.Tensor, *,
             mode: str = "reference", chunk: int = 64, bias: str = "split",
             neuron: str = "kernel", u: torch.Tensor | None = None) -> torch.Tensor:
    """All maps of `layer` written chunk by chunk into `out` [n_neurons, H, W] (contiguous);
    `u`: the layer's input if already computed (`layer_input`)."""
    fn = mode_fn(MODES, mode)
    u = layer_input(model, layer, height, width) if u is None else u
    return fill_chunks(out, (n_neurons(model, layer, bias, neuron), height, width), chunk,
                       lambda ids, part: fn(model, u, layer, ids, bias,
                                            out=part.view(len(ids), -1)))
