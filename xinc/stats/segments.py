"""The "other" segment of the instance grouping, as stored or as the authors build it.

The statistics store the instance grouping as a partition of the frame (docs/formats.md §5–6): one
column per panoptic segment, then "other" = the void pixels (panoptic id −2), if any. The
authors' "other" is instead the union of every annotated mask (docs/method.md §6.3 B9; the void
pixels then belong to no group), which overlaps every segment. Its sums follow from the stored
partition without the maps: S_other = Σ_s S_s and A_other = Σ_s A_s over the segments, so
`stats.other_segment` is applied when the statistics are read, never when they are computed.
"""

from __future__ import annotations

import numpy as np

from xinc.stats.groupings import OTHER_ID

OTHER_SEGMENTS = ("complement", "union")


def instance_view(group_sums: np.ndarray, areas: np.ndarray, ids: np.ndarray | None,
                  other: str = "complement") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sums [N, S'], areas [S'], panoptic ids [S']) of the instance grouping with "other" as
    `other` says: `complement` = as stored (void pixels, when there are any); `union` = the
    void column dropped and a last column summing every segment (the authors' "other").

    `ids` None (statistics without `instances_ids`) treats every column as a segment.
    """
    if other not in OTHER_SEGMENTS:
        raise ValueError(f"unknown other_segment {other!r}; choose from {OTHER_SEGMENTS}")
    sums = np.asarray(group_sums, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.int64)
    ids = (np.arange(areas.shape[0], dtype=np.int64) if ids is None
           else np.asarray(ids, dtype=np.int64))
    if sums.shape[1:] != areas.shape or ids.shape != areas.shape:
        raise ValueError(f"instance sums {sums.shape}, areas {areas.shape} and ids {ids.shape} "
                         "do not match")
    if other == "complement":
        return sums, areas, ids
    segment = ids != OTHER_ID
    union_sums = sums[:, segment].sum(axis=1, keepdims=True)
    return (np.concatenate([sums[:, segment], union_sums], axis=1),
            np.append(areas[segment], areas[segment].sum()),
            np.append(ids[segment], OTHER_ID))
