"""The timed variants of `xinc bench train` (xinc.bench.train): what each one runs.

A variant maps the work of one timed run (epochs or steps) to its wall seconds. NeRV: our
`train_nerv` against `textbook_nerv`, a plain PyTorch loop of the same recipe; FFN: `train_ffn`
one model after another against `train_ffn_batch` in groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xinc.models import build_model, count_params
from xinc.train.ffn import train_ffn
from xinc.train.ffn_batched import AUTO_GROUP, train_ffn_batch
from xinc.train.metrics import psnr_per_frame
from xinc.train.nerv import EVAL_CHUNK, NeRVTrainConfig, nerv_inputs, train_nerv
from xinc.train.schedule import warmup_cosine_lr

Variant = Callable[[int], float]  # work (epochs or steps) → seconds


@dataclass(frozen=True)
class Setup:
    """What every variant of one benchmark shares: video shape, model, device, seed, folder."""

    frames: int
    height: int
    width: int
    settings: dict[str, Any]
    device: torch.device
    seed: int
    out: Path


@dataclass(frozen=True)
class Variants:
    """The variants of one benchmark and how to read their timings."""

    runs: dict[str, Variant]
    baseline: str
    unit: str  # "s/epoch" (lower is faster) or "models/min" (higher is faster)
    work: dict[str, int]  # {"epochs": E} or {"steps": S}: the work of one timed run
    params: int
    per_unit: Callable[[float], float]  # seconds of one timed run → unit
    notes: list[str]


def interleave(variants: dict[str, Variant], repeats: int, work: int) -> dict[str, list[float]]:
    """An untimed warm-up of each (1 epoch/step), then `repeats` rounds in alternating order."""
    names = list(variants)
    for name in names:
        variants[name](1)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            timings[name].append(variants[name](work))
    return timings


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn: Callable[[], Any], dev: torch.device) -> float:
    _sync(dev)
    start = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - start


# --- NeRV -----------------------------------------------------------------------------------


def textbook_nerv(video: np.ndarray, model_settings: dict[str, Any], *, epochs: int, seed: int,
                  device: torch.device, ckpt_path: Path) -> float:
    """A plain PyTorch loop of the NeRV recipe; returns the final mean PSNR."""
    cfg = NeRVTrainConfig(epochs=epochs)
    torch.manual_seed(seed)
    model = build_model("nerv", model_settings).to(device)
    t, targets = nerv_inputs(video)
    t, targets = t.to(device), targets.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(t)
    iters = n // cfg.batch_size
    for epoch in range(epochs):
        order = torch.randperm(n, device=device)
        for it in range(iters):
            lr = warmup_cosine_lr((epoch + it / iters) / epochs, cfg.lr, cfg.warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[it * cfg.batch_size : (it + 1) * cfg.batch_size]
            loss = F.mse_loss(model(t[idx]), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        scores = [psnr_per_frame(model(t[i : i + EVAL_CHUNK]), targets[i : i + EVAL_CHUNK])
                  for i in range(0, n, EVAL_CHUNK)]
    torch.save(model.state_dict(), ckpt_path)
    return float(torch.cat(scores).mean())


def _marginal(run: Variant) -> Variant:
    """Seconds of `epochs` epochs without the fixed per-run costs: T(1 + epochs) − T(1)."""
    return lambda epochs: run(1 + epochs) - run(1)


def nerv_variants(setup: Setup, epochs: int) -> Variants:
    """`train_nerv` against the textbook loop, in seconds per epoch."""
    s = setup
    video = np.random.default_rng(s.seed).random((s.frames, s.height, s.width, 3),
                                                 dtype=np.float32)

    def ours(epochs: int) -> float:
        train = {"epochs": epochs, "eval_every": epochs, "checkpoint_every": 0}
        return _timed(lambda: train_nerv(video, s.settings, train, seed=s.seed,
                                         ckpt_path=s.out / "nerv.pt",
                                         metrics_path=s.out / "nerv.json", device=s.device,
                                         progress=False), s.device)

    def textbook(epochs: int) -> float:
        return _timed(lambda: textbook_nerv(video, s.settings, epochs=epochs, seed=s.seed,
                                            device=s.device, ckpt_path=s.out / "textbook.pt"),
                      s.device)

    return Variants(
        runs={"train_nerv": _marginal(ours), "textbook": _marginal(textbook)},
        baseline="textbook", unit="s/epoch", work={"epochs": epochs},
        params=count_params(build_model("nerv", s.settings)),
        per_unit=lambda seconds: seconds / epochs,
        notes=[
            "s/epoch = (T(1 + E) − T(1)) / E of two end-to-end runs, so the fixed costs of a run "
            "(model construction, final evaluation, 8-bit quantised evaluation, checkpoint) "
            "cancel out",
            "train_nerv runs under xinc.device.reproducible (deterministic algorithms, no TF32);"
            " the textbook loop under PyTorch's defaults",
        ])


# --- FFN ------------------------------------------------------------------------------------


def ffn_variants(setup: Setup, steps: int, batch_models: Sequence[int]) -> Variants:
    """`train_ffn` one by one against `train_ffn_batch` per group size, in models per minute."""
    s = setup
    video = np.random.default_rng(s.seed).integers(0, 256, (s.frames, s.height, s.width, 3),
                                                   dtype=np.uint8)

    def one_by_one(steps: int) -> float:
        train = {"steps": steps, "eval_every": steps, "checkpoint_every": 0}

        def fit_all() -> None:
            for i in range(s.frames):
                train_ffn(video[i], s.settings, train, seed=s.seed, ckpt_path=s.out / "ffn.pt",
                          metrics_path=s.out / "ffn.json", device=s.device, progress=False)

        return _timed(fit_all, s.device)

    def batched(group: int) -> Variant:
        def fit(steps: int) -> float:
            train = {"steps": steps, "eval_every": steps, "batch_models": group,
                     "checkpoint_every": 0}
            outputs = [(s.out / f"b{i}.pt", s.out / f"b{i}.json") for i in range(s.frames)]
            return _timed(lambda: train_ffn_batch(video, s.settings, train, seeds=[s.seed],
                                                  frame_ids=list(range(s.frames)),
                                                  outputs=outputs, device=s.device,
                                                  progress=False), s.device)

        return fit

    runs: dict[str, Variant] = {"one_by_one": one_by_one}
    auto = AUTO_GROUP.get(s.device.type, s.frames)
    for group in dict.fromkeys(batch_models):
        name = f"batched_auto{min(auto, s.frames)}" if group == 0 else f"batched{group}"
        runs[name] = batched(group)
    return Variants(
        runs=runs, baseline="one_by_one", unit="models/min", work={"steps": steps},
        params=count_params(build_model("ffn", s.settings)),
        per_unit=lambda seconds: 60.0 * s.frames / seconds,
        notes=[
            f"each timed run: {s.frames} FFNs × {steps} full-image Adam steps, one evaluation "
            "each, checkpoints and metrics written",
            "batchedK: train_ffn_batch with K models per group (auto = the device default)",
        ])
