"""Learning-rate schedule of the authors' NeRV training (`cosine_0.1_1_0.1`,
docs/method.md §2.1)."""

from __future__ import annotations

import math


def warmup_cosine_lr(
    progress: float, base_lr: float, warmup: float = 0.1, start: float = 0.1
) -> float:
    """Learning rate at fractional training progress `progress` = (epoch + it/iters) / epochs.

    Linear warm-up from `start`·base_lr to base_lr over the first `warmup` fraction, then a half
    cosine from base_lr to 0 at progress 1.
    """
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warm-up fraction must lie in [0, 1), got {warmup}")
    if progress < warmup:
        return base_lr * (start + (1.0 - start) * progress / warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))
