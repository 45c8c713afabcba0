"""Pixel groupings and per-frame statistics of contribution maps (docs/method.md §8).

Names are imported from their submodule on first use (PEP 562), so that code reading
statistics (figures, tables) does not import torch, which only computing them needs.
"""

from __future__ import annotations

from xinc.lazy import lazy_exports

_EXPORTS = {
    "frame": ("FrameStats", "canvas_frame_stats", "declared_nbytes", "declared_outputs",
              "frame_stats", "read_frame_stats", "write_frame_stats"),
    "groupings": ("GROUPINGS", "gabor_features", "grid_groups", "instance_groups",
                  "pixel_groups"),
    "labels": ("grid_layout", "label_maps"),
    "mass": ("MassHistogram",),
    "pair": ("canvas_pair_change", "pair_change", "read_pair_stats", "write_pair_stats"),
    "samples": ("sample_neurons",),
    "segments": ("OTHER_SEGMENTS", "instance_view"),
    "spread": ("gini",),
    "variance": ("SIGNED_GROUPINGS", "grouping_variance", "stats_variances"),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
