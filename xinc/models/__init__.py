"""Model definitions, construction from config and checkpoint I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from xinc.models.ffn import FFN, FFNConfig, ffn_coords
from xinc.models.nerv import NeRV, NeRVConfig

ARCHS = ("nerv", "ffn")

__all__ = ["ARCHS", "FFN", "FFNConfig", "NeRV", "NeRVConfig", "build_model", "count_params",
           "ffn_coords", "load_checkpoint", "model_config", "save_checkpoint"]


def model_config(arch: str, settings: dict[str, Any]) -> NeRVConfig | FFNConfig:
    """Typed config of `arch` from a config-file section (unknown keys are an error)."""
    if arch == "nerv":
        return NeRVConfig(**settings)
    if arch == "ffn":
        return FFNConfig(**settings)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")


def build_model(arch: str, settings: dict[str, Any]) -> nn.Module:
    """A freshly initialised model (PyTorch default init; seed torch first)."""
    cfg = model_config(arch, settings)
    return NeRV(cfg) if arch == "nerv" else FFN(cfg)


def count_params(model: nn.Module) -> int:
    """Trainable parameters (the FFN's Fourier matrix is a buffer and does not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write a self-describing checkpoint atomically (temporary name, then rename)."""
    arch = "nerv" if isinstance(model, NeRV) else "ffn"
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    payload = {
        "arch": arch,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by `save_checkpoint`; its `meta` dict is attached as `.meta`."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name and the fix
        raise RuntimeError(
            f"{path}: not a readable xinc checkpoint ({err}); delete it and rerun training"
        ) from err
    if not isinstance(payload, dict) or "arch" not in payload:
        raise RuntimeError(f"{path}: not an xinc checkpoint (no 'arch' entry)")
    model = build_model(payload["arch"], payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.meta = payload.get("meta", {})
    return model.eval()
