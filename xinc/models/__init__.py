"""Model definitions, construction from config and checkpoint I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from xinc.checks import check_finite_weights
from xinc.intermediate import first_line, reading
from xinc.models.authors import model_from_payload
from xinc.models.authors_keys import to_authors_state_dict
from xinc.models.ffn import FFN, FFNConfig, ffn_coords
from xinc.models.nerv import NeRV, NeRVConfig
from xinc.models.safe_pickle import read_checkpoint

ARCHS = ("nerv", "ffn")

__all__ = ["ARCHS", "FFN", "FFNConfig", "NeRV", "NeRVConfig", "build_model", "count_params",
           "ffn_coords", "import_checkpoint", "initial_model", "load_checkpoint",
           "model_config", "save_checkpoint", "to_authors_state_dict", "untrained_copy"]


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


def initial_model(arch: str, settings: dict[str, Any], seed: int) -> nn.Module:
    """The model training starts from: torch seeded with `seed`, then built (on the CPU)."""
    torch.manual_seed(seed)
    return build_model(arch, settings)


def untrained_copy(model: nn.Module) -> nn.Module:
    """`initial_model` of a trained model's architecture, settings and seed (`.meta["seed"]`),
    carrying the same `.meta`: the null model of what training changed."""
    seed = getattr(model, "meta", {}).get("seed")
    if seed is None:
        raise ValueError("the model's checkpoint records no seed; an untrained copy needs one")
    arch = "nerv" if isinstance(model, NeRV) else "ffn"
    fresh = initial_model(arch, model.cfg.to_dict(), int(seed))
    fresh.meta = dict(model.meta)
    return fresh.to(next(model.parameters()).device)


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


# what `load_checkpoint` says it reads when a file cannot be read
READABLE = (
    "xinc reads its own checkpoints (xinc.models.save_checkpoint), the authors' HNeRV .pth files "
    "and image_inr (PyTorch Lightning) .ckpt files, all written by torch.save: check that the "
    "path names one of these and that the file was copied completely"
)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    arch: str | None = None, fc_hw: tuple[int, int] | list[int] | None = None,
                    settings: dict[str, Any] | None = None, strict: bool = True) -> nn.Module:
    """Rebuild a model from a checkpoint; its `meta` dict is attached as `.meta`.

    Reads xinc's own checkpoints (`save_checkpoint`) and those of the authors' code: NeRV files
    of HNeRV's `train_nerv_all.py` and the FFN Lightning `.ckpt` files (see
    `xinc.models.authors`). For the latter the architecture is inferred from the tensor shapes;
    `arch`, `fc_hw` (NeRV stem grid, default: 1:2 aspect, e.g. 8×16), `settings` (NeRVConfig /
    FFNConfig fields that weights cannot tell, e.g. `pe_base`, `out`) and `strict` (False:
    skip unknown keys with a warning) apply to them only. `.meta` of an imported model holds
    `source: "authors"`, `path`, `format` and, when stored, `epoch` / `global_step`. A file
    that cannot be read raises `RuntimeError` naming it, the cause and the formats above.
    """
    try:
        payload = read_checkpoint(path, map_location)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name and the fix
        raise RuntimeError(
            f"{path}: cannot be read as a model checkpoint ({first_line(err)}); {READABLE}"
        ) from err
    if isinstance(payload, dict) and "arch" in payload and "config" in payload:
        model = build_model(payload["arch"], payload["config"])
        model.load_state_dict(payload["state_dict"])
        model.meta = payload.get("meta", {})
        return model.eval()
    return model_from_payload(payload, path, arch=arch, fc_hw=fc_hw, settings=settings,
                              strict=strict)


def import_checkpoint(src: str | Path, dst: str | Path, *, arch: str | None = None,
                      fc_hw: tuple[int, int] | list[int] | None = None,
                      meta: dict[str, Any] | None = None,
                      settings: dict[str, Any] | None = None, strict: bool = True) -> nn.Module:
    """Load any supported checkpoint `src` and write it to `dst` in xinc's format.

    `meta` entries (e.g. `frames`, `height`, `width`, `seed`, `frame`, which the canvas reads)
    are merged over the loaded model's own `.meta`. Returns the loaded model. Weights that hold
    NaN or infinity are not imported (`IntermediateFileError` naming `src`).
    """
    model = load_checkpoint(src, arch=arch, fc_hw=fc_hw, settings=settings, strict=strict)
    with reading(src):
        check_finite_weights(model)
    if arch is not None and arch != ("nerv" if isinstance(model, NeRV) else "ffn"):
        raise ValueError(f"{src}: holds a {type(model).__name__}, not the requested {arch!r}")
    model.meta = {**getattr(model, "meta", {}), **(meta or {})}
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, model, model.meta)
    return model
