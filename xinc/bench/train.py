"""Training-speed benchmark (`xinc bench train --arch nerv|ffn`).

- **nerv**: seconds per epoch of `train_nerv` (the paper model, docs/method.md §1.4) on a seeded
  random 30-frame video, against a plain textbook PyTorch loop of the same model and recipe
  (Adam, batch 2, warm-up + cosine lr, MSE, one evaluation and a saved state dict at the end,
  PyTorch's default numerics). Each variant trains `epochs` epochs per repeat, end to end.
- **ffn**: models per minute of N FFNs (one per frame of a seeded random video, one seed),
  trained one by one with `train_ffn` against all together with `train_ffn_batch`, each for
  `steps` full-image steps (evaluated once, at the end).

The variants run interleaved (A B, then B A, …) in one process after an untimed warm-up of each,
so slow drifts of a shared machine hit them alike. `run` returns a plain dict; `format_report`
renders it as a small table.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from xinc.device import describe_device, resolve_device
from xinc.models import build_model, count_params, model_config
from xinc.train.ffn import train_ffn
from xinc.train.ffn_batched import AUTO_GROUP, train_ffn_batch
from xinc.train.metrics import psnr_per_frame
from xinc.train.nerv import EVAL_CHUNK, NeRVTrainConfig, nerv_inputs, train_nerv
from xinc.train.schedule import warmup_cosine_lr

KINDS = ("nerv", "ffn")
PAPER_SIZE = (128, 256)


def run(
    kind: str,
    *,
    frames: int = 30,
    size: Sequence[int] = PAPER_SIZE,
    epochs: int = 2,
    steps: int = 20,
    repeats: int = 3,
    batch_models: Sequence[int] = (0,),
    model_settings: dict[str, Any] | None = None,
    device: str | torch.device = "auto",
    threads: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time the training variants of `kind` ("nerv" or "ffn"); returns a JSON-able dict.

    `size` (H, W) is the frame size; for NeRV without `model_settings` the paper model is used
    with `fc_hw` = size / 16 (so 128×256 is exactly `build_model("nerv", {})`). `epochs` (NeRV)
    or `steps` (FFN) is the work per timed run; `batch_models` lists the group sizes of the
    batched FFN variants (0 = automatic). `threads` sets torch's intra-op threads for the run.
    Keys: kind, device, threads, frames, size, params, work (epochs or steps), repeats, unit,
    variants ({name: {seconds: [per repeat], values: [unit per repeat], median, min, max}}),
    baseline (name), ratio ({name: median / baseline median}; for "s/epoch" lower is faster,
    for "models/min" higher is faster).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown benchmark {kind!r}; expected one of {KINDS}")
    height, width = (int(v) for v in size)
    if min(frames, epochs, steps, repeats, height, width) < 1:
        raise ValueError("frames, epochs, steps, repeats and the size must be ≥ 1")
    if min(batch_models, default=0) < 0:
        raise ValueError(f"batch_models must be ≥ 0 (0 = automatic), not {list(batch_models)}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be ≥ 1, not {threads}")
    try:
        dev = resolve_device(device)
    except RuntimeError as err:
        raise ValueError(f"device {str(device)!r} is not usable here ({err}); run the training "
                         "benchmark with device 'cpu' or 'auto'") from err
    with num_threads(threads), tempfile.TemporaryDirectory(prefix="xinc-bench-") as tmp:
        if kind == "nerv":
            settings = (
                model_settings if model_settings is not None else nerv_settings(height, width)
            )
            variants, extra = _nerv_variants(
                frames, height, width, epochs, settings, dev, seed, tmp
            )
            unit, work, baseline = "s/epoch", {"epochs": epochs}, "textbook"
        else:
            settings = model_settings if model_settings is not None else {}
            variants, extra = _ffn_variants(
                frames, height, width, steps, settings, batch_models, dev, seed, tmp
            )
            unit, work, baseline = "models/min", {"steps": steps}, "one_by_one"
        timings = _interleave(variants, repeats, epochs if kind == "nerv" else steps)
    per_unit = extra["per_unit"]
    result_variants = {}
    for name, seconds in timings.items():
        values = [per_unit(s) for s in seconds]
        result_variants[name] = {
            "seconds": seconds,
            "values": values,
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
    base = result_variants[baseline]["median"]
    return {
        "kind": kind,
        "device": describe_device(dev),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "frames": frames,
        "size": [height, width],
        "params": extra["params"],
        "model_settings": settings,
        **work,
        "repeats": repeats,
        "unit": unit,
        "variants": result_variants,
        "baseline": baseline,
        "ratio": {name: v["median"] / base for name, v in result_variants.items()},
        "notes": extra["notes"],
    }


def nerv_settings(height: int, width: int) -> dict[str, Any]:
    """The paper NeRV (docs/method.md §1.4) rendering `height`×`width`."""
    if (height, width) == PAPER_SIZE:
        return {}
    scale = math.prod(model_config("nerv", {}).strides)
    if height % scale or width % scale:
        raise ValueError(f"NeRV frame size {height}×{width} must be a multiple of {scale}")
    return {"fc_hw": [height // scale, width // scale]}


@contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


Variant = Callable[[int], float]  # work (epochs or steps) → seconds


def _interleave(variants: dict[str, Variant], repeats: int, work: int) -> dict[str, list[float]]:
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


def textbook_nerv(
    video: np.ndarray,
    model_settings: dict[str, Any],
    *,
    epochs: int,
    seed: int,
    device: torch.device,
    ckpt_path: Path,
) -> float:
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
        scores = [
            psnr_per_frame(model(t[i : i + EVAL_CHUNK]), targets[i : i + EVAL_CHUNK])
            for i in range(0, n, EVAL_CHUNK)
        ]
    torch.save(model.state_dict(), ckpt_path)
    return float(torch.cat(scores).mean())


def _marginal(run: Variant) -> Variant:
    """Seconds of `epochs` epochs without the fixed per-run costs: T(1 + epochs) − T(1)."""
    return lambda epochs: run(1 + epochs) - run(1)


def _nerv_variants(
    n_frames: int,
    height: int,
    width: int,
    epochs: int,
    settings: dict[str, Any],
    dev: torch.device,
    seed: int,
    tmp: str,
) -> tuple[dict[str, Variant], dict[str, Any]]:
    video = np.random.default_rng(seed).random((n_frames, height, width, 3), dtype=np.float32)
    out = Path(tmp)

    def ours(epochs: int) -> float:
        train = {"epochs": epochs, "eval_every": epochs}
        return _timed(
            lambda: train_nerv(
                video,
                settings,
                train,
                seed=seed,
                ckpt_path=out / "nerv.pt",
                metrics_path=out / "nerv.json",
                device=dev,
                progress=False,
            ),
            dev,
        )

    def textbook(epochs: int) -> float:
        return _timed(
            lambda: textbook_nerv(
                video,
                settings,
                epochs=epochs,
                seed=seed,
                device=dev,
                ckpt_path=out / "textbook.pt",
            ),
            dev,
        )

    variants = {"train_nerv": _marginal(ours), "textbook": _marginal(textbook)}
    extra = {
        "params": count_params(build_model("nerv", settings)),
        "per_unit": lambda seconds: seconds / epochs,
        "notes": [
            "s/epoch = (T(1 + E) − T(1)) / E of two end-to-end runs, so the fixed costs of a run "
            "(model construction, final evaluation, 8-bit quantised evaluation, checkpoint) "
            "cancel out",
            "train_nerv runs under xinc.device.reproducible (deterministic algorithms, no TF32);"
            " the textbook loop under PyTorch's defaults",
        ],
    }
    return variants, extra


# --- FFN ------------------------------------------------------------------------------------


def _ffn_variants(
    n_frames: int,
    height: int,
    width: int,
    steps: int,
    settings: dict[str, Any],
    batch_models: Sequence[int],
    dev: torch.device,
    seed: int,
    tmp: str,
) -> tuple[dict[str, Variant], dict[str, Any]]:
    video = np.random.default_rng(seed).integers(
        0, 256, (n_frames, height, width, 3), dtype=np.uint8
    )
    out = Path(tmp)

    def one_by_one(steps: int) -> float:
        train = {"steps": steps, "eval_every": steps}

        def fit_all() -> None:
            for i in range(n_frames):
                train_ffn(
                    video[i],
                    settings,
                    train,
                    seed=seed,
                    ckpt_path=out / "ffn.pt",
                    metrics_path=out / "ffn.json",
                    device=dev,
                    progress=False,
                )

        return _timed(fit_all, dev)

    def batched(group: int) -> Variant:
        def fit(steps: int) -> float:
            train = {"steps": steps, "eval_every": steps, "batch_models": group}
            outputs = [(out / f"b{i}.pt", out / f"b{i}.json") for i in range(n_frames)]
            return _timed(
                lambda: train_ffn_batch(
                    video,
                    settings,
                    train,
                    seeds=[seed],
                    frame_ids=list(range(n_frames)),
                    outputs=outputs,
                    device=dev,
                    progress=False,
                ),
                dev,
            )

        return fit

    variants: dict[str, Variant] = {"one_by_one": one_by_one}
    auto = AUTO_GROUP.get(dev.type, n_frames)
    for group in dict.fromkeys(batch_models):
        name = f"batched_auto{min(auto, n_frames)}" if group == 0 else f"batched{group}"
        variants[name] = batched(group)
    extra = {
        "params": count_params(build_model("ffn", settings)),
        "per_unit": lambda seconds: 60.0 * n_frames / seconds,
        "notes": [
            f"each timed run: {n_frames} FFNs × {steps} full-image Adam steps, one evaluation "
            "each, checkpoints and metrics written",
            "batchedK: train_ffn_batch with K models per group (auto = the device default)",
        ],
    }
    return variants, extra


# --- report ---------------------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    """A small text table of a `run` result."""
    height, width = result["size"]
    work = f"{result['epochs']} epochs" if result["kind"] == "nerv" else f"{result['steps']} steps"
    what = "NeRV, one per video" if result["kind"] == "nerv" else "FFNs, one per frame"
    lines = [
        f"training speed: {what}; {result['frames']} frames of {height}×{width}, "
        f"{result['params']:,} parameters per model, {work} per run, {result['repeats']} "
        f"repeats",
        f"device {result['device']}, {result['threads']} threads",
        "",
    ]
    unit = result["unit"]
    faster = "lower" if unit == "s/epoch" else "higher"
    header = (
        f"{'variant':<16}",
        f"{unit + ' median':>18}",
        f"{'min':>10}",
        f"{'max':>10}",
        f"{'vs ' + result['baseline']:>16}",
    )
    lines.append("  ".join(header))
    for name, v in result["variants"].items():
        row = (
            f"{name:<16}",
            f"{v['median']:>18.4g}",
            f"{v['min']:>10.4g}",
            f"{v['max']:>10.4g}",
            f"{result['ratio'][name]:>15.3f}×",
        )
        lines.append("  ".join(row))
    lines.append("")
    lines.append(f"({unit}: {faster} is faster)")
    lines += [f"- {note}" for note in result["notes"]]
    return "\n".join(lines)
