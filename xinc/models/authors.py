"""Import checkpoints written by the authors' code (docs/method.md §1, tests/fixtures/README.md).

Two kinds of files are read:

- **NeRV** (HNeRV's `train_nerv_all.py`, "NeRV mode"): `torch.save({"epoch", "state_dict",
  "optimizer"})`, or a bare state dict. Keys are the authors' (`decoder.0.conv.downconv.*` = stem,
  `decoder.J.conv.upconv.0.*` = block J−1, `head_layer.*` = head); xinc's own names (`stem.*`,
  `blocks.j.conv.*`, `head.*`, `pe.omega`) are accepted as well.
- **FFN** (image_inr, Lightning): `{"state_dict", "hyper_parameters", "epoch", "global_step", …}`
  whose keys (`positional_encoding.B`, `net.N.linear.*`) sit under the LightningModule's
  attribute, e.g. `model.net.0.linear.weight`.

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

**Architecture** is read off the tensor shapes. NeRV: stem weight [C0·fh·fw, 2L, 1, 1] gives the
PE levels L; block convs [C_{j+1}·s_j², C_j, k, k] give widths and strides; head [3, C, k, k]. The
stem grid `fc_hw` is not identifiable from shapes (only fh·fw is): pass `fc_hw`; without it the
paper's 1:2 aspect is assumed, fh·fw = 2h² → (h, 2h) (8·16 for the paper model, 2·4 for the
fixture), and any other product is an error asking for `fc_hw`. The PE base (1.25), the GELU
activation and the output map are not stored either: they default to the paper's (`pe_base`
1.25, `out` "tanh", the training/rendering map; the analysis-time pre-activation is
`model.trace(t).head_out` whatever `out` is) and can be changed through `settings`. The PE
frequencies are rebuilt the authors' way (`xinc.models.nerv.PositionalEncoding`), so outputs match
those of the authors' model on the same machine. FFN: width = rows of B, layers = number of
`net.N` entries.

**Unpickling.** Files are read with `torch.load(weights_only=True)` first. The authors'
Lightning file pickles omegaconf `DictConfig`/`ListConfig` objects in `hyper_parameters` (their
metadata holds a `collections.defaultdict`), which that refuses; such a file is read again by
`torch.load` with `RestrictedUnpickler` as its pickle module, in the zip format and the legacy
one alike. That unpickler imports no module and calls nothing but an allow-list: plain
containers and builtins (`dict`, `collections.defaultdict` / `OrderedDict`, `list`, `tuple`,
`set`, `int`, `float`, `str`, `bytes`, …), torch's tensor rebuild functions, `torch.Size` /
`torch.device` and torch's dtype-like constants. Every other global the file names becomes an
inert stand-in class (`StandIn`: it stores its constructor arguments, pickled state and the items
added to it, and does nothing else), so no code from the file runs and omegaconf is never
imported. `hyper_parameters` is converted to plain data for `.meta` (`plain`): an omegaconf
container gives the dict/list of its `_content`, a value node its `_val` (interpolations such as
`${a}` stay unresolved strings, as `OmegaConf.to_container` gives them).
"""

from __future__ import annotations

import _compat_pickle
import math
import pickle
import re
import warnings
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from xinc.models.ffn import FFN, FFNConfig
from xinc.models.nerv import NeRV, NeRVConfig

__all__ = ["RestrictedUnpickler", "StandIn", "UnknownKeyError", "authors_state_to_ours",
           "infer_ffn_config", "infer_nerv_config", "model_from_payload", "read_checkpoint",
           "to_authors_state_dict"]

PAPER_FC_HW = (8, 16)
STATE_DICT_ENTRIES = ("state_dict", "model_state_dict", "model")


