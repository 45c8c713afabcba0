"""Fit one Fourier-feature MLP to one frame (docs/method.md §2.2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.config import schema_defaults
from xinc.device import describe_device, reproducible, resolve_device
from xinc.models import ffn_coords, initial_model, model_config
from xinc.train.common import LOG, parse_settings, quantized_metrics, write_outputs
from xinc.train.loop import Fit, Loop, run_resumable
from xinc.train.metrics import psnr, quantize_8bit
from xinc.train.resume import default_state_path, fingerprint, remove_state, save_state

DEFAULTS = schema_defaults("train", "ffn")  # config.schema.yaml: one source of the defaults


@dataclass(frozen=True)
class FFNTrainConfig:
    """Training settings; defaults are the schema's `train.ffn` (the authors' Adam 9e-4
    constant, 1000 full-image steps, PSNR every 250)."""

    steps: int = DEFAULTS["steps"]
    lr: float = DEFAULTS["lr"]
    eval_every: int = DEFAULTS["eval_every"]
    checkpoint_every: int = DEFAULTS["checkpoint_every"]  # steps between state files; 0 = never
    # models trained together by `train_ffn_batch` (0 = automatic: all of them on a GPU, a
    # few at a time on the CPU); the one-model `train_ffn` ignores it
    batch_models: int = DEFAULTS["batch_models"]

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


def train_ffn(frame: np.ndarray, model_settings: dict[str, Any],
              train_settings: dict[str, Any], *, seed: int, ckpt_path: str | Path,
              metrics_path: str | Path, device: str | torch.device = "auto",
              meta: dict[str, Any] | None = None, progress: bool = True,
              state_path: str | Path | None = None) -> dict[str, Any]:
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
    loop = Loop("step", cfg.steps, cfg.eval_every, cfg.checkpoint_every,
                lambda state: save_training_state(state_file, run_id, state))
    with reproducible(dev):
        model = initial_model("ffn", model_settings, seed).to(dev)
        coords = ffn_coords(height, width, model.cfg.coords).to(dev)
        fit = FFNFit(model, coords, target.to(dev), cfg)
        run_resumable(fit, loop, state_file, run_id, name="FFN", progress=progress)
        model.load_state_dict(fit.best_state)
        seconds = loop.seconds()
    base_meta = {"height": height, "width": width, "seed": seed, "psnr": fit.best}
    metrics = write_outputs(
        model, arch="ffn", ckpt_path=ckpt_path, metrics_path=metrics_path,
        meta=base_meta | (meta or {}), psnr=fit.best, history=fit.history, seconds=seconds,
        device=describe_device(dev), seed=seed,
        extra=quantized_metrics(model, lambda m: evaluate_ffn(m, coords, fit.target),
                                height * width))
    remove_state(state_file)
    return metrics


class FFNFit(Fit):
    """FFN steps: full-image Adam on precomputed Fourier features; the best weights kept."""

    def __init__(self, model: nn.Module, coords: torch.Tensor, target: torch.Tensor,
                 cfg: FFNTrainConfig) -> None:
        self.model, self.coords, self.target, self.cfg = model, coords, target, cfg
        self.device = target.device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.history: list[list[float]] = []
        self.best, self.best_state = float("-inf"), None
        self.score = float("nan")
        self.loss = torch.zeros(())
        with torch.no_grad():
            self.features = model.positional_encoding(coords)

    def step(self, index: int) -> None:
        self.loss = (ffn_head(self.model, self.features) - self.target).pow(2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss.backward()
        self.optimizer.step()

    def evaluate(self, done: int) -> None:
        self.score = evaluate_ffn(self.model, self.coords, self.target)
        self.history.append([done, self.score])
        LOG.info("step %d/%d  psnr %.2f dB", done, self.cfg.steps, self.score)
        if self.best_state is None or self.score > self.best:
            self.best = self.score
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def postfix(self, evaluated: bool) -> dict[str, str] | None:
        if not evaluated:
            return None
        return {"loss": f"{self.loss.item():.3g}", "psnr": f"{self.score:.2f}",
                "best": f"{self.best:.2f}"}

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "history": self.history, "best": self.best, "best_state": self.best_state}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history, self.best = state["history"], state["best"]
        self.best_state = state["best_state"]


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
