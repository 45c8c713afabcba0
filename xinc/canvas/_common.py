"""Helpers shared by the per-architecture canvas modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch


def mode_fn(modes: dict[str, Callable], mode: str) -> Callable:
    """The map function registered for `mode` (ValueError if there is none)."""
    if mode not in modes:
        raise ValueError(f"unknown canvas mode {mode!r}; expected one of {sorted(modes)}")
    return modes[mode]


def id_chunks(total: int, chunk: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Consecutive neuron-id ranges [start, start + chunk) covering 0 … total − 1."""
    for start in range(0, total, chunk):
        yield torch.arange(start, min(start + chunk, total), device=device)
