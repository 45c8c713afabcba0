"""Reading checkpoint files without running code from them (see `xinc.models.authors`).

Files are read with `torch.load(weights_only=True)` first. The authors' Lightning file pickles
omegaconf `DictConfig`/`ListConfig` objects in `hyper_parameters` (their metadata holds a
`collections.defaultdict`), which that refuses; such a file is read again by `torch.load` with
`RestrictedUnpickler` as its pickle module, in the zip format and the legacy one alike. That
unpickler imports no module and calls nothing but an allow-list: plain containers and builtins
(`dict`, `collections.defaultdict` / `OrderedDict`, `list`, `tuple`, `set`, `int`, `float`,
`str`, `bytes`, …), torch's tensor rebuild functions, `torch.Size` / `torch.device` and torch's
dtype-like constants. Every other global the file names becomes an inert stand-in class
(`StandIn`: it stores its constructor arguments, pickled state and the items added to it, and
does nothing else), so no code from the file runs and omegaconf is never imported.
`hyper_parameters` is converted to plain data for `.meta` (`plain`): an omegaconf container
gives the dict/list of its `_content`, a value node its `_val` (interpolations such as `${a}`
stay unresolved strings, as `OmegaConf.to_container` gives them).
"""

from __future__ import annotations

import _compat_pickle
import pickle
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

__all__ = ["RESTRICTED_PICKLE", "RestrictedUnpickler", "StandIn", "plain", "read_checkpoint"]


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