class UnknownKeyError(KeyError):
    """A state-dict key that is neither the authors' nor xinc's name (message printed plainly)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------- key names

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


def _best_layout(keys: list[str], arch: str) -> tuple[Rules, int]:
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
    rules, _ = _best_layout(list(state), arch)
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


# ----------------------------------------------------------------------------- architecture

def infer_fc_hw(n_cells: int, fc_hw: tuple[int, int] | list[int] | None = None) -> tuple[int, int]:
    """The stem grid (fh, fw) with fh·fw = n_cells: `fc_hw` if given, else (h, 2h) if n = 2h²."""
    if fc_hw is not None:
        fh, fw = (int(v) for v in fc_hw)
        if fh * fw != n_cells:
            raise ValueError(f"fc_hw {fh}×{fw} = {fh * fw} cells, but the stem holds {n_cells} "
                             "cells per channel")
        return fh, fw
    h = math.isqrt(n_cells // 2) if n_cells % 2 == 0 else 0
    if h > 0 and 2 * h * h == n_cells:
        return h, 2 * h
    raise ValueError(f"cannot infer the stem grid from fh·fw = {n_cells} (not 2·h² for the 1:2 "
                     "aspect); pass fc_hw=(fh, fw)")


def _width_rule(widths: tuple[int, ...], n_strides: int,
                reduce: float | None, lower_width: int | None) -> tuple[float, int]:
    """(reduce, lower_width) for which xinc's width rule reproduces `widths`."""
    reduces = [reduce] if reduce is not None else [1.2]
    lowers = [lower_width] if lower_width is not None else [6]
    if reduce is None:
        reduces += [widths[j] / widths[j + 1] for j in range(len(widths) - 1)] + [1.0]
    if lower_width is None:
        lowers += [min(widths), 1]
    for r in reduces:
        for lw in lowers:
            try:
                cfg = NeRVConfig(fc_dim=widths[0], strides=(1,) * n_strides, reduce=r,
                                 lower_width=lw)
            except (ValueError, ZeroDivisionError):
                continue
            if cfg.widths == widths:
                return r, lw
    raise ValueError(f"block widths {widths} do not follow xinc's rule "
                     "C_(j+1) = max(round(C_j / reduce), lower_width); pass reduce/lower_width "
                     "in settings, or the checkpoint is not a supported NeRV")


