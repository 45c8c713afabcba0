"""The canvas explorer: a static page (results/<run>/explorer/index.html) where a user clicks a
pixel and sees its top neurons per layer, and clicks a neuron and sees its map (docs/formats.md
§11). It works from file:// without a server or any external script.

Modules, one job each: `topk` (top-k neurons per pixel from one streamed pass), `select` (the
bounded set of kept maps), `layer` (one layer at one frame), `segments` (segment names and
shares), `encode` and `palettes` (byte formats), `write` (one frame's files), `job` (one data
job), `scatter` (the cluster scatters), `page` (the page and its manifest), `layout` (file
names; pure Python, read by the workflow's rules).

Names are imported from their submodule on first use (PEP 562), so the rules can read
`xinc.explorer.layout` without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "job": ("explorer_model_data",),
    "page": ("write_page",),
    "topk": ("pixel_topk",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'xinc.explorer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"xinc.explorer.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
