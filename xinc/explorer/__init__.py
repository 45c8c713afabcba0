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

from xinc.lazy import lazy_exports

_EXPORTS = {
    "job": ("explorer_model_data",),
    "page": ("write_page",),
    "topk": ("pixel_topk",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
