"""NeRV reference maps: the authors' Steps A–D (docs/method.md §3.4), computed on the small grids.

Block j's map of neuron (i, k) is Box_k(Place_r(GELU(P[i, k]))) followed by Box_k(GELU(Up_r(·)))
for every later block, down to the image size. GELU runs before each expansion (it commutes
with zero insertion and nearest upsampling, since GELU(0) = 0), and each expansion is
separable: a column pass, then a row pass that writes whole output rows. Both are r-periodic
filters with integer counts (`tap_counts`; the 1/k² is applied to the small grid after the
GELU), so each output phase is one copy or add of shifted views of a zero-bordered workspace.
Box∘Place_r depends on the neuron's own PixelShuffle phase (k mod r², = id mod r²), so the
pass along each axis runs once per phase along that axis, on the strided view of the
chunk's neurons that have it. The pieces GELU(P)/k² of the whole layer are computed once per
layer input; workspaces live in a `Pipeline` reused for every chunk, and the last pass writes
straight into the caller's output. On CPU the same chain runs fused in C (`fused`, expand.c:
one neuron at a time, in cache; the same sums, equal up to float rounding), and
these torch ops are the fallback and the CUDA path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xinc.canvas._common import InputCache
from xinc.canvas.nerv import fused
from xinc.canvas.nerv.layers import layer_conv, n_neurons, per_kernel_conv
from xinc.canvas.nerv.stages import Stage, Taps, stages, tap_counts
from xinc.models.nerv import NeRV


def _combine(dst: torch.Tensor, terms: list[tuple[torch.Tensor, int]]) -> None:
    """dst = Σ m·src over `terms` (integer counts m), in one op for the filters' cases."""
    if len(terms) == 2 and 1 in (terms[0][1], terms[1][1]):
        (a, _), (b, m_b) = terms if terms[0][1] == 1 else terms[::-1]
        torch.add(a, b, alpha=m_b, out=dst)
    elif len(terms) == 1 and terms[0][1] == 1:
        dst.copy_(terms[0][0])
    elif terms:
        torch.mul(terms[0][0], terms[0][1], out=dst)
        for src, m in terms[1:]:
            dst.add_(src, alpha=m)
    else:
        dst.zero_()


def _filter(g: torch.Tensor, taps: Taps, dim: int, out: torch.Tensor, pad: int) -> None:
    """out = the r-periodic filter `taps` (r = len(taps); counts, so g carries the 1/k) of g
    along `dim`, where g has `pad` ≥ |offset| zeros at both ends of `dim`: one op per output
    phase."""
    length = out.shape[dim] // len(taps)
    phases = out.unflatten(dim, (length, len(taps))).unbind(dim + 1)
    for view, row in zip(phases, taps, strict=True):
        _combine(view, [(g.narrow(dim, pad + o, length), m) for o, m in row])


