"""Pieces shared by the NeRV and FFN trainers: progress bar, settings, outputs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from torch import nn
from tqdm import tqdm

from xinc.io import write_json
from xinc.models import count_params, save_checkpoint
from xinc.train.quantize import bits_per_pixel, quantized_copy

T = TypeVar("T")

PROGRESS_INTERVAL_S = 10.0
LOG = logging.getLogger("xinc.train")


def parse_settings(cls: type[T], settings: dict[str, Any], what: str) -> T:
    """Build the settings dataclass `cls`; unknown keys are an error that names the allowed ones."""
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; allowed: {sorted(allowed)}")
    return cls(**settings)


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr that redraws at most every 10 s (log files stay short)."""
    return tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        mininterval=PROGRESS_INTERVAL_S,
        ascii=True,
        dynamic_ncols=False,
        disable=not enabled,
    )


def write_outputs(
    model: nn.Module,
    *,
    arch: str,
    ckpt_path: str | Path,
    metrics_path: str | Path,
    meta: dict[str, Any],
    psnr: float,
    history: list[list[float]],
    seconds: float,
    device: str,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save the checkpoint, then metrics.json (so a complete metrics file implies a checkpoint).

    `extra` adds metrics, e.g. those of `quantized_metrics`.
    """
    ckpt_path = Path(ckpt_path)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ckpt_path, model, meta)
    metrics = {
        "arch": arch,
        "params": count_params(model),
        "psnr": psnr,
        "psnr_history": history,
        "seconds": seconds,
        "device": device,
        "seed": seed,
        **(extra or {}),
    }
    write_json(metrics_path, metrics)
    return metrics


def quantized_metrics(model: nn.Module, evaluate: Callable[[nn.Module], float], n_pixels: int,
                      frames: int | None = None) -> dict[str, float]:
    """PSNR at 8-bit weights (and 6-bit frame encodings for a NeRV of `frames` frames) and the
    Huffman-coded size of those weights in bits per pixel and per parameter
    (docs/method.md §2.4)."""
    cost = bits_per_pixel(model, n_pixels, frames=frames)
    return {
        "psnr_q8": evaluate(quantized_copy(model, 8, frames=frames)),
        "bpp": cost["bpp"],
        "bits_per_param": cost["bits_per_param_with_overhead"],
    }