def infer_nerv_config(state: Mapping[str, torch.Tensor], *,
                      fc_hw: tuple[int, int] | list[int] | None = None,
                      settings: Mapping[str, Any] | None = None,
                      source: str | Path = "<state dict>") -> NeRVConfig:
    """NeRVConfig of a state dict in xinc's names, from tensor shapes (see the module doc)."""
    settings = dict(settings or {})

    def get(key: str) -> torch.Tensor:
        if key not in state:
            raise ValueError(f"{source}: NeRV weight {key!r} is missing")
        return state[key]

    stem, head = get("stem.weight"), get("head.weight")
    n_blocks = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    convs = [get(f"blocks.{j}.conv.weight") for j in range(n_blocks)]
    if stem.dim() != 4 or stem.shape[2:] != (1, 1) or stem.shape[1] % 2:
        raise ValueError(f"{source}: stem weight {tuple(stem.shape)} is not [C·fh·fw, 2L, 1, 1]")
    if head.dim() != 4 or head.shape[0] != 3:
        raise ValueError(f"{source}: head weight {tuple(head.shape)} is not [3, C, k, k]")
    ins = [int(w.shape[1]) for w in convs] + [int(head.shape[1])]
    widths, strides, kernels = [ins[0]], [], {tuple(head.shape[2:])}
    for j, w in enumerate(convs):
        c_out = ins[j + 1]
        ratio, rest = divmod(int(w.shape[0]), c_out)
        s = math.isqrt(ratio)
        if rest or s * s != ratio:
            raise ValueError(f"{source}: block {j} conv {tuple(w.shape)} is not "
                             f"[C·s², C_in, k, k] with C = {c_out} (next layer's input)")
        widths.append(c_out)
        strides.append(s)
        kernels.add(tuple(w.shape[2:]))
    if len(kernels) != 1 or (k := next(iter(kernels)))[0] != k[1] or k[0] % 2 == 0:
        raise ValueError(f"{source}: kernel sizes {sorted(kernels)} differ or are not odd squares; "
                         "xinc's NeRV uses one k×k kernel for all blocks and the head")
    cells, rest = divmod(int(stem.shape[0]), widths[0])
    if rest:
        raise ValueError(f"{source}: stem output {stem.shape[0]} is not a multiple of the first "
                         f"block's input width {widths[0]}")
    hw = infer_fc_hw(cells, fc_hw if fc_hw is not None else settings.pop("fc_hw", None))
    settings.pop("fc_hw", None)
    levels = int(stem.shape[1]) // 2
    if "pe.omega" in state and state["pe.omega"].numel() != levels:
        raise ValueError(f"{source}: {state['pe.omega'].numel()} PE frequencies but the stem "
                         f"takes {2 * levels} inputs")
    reduce, lower = _width_rule(tuple(widths), len(strides), settings.pop("reduce", None),
                                settings.pop("lower_width", None))
    inferred = {"pe_levels": levels, "fc_hw": hw, "strides": tuple(strides), "kernel": k[0],
                "fc_dim": widths[0], "reduce": reduce, "lower_width": lower}
    for key, value in settings.items():
        if key in inferred and _norm(value) != _norm(inferred[key]):
            raise ValueError(f"{source}: setting {key}={value!r} contradicts the weights "
                             f"({inferred[key]!r})")
    cfg = NeRVConfig(**{"out": "tanh", **settings, **inferred})
    if cfg.widths != tuple(widths):
        raise ValueError(f"{source}: inferred widths {tuple(widths)} ≠ rebuilt {cfg.widths}")
    return cfg


def infer_ffn_config(state: Mapping[str, torch.Tensor], *,
                     settings: Mapping[str, Any] | None = None,
                     source: str | Path = "<state dict>") -> FFNConfig:
    """FFNConfig of a state dict in xinc's names: width = rows of B, layers = #`net.N`."""
    if "positional_encoding.B" not in state:
        raise ValueError(f"{source}: FFN Fourier matrix 'positional_encoding.B' is missing")
    b = state["positional_encoding.B"]
    if b.dim() != 2 or b.shape[1] != 2:
        raise ValueError(f"{source}: Fourier matrix {tuple(b.shape)} is not [n, 2]")
    layers = len({k.split(".")[1] for k in state if k.startswith("net.")})
    if layers < 1:
        raise ValueError(f"{source}: no 'net.N.linear' layers")
    inferred = {"width": int(b.shape[0]), "layers": layers}
    settings = dict(settings or {})
    for key, value in settings.items():
        if key in inferred and int(value) != inferred[key]:
            raise ValueError(f"{source}: setting {key}={value!r} contradicts the weights "
                             f"({inferred[key]!r})")
    return FFNConfig(**{**settings, **inferred})


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


# ----------------------------------------------------------------------------- reading files

class StandIn:
    """Inert placeholder for a class a checkpoint names but xinc does not import.

    It records the constructor arguments (`args`, `kwargs`), the pickled `state`, and the items
    a pickle adds to a dict or list subclass (`dict_items`, `list_items`); it has no other
    behaviour. Subclasses made by `_stand_in` carry the original dotted name in `name`.
    """

    name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = super().__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, dict_items={}, list_items=[])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.dict_items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __repr__(self) -> str:
        return f"<stand-in for {self.name}>"


