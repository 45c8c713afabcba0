"""Fit one Fourier-feature MLP to one frame (models.md §3.4)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.device import describe_device, reproducible, resolve_device
from xinc.models import build_model, ffn_coords
from xinc.train.common import LOG, parse_settings, progress_bar, write_outputs
from xinc.train.metrics import psnr, quantize_8bit


@dataclass(frozen=True)
class FFNTrainConfig:
    """Training settings; defaults follow the authors' (Adam 9e-4 constant, full-image steps)."""

    steps: int = 1000
    lr: float = 9e-4
    eval_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"FFN training setting {name} must be ≥ 1")
        if self.lr <= 0:
            raise ValueError("FFN training setting lr must be positive")


def ffn_target(frame: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] → float32 [H·W, 3] in [0, 1] (row-major, as `ffn_coords`)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"FFN frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    return torch.from_numpy(frame.reshape(-1, 3).astype(np.float32) / 255.0)


@torch.no_grad()
def evaluate_ffn(model: nn.Module, coords: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of the output clamped to [0, 1] and rounded to 8-bit levels."""
    return psnr(quantize_8bit(model(coords)), target)


def train_ffn(
    frame: np.ndarray,
    model_settings: dict[str, Any],
    train_settings: dict[str, Any],
    *,
    seed: int,
    ckpt_path: str | Path,
    metrics_path: str | Path,
    device: str | torch.device = "auto",
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit an FFN to `frame` (uint8 [H, W, 3]) with full-image Adam steps on the MSE.

    Evaluates every `eval_every` steps and after the last; the weights with the best PSNR are
    saved to `ckpt_path` (meta: height, width, seed, psnr, plus `meta`: the caller adds the frame
    index `frame` and the video length `frames`), then `metrics_path` is written. Returns the
    metrics dict (psnr = best PSNR).
    """
    cfg = parse_settings(FFNTrainConfig, train_settings, "FFN training")
    target = ffn_target(frame)
    height, width = np.shape(frame)[:2]
    dev = resolve_device(device)
    start = time.perf_counter()
    with reproducible(dev):
        torch.manual_seed(seed)
        model = build_model("ffn", model_settings).to(dev)
        coords = ffn_coords(height, width, model.cfg.coords).to(dev)
        target = target.to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        history: list[list[float]] = []
        best, best_state = float("-inf"), None
        with progress_bar(cfg.steps, "ffn steps", progress) as bar:
            for step in range(cfg.steps):
                loss = (model(coords) - target).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                    score = evaluate_ffn(model, coords, target)
                    history.append([step + 1, score])
                    LOG.info("step %d/%d  psnr %.2f dB", step + 1, cfg.steps, score)
                    if best_state is None or score > best:
                        best = score
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    bar.set_postfix(
                        loss=f"{loss.item():.3g}",
                        psnr=f"{score:.2f}",
                        best=f"{best:.2f}",
                        refresh=False,
                    )
                bar.update()
        model.load_state_dict(best_state)
        seconds = time.perf_counter() - start
    base_meta = {"height": height, "width": width, "seed": seed, "psnr": best}
    return write_outputs(
        model,
        arch="ffn",
        ckpt_path=ckpt_path,
        metrics_path=metrics_path,
        meta=base_meta | (meta or {}),
        psnr=best,
        history=history,
        seconds=seconds,
        device=describe_device(dev),
        seed=seed,
    )
