"""Quantised evaluation and bits per pixel, as the authors' NeRV evaluation (docs/method.md §2.4).

- Every weight tensor of the state dict is quantised to `bits` (8) with min/max affine
  quantisation, q = clamp(round((w − min)/scale), 0, 2^bits − 1), scale = (max − min)/(2^bits − 1),
  ŵ = min + scale·q. Candidates: one (min, scale) for the whole tensor, and one per slice along
  each axis whose reduction leaves fewer than 2 % of the elements as groups (min and scale of
  these stored as float16); the candidate with the lowest mean |w − ŵ| is kept (the first on ties).
  A group with max = min (scale 0) is coded as q = 0, ŵ = min (the authors' code would divide by
  zero there).
- Not quantised ("encoder" keys in the authors' code): keys containing `encoder`, xinc NeRV's
  `pe.omega` (computed from the config, never stored) and the FFN's Fourier matrix
  `positional_encoding.B` (a fixed random buffer that the seed regenerates; 8 bits would wreck
  the high-frequency phases). They enter neither the symbols nor the parameter count.
- NeRV: the decoder's input is the positional encoding of every frame, a [T, 2L, 1, 1] tensor
  for the T frames t = i/T. The authors quantise it as one more tensor at `pe_bits` (6) with the
  same candidates (its per-frame axis always qualifies), and **its T·2L symbols and min/scale
  values are counted with the weights**; the quantised evaluation feeds the dequantised vectors
  to the decoder (`quantized_copy(..., frames=T)`).
- All symbols (weights and PE) are Huffman-coded with one code. As the authors' `dahuffman`
  codec, the code table also holds an end-of-file symbol of count 1 (not itself counted), so the
  numbers match theirs; `eof=False` drops it. bits/param = Huffman bits / #symbols; "with
  overhead" adds 16 bits per stored min and scale element; bits/pixel = all bits / (T·H·W).
  The FFN (one frame, no PE) uses the same rules with T = 1.
"""

from __future__ import annotations

import copy
import heapq
import itertools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.models.nerv import NeRV, PositionalEncoding

AXIS_GROUP_LIMIT = 0.02
OVERHEAD_BITS = 16

__all__ = ["QuantTensor", "QuantizedPE", "bits_per_pixel", "coding_cost", "huffman_code_lengths",
           "is_unquantised_key", "pe_table", "quantize_state_dict", "quantize_tensor",
           "quantized_copy"]


@dataclass
class QuantTensor:
    """One quantised tensor: integer codes, the (broadcastable) min and scale, ŵ and its error."""

    codes: torch.Tensor
    minimum: torch.Tensor
    scale: torch.Tensor
    dequantised: torch.Tensor
    mean_abs_err: float
    variant: str

    @property
    def n_minscale(self) -> int:
        """Stored min and scale values (each costs 16 bits of overhead)."""
        return self.minimum.numel() + self.scale.numel()


def _apply(t: torch.Tensor, mn: torch.Tensor, scale: torch.Tensor, bits: int):
    """Codes, ŵ and mean |w − ŵ| for one (min, scale) candidate (scale 0: code 0, ŵ = min)."""
    zero = scale == 0
    codes = ((t - mn) / torch.where(zero, torch.ones_like(scale), scale)).round()
    codes = torch.where(zero, torch.zeros_like(codes), codes.clamp(0, 2**bits - 1))
    new = (mn + scale * codes).to(t.dtype)
    err = float((t - new).abs().mean())
    return codes, new, err if np.isfinite(err) else float("inf")


def quantize_tensor(t: torch.Tensor, bits: int = 8) -> QuantTensor:
    """Min/max affine quantisation of `t`, best of the whole-tensor and per-axis variants."""
    t = t.detach()
    if not t.is_floating_point():
        raise TypeError(f"cannot quantise a {t.dtype} tensor")
    if t.numel() == 0:
        empty = torch.zeros(0)
        return QuantTensor(torch.zeros(t.shape, dtype=torch.uint8), empty, empty, t.clone(),
                           0.0, "empty")
    top = 2**bits - 1
    mn, mx = t.min(), t.max()
    options = [("tensor", mn, (mx - mn) / top)]
    for axis in range(t.dim()):
        mn = t.amin(dim=axis, keepdim=True)
        if mn.numel() / t.numel() < AXIS_GROUP_LIMIT:
            scale = (t.amax(dim=axis, keepdim=True) - mn) / top
            options.append((f"axis{axis}", mn.to(torch.float16), scale.to(torch.float16)))
    best = None
    for name, mn, scale in options:
        codes, new, err = _apply(t, mn, scale, bits)
        if best is None or err < best[3]:
            best = (codes, mn, scale, err, new, name)
    codes, mn, scale, err, new, name = best
    dtype = torch.uint8 if bits <= 8 else torch.int32
    return QuantTensor(codes.to(dtype), mn, scale, new, err, name)


