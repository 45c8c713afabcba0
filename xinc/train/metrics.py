"""Image-quality metrics used while training (docs/method.md §2.3)."""

from __future__ import annotations

import torch

EPS = 1e-9


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−10·log10(MSE + 1e-9) of every frame [B, ...] over all its non-batch entries → [B]."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse + EPS)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of one image (any shape), on values in [0, 1] as given (no clamping)."""
    return float(psnr_per_frame(pred.reshape(1, -1), target.reshape(1, -1))[0])


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the nearest of the 256 levels k/255."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0
