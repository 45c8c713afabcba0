"""Fit one NeRV to one video (docs/method.md §2.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xinc.config import schema_defaults
from xinc.device import describe_device, reproducible, resolve_device
from xinc.models import initial_model, model_config
from xinc.models.nerv import NeRVConfig
from xinc.train.common import LOG, parse_settings, quantized_metrics, write_outputs
from xinc.train.loop import Fit, Loop, run_resumable
from xinc.train.metrics import psnr_per_frame
from xinc.train.resume import default_state_path, fingerprint, remove_state, save_state
from xinc.train.schedule import warmup_cosine_lr

EVAL_CHUNK = 8
DEFAULTS = schema_defaults("train", "nerv")  # config.schema.yaml: one source of the defaults


@dataclass(frozen=True)
class NeRVTrainConfig:
    """Training settings; defaults are the schema's `train.nerv` (the authors' batch 2, lr 1e-3,
    `cosine_0.1_1_0.1`, 1000 epochs)."""

    epochs: int = DEFAULTS["epochs"]
    lr: float = DEFAULTS["lr"]
    batch_size: int = DEFAULTS["batch_size"]
    eval_every: int = DEFAULTS["eval_every"]
    warmup: float = DEFAULTS["warmup"]
    checkpoint_every: int = DEFAULTS["checkpoint_every"]  # epochs between state files; 0 = never

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"NeRV training setting {name} must be ≥ 1")
        if self.checkpoint_every < 0:
            raise ValueError("NeRV training setting checkpoint_every must be ≥ 0 (0 = never)")
        if self.lr <= 0:
            raise ValueError("NeRV training setting lr must be positive")


def nerv_inputs(frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame times t = i/T (float64 [T]) and targets (float32 [T, 3, H, W]) from [T, H, W, 3]."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"NeRV frames must have shape [T, H, W, 3], got {frames.shape}")
    n = frames.shape[0]
    t = torch.arange(n, dtype=torch.float64) / n
    targets = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    return t, targets.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def evaluate_nerv(model: nn.Module, t: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over frames of the per-frame PSNR of the unclamped output (frames in order)."""
    scores = [
        psnr_per_frame(model(t[i : i + EVAL_CHUNK]), targets[i : i + EVAL_CHUNK])
        for i in range(0, len(t), EVAL_CHUNK)
    ]
    return float(torch.cat(scores).mean())


def train_nerv(frames: np.ndarray, model_settings: dict[str, Any],
               train_settings: dict[str, Any], *, seed: int, ckpt_path: str | Path,
               metrics_path: str | Path, device: str | torch.device = "auto",
               meta: dict[str, Any] | None = None, progress: bool = True,
               state_path: str | Path | None = None) -> dict[str, Any]:
    """Fit a NeRV to `frames` (float32 [T, H, W, 3], the unclamped bicubic targets).

    Adam with the warm-up + cosine schedule set every iteration, shuffled batches (seeded,
    drop_last), per-frame MSE averaged over the batch. PSNR every `eval_every` epochs and at the
    end. Writes the final weights to `ckpt_path` (meta: frames, height, width, seed, psnr, plus
    `meta`), then `metrics_path`; returns the metrics dict.

    Resuming (xinc.train.resume): every `checkpoint_every` epochs (setting; 0 = never) the
    training state is written to `state_path` (default `<ckpt_path>.state`). If that file exists
    at start and comes from the same settings, seed and frames, training continues from it; one
    from another run, or unreadable, is set aside as `<state>.stale-<UTC time>` (or
    `.unreadable-…`) with a warning and training starts from scratch. The state file is removed
    once the outputs are written.
    """
    cfg = parse_settings(NeRVTrainConfig, train_settings, "NeRV training")
    t, targets = nerv_inputs(frames)
    n_frames, _, height, width = targets.shape
    model_cfg = nerv_config(model_settings, height, width)
    if cfg.batch_size > n_frames:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the number of frames {n_frames}")
    dev = resolve_device(device)
    state_file = Path(state_path) if state_path is not None else default_state_path(ckpt_path)
    run_id = fingerprint("nerv", model_cfg.to_dict(), cfg, seed, frames)
    loop = Loop("epoch", cfg.epochs, cfg.eval_every, cfg.checkpoint_every,
                lambda state: save_training_state(state_file, run_id, state))
    with reproducible(dev):
        model = initial_model("nerv", model_settings, seed).to(dev)
        fit = NeRVFit(model, t.to(dev), targets.to(dev), cfg, seed)
        run_resumable(fit, loop, state_file, run_id, name="NeRV", progress=progress)
        seconds = loop.seconds()
    score = fit.score()
    base_meta = {"frames": n_frames, "height": height, "width": width, "seed": seed, "psnr": score}
    metrics = write_outputs(
        model, arch="nerv", ckpt_path=ckpt_path, metrics_path=metrics_path,
        meta=base_meta | (meta or {}), psnr=score, history=fit.history, seconds=seconds,
        device=describe_device(dev), seed=seed,
        extra=quantized_metrics(model, lambda m: evaluate_nerv(m, fit.t, fit.targets),
                                n_frames * height * width, frames=n_frames))
    remove_state(state_file)
    return metrics


