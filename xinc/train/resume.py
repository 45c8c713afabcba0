"""Resumable training: periodic state files and their fingerprint check.

A state file holds everything needed to continue a run exactly where it stopped: model and
optimizer state, the torch RNG states (CPU, CUDA when used, the data-order generator), the
epoch/step reached, the PSNR history, the best-so-far weights (FFN) and the seconds spent. It is
written atomically every `checkpoint_every` epochs/steps, read at start when it exists, and
removed once the final outputs are written. On the CPU an interrupted and resumed run ends with
the same weights, bit for bit, as an uninterrupted one.

A fingerprint of the run (architecture, model settings, training settings, seed(s), shape and
digest of the training data) is stored with the state; a state file whose fingerprint differs
from the run being started is rejected with an error that names the file and the fix.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.io import atomic_path

STATE_VERSION = 1
STATE_SUFFIX = ".state"
# settings that change how often state is saved or how models are grouped, not the result
NEUTRAL_SETTINGS = ("checkpoint_every", "batch_models")


class TrainingStateError(RuntimeError):
    """A state file that cannot be used to resume this run."""


def default_state_path(ckpt_path: str | Path) -> Path:
    """`<ckpt>.state` beside the checkpoint, e.g. `ckpt.pt.state`."""
    ckpt_path = Path(ckpt_path)
    return ckpt_path.with_name(ckpt_path.name + STATE_SUFFIX)


def data_digest(array: np.ndarray) -> str:
    """SHA-256 of the dtype, shape and bytes of the training data (first 16 hex digits)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


def fingerprint(
    arch: str,
    model_settings: dict[str, Any],
    train_cfg: Any,
    seed: int | list[int],
    data: np.ndarray,
    **extra: Any,
) -> dict[str, Any]:
    """What must match for a state file to be resumed (plain JSON-like values).

    `model_settings` should be the normalised config (`model_config(...).to_dict()`), so that
    an omitted key and its default compare equal; `train_cfg` is the settings dataclass
    (`checkpoint_every` and `batch_models` are left out: they do not change the result).
    """
    train = {k: v for k, v in asdict(train_cfg).items() if k not in NEUTRAL_SETTINGS}
    data = np.asarray(data)
    return {
        "arch": arch,
        "model": _plain(model_settings),
        "train": _plain(train),
        "seed": _plain(seed),
        "data_shape": list(data.shape),
        "data_dtype": data.dtype.str,
        "data_digest": data_digest(data),
        **{k: _plain(v) for k, v in extra.items()},
    }


def _plain(value: Any) -> Any:
    """Tuples → lists, recursively (what the state file round-trips to)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def rng_states(device: torch.device, generator: torch.Generator | None = None) -> dict[str, Any]:
    """The torch CPU RNG, the CUDA RNG of `device` (when CUDA), and `generator`, if given."""
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    if generator is not None:
        states["generator"] = generator.get_state()
    return states


def restore_rng_states(
    states: dict[str, Any], device: torch.device, generator: torch.Generator | None = None
) -> None:
    torch.set_rng_state(states["cpu"].cpu())
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"].cpu(), device)
    if generator is not None:
        generator.set_state(states["generator"].cpu())


def save_state(path: str | Path, fingerprint: dict[str, Any], state: dict[str, Any]) -> None:
    """Write the state file atomically (a killed write leaves the previous state intact)."""
    payload = {"version": STATE_VERSION, "fingerprint": fingerprint, **_to_cpu(state)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


def load_state(
    path: str | Path | None, fingerprint: dict[str, Any], map_location: torch.device | str = "cpu"
) -> dict[str, Any] | None:
    """The saved state of this run, or None when there is no state file.

    Raises `TrainingStateError` (naming the file and the fix) when the file is unreadable or
    was written by a run with other settings, seed or data.
    """
    if path is None or not Path(path).exists():
        return None
    fix = f"delete {path} to train from scratch"
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name and the fix
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrainingStateError(f"{path}: unreadable training state ({reason}); {fix}") from err
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        raise TrainingStateError(f"{path}: not an xinc training state (version 1); {fix}")
    saved = payload.get("fingerprint", {})
    if saved != fingerprint:
        keys = set(saved) | set(fingerprint)
        differ = sorted(k for k in keys if saved.get(k) != fingerprint.get(k))
        details = "; ".join(
            f"{k}: saved {saved.get(k)!r}, now {fingerprint.get(k)!r}" for k in differ
        )
        raise TrainingStateError(
            f"{path}: training state from a different run ({details}); "
            f"it cannot be resumed with these settings: {fix}"
        )
    return payload


def remove_state(path: str | Path | None) -> None:
    if path is not None:
        Path(path).unlink(missing_ok=True)
