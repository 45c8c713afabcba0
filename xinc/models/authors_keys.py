"""State-dict key names: the authors' layouts to xinc's and back (see `xinc.models.authors`).

**Key prefixes.** Wrappers add leading components (`module.` from DataParallel, `model.` from
Lightning, `blocks.0.` in some variants). Every key is matched generically: the longest dotted
suffix of the key that is a known name wins and whatever precedes it is dropped; the dropped
prefix must be the same for all weights (the most common one is taken). One layout per file:
the authors' names, or (NeRV) xinc's own. A key without a known suffix, or behind a different
prefix (e.g. `module.encoder.stem.weight` next to `module.decoder.…`), raises
`UnknownKeyError` (a `KeyError`) naming the key and the file (`strict=False`: dropped with a
warning); two keys mapping to the same name raise `ValueError`. Keys `pe_*` of the authors'
positional encoding are computed, not weights, and are skipped (`pe_bases`, if present, is
loaded as the frequency buffer `pe.omega`).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from xinc.models.nerv import NeRV

__all__ = ["LAYOUTS", "UnknownKeyError", "authors_state_to_ours", "best_layout",
           "to_authors_state_dict"]


class UnknownKeyError(KeyError):
    """A state-dict key that is neither the authors' nor xinc's name (message printed plainly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_SKIP = ""  # mapped name meaning "known, not a weight: drop"

Rules = list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]

_NERV_AUTHORS: Rules = [
    (re.compile(r"decoder\.0\.conv\.downconv\.(weight|bias)"), lambda m: f"stem.{m[1]}"),
    (re.compile(r"decoder\.([1-9]\d*)\.conv\.upconv\.0\.(weight|bias)"),
     lambda m: f"blocks.{int(m[1]) - 1}.conv.{m[2]}"),
    (re.compile(r"head_layer\.(weight|bias)"), lambda m: f"head.{m[1]}"),
    (re.compile(r"(?:pe_embed\.)?pe_bases"), lambda m: "pe.omega"),
    (re.compile(r"pe_\w+(?:\.\w+)*"), lambda m: _SKIP),
]
_NERV_XINC: Rules = [  # xinc's own names (e.g. a DataParallel-wrapped xinc NeRV)
    (re.compile(r"(stem|head)\.(weight|bias)"), lambda m: m[0]),
    (re.compile(r"blocks\.(\d+)\.conv\.(weight|bias)"), lambda m: m[0]),
    (re.compile(r"pe\.omega"), lambda m: m[0]),
]
_FFN: Rules = [
    (re.compile(r"positional_encoding\.B"), lambda m: m[0]),
    (re.compile(r"net\.(\d+)\.linear\.(weight|bias)"), lambda m: m[0]),
]

# per architecture, the key layouts it may come in (one layout per state dict)
LAYOUTS: dict[str, list[Rules]] = {"nerv": [_NERV_AUTHORS, _NERV_XINC], "ffn": [_FFN]}


def _map_key(key: str, rules: Rules) -> tuple[str, str] | None:
    """(stripped prefix, our name or `_SKIP`) for the longest known dotted suffix of `key`."""
    parts = key.split(".")
    for i in range(len(parts)):
        suffix = ".".join(parts[i:])
        for pattern, target in rules:
            m = pattern.fullmatch(suffix)
            if m:
                return ".".join(parts[:i]), target(m)
    return None


def best_layout(keys: list[str], arch: str) -> tuple[Rules, int]:
    scored = [(sum(_map_key(k, r) is not None for k in keys), -i, r)
              for i, r in enumerate(LAYOUTS[arch])]
    hits, _, rules = max(scored, key=lambda x: x[:2])
    return rules, hits


def authors_state_to_ours(state: Mapping[str, torch.Tensor], arch: str, *,
                          source: str | Path = "<state dict>",
                          strict: bool = True) -> dict[str, torch.Tensor]:
    """Rename a state dict in the authors' (or a wrapped xinc) layout to xinc's keys.

    Every key is matched by its longest known dotted suffix; the dropped leading part (wrapper
    prefix) must be the same for all weights (the most common one wins). Keys without a known
    suffix or with another prefix raise `UnknownKeyError` naming the key and `source` (with
    `strict=False` they are dropped with a warning); `pe_*` keys are dropped silently.
    """
    if arch not in LAYOUTS:
        raise ValueError(f"unknown architecture {arch!r}; expected 'nerv' or 'ffn'")
    rules, _ = best_layout(list(state), arch)
    mapped = {key: _map_key(key, rules) for key in state}
    prefixes = Counter(m[0] for m in mapped.values() if m is not None and m[1] != _SKIP)
    prefix = prefixes.most_common(1)[0][0] if prefixes else ""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unknown = []
    for key, value in state.items():
        hit = mapped[key]
        if hit is None or (hit[1] != _SKIP and hit[0] != prefix):
            unknown.append(key)
            continue
        name = hit[1]
        if name == _SKIP:
            continue
        if name in out:
            raise ValueError(f"{source}: keys {origin[name]!r} and {key!r} both map to {name!r}")
        out[name] = value
        origin[name] = key
    if unknown:
        known = ("decoder.0.conv.downconv.*, decoder.J.conv.upconv.0.*, head_layer.*"
                 if arch == "nerv" else "positional_encoding.B, net.N.linear.*")
        where = f" behind the prefix {prefix + '.'!r}" if prefix else ""
        msg = (f"{source}: unknown key {unknown[0]!r} in a {arch.upper()} state dict"
               f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}; "
               f"expected the authors' keys ({known}){where}")
        if strict:
            raise UnknownKeyError(msg)
        warnings.warn(msg + "; ignored (strict=False)", stacklevel=2)
    return out


def to_authors_state_dict(state: Mapping[str, torch.Tensor] | nn.Module,
                          arch: str | None = None) -> dict[str, torch.Tensor]:
    """xinc's state dict (or model) in the authors' key layout (NeRV: `pe.omega` is dropped)."""
    if isinstance(state, nn.Module):
        arch = arch or ("nerv" if isinstance(state, NeRV) else "ffn")
        state = state.state_dict()
    if arch is None:
        arch = "nerv" if any(k.startswith("stem.") for k in state) else "ffn"
    if arch == "ffn":
        return dict(state)
    out = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix == "stem":
            out[f"decoder.0.conv.downconv.{leaf}"] = value
        elif prefix == "head":
            out[f"head_layer.{leaf}"] = value
        elif prefix.startswith("blocks."):
            out[f"decoder.{int(prefix.split('.')[1]) + 1}.conv.upconv.0.{leaf}"] = value
        elif key != "pe.omega":
            raise KeyError(f"unexpected key {key!r} in an xinc NeRV state dict")
    return out