def _stand_in(full_name: str) -> type[StandIn]:
    module, _, name = full_name.rpartition(".")
    return type(name or "StandIn", (StandIn,),
                {"name": full_name, "__module__": module or __name__, "__qualname__": name})


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles of `bytes` call it (Latin-1 only)."""
    if encoding.lower().replace("-", "").replace("_", "") != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return text.encode("latin-1")


# every global the restricted unpickler resolves to a real object: plain containers and
# builtins, and torch's functions that rebuild tensors; all other names become stand-ins
_ALLOWED_GLOBALS: dict[str, Any] = {
    **{f"builtins.{t.__name__}": t
       for t in (dict, list, tuple, set, frozenset, int, float, complex, bool, str, bytes)},
    "collections.OrderedDict": OrderedDict,
    "collections.defaultdict": defaultdict,
    "_codecs.encode": _latin1,
    **{f"torch._utils.{n}": getattr(torch._utils, n)
       for n in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3",
                 "_rebuild_parameter", "_rebuild_parameter_with_state", "_rebuild_qtensor",
                 "_rebuild_sparse_tensor")},
    "torch._tensor._rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,
    "torch._tensor.Tensor": torch.Tensor,
    "torch.Tensor": torch.Tensor,
    "torch.nn.parameter.Parameter": nn.Parameter,
    "torch.Size": torch.Size,
    "torch.device": torch.device,
    "torch.UntypedStorage": torch.UntypedStorage,
}
# values torch pickles by name (`torch.float32`, `torch.strided`, …): inert constants
_TORCH_CONSTANTS = (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that imports nothing and calls only what `_ALLOWED_GLOBALS` holds.

    Every other global becomes a `StandIn` subclass; `torch.load(pickle_module=…)` subclasses
    it to add the tensor storages of the file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stand_ins: dict[str, type[StandIn]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names (protocol ≤ 2)
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full_name = f"{module}.{name}"
        if full_name in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[full_name]
        value = vars(torch).get(name) if module == "torch" else None
        if isinstance(value, _TORCH_CONSTANTS):
            return value
        if full_name not in self.stand_ins:
            self.stand_ins[full_name] = _stand_in(full_name)
        return self.stand_ins[full_name]


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# what `torch.load(pickle_module=…)` needs of a pickle module
RESTRICTED_PICKLE = SimpleNamespace(__name__=f"{__name__}.restricted_pickle",
                                    Unpickler=RestrictedUnpickler, load=_restricted_load)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)`, else the same file with `RestrictedUnpickler`.

    Either way no code from the file runs; classes outside the allow-lists become `StandIn`s.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass
    return torch.load(path, map_location=map_location, weights_only=False,
                      pickle_module=RESTRICTED_PICKLE)


def plain(obj: Any, depth: int = 0) -> Any:
    """Best-effort plain-data copy (dict/list/str/int/float/bool/None) of unpickled metadata."""
    if depth > 32:
        return "…"
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else f"tensor{tuple(obj.shape)}"
    if isinstance(obj, Mapping):
        return {str(plain(k, depth + 1)): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [plain(v, depth + 1) for v in obj]
    if isinstance(obj, StandIn):
        return _plain_stand_in(obj, depth)
    return repr(obj)


def _plain_stand_in(obj: StandIn, depth: int) -> Any:
    """A stand-in's data: its items, omegaconf's `_content` / `_val`, or its public state."""
    if obj.dict_items or obj.list_items:  # a dict or list subclass
        return plain(obj.dict_items or obj.list_items, depth + 1)
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict | None):
        state = {**(state[0] or {}), **(state[1] or {})}  # (__dict__, __slots__ values)
    if isinstance(state, Mapping):
        for key in ("_content", "_val"):  # omegaconf containers, value nodes
            if key in state:
                return plain(state[key], depth + 1)
        return {str(k): plain(v, depth + 1) for k, v in state.items()
                if not str(k).startswith("_")}
    if state is not None:
        return plain(state, depth + 1)
    if len(obj.args) == 1 and not obj.kwargs:  # e.g. an enum member
        return plain(obj.args[0], depth + 1)
    return obj.name


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
    return {arch: _best_layout(list(state), arch)[1] for arch in LAYOUTS}


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