def _activate(act: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """act(t), in place for GELU (`t` is always a workspace or piece this module owns)."""
    if isinstance(act, nn.GELU):
        return torch.ops.aten.gelu_(t, approximate=act.approximate)
    return act(t)


def aligned_cover(ids: torch.Tensor, r: int) -> torch.Tensor:
    """The whole phase groups [r²·m, r²·m + r²) holding `ids` (sorted): neuron id ≡ its
    PixelShuffle phase mod r², since C_in·K and K are multiples of r². `ids` itself when it
    already is such a range (the chunks of `iter_canvas`)."""
    n = len(ids)
    if n == 0:
        return ids
    first = int(ids[0])
    if first % (r * r) == 0 and n % (r * r) == 0 and int(ids[-1]) == first + n - 1 and \
            torch.equal(ids, torch.arange(first, first + n, device=ids.device)):
        return ids
    groups = torch.unique(ids // (r * r))
    return (groups[:, None] * (r * r) + torch.arange(r * r, device=ids.device)).flatten()


class Pipeline:
    """Reference maps of one block layer, with workspaces reused across chunks of neurons."""

    def __init__(self, model: NeRV, layer: str, bias: str) -> None:
        self.model, self.layer, self.bias = model, layer, bias
        self.conv = layer_conv(model, layer)
        self.stages = stages(model, int(layer[1:]))
        self.tables = fused.Tables(self.stages)
        self._buffers: dict[str, torch.Tensor] = {}
        self._pieces: torch.Tensor | None = None

    def _buffer(self, name: str, n: int, shape: tuple[int, ...],
                like: torch.Tensor) -> torch.Tensor:
        """Workspace `name` [n, *shape], zero-filled once: the filters write its interior, so
        its zero border stays."""
        buf = self._buffers.get(name)
        if (buf is None or buf.shape[0] < n or buf.shape[1:] != shape or buf.dtype != like.dtype
                or buf.device != like.device):
            buf = like.new_zeros((n, *shape))
            self._buffers[name] = buf
        return buf[:n]

    def _activated(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """GELU(P)/k² of neurons `ids` with the first stage's zero border on both sides of the
        width (a view of the layer's pieces for an id range)."""
        if self._pieces is None:
            stage = self.stages[0]
            every = torch.arange(n_neurons(self.model, self.layer, self.bias), device=x.device)
            pieces = F.pad(per_kernel_conv(x, self.conv, every, self.bias), (stage.pad,) * 2)
            self._pieces = _activate(stage.act, pieces).mul_(1.0 / stage.k**2)
        first, n = int(ids[0]), len(ids)
        if int(ids[-1]) - first + 1 == n:  # sorted, distinct: a contiguous range
            return self._pieces[first:first + n]
        return self._pieces[ids]

    @staticmethod
    def _place(g: torch.Tensor, stage: Stage, cols: torch.Tensor, dest: torch.Tensor) -> None:
        """dest = Box_k(Place_r(g)) (1/k² already in g) for whole phase groups of neurons:
        the column pass per column phase b, the row pass per row phase a."""
        r, pad = stage.r, stage.pad
        inner = cols.narrow(1, pad, cols.shape[1] - 2 * pad)
        g, inner, cols, dest = (t.unflatten(0, (-1, r, r)) for t in (g, inner, cols, dest))
        for b in range(r):
            _filter(g[:, :, b], tap_counts(r, stage.k, b), 3, inner[:, :, b], pad)
        for a in range(r):
            _filter(cols[:, a], tap_counts(r, stage.k, a), 2, dest[:, a], pad)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, ids: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """Maps [n, H, W] of neurons `ids`, written into `out` when given."""
        cover = aligned_cover(ids, self.stages[0].r)
        if cover is not ids and not torch.equal(cover, ids):
            maps = self(x, cover)[torch.searchsorted(cover, ids)]
            return maps if out is None else out.copy_(maps)
        g = self._activated(x, ids)  # each stage's input: zero-bordered along the width
        n = len(ids)
        if out is None:
            out = g.new_empty(n, *self.model.cfg.output_size)  # the stages end at the image
        if fused.expand(g, ids, self.tables, out):
            return out
        for s, stage in enumerate(self.stages):
            r, pad = stage.r, stage.pad
            h, w = g.shape[1], g.shape[2] - 2 * pad
            if s == len(self.stages) - 1:
                dest = following = out
            else:
                border = self.stages[s + 1].pad
                following = self._buffer(f"in{s + 1}", n, (r * h, r * w + 2 * border), g)
                dest = following.narrow(2, border, r * w)
            cols = self._buffer(f"cols{s}", n, (h + 2 * pad, r * w), g)
            if stage.placed:
                self._place(g, stage, cols, dest)
            else:
                g = _activate(stage.act, g).mul_(1.0 / stage.k**2)  # GELU(0)·c = 0: border stays
                taps = tap_counts(r, stage.k)
                _filter(g, taps, 2, cols.narrow(1, pad, h), pad)
                _filter(cols, taps, 1, dest, pad)
            g = following
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
