"""FFN contribution maps (models.md §4.2): the neurons of layer l are the inputs of linear layer l.

Reference mode (the authors' `get_mlp_mappings`): C_l[i, o, p] = u_i(p)·W[o, i] + β_o / n_l, and
  hidden layers: M_l[i, p] = ReLU(Σ_o C_l[i, o, p]);  last layer: M_L[i, p] = Σ_c C_L[i, c, p].
Σ_o C_l[i, o, p] = u_i(p)·Σ_o W[o, i] + Σ_o β_o / n_l, so the [i, o, p] tensor is never built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from xinc.canvas._common import id_chunks, mode_fn
from xinc.models.ffn import FFN, ffn_coords


def layer_names(model: FFN) -> list[str]:
    """`l1` … `lL` (L = number of linear layers)."""
    return [f"l{i}" for i in range(1, len(model.net) + 1)]


def layer_index(model: FFN, layer: str) -> int:
    """0-based index of the linear layer whose inputs are `layer`'s neurons."""
    if layer in layer_names(model):
        return int(layer[1:]) - 1
    raise ValueError(f"unknown FFN layer {layer!r}; expected one of {layer_names(model)}")


def n_neurons(model: FFN, layer: str) -> int:
    """Input width n_l of linear layer l."""
    return model.net[layer_index(model, layer)].linear.in_features


@torch.no_grad()
def layer_input(model: FFN, layer: str, height: int, width: int) -> torch.Tensor:
    """Input of linear layer l on the model's pixel grid, neuron-major: u^T [n_l, H·W]."""
    idx = layer_index(model, layer)
    coords = ffn_coords(height, width, model.cfg.coords).to(model.positional_encoding.B.device)
    return model.trace(coords)[idx].T.contiguous()


@torch.no_grad()
def summed_contributions(model: FFN, u: torch.Tensor, layer: str,
                         ids: torch.Tensor) -> torch.Tensor:
    """Σ_o C_l[i, o, p] [n, H·W] for neurons i = `ids` (`u` = input [n_l, H·W]), before any ReLU.

    Summed over i this gives Σ_o z_{l,o}(p), the summed pre-activations of layer l.
    """
    linear = model.net[layer_index(model, layer)].linear
    w_sum = linear.weight[:, ids].sum(0)
    b_share = linear.bias.sum() / linear.in_features if linear.bias is not None else 0.0
    return u[ids].mul_(w_sum[:, None]).add_(b_share)


def reference_maps(model: FFN, u: torch.Tensor, layer: str, ids: torch.Tensor) -> torch.Tensor:
    """Reference maps [n, H·W]: ReLU of `summed_contributions` (no ReLU for the last layer)."""
    maps = summed_contributions(model, u, layer, ids)
    return maps.relu_() if layer_index(model, layer) < len(model.net) - 1 else maps


MapFn = Callable[[FFN, torch.Tensor, str, torch.Tensor], torch.Tensor]
MODES: dict[str, MapFn] = {"reference": reference_maps}


def iter_ffn(model: FFN, layer: str, height: int, width: int, *, mode: str = "reference",
             chunk: int = 64) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(neuron ids, maps [n ≤ chunk, H, W]) for all neurons of `layer`, in id order."""
    fn = mode_fn(MODES, mode)
    u = layer_input(model, layer, height, width)
    return ((ids, fn(model, u, layer, ids).reshape(len(ids), height, width))
            for ids in id_chunks(n_neurons(model, layer), chunk, u.device))