def is_unquantised_key(key: str) -> bool:
    """Keys kept in float: the authors' `encoder`, NeRV's `pe.*`, the FFN's Fourier matrix."""
    return "encoder" in key or key.startswith(("pe.", "positional_encoding."))


def quantize_state_dict(state: Mapping[str, torch.Tensor], bits: int = 8, *,
                        skip: Callable[[str], bool] = is_unquantised_key
                        ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Quantise every weight of `state`; returns (dequantised state, info).

    info: `bits`, `tensors` (per key: variant, numel, n_minscale, mean_abs_err), `skipped` keys,
    `n_params` (quantised elements), `n_minscale`, and `symbols` (all codes, int64, state order).
    """
    out: dict[str, torch.Tensor] = {}
    tensors: dict[str, dict[str, Any]] = {}
    skipped, symbols = [], []
    for key, value in state.items():
        if skip(key) or not value.is_floating_point():
            out[key] = value
            skipped.append(key)
            continue
        q = quantize_tensor(value, bits)
        out[key] = q.dequantised
        symbols.append(q.codes.flatten().to(torch.int64).cpu().numpy())
        tensors[key] = {"variant": q.variant, "numel": value.numel(),
                        "n_minscale": q.n_minscale, "mean_abs_err": q.mean_abs_err}
    info = {
        "bits": bits,
        "tensors": tensors,
        "skipped": skipped,
        "n_params": sum(v["numel"] for v in tensors.values()),
        "n_minscale": sum(v["n_minscale"] for v in tensors.values()),
        "symbols": np.concatenate(symbols) if symbols else np.zeros(0, np.int64),
    }
    return out, info


# ----------------------------------------------------------------------------- Huffman

def huffman_code_lengths(counts: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """Code length of every symbol of an optimal (Huffman) prefix code for `counts`.

    Symbols with count 0 are left out; a single symbol gets length 1. The lengths satisfy
    Kraft's equality Σ 2^−l = 1 whenever there are at least two symbols.
    """
    items = [(c, s) for s, c in counts.items() if c > 0]
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][1]: 1}
    order = itertools.count()
    heap = [(c, next(order), [s]) for c, s in items]
    heapq.heapify(heap)
    lengths = dict.fromkeys((s for _, s in items), 0)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in itertools.chain(s1, s2):
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, next(order), s1 + s2))
    return lengths


_EOF = ("<eof>",)


def coding_cost(symbols: np.ndarray | list[int], n_minscale: int, n_pixels: int, *,
                eof: bool = True) -> dict[str, float | int]:
    """Huffman bits of `symbols` plus 16 bits per min/scale value, per symbol and per pixel."""
    values, freq = np.unique(np.asarray(symbols), return_counts=True)
    counts: dict[Hashable, int] = {int(v): int(c) for v, c in zip(values, freq, strict=True)}
    if eof:
        counts[_EOF] = 1
    lengths = huffman_code_lengths(counts)
    n = int(freq.sum())
    huff = sum(int(c) * lengths[int(v)] for v, c in zip(values, freq, strict=True))
    total = huff + OVERHEAD_BITS * n_minscale
    return {
        "n_symbols": n,
        "n_minscale": int(n_minscale),
        "huffman_bits": int(huff),
        "total_bits": int(total),
        "bits_per_param": huff / n if n else float("nan"),
        "bits_per_param_with_overhead": total / n if n else float("nan"),
        "bpp": total / n_pixels,
    }


# ----------------------------------------------------------------------------- models

def pe_table(model: NeRV, frames: int) -> torch.Tensor:
    """The positional encodings [T, 2L, 1, 1] of the frames t = i/T (float64 t, as the authors)."""
    t = torch.arange(frames, dtype=torch.float64, device=model.pe.omega.device) / frames
    with torch.no_grad():
        return model.pe(t)[:, :, None, None]


def _frames(model: nn.Module, n_pixels: int, frames: int | None) -> int:
    if frames is not None:
        return int(frames)
    if isinstance(model, NeRV):
        h, w = model.cfg.output_size
        t, rest = divmod(int(n_pixels), h * w)
        if rest or t < 1:
            raise ValueError(f"n_pixels {n_pixels} is not a whole number of {h}×{w} frames; "
                             "pass frames=T")
        return t
    return 1


def bits_per_pixel(model: nn.Module, n_pixels: int, *, bits: int = 8, pe_bits: int = 6,
                   frames: int | None = None, eof: bool = True) -> dict[str, Any]:
    """Bits per parameter and per pixel of `model` quantised as the authors' evaluation.

    `n_pixels` = T·H·W of what the model represents (one frame for the FFN). For a NeRV the T
    frame encodings are quantised at `pe_bits` and counted (T = `frames`, else n_pixels/(H·W)).
    Returns the `coding_cost` fields plus `bits`, `pe_bits`, `frames`, `n_params` (quantised
    weights), `n_pe` (PE symbols), `bpp_fp32` (32·n_params/n_pixels) and the mean |error| of the
    weights and PE (`weight_mean_abs_err`, `pe_mean_abs_err`).
    """
    _, info = quantize_state_dict(model.state_dict(), bits)
    symbols, n_minscale = [info["symbols"]], info["n_minscale"]
    n_pe, pe_err, t = 0, float("nan"), None
    if isinstance(model, NeRV):
        t = _frames(model, n_pixels, frames)
        q = quantize_tensor(pe_table(model, t), pe_bits)
        symbols.insert(0, q.codes.flatten().to(torch.int64).cpu().numpy())
        n_minscale += q.n_minscale
        n_pe, pe_err = q.codes.numel(), q.mean_abs_err
    cost = coding_cost(np.concatenate(symbols), n_minscale, n_pixels, eof=eof)
    numel = sum(v["numel"] for v in info["tensors"].values())
    weight_err = (sum(v["mean_abs_err"] * v["numel"] for v in info["tensors"].values())
                  / numel if numel else float("nan"))
    return {**cost, "bits": bits, "pe_bits": pe_bits if t else None, "frames": t,
            "n_params": info["n_params"], "n_pe": n_pe,
            "bpp_fp32": 32 * info["n_params"] / n_pixels,
            "weight_mean_abs_err": weight_err, "pe_mean_abs_err": pe_err}


class QuantizedPE(PositionalEncoding):
    """Positional encoding that returns stored (dequantised) vectors for the frames t = i/T.

    Other t get the exact encoding. The table is not part of the state dict (`pe.omega` is).
    """

    def __init__(self, pe: PositionalEncoding, table: torch.Tensor, frames: int) -> None:
        nn.Module.__init__(self)
        self.register_buffer("omega", pe.omega.detach().clone())
        self.register_buffer("table", table.detach().reshape(frames, -1).clone(),
                             persistent=False)
        self.frames = int(frames)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        out = super().forward(t)
        pos = t.reshape(-1).to(torch.float64) * self.frames
        idx = pos.round()
        hit = ((pos - idx).abs() < 1e-6) & (idx >= 0) & (idx < self.frames)
        if bool(hit.any()):
            out[hit] = self.table[idx[hit].long().to(self.table.device)].to(out.device)
        return out


def quantized_copy(model: nn.Module, bits: int = 8, *, pe_bits: int = 6,
                   frames: int | None = None) -> nn.Module:
    """A copy of `model` with dequantised `bits`-bit weights, for quantised PSNR.

    NeRV with `frames` = T: the frame encodings are also replaced by their `pe_bits`
    dequantised values (the authors' quantised evaluation); without `frames` only the weights
    are quantised. The copy carries `.quant_info` (per-tensor variants and errors).
    """
    deq, info = quantize_state_dict(model.state_dict(), bits)
    out = copy.deepcopy(model)
    out.load_state_dict(deq)
    info = {k: v for k, v in info.items() if k != "symbols"}
    if isinstance(out, NeRV) and frames is not None:
        q = quantize_tensor(pe_table(model, int(frames)), pe_bits)
        out.pe = QuantizedPE(out.pe, q.dequantised, int(frames))
        info.update(pe_bits=pe_bits, frames=int(frames), pe_variant=q.variant,
                    pe_mean_abs_err=q.mean_abs_err)
    out.quant_info = info
    return out.eval() if not model.training else out
