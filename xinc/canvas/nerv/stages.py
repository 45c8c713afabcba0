"""The expansion stages of NeRV reference maps (docs/method.md §3.4) and their 1-D filter taps.

Block j's map goes through its own Box∘Place (its PixelShuffle phase), then every later
block's GELU and Box∘Up, down to the image size. Each stage is separable into two r-periodic
1-D filters with integer counts, shared by the torch ops (`reference`) and the C kernel
(`fused`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from xinc.canvas.nerv.layers import same_box
from xinc.models.nerv import NeRV

Taps = tuple[tuple[tuple[int, int], ...], ...]  # per output phase: ((offset, count), …)


def stage_taps(r: int, k: int, phase: int | None = None) -> torch.Tensor:
    """1-D taps of Box_k ∘ Up_r (`phase=None`) or of Box_k ∘ Place_r at `phase`: Up_r repeats
    g[y] r times, Place_r puts it at r·y + phase (zeros elsewhere), Box_k is a k-point mean
    with zero padding k//2. The result is r-periodic, so with s = k//2 // r + 1:
    out[r·y + q] = Σ_j taps[q, j]·g[y + j − s] (g zero outside), taps of shape [r, 2s + 1],
    read off the impulse response of the 1-D operator itself.
    """
    pad, span = k // 2, (k // 2) // r + 1
    g = torch.zeros(2 * span + 1, dtype=torch.float64)
    g[span] = 1.0
    if phase is None:
        expanded = g.repeat_interleave(r)
    else:
        expanded = torch.zeros(len(g) * r, dtype=torch.float64)
        expanded[phase::r] = g
    out = F.avg_pool1d(expanded[None], k, stride=1, padding=pad, count_include_pad=True)[0]
    idx = r * (span - torch.arange(-span, span + 1))[None, :] + torch.arange(r)[:, None]
    return out[idx]


@cache
def tap_counts(r: int, k: int, phase: int | None = None) -> Taps:
    """`stage_taps` as integer counts: out[r·y + q] = Σ (m/k)·g[y + offset] over
    taps[q] = ((offset, m), …)."""
    span = (k // 2) // r + 1
    counts = torch.round(stage_taps(r, k, phase) * k).long().tolist()
    return tuple(tuple((j - span, m) for j, m in enumerate(row) if m) for row in counts)


@dataclass(frozen=True)
class Stage:
    """One expansion: `act`, then Box_k ∘ Place_r(phase) (`placed`) or Box_k ∘ Up_r."""

    act: nn.Module
    r: int
    k: int
    placed: bool

    @property
    def pad(self) -> int:
        """Zero border of the stage's input and column workspace: the taps' largest offset."""
        return (self.k // 2) // self.r + 1


def stages(model: NeRV, j: int) -> list[Stage]:
    """The expansions of block j's maps: its own placement, then every later block's Up."""
    blocks = list(model.blocks)
    convs = [b.conv for b in blocks[j:]] + [model.head]
    out = [Stage(blocks[j - 1].act, blocks[j - 1].shuffle.upscale_factor, same_box(convs[0]),
                 True)]
    return out + [Stage(b.act, b.shuffle.upscale_factor, same_box(c), False)
                  for b, c in zip(blocks[j:], convs[1:], strict=True)]
