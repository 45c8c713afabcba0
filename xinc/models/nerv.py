"""NeRV (HNeRV in "NeRV mode"): frame-index positional encoding, stem, PixelShuffle blocks, head.

Architecture and width rule as the authors' `train_nerv_all.py` (docs/method.md §1.1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class NeRVConfig:
    """Hyper-parameters of one NeRV; defaults are the paper's (978,557 parameters)."""

    pe_base: float = 1.25
    pe_levels: int = 80
    fc_hw: tuple[int, int] = (8, 16)
    strides: tuple[int, ...] = (4, 2, 2)
    kernel: int = 3
    modelsize: float = 1.0
    fc_dim: int | None = None
    reduce: float = 1.2
    lower_width: int = 6
    out: str = "tanh"
    widths: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fc_hw", tuple(int(v) for v in self.fc_hw))
        object.__setattr__(self, "strides", tuple(int(v) for v in self.strides))
        stem = self.fc_dim if self.fc_dim is not None else stem_width(self)
        widths = [int(stem)]
        for _ in self.strides:
            widths.append(max(round(widths[-1] / self.reduce), self.lower_width))
        object.__setattr__(self, "widths", tuple(widths))

    @property
    def pe_dim(self) -> int:
        return 2 * self.pe_levels

    @property
    def output_size(self) -> tuple[int, int]:
        scale = math.prod(self.strides)
        return self.fc_hw[0] * scale, self.fc_hw[1] * scale

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("widths")
        d["fc_hw"] = list(self.fc_hw)
        d["strides"] = list(self.strides)
        return d


def stem_width(cfg: NeRVConfig) -> int:
    """Stem width C from the parameter budget: positive root of a·C² + b·C − 1e6·modelsize."""
    r = cfg.reduce
    a = sum(r ** (-2 * i) * s**2 * cfg.kernel**2 for i, s in enumerate(cfg.strides)) / r
    b = cfg.pe_dim * cfg.fc_hw[0] * cfg.fc_hw[1]
    c = -1e6 * cfg.modelsize
    root = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    if root < 1:
        raise ValueError(f"NeRV modelsize {cfg.modelsize} is too small for fc_hw {cfg.fc_hw}")
    return int(root)


class PositionalEncoding(nn.Module):
    """[sin(t·ω_k), cos(t·ω_k)] with ω_k = base^k·π built in float32, trig in float64."""

    def __init__(self, base: float, levels: int) -> None:
        super().__init__()
        # the authors' exact float32 construction (Python scalar ** integer tensor, then ×π)
        omega = base ** torch.arange(levels) * math.pi
        self.register_buffer("omega", omega.to(torch.float32))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.reshape(-1, 1).to(torch.float64) * self.omega.to(torch.float64)
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1).to(torch.float32)


class NeRVBlock(nn.Module):
    """conv k×k (stride 1, same padding) → PixelShuffle(r) → GELU."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * stride**2, kernel, 1, kernel // 2)
        self.shuffle = nn.PixelShuffle(stride)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shuffle(self.conv(x)))


@dataclass
class NeRVTrace:
    """Every intermediate result of one forward pass (batch axis kept)."""

    pe: torch.Tensor
    block_inputs: list[torch.Tensor]
    head_input: torch.Tensor
    head_out: torch.Tensor
    output: torch.Tensor


class NeRV(nn.Module):
    """Maps normalised frame times t = i/T (float64, shape [B]) to frames [B, 3, H, W]."""

    def __init__(self, cfg: NeRVConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.pe = PositionalEncoding(cfg.pe_base, cfg.pe_levels)
        self.stem = nn.Conv2d(cfg.pe_dim, w[0] * cfg.fc_hw[0] * cfg.fc_hw[1], 1)
        self.stem_act = nn.GELU()
        self.blocks = nn.ModuleList(
            NeRVBlock(w[j], w[j + 1], s, cfg.kernel) for j, s in enumerate(cfg.strides)
        )
        self.head = nn.Conv2d(w[-1], 3, cfg.kernel, 1, cfg.kernel // 2)

    def output_map(self, h: torch.Tensor) -> torch.Tensor:
        """Head pre-activation → image: 0.5·tanh(h)+0.5, or h + value for a numeric `out`."""
        if self.cfg.out == "tanh":
            return 0.5 * torch.tanh(h) + 0.5
        return h + float(self.cfg.out)

    def trace(self, t: torch.Tensor) -> NeRVTrace:
        pe = self.pe(t)
        x = self.stem_act(self.stem(pe[:, :, None, None]))
        x = x.reshape(x.shape[0], self.cfg.widths[0], *self.cfg.fc_hw)
        inputs = []
        for block in self.blocks:
            inputs.append(x)
            x = block(x)
        h = self.head(x)
        return NeRVTrace(pe, inputs, x, h, self.output_map(h))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.trace(t).output

