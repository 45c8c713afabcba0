"""Device choice and reproducible floating-point settings for training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` → the first CUDA device if one is usable, else the CPU; otherwise as named."""
    if str(device) == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


def describe_device(device: torch.device) -> str:
    """`cpu`, or e.g. `cuda:0 (NVIDIA H100 80GB HBM3)`, for metrics files and logs."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


@contextmanager
def reproducible(device: torch.device) -> Iterator[None]:
    """Full-fp32 arithmetic while the block runs; the previous global settings are restored.

    TF32 is switched off for matmuls and cuDNN convolutions, cuDNN autotuning is off and its
    deterministic kernels are on. On the CPU, deterministic algorithms are enforced as well,
    so a given seed gives bit-identical weights there.
    """
    cuda_matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (
        cuda_matmul.allow_tf32,
        cudnn.allow_tf32,
        cudnn.benchmark,
        cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cuda_matmul.allow_tf32 = False
    cudnn.allow_tf32 = False
    cudnn.benchmark = False
    cudnn.deterministic = True
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        cuda_matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


@contextmanager
def full_fp32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and cuDNN convolutions while the block runs (contribution maps:
    TF32 would move their sums by ~1e-3 relative); the previous settings are restored."""
    cuda_matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = cuda_matmul.allow_tf32, cudnn.allow_tf32
    cuda_matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        cuda_matmul.allow_tf32, cudnn.allow_tf32 = saved
