"""NeRV reference maps: the authors' Steps A–D (models.md §4.3), computed on the small grids.

Block j's map of neuron (i, k) is Box_k(Place_r(GELU(P[i, k]))) followed by Box_k(GELU(Up_r(·)))
for every later block, down to the image size. GELU runs before each expansion (it commutes
with zero insertion and nearest upsampling, since GELU(0) = 0), and each Box∘Place / Box∘Up is
separable: a column pass, then a row pass that writes whole output rows. Box∘Up_r is
r-periodic with integer weights summing to k (`stage_taps` × k), so each output phase is one
`lerp` (two taps) plus small ops for the border rows. Box∘Place_r(phase) (the neuron's own
PixelShuffle phase) is a zero insertion into a zero-bordered workspace followed by k shifted
adds, its 1/k² scale applied on the small grid after the GELU. Workspaces live in a
`Pipeline` that is reused for every chunk of a layer, and the last pass writes straight into
the caller's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from xinc.canvas._common import InputCache
from xinc.canvas.nerv.layers import layer_conv, per_kernel_conv, same_box
from xinc.models.nerv import NeRV


def stage_taps(r: int, k: int) -> torch.Tensor:
    """1-D taps of Box_k ∘ Up_r: Up_r repeats g[y] r times, Box_k is a k-point mean with zero
    padding k//2. The result is r-periodic, so with s = k//2 // r + 1:
    out[r·y + q] = Σ_j taps[q, j]·g[y + j − s] (g zero outside), taps of shape [r, 2s + 1],
    read off the impulse response of the 1-D operator itself.
    """
    pad, span = k // 2, (k // 2) // r + 1
    g = torch.zeros(2 * span + 1, dtype=torch.float64)
    g[span] = 1.0
    out = F.avg_pool1d(g.repeat_interleave(r)[None], k, stride=1, padding=pad,
                       count_include_pad=True)[0]
    idx = r * (span - torch.arange(-span, span + 1))[None, :] + torch.arange(r)[:, None]
    return out[idx]


@dataclass(frozen=True)
class Stage:
    """One expansion: `act`, then Box_k ∘ Place_r(phase) (`placed`) or Box_k ∘ Up_r."""

    act: nn.Module
    r: int
    k: int
    placed: bool
    taps: tuple[tuple[tuple[int, int], ...], ...] = field(init=False)

    def __post_init__(self) -> None:
        # Box_k ∘ Up_r: out[r·y + q] = Σ (m/k)·g[y + offset] over taps[q] = ((offset, m), …),
        # integer counts m summing to k
        span = (self.k // 2) // self.r + 1
        counts = torch.round(stage_taps(self.r, self.k) * self.k).long().tolist()
        object.__setattr__(self, "taps", tuple(
            tuple((j - span, m) for j, m in enumerate(row) if m) for row in counts))


def stages(model: NeRV, j: int) -> list[Stage]:
    """The expansions of block j's maps: its own placement, then every later block's Up."""
    blocks = list(model.blocks)
    convs = [b.conv for b in blocks[j:]] + [model.head]
    out = [Stage(blocks[j - 1].act, blocks[j - 1].shuffle.upscale_factor, same_box(convs[0]),
                 True)]
    return out + [Stage(b.act, b.shuffle.upscale_factor, same_box(c), False)
                  for b, c in zip(blocks[j:], convs[1:], strict=True)]


def _sum(dst: torch.Tensor, terms: list[torch.Tensor]) -> None:
    """dst = Σ terms (at least two)."""
    torch.add(terms[0], terms[1], out=dst)
    for src in terms[2:]:
        dst.add_(src)


def _average(dst: torch.Tensor, terms: list[tuple[torch.Tensor, int]], k: int) -> None:
    """dst = Σ (m/k)·src over `terms`: one `lerp` for two counts summing to k."""
    if not terms:
        dst.zero_()
    elif len(terms) == 2 and terms[0][1] + terms[1][1] == k:
        torch.lerp(terms[0][0], terms[1][0], terms[1][1] / k, out=dst)
    elif len(terms) == 1 and terms[0][1] == k:
        dst.copy_(terms[0][0])
    else:
        torch.mul(terms[0][0], terms[0][1] / k, out=dst)
        for src, m in terms[1:]:
            dst.add_(src, alpha=m / k)


def _activate(act: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """act(t), in place for GELU (`t` is always a workspace or piece this module owns)."""
    if isinstance(act, nn.GELU):
        return torch.ops.aten.gelu_(t, approximate=act.approximate)
    return act(t)


def _phases(t: torch.Tensor, dim: int, r: int) -> list[torch.Tensor]:
    """Views of `t` [n, a, b] holding the positions ≡ q (mod r) along `dim` (1 or 2)."""
    return list(t.unflatten(dim, (t.shape[dim] // r, r)).unbind(dim + 1))


class Pipeline:
    """Reference maps of one block layer, with workspaces reused across chunks of neurons."""

    def __init__(self, model: NeRV, layer: str, bias: str) -> None:
        self.model, self.layer, self.bias = model, layer, bias
        self.conv = layer_conv(model, layer)
        self.stages = stages(model, int(layer[1:]))
        self._buffers: dict[str, torch.Tensor] = {}
        self._placed_phase: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, n: int, shape: tuple[int, ...], like: torch.Tensor,
                zero: bool) -> torch.Tensor:
        """Workspace `name` [n, *shape]; zero-filled once when `zero` (borders stay zero)."""
        buf = self._buffers.get(name)
        if (buf is None or buf.shape[0] < n or buf.shape[1:] != shape or buf.dtype != like.dtype
                or buf.device != like.device):
            make = torch.zeros if zero else torch.empty
            buf = make((n, *shape), dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
            self._placed_phase.pop(name, None)
        return buf[:n]

    def _place(self, name: str, g: torch.Tensor, phase: torch.Tensor, stage: Stage, dim: int,
               out: torch.Tensor) -> None:
        """out = Box_k(Place_r(g, phase)) along `dim`: zero insertion into a bordered
        workspace, then k shifted adds (the 1/k scale is already in g)."""
        n, r, pad = g.shape[0], stage.r, stage.k // 2
        length = g.shape[dim] * r
        shape = list(g.shape[1:])
        shape[dim - 1] = length + 2 * pad
        ws = self._buffer(name, n, tuple(shape), g, zero=True)
        last = self._placed_phase.get(name)
        if last is None or last.shape != phase.shape or not torch.equal(last, phase):
            ws.zero_()  # the zero pattern depends only on the phases (same for aligned chunks)
            self._placed_phase[name] = phase.clone()
        inner = ws.narrow(dim, pad, length).unflatten(dim, (g.shape[dim], r))
        rows = torch.arange(n, device=g.device)
        if dim == 1:
            inner[rows, :, phase] = g
        else:
            inner[rows, :, :, phase] = g
        shifts = [ws.narrow(dim, j, length) for j in range(stage.k)]
        if len(shifts) == 1:
            out.copy_(shifts[0])
        else:
            _sum(out, shifts)

    @staticmethod
    def _up(g: torch.Tensor, stage: Stage, dim: int, out: torch.Tensor) -> None:
        """out = Box_k(Up_r(g)) along `dim`: per output phase, one op on the rows (columns)
        whose taps all fall inside g, and small ops for the few at the border (zeros outside)."""
        length = g.shape[dim]
        for view, taps in zip(_phases(out, dim, stage.r), stage.taps, strict=True):
            offsets = [o for o, _ in taps]
            y0, y1 = max(0, -min(offsets)), min(length, length - max(offsets))
            _average(view.narrow(dim, y0, y1 - y0),
                     [(g.narrow(dim, y0 + o, y1 - y0), m) for o, m in taps], stage.k)
            for y in [*range(y0), *range(y1, length)]:
                _average(view.narrow(dim, y, 1),
                         [(g.narrow(dim, y + o, 1), m) for o, m in taps if 0 <= y + o < length],
                         stage.k)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ids: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """Maps [n, H, W] of neurons `ids`, written into `out` when given."""
        g = per_kernel_conv(x, self.conv, ids, self.bias)
        n = g.shape[0]
        k_out = self.conv.out_channels
        last = len(self.stages) - 1
        for s, stage in enumerate(self.stages):
            r, h, w = stage.r, g.shape[1], g.shape[2]
            if s == last:
                dest = out if out is not None else g.new_empty(n, r * h, r * w)
            else:
                dest = self._buffer(f"out{s}", n, (r * h, r * w), g, zero=False)
            if stage.placed:
                phase = (ids % k_out) % (r * r)
                cols = self._buffer(f"cols{s}", n, (h, r * w), g, zero=False)
                scaled = _activate(stage.act, g).mul_(1.0 / stage.k**2)
                self._place(f"pc{s}", scaled, phase % r, stage, 2, cols)
                self._place(f"pr{s}", cols, phase // r, stage, 1, dest)
            else:
                cols = self._buffer(f"cols{s}", n, (h, r * w), g, zero=False)
                self._up(_activate(stage.act, g), stage, 2, cols)
                self._up(cols, stage, 1, dest)
            g = dest
        return g


_PIPELINES = InputCache()


@torch.no_grad()
def reference_maps(model: NeRV, x: torch.Tensor, layer: str, ids: torch.Tensor,
                   bias: str = "split", out: torch.Tensor | None = None) -> torch.Tensor:
    """Reference maps [n, H, W] of neurons `ids` of `layer`, whose input is `x` [C_in, h, w].

    Written into `out` (contiguous [n, H, W]) when given. The workspaces are kept for the next
    call with the same input tensor (the chunks of one `iter_canvas` layer).
    """
    if layer == "head":
        p = per_kernel_conv(x, layer_conv(model, layer), ids, bias)
        return p if out is None else out.copy_(p)
    pipe = _PIPELINES.get(x, model, (layer, bias), lambda: Pipeline(model, layer, bias))
    return pipe(x, ids, out)
