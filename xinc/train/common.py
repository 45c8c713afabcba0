"""Pieces shared by the NeRV and FFN trainers: progress bar, settings, outputs."""

from __future__ import annotations

import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from torch import nn
from tqdm import tqdm

from xinc.io import write_json
from xinc.models import count_params, save_checkpoint

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
) -> dict[str, Any]:
    """Save the checkpoint, then metrics.json (so a complete metrics file implies a checkpoint)."""
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
    }
    write_json(metrics_path, metrics)
    return metrics
