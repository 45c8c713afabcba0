"""Fit one Fourier-feature MLP to one frame (docs/method.md §2.2)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.device import describe_device, reproducible, resolve_device
from xinc.models import ffn_coords, initial_model, model_config
from xinc.train.common import LOG, parse_settings, progress_bar, quantized_metrics, write_outputs
from xinc.train.metrics import psnr, quantize_8bit
from xinc.train.resume import (
    default_state_path,
    fingerprint,
    load_state,
    remove_state,
    restore_rng_states,
    rng_states,
    save_state,
)


@dataclass(frozen=True)
class FFNTrainConfig:
    """Training settings; defaults follow the authors' (Adam 9e-4 constant, full-image steps)."""

    steps: int = 1000
    lr: float = 9e-4
    eval_every: int = 50
    checkpoint_every: int = 0  # steps between resumable state files; 0 = never
    # models trained together by `train_ffn_batch` (0 = automatic: all of them on a GPU, a
    # few at a time on the CPU); the one-model `train_ffn` ignores it
    batch_models: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"FFN training setting {name} must be ≥ 1")
        for name in ("checkpoint_every", "batch_models"):
            if getattr(self, name) < 0:
                raise ValueError(f"FFN training setting {name} must be ≥ 0 (0 = {_ZERO[name]})")
        if self.lr <= 0:
            raise ValueError("FFN training setting lr must be positive")


_ZERO = {"checkpoint_every": "never", "batch_models": "automatic"}


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
    state_path: str | Path | None = None,
) -> dict[str, Any]:
    """Fit an FFN to `frame` (uint8 [H, W, 3]) with full-image Adam steps on the MSE.

    Evaluates every `eval_every` steps and after the last; the weights with the best PSNR are
    saved to `ckpt_path` (meta: height, width, seed, psnr, plus `meta`: the caller adds the frame
    index `frame` and the video length `frames`), then `metrics_path` is written. Returns the
    metrics dict (psnr = best PSNR).

    The Fourier features of the fixed pixel grid are computed once (B is not trained), which
    gives the same numbers as recomputing them every step. Resuming as `train_nerv`: state every
    `checkpoint_every` steps in `state_path` (default `<ckpt_path>.state`), continued from when
    present and from the same run (else set aside with a warning), removed after the outputs
    are written.
    """
    cfg = parse_settings(FFNTrainConfig, train_settings, "FFN training")
    target = ffn_target(frame)
    height, width = np.shape(frame)[:2]
    dev = resolve_device(device)
    state_file = Path(state_path) if state_path is not None else default_state_path(ckpt_path)
    run_id = fingerprint("ffn", model_config("ffn", model_settings).to_dict(), cfg, seed, frame)
    start = time.perf_counter()
    with reproducible(dev):
        model = initial_model("ffn", model_settings, seed).to(dev)
        coords = ffn_coords(height, width, model.cfg.coords).to(dev)
        target = target.to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        history: list[list[float]] = []
        best, best_state = float("-inf"), None
        first_step, seconds_before = 0, 0.0
        state = load_state(state_file, run_id, map_location=dev)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            restore_rng_states(state["rng"], dev)
            first_step, history = state["step"], state["history"]
            best, best_state = state["best"], state["best_state"]
            seconds_before = state["seconds"]
            LOG.info("resumed FFN training from %s at step %d/%d", state_file, first_step,
                     cfg.steps)
        with torch.no_grad():
            features = model.positional_encoding(coords)
        with progress_bar(cfg.steps, "ffn steps", progress) as bar:
            bar.update(first_step)
            for step in range(first_step, cfg.steps):
                loss = (ffn_head(model, features) - target).pow(2).mean()
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
                done = step + 1
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                    save_training_state(
                        state_file,
                        run_id,
                        {
                            "step": done,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "rng": rng_states(dev),
                            "history": history,
                            "best": best,
                            "best_state": best_state,
                            "seconds": seconds_before + time.perf_counter() - start,
                        },
                    )
        model.load_state_dict(best_state)
        seconds = seconds_before + time.perf_counter() - start
    base_meta = {"height": height, "width": width, "seed": seed, "psnr": best}
    metrics = write_outputs(
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
        extra=quantized_metrics(model, lambda m: evaluate_ffn(m, coords, target), height * width),
    )
    remove_state(state_file)
    return metrics


def ffn_head(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The FFN's layers applied to precomputed Fourier features (= `model(coords)`)."""
    x = features
    for layer in model.net:
        x = layer(x)
    return x


def save_training_state(path: Path, run_id: dict[str, Any], state: dict[str, Any]) -> None:
    """Write a resumable state file (a module-level name, so tests can interrupt after it)."""
    save_state(path, run_id, state)
    LOG.info("saved training state to %s (step %d)", path, state["step"])
