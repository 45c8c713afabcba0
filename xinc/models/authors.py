"""Import checkpoints written by the authors' code (docs/method.md §1, tests/fixtures/README.md).

Two kinds of files are read:

- **NeRV** (HNeRV's `train_nerv_all.py`, "NeRV mode"): `torch.save({"epoch", "state_dict",
  "optimizer"})`, or a bare state dict. Keys are the authors' (`decoder.0.conv.downconv.*` = stem,
  `decoder.J.conv.upconv.0.*` = block J−1, `head_layer.*` = head); xinc's own names (`stem.*`,
  `blocks.j.conv.*`, `head.*`, `pe.omega`) are accepted as well.
- **FFN** (image_inr, Lightning): `{"state_dict", "hyper_parameters", "epoch", "global_step", …}`
  whose keys (`positional_encoding.B`, `net.N.linear.*`) sit under the LightningModule's
  attribute, e.g. `model.net.0.linear.weight`.

`model_from_payload` builds xinc's model from such a file's contents in three steps, one module
each: the keys are renamed (`xinc.models.authors_keys`: wrapper prefixes, the authors' names),
the architecture is read off the tensor shapes (`xinc.models.authors_shapes`), and the file is
read without running code from it (`xinc.models.safe_pickle`, `read_checkpoint`). The PE
frequencies are rebuilt the authors' way (`xinc.models.nerv.PositionalEncoding`), so outputs
match those of the authors' model on the same machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from xinc.models.authors_keys import (
    LAYOUTS,
    UnknownKeyError,
    authors_state_to_ours,
    best_layout,
    to_authors_state_dict,
)
from xinc.models.authors_shapes import infer_fc_hw, infer_ffn_config, infer_nerv_config
from xinc.models.ffn import FFN
from xinc.models.nerv import NeRV
from xinc.models.safe_pickle import RestrictedUnpickler, StandIn, plain, read_checkpoint

__all__ = ["RestrictedUnpickler", "StandIn", "UnknownKeyError", "authors_state_to_ours",
           "infer_fc_hw", "infer_ffn_config", "infer_nerv_config", "model_from_payload", "plain",
           "read_checkpoint", "to_authors_state_dict"]

STATE_DICT_ENTRIES = ("state_dict", "model_state_dict", "model")


def _find_state(payload: Any, source: str | Path) -> tuple[Mapping[str, torch.Tensor], dict]:
    def is_state(d: Any) -> bool:
        return (isinstance(d, Mapping) and len(d) > 0
                and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items()))

    if isinstance(payload, Mapping):
        for entry in STATE_DICT_ENTRIES:
            if is_state(payload.get(entry)):
                return payload[entry], dict(payload)
        if is_state(payload):
            return payload, {}
    raise ValueError(f"{source}: no state dict found (expected a dict of tensors, or one under "
                     f"{' / '.join(repr(e) for e in STATE_DICT_ENTRIES)})")


def _arch_hits(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    return {arch: best_layout(list(state), arch)[1] for arch in LAYOUTS}


def model_from_payload(payload: Any, source: str | Path = "<payload>", *,
                       arch: str | None = None,
                       fc_hw: tuple[int, int] | list[int] | None = None,
                       settings: Mapping[str, Any] | None = None,
                       strict: bool = True) -> NeRV | FFN:
    """Our `NeRV`/`FFN` from an unpickled authors' checkpoint; `.meta` says where it came from."""
    raw, extra = _find_state(payload, source)
    hits = _arch_hits(raw)
    guess = max(hits, key=lambda a: (hits[a], a == "nerv"))
    if arch is not None and arch != guess and hits[guess] == len(raw) > hits.get(arch, 0):
        raise ValueError(f"{source}: holds a {guess.upper()} state dict, not the requested "
                         f"{arch!r}")
    arch = arch or guess
    state = authors_state_to_ours(raw, arch, source=source, strict=strict)
    state = {k: v.detach().to("cpu", torch.float32) for k, v in state.items()}
    if arch == "nerv":
        cfg = infer_nerv_config(state, fc_hw=fc_hw, settings=settings, source=source)
        model: NeRV | FFN = NeRV(cfg)
        state.setdefault("pe.omega", model.pe.omega.clone())
    else:
        cfg = infer_ffn_config(state, settings=settings, source=source)
        model = FFN(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{source}: weights do not fit the inferred {arch} {cfg}: {err}") from err
    meta: dict[str, Any] = {"source": "authors", "path": str(source), "arch": arch,
                            "format": "lightning" if "hyper_parameters" in extra
                            or "pytorch-lightning_version" in extra else "hnerv"}
    for key in ("epoch", "global_step"):
        if isinstance(extra.get(key), int | float):
            meta[key] = extra[key]
    if arch == "nerv":
        meta["height"], meta["width"] = cfg.output_size
    if "hyper_parameters" in extra:
        meta["hyper_parameters"] = plain(extra["hyper_parameters"])
    model.meta = meta
    return model.eval()
