"""Exact NeRV block maps by probing the linearised downstream network (fewer pushes).

Under the rescale rule the map of kernel (i, k) of block j is linear in its piece P[i, k]
(h×w values on the conv's own grid): R[i, k] = M_k P[i, k], where M_k (one per conv output
channel k: its post-shuffle channel and phase) maps a piece to the summed-RGB head
pre-activation. An impulse at grid cell (y, x) only reaches a small box of the image around
(U_y·y, U_x·x) (U = image size / grid size), so impulses s cells apart never share a pixel:
s_y·s_x pushes of impulse combs through the real network (`push_exact`) give every column of
M_k, kept as [kh·kw, h·w] blocks. A map is then one `fold` (col2im) of P-weighted blocks.
Block 1 at paper size needs 4 pushes per k (1,984) instead of one per kernel (18,352).

The box is found once per layer from a structural push (|W|, unit gains) of one impulse in
the middle of the grid; `Prober.usable` is False (use the direct pushes) when that box touches
the image border or when probing would not need fewer pushes than there are kernels per k.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xinc.canvas.nerv.layers import layer_conv, place
from xinc.models.nerv import NeRV

PROBE_BYTES = 512 << 20  # cap on the cached blocks of one layer


@torch.no_grad()
def _support(model: NeRV, j: int, grid: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(lo_y, hi_y, lo_x, hi_x): image rows/cols reached by an impulse at the middle grid cell
    (all channels and phases), relative to U·cell; None if the box touches the border."""
    block = model.blocks[j - 1]
    r = block.shuffle.upscale_factor
    h, w = grid
    yc, xc = h // 2, w // 2
    v = torch.zeros(1, block.conv.out_channels // (r * r), r * h, r * w, dtype=torch.float64)
    v[..., r * yc:r * yc + r, r * xc:r * xc + r] = 1.0
    for later in [*model.blocks[j:], model.head]:
        conv = later.conv if later is not model.head else later
        v = F.conv2d(v, conv.weight.detach().abs().double().cpu(), None, conv.stride,
                     conv.padding, conv.dilation)
        if later is not model.head:
            v = later.shuffle(v)
    hit = v.sum((0, 1)) > 0
    rows, cols = hit.any(1).nonzero()[:, 0], hit.any(0).nonzero()[:, 0]
    big_h, big_w = hit.shape
    if rows[0] == 0 or cols[0] == 0 or rows[-1] == big_h - 1 or cols[-1] == big_w - 1:
        return None
    uy, ux = big_h // h, big_w // w
    return (int(rows[0]) - uy * yc, int(rows[-1]) - uy * yc, int(cols[0]) - ux * xc,
            int(cols[-1]) - ux * xc)


def _spacing(lo: int, hi: int, u: int) -> tuple[int, int, int]:
    """(pad, offset, s): the box [offset − pad, offset + u + pad) of a cell holds its support
    [lo, hi], and no box holds any of the support of a cell s away (pad ≥ |offset|)."""
    offset = (lo + hi - (u - 1)) // 2
    lo, hi = lo - offset, hi - offset
    pad = max(0, -lo, hi - (u - 1), abs(offset))
    s = max(math.floor((u + pad - 1 - lo) / u), math.floor((hi + pad) / u)) + 1
    return pad, offset, s


class Prober:
    """Blocks of M_k for one block layer and one input (gains fixed by the forward pass)."""

    def __init__(self, model: NeRV, x: torch.Tensor, layer: str, gains: list[torch.Tensor],
                 push) -> None:
        # the input itself is not kept (the one-slot caches key on it by weak reference)
        self.model, self.gains, self.push = model, gains, push
        self.device, self.dtype = x.device, x.dtype
        self.j = int(layer[1:])
        self.conv = layer_conv(model, layer)
        self.r = model.blocks[self.j - 1].shuffle.upscale_factor
        self.grid = gains[0].shape[1] // self.r, gains[0].shape[2] // self.r
        height, width = model.cfg.output_size
        self.unit = height // self.grid[0], width // self.grid[1]
        support = _support(model, self.j, self.grid)
        self.usable = False
        if support is None:
            return
        (self.pad_y, self.off_y, self.s_y), (self.pad_x, self.off_x, self.s_x) = (
            _spacing(support[0], support[1], self.unit[0]),
            _spacing(support[2], support[3], self.unit[1]))
        self.kernel = self.unit[0] + 2 * self.pad_y, self.unit[1] + 2 * self.pad_x
        # the image inside the (H + 2·pad_y) × (W + 2·pad_x) canvas that fold/unfold tile
        self.crop = self.pad_y - self.off_y, self.pad_x - self.off_x
        cells = self.grid[0] * self.grid[1]
        block_bytes = self.kernel[0] * self.kernel[1] * cells * x.element_size()
        self.usable = (self.s_y * self.s_x < self.conv.in_channels
                       and block_bytes * self.conv.out_channels <= PROBE_BYTES)
        self._blocks: dict[int, torch.Tensor] = {}

    def _combs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(comb [h, w] of impulses s apart, its cells as a bool mask over the h·w cells)."""
        h, w = self.grid
        rows = torch.arange(h, device=self.device)[:, None]
        cols = torch.arange(w, device=self.device)[None, :]
        combs = []
        for a in range(self.s_y):
            for b in range(self.s_x):
                mask = (rows % self.s_y == a) & (cols % self.s_x == b)
                combs.append((mask.to(self.dtype), mask.reshape(-1)))
        return combs

    def _build(self, ks: list[int], batch: int) -> None:
        """Blocks [kh·kw, h·w] of M_k for conv output channels `ks` (`batch` maps a push)."""
        out_ch = torch.tensor(ks, device=self.device)
        blocks = torch.zeros(len(ks), self.kernel[0] * self.kernel[1],
                             self.grid[0] * self.grid[1], dtype=self.dtype, device=self.device)
        for comb, cells in self._combs():
            for start in range(0, len(ks), batch):
                sub = out_ch[start:start + batch]
                channel = sub // (self.r * self.r)
                v = place(comb.expand(len(sub), -1, -1), sub % (self.r * self.r), self.r)
                response = self.push(self.model, self.j, v.mul_(self.gains[0][channel]),
                                     channel, self.gains, summed=True)[:, 0]
                canvas = F.pad(response[:, None], (
                    self.crop[1], 2 * self.pad_x - self.crop[1],
                    self.crop[0], 2 * self.pad_y - self.crop[0]))
                cols = F.unfold(canvas, self.kernel, stride=self.unit)
                blocks[start:start + batch, :, cells] = cols[:, :, cells]
        for k, block in zip(ks, blocks, strict=True):
            self._blocks[k] = block

    def maps(self, pieces: torch.Tensor, out_channels: torch.Tensor, batch: int,
             out: torch.Tensor | None = None) -> torch.Tensor:
        """Maps [n, H, W] of pieces [n, h, w] whose conv output channels are `out_channels`."""
        missing = sorted(set(out_channels.tolist()) - set(self._blocks))
        if missing:
            self._build(missing, batch)
        blocks = torch.stack([self._blocks[k] for k in out_channels.tolist()])
        cols = blocks.mul_(pieces.reshape(len(pieces), 1, -1))
        height, width = self.model.cfg.output_size
        canvas = F.fold(cols, (height + 2 * self.pad_y, width + 2 * self.pad_x), self.kernel,
                        stride=self.unit)[:, 0]
        maps = canvas[:, self.crop[0]:self.crop[0] + height, self.crop[1]:self.crop[1] + width]
        return maps.clone() if out is None else out.copy_(maps)
