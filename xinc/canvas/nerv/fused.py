"""The fused CPU expansion of NeRV reference maps (`xinc/native/expand.c`).

`reference.Pipeline` hands each chunk's pieces to `expand` first; it returns False (and the
Pipeline runs its torch ops instead) on CUDA, for other dtypes or activations, or when the C
kernels are unavailable (`xinc.native`, `XINC_NATIVE`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xinc.canvas.nerv.stages import Stage, tap_counts
from xinc.native import library, split_map

ACTS = {"none": 1, "tanh": 2}  # nn.GELU(approximate=…) → expand.c's ACT_GELU / ACT_GELU_TANH


def _act_code(act: nn.Module) -> int | None:
    if isinstance(act, nn.GELU):
        return ACTS.get(act.approximate)
    return 0 if isinstance(act, nn.Identity) else None


class Tables:
    """expand.c's tables of a stage list: geom {r, pad, act, placed}, 1/k², and the
    `tap_counts(r, k, phase)` of every stage, selector and output phase."""

    def __init__(self, stages: list[Stage]) -> None:
        rows = {(s, sel, q): row for s, st in enumerate(stages)
                for sel in range(st.r if st.placed else 1)
                for q, row in enumerate(tap_counts(st.r, st.k, sel if st.placed else None))}
        acts = [_act_code(st.act) if s else 0 for s, st in enumerate(stages)]
        self.supported = None not in acts
        self.rmax = max(st.r for st in stages)
        self.tmax = max(1, max(len(row) for row in rows.values()))
        self.geom = np.array([[st.r, st.pad, a or 0, st.placed] for st, a in zip(
            stages, acts, strict=True)], dtype=np.int32)
        self.scale = np.array([1.0 / st.k**2 for st in stages], dtype=np.float32)
        self.taps = np.zeros((len(stages), self.rmax, self.rmax, self.tmax, 2), dtype=np.int32)
        self.ntaps = np.zeros((len(stages), self.rmax, self.rmax), dtype=np.int32)
        for (s, sel, q), row in rows.items():
            self.ntaps[s, sel, q] = len(row)
            if row:
                self.taps[s, sel, q, :len(row)] = row


def expand(pieces: torch.Tensor, ids: torch.Tensor, tables: Tables, out: torch.Tensor) -> bool:
    """Write the maps of neurons `ids` into `out` [n, H, W] from their pieces [n, h, w + 2·pad]
    (GELU(P)/k², zero-bordered along the width); False (nothing written) where unsupported."""
    if not (tables.supported and pieces.device.type == "cpu" and out.device.type == "cpu"
            and pieces.dtype == out.dtype == torch.float32 and pieces.stride(2) == 1
            and out.is_contiguous() and len(ids) == len(pieces) == len(out)):
        return False
    lib = library()
    if lib is None:
        return False
    ids = ids.to(torch.int64).contiguous()
    n, h0, w0 = len(ids), pieces.shape[1], pieces.shape[2] - 2 * int(tables.geom[0, 1])
    grow = int(np.prod(tables.geom[:, 0]))
    if tuple(out.shape[1:]) != (h0 * grow, w0 * grow):
        raise ValueError(f"out has maps of {list(out.shape[1:])}; the stages make "
                         f"{[h0 * grow, w0 * grow]}")
    if n == 0:
        return True

    def run(start: int, stop: int) -> int:  # split_map's ranges are non-empty for n > 0
        return lib.xinc_expand(
            pieces[start].data_ptr(), pieces.stride(0), pieces.stride(1), h0, w0,
            ids[start].data_ptr(), stop - start, len(tables.geom), tables.geom.ctypes.data,
            tables.scale.ctypes.data, tables.taps.ctypes.data, tables.ntaps.ctypes.data,
            tables.rmax, tables.tmax, out[start].data_ptr())

    if any(split_map(run, n)):
        raise RuntimeError(f"xinc_expand failed for {n} neurons (out of memory?)")
    return True
