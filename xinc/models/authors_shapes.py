"""Architecture of an imported state dict, read off its tensor shapes (see `xinc.models.authors`).

NeRV: stem weight [C0·fh·fw, 2L, 1, 1] gives the PE levels L; block convs [C_{j+1}·s_j², C_j,
k, k] give widths and strides; head [3, C, k, k]. The stem grid `fc_hw` is not identifiable
from shapes (only fh·fw is): pass `fc_hw`; without it the paper's 1:2 aspect is assumed,
fh·fw = 2h² → (h, 2h) (8·16 for the paper model, 2·4 for the fixture), and any other product
is an error asking for `fc_hw`. The PE base (1.25), the GELU activation and the output map are
not stored either: they default to the paper's (`pe_base` 1.25, `out` "tanh", the
training/rendering map; the analysis-time pre-activation is `model.trace(t).head_out` whatever
`out` is) and can be changed through `settings`. FFN: width = rows of B, layers = number of
`net.N` entries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from xinc.models.ffn import FFNConfig
from xinc.models.nerv import NeRVConfig

__all__ = ["infer_fc_hw", "infer_ffn_config", "infer_nerv_config"]


def infer_fc_hw(n_cells: int, fc_hw: tuple[int, int] | list[int] | None = None) -> tuple[int, int]:
    """The stem grid (fh, fw) with fh·fw = n_cells: `fc_hw` if given, else (h, 2h) if n = 2h²."""
    if fc_hw is not None:
        fh, fw = (int(v) for v in fc_hw)
        if fh * fw != n_cells:
            raise ValueError(f"fc_hw {fh}×{fw} = {fh * fw} cells, but the stem holds {n_cells} "
                             "cells per channel")
        return fh, fw
    h = math.isqrt(n_cells // 2) if n_cells % 2 == 0 else 0
    if h > 0 and 2 * h * h == n_cells:
        return h, 2 * h
    raise ValueError(f"cannot infer the stem grid from fh·fw = {n_cells} (not 2·h² for the 1:2 "
                     "aspect); pass fc_hw=(fh, fw)")


def _width_rule(widths: tuple[int, ...], n_strides: int,
                reduce: float | None, lower_width: int | None) -> tuple[float, int]:
    """(reduce, lower_width) for which xinc's width rule reproduces `widths`."""
    reduces = [reduce] if reduce is not None else [1.2]
    lowers = [lower_width] if lower_width is not None else [6]
    if reduce is None:
        reduces += [widths[j] / widths[j + 1] for j in range(len(widths) - 1)] + [1.0]
    if lower_width is None:
        lowers += [min(widths), 1]
    for r in reduces:
        for lw in lowers:
            try:
                cfg = NeRVConfig(fc_dim=widths[0], strides=(1,) * n_strides, reduce=r,
                                 lower_width=lw)
            except (ValueError, ZeroDivisionError):
                continue
            if cfg.widths == widths:
                return r, lw
    raise ValueError(f"block widths {widths} do not follow xinc's rule "
                     "C_(j+1) = max(round(C_j / reduce), lower_width); pass reduce/lower_width "
                     "in settings, or the checkpoint is not a supported NeRV")


