"""Lazy package exports (PEP 562): a package names its public names and their submodules, and
each is imported on first use, so that light readers (rules, figures) do not import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: dict[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`, whose `exports` map each submodule
    to the names it provides; a name, once imported, is cached in the package's `namespace`."""
    module_of = {name: module for module, names in exports.items() for name in names}
    public = sorted(module_of)

    def getattr_(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *public})

    return public, getattr_, dir_
