"""Pixel groupings and per-frame statistics of contribution maps (analyses.md §0.5–0.6)."""

from xinc.stats.frame_stats import (
    FrameStats,
    canvas_frame_stats,
    declared_nbytes,
    frame_stats,
    label_maps,
    read_frame_stats,
    sample_neurons,
    write_frame_stats,
)
from xinc.stats.groupings import (
    GROUPINGS,
    gabor_features,
    grid_groups,
    instance_groups,
    pixel_groups,
)
from xinc.stats.mass import MassHistogram
from xinc.stats.pair import canvas_pair_change, pair_change, read_pair_stats, write_pair_stats
from xinc.stats.variance import SIGNED_GROUPINGS, grouping_variance, stats_variances

__all__ = [
    "GROUPINGS",
    "SIGNED_GROUPINGS",
    "FrameStats",
    "MassHistogram",
    "canvas_frame_stats",
    "canvas_pair_change",
    "declared_nbytes",
    "frame_stats",
    "gabor_features",
    "grid_groups",
    "grouping_variance",
    "instance_groups",
    "label_maps",
    "pair_change",
    "pixel_groups",
    "read_frame_stats",
    "read_pair_stats",
    "sample_neurons",
    "stats_variances",
    "write_frame_stats",
    "write_pair_stats",
]