def nerv_config(model_settings: dict[str, Any], height: int, width: int) -> NeRVConfig:
    """The NeRV's config, checked to render `height`×`width` frames."""
    model_cfg = model_config("nerv", model_settings)
    if model_cfg.output_size != (height, width):
        scale = math.prod(model_cfg.strides)
        raise ValueError(
            f"NeRV renders {model_cfg.output_size[0]}×{model_cfg.output_size[1]} "
            f"(fc_hw {list(model_cfg.fc_hw)} × prod(strides {list(model_cfg.strides)}) = "
            f"×{scale}) but the frames are {height}×{width}; set fc_hw to "
            f"[{height / scale:g}, {width / scale:g}] or resize the frames"
        )
    return model_cfg


class NeRVFit(Fit):
    """NeRV epochs: shuffled batches of frames, the learning rate set every iteration."""

    def __init__(self, model: nn.Module, t: torch.Tensor, targets: torch.Tensor,
                 cfg: NeRVTrainConfig, seed: int) -> None:
        self.model, self.t, self.targets, self.cfg = model, t, targets, cfg
        self.device = t.device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                                          fused=True)
        self.generator = torch.Generator().manual_seed(seed)  # the order of the frames
        self.iters = len(t) // cfg.batch_size
        self.history: list[list[float]] = []
        self.loss_sum = torch.zeros((), device=self.device)

    def score(self) -> float:
        """The latest PSNR (NaN before the first evaluation)."""
        return self.history[-1][1] if self.history else float("nan")

    def step(self, index: int) -> None:
        cfg, iters, model, t, targets = self.cfg, self.iters, self.model, self.t, self.targets
        order = torch.randperm(len(t), generator=self.generator).to(self.device)
        self.loss_sum = torch.zeros((), device=self.device)
        for it in range(iters):
            lr = warmup_cosine_lr((index + it / iters) / cfg.epochs, cfg.lr, cfg.warmup)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            idx = order[it * cfg.batch_size : (it + 1) * cfg.batch_size]
            loss = (model(t[idx]) - targets[idx]).pow(2).flatten(1).mean(dim=1).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.loss_sum += loss.detach()

    def evaluate(self, done: int) -> None:
        score = evaluate_nerv(self.model, self.t, self.targets)
        self.history.append([done, score])
        LOG.info("epoch %d/%d  psnr %.2f dB", done, self.cfg.epochs, score)

    def postfix(self, evaluated: bool) -> dict[str, str]:
        return {"loss": f"{float(self.loss_sum) / self.iters:.3g}", "psnr": f"{self.score():.2f}"}

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "history": self.history}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = state["history"]


def save_training_state(path: Path, run_id: dict[str, Any], state: dict[str, Any]) -> None:
    """Write a resumable state file (a module-level name, so tests can interrupt after it)."""
    save_state(path, run_id, state)
    LOG.info("saved training state to %s (epoch %d)", path, state["epoch"])