def infer_nerv_config(state: Mapping[str, torch.Tensor], *,
                      fc_hw: tuple[int, int] | list[int] | None = None,
                      settings: Mapping[str, Any] | None = None,
                      source: str | Path = "<state dict>") -> NeRVConfig:
    """NeRVConfig of a state dict in xinc's names, from tensor shapes (see the module doc)."""
    settings = dict(settings or {})

    def get(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"{source}: NeRV weight {key!r} is missing")
        return state[key]

    stem, head = get("stem.weight"), get("head.weight")
    n_blocks = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    convs = [get(f"blocks.{j}.conv.weight") for j in range(n_blocks)]
    if stem.dim() != 4 or stem.shape[2:] != (1, 1) or stem.shape[1] % 2:
        raise ValueError(f"{source}: stem weight {tuple(stem.shape)} is not [C·fh·fw, 2L, 1, 1]")
    if head.dim() != 4 or head.shape[0] != 3:
        raise ValueError(f"{source}: head weight {tuple(head.shape)} is not [3, C, k, k]")
    ins = [int(w.shape[1]) for w in convs] + [int(head.shape[1])]
    widths, strides, kernels = [ins[0]], [], {tuple(head.shape[2:])}
    for j, w in enumerate(convs):
        c_out = ins[j + 1]
        ratio, rest = divmod(int(w.shape[0]), c_out)
        s = math.isqrt(ratio)
        if rest or s * s != ratio:
            raise ValueError(f"{source}: block {j} conv {tuple(w.shape)} is not "
                             f"[C·s², C_in, k, k] with C = {c_out} (next layer's input)")
        widths.append(c_out)
        strides.append(s)
        kernels.add(tuple(w.shape[2:]))
    if len(kernels) != 1 or (k := next(iter(kernels)))[0] != k[1] or k[0] % 2 == 0:
        raise ValueError(f"{source}: kernel sizes {sorted(kernels)} differ or are not odd squares; "
                         "xinc's NeRV uses one k×k kernel for all blocks and the head")
    cells, rest = divmod(int(stem.shape[0]), widths[0])
    if rest:
        raise ValueError(f"{source}: stem output {stem.shape[0]} is not a multiple of the first "
                         f"block's input width {widths[0]}")
    hw = infer_fc_hw(cells, fc_hw if fc_hw is not None else settings.pop("fc_hw", None))
    settings.pop("fc_hw", None)
    levels = int(stem.shape[1]) // 2
    if "pe.omega" in state and state["pe.omega"].numel() != levels:
        raise ValueError(f"{source}: {state['pe.omega'].numel()} PE frequencies but the stem "
                         f"takes {2 * levels} inputs")
    reduce, lower = _width_rule(tuple(widths), len(strides), settings.pop("reduce", None),
                                settings.pop("lower_width", None))
    inferred = {"pe_levels": levels, "fc_hw": hw, "strides": tuple(strides), "kernel": k[0],
                "fc_dim": widths[0], "reduce": reduce, "lower_width": lower}
    for key, value in settings.items():
        if key in inferred and _norm(value) != _norm(inferred[key]):
            raise ValueError(f"{source}: setting {key}={value!r} contradicts the weights "
                             f"({inferred[key]!r})")
    cfg = NeRVConfig(**{"out": "tanh", **settings, **inferred})
    if cfg.widths != tuple(widths):
        raise ValueError(f"{source}: inferred widths {tuple(widths)} ≠ rebuilt {cfg.widths}")
    return cfg


def infer_ffn_config(state: Mapping[str, torch.Tensor], *,
                     settings: Mapping[str, Any] | None = None,
                     source: str | Path = "<state dict>") -> FFNConfig:
    """FFNConfig of a state dict in xinc's names: width = rows of B, layers = #`net.N`."""
    if "positional_encoding.B" not in state:
        raise ValueError(f"{source}: FFN Fourier matrix 'positional_encoding.B' is missing")
    b = state["positional_encoding.B"]
    if b.dim() != 2 or b.shape[1] != 2:
        raise ValueError(f"{source}: Fourier matrix {tuple(b.shape)} is not [n, 2]")
    layers = len({k.split(".")[1] for k in state if k.startswith("net.")})
    if layers < 1:
        raise ValueError(f"{source}: no 'net.N.linear' layers")
    inferred = {"width": int(b.shape[0]), "layers": layers}
    settings = dict(settings or {})
    for key, value in settings.items():
        if key in inferred and int(value) != inferred[key]:
            raise ValueError(f"{source}: setting {key}={value!r} contradicts the weights "
                             f"({inferred[key]!r})")
    return FFNConfig(**{**settings, **inferred})


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value
