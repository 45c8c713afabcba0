"""Whether the workflow's training and canvas jobs run on a GPU, decided when it loads.

Stdlib only: the main Snakemake process may run without torch (`--use-conda`), so `auto` first
looks for a GPU driver and asks torch only where there is one.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
ROCM_DEVICE = Path("/dev/kfd")


def _gpu_driver() -> bool:
    """The NVIDIA driver lists a GPU, or the ROCm device exists (torch.cuda also runs on ROCm)."""
    nvidia = NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    return nvidia or ROCM_DEVICE.exists()


def cuda_available() -> bool:
    """A CUDA device is usable here. Without a GPU driver that is settled at once (importing torch
    would cost the planning process seconds); with one, torch decides where it is importable."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1") or not _gpu_driver():
        return False
    if importlib.util.find_spec("torch") is None:
        return True
    import torch

    return torch.cuda.is_available()


def uses_gpu(device: str) -> bool:
    """Config `device`: `cuda`/`cuda:N` always, `auto` where this machine has CUDA, `cpu` never.

    On a cluster the machine that plans the workflow (a login node) decides for `auto`: set
    `device: cuda` there to request GPUs for jobs that run on GPU nodes.
    """
    if device == "cpu":
        return False
    if device.startswith("cuda"):
        return True
    if device != "auto":
        raise ValueError(f"config key device: {device!r} is not auto, cpu, cuda or cuda:N")
    return cuda_available()


def gpu_resources(device: str) -> dict[str, int]:
    """Snakemake resources of a job that runs on `device`: {"gpu": 1} on CUDA, none on CPU."""
    return {"gpu": 1} if uses_gpu(device) else {}
