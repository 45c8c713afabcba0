"""FFN: Fourier-feature MLP fitted to one frame (docs/method.md §1.3)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FFNConfig:
    """Hyper-parameters of one FFN; defaults are the paper's (32,971 parameters)."""

    width: int = 104
    layers: int = 3
    fourier_scale: float = 10.0
    coords: str = "reference"

    def to_dict(self) -> dict:
        return asdict(self)


def ffn_coords(height: int, width: int, mode: str = "reference") -> torch.Tensor:
    """Pixel coordinates [H·W, 2] (row, column), row-major.

    `reference`: both axes divided by max(H, W) − 1, then mapped v → 2v − 1 in float32 (the
    authors' normalisation: rows stop short of 1). `square`: each axis spans [−1, 1].
    """
    if mode == "reference":
        denom_r = denom_c = max(height, width) - 1
    elif mode == "square":
        denom_r, denom_c = max(height - 1, 1), max(width - 1, 1)
    else:
        raise ValueError(f"unknown FFN coordinate mode {mode!r} (use 'reference' or 'square')")
    rows = (torch.arange(height, dtype=torch.float32) / denom_r - 0.5) * 2
    cols = (torch.arange(width, dtype=torch.float32) / denom_c - 0.5) * 2
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)


class FourierFeatures(nn.Module):
    """γ(v) = [sin(2π·B v), cos(2π·B v)], B ~ N(0, scale²) stored as buffer `B` [n, 2]."""

    def __init__(self, n_freq: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("B", torch.randn(n_freq, 2) * scale)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        proj = (2 * torch.pi * coords) @ self.B.T
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def features_t(self, coords: torch.Tensor) -> torch.Tensor:
        """γ(v) feature-major [2n, P] (the same products as `forward`, no transpose copy)."""
        proj = self.B @ (2 * torch.pi * coords).T
        out = proj.new_empty(2 * len(proj), proj.shape[1])
        torch.sin(proj, out=out[:len(proj)])
        torch.cos(proj, out=out[len(proj):])
        return out


class FFNLayer(nn.Module):
    """Linear layer followed by ReLU (hidden) or nothing (output)."""

    def __init__(self, n_in: int, n_out: int, relu: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class FFN(nn.Module):
    """Maps pixel coordinates [P, 2] to RGB [P, 3]. State-dict keys match the authors'."""

    def __init__(self, cfg: FFNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.positional_encoding = FourierFeatures(cfg.width, cfg.fourier_scale)
        sizes = [2 * cfg.width] + [cfg.width] * (cfg.layers - 1) + [3]
        self.net = nn.ModuleList(
            FFNLayer(sizes[i], sizes[i + 1], relu=i < cfg.layers - 1) for i in range(cfg.layers)
        )

    def trace(self, coords: torch.Tensor) -> list[torch.Tensor]:
        """[γ, h1, …, h_{L-1}, y]: the inputs of every linear layer, then the output."""
        x = self.positional_encoding(coords)
        results = [x]
        for layer in self.net:
            x = layer(x)
            results.append(x)
        return results

    def inputs_t(self, coords: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Inputs of linear layers 0 … `upto` (default: all) feature-major, [n_in, P] each:
        `trace(coords)[i].T`, without a transpose copy and without the later layers."""
        x = self.positional_encoding.features_t(coords)
        inputs = [x]
        for layer in self.net[:len(self.net) - 1 if upto is None else upto]:
            x = layer.act(torch.addmm(layer.linear.bias[:, None], layer.linear.weight, x))
            inputs.append(x)
        return inputs

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.trace(coords)[-1]

    def render(self, height: int, width: int) -> torch.Tensor:
        """The predicted frame [H, W, 3] (unclamped)."""
        coords = ffn_coords(height, width, self.cfg.coords).to(self.positional_encoding.B.device)
        return self(coords).reshape(height, width, 3)
