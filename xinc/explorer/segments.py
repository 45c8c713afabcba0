"""Segments of the explorer: their names over a video, and each neuron's share of its |C| per
segment (docs/formats.md §6 `group_sums_instances`, `total`, `instances_ids`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xinc.explorer.encode import pack, quantise_share
from xinc.intermediate import read_json
from xinc.stats.segments import OTHER_ID

__all__ = ["frame_segments", "segment_names", "segment_shares"]


def segment_names(stats_paths: Sequence[str | Path], meta_path: str | Path) -> dict[int, str]:
    """{panoptic id: track name} of the segments in the statistics files (one per analysed
    frame), named as the instance table names them (`car_1`, `road`, `other`); a video without
    masks (no categories in its meta.json) has "other" only."""
    from xinc.instances import video_instance_table

    if not read_json(meta_path).get("categories"):
        return {OTHER_ID: "other"}
    table = video_instance_table(stats_paths, meta_path)
    return dict(zip(table["pan_id"].tolist(), table["track"].tolist(), strict=True))


def frame_segments(stats: Mapping[str, np.ndarray], names: Mapping[int, str]
                   ) -> list[dict[str, Any]]:
    """[{"pan_id", "name"}] of a statistics file's instance columns, in column order."""
    ids = np.asarray(stats.get("instances_ids", []), np.int64).tolist()
    return [{"pan_id": pan, "name": names.get(pan, str(pan))} for pan in ids]


def segment_shares(stats: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Packed uint16 [N, S]: `quantise_share(S_{n,s} / T_n)` (`group_sums_instances / total`,
    0 for a neuron with T_n = 0); S = the instance columns (empty without them)."""
    total = np.asarray(stats["total"], np.float64)
    sums = np.asarray(stats.get("group_sums_instances", np.zeros((len(total), 0))), np.float64)
    safe = np.where(total > 0, total, 1.0)[:, None]
    share = np.where(total[:, None] > 0, sums / safe, 0.0)
    return pack(quantise_share(share))
