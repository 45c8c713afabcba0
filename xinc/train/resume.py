"""Resumable training: periodic state files and their fingerprint check.

A state file holds everything needed to continue a run exactly where it stopped: model and
optimizer state, the torch RNG states (CPU, CUDA when used, the data-order generator), the
epoch/step reached, the PSNR history, the best-so-far weights (FFN) and the seconds spent. It is
written atomically every `checkpoint_every` epochs/steps, read at start when it exists, and
removed once the final outputs are written. On the CPU an interrupted and resumed run ends with
the same weights, bit for bit, as an uninterrupted one.

A fingerprint of the run (architecture, model settings, training settings, seed(s), shape and
digest of the training data) is stored with the state. A state file whose fingerprint differs
from the run being started, or that cannot be read or is not an xinc state, is set aside: renamed
beside itself to `<state>.stale-<UTC time>` or `<state>.unreadable-<UTC time>` (never
overwriting an earlier one), with a warning on the `xinc.train` logger that names both files and
the fingerprint entries that differ; training then starts from scratch.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.config_checks import differences
from xinc.intermediate import first_line
from xinc.io import atomic_path

STATE_VERSION = 1
STATE_SUFFIX = ".state"
# settings that change how often state is saved or how models are grouped, not the result
NEUTRAL_SETTINGS = ("checkpoint_every", "batch_models")


LOG = logging.getLogger("xinc.train")


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
    """The saved state of this run, or None when there is none to resume.

    A state file that is unreadable, not an xinc state, or was written by a run with other
    settings, seed or data is set aside (`set_aside`) with a warning, and None is returned:
    training starts from scratch.
    """
    if path is None or not Path(path).exists():
        return None
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is set aside, not fatal
        return _discard(path, "unreadable", f"cannot be read ({first_line(err)})")
    if not isinstance(payload, dict) or payload.get("version") != STATE_VERSION:
        version = f"version {STATE_VERSION}"
        return _discard(path, "unreadable", f"is not an xinc training state ({version})")
    saved = payload.get("fingerprint", {})
    if saved != fingerprint:
        changes = "; ".join(
            f"{key}: saved {old!r}, now {new!r}"
            for key, old, new in differences(saved, fingerprint)
        )
        return _discard(path, "stale", f"was written by a run with other settings ({changes})")
    return payload


def set_aside(path: str | Path, why: str) -> Path:
    """Rename `path` to `<path>.<why>-<UTC time>` (`-2`, `-3`, … if taken) and return that."""
    path = Path(path)
    name = f"{path.name}.{why}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    target, n = path.with_name(name), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{name}-{n}")
    path.rename(target)
    return target


def _discard(path: str | Path, why: str, reason: str) -> None:
    """Set the state file aside and log it; None, as no state is resumed."""
    target = set_aside(path, why)
    LOG.warning(
        "training state %s %s: moved it to %s, training starts from scratch", path, reason, target
    )


def remove_state(path: str | Path | None) -> None:
    if path is not None:
        Path(path).unlink(missing_ok=True)
