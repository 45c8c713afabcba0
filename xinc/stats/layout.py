"""The shape of one layer's statistics and the arrays they are written as (docs/formats.md §6).

Every statistic family of `xinc.stats.frame` declares its arrays with `outputs(layout)`
({key: (dtype, shape)}) beside the `values()` that compute them; `emit` writes the values as
declared, so the declaration is the one list of what a statistics file holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Spec = dict[str, tuple[type, tuple[int, ...]]]  # key → (numpy dtype, shape)
POOL = 16  # side of the average pools of `features_spatial16`


@dataclass(frozen=True)
class FrameLayout:
    """N neurons, an H×W frame, the groupings {name: G}, k sampled maps, and whether the
    instance grouping's panoptic ids (`instances_ids`) are known."""

    neurons: int
    height: int
    width: int
    groups: Mapping[str, int] = field(default_factory=dict)
    samples: int = 0
    instance_ids: bool = True

    @property
    def pixels(self) -> int:
        """H·W."""
        return self.height * self.width

    @property
    def pool_shape(self) -> tuple[int, int]:
        """The grid of whole POOL×POOL blocks (trailing rows and columns dropped)."""
        return self.height // POOL, self.width // POOL


def emit(spec: Spec, values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """`values` as the arrays `spec` declares, in its order: each one of its declared shape,
    cast to its declared dtype (a copy). A key missing or extra, or a shape that differs, is
    an error in the family that wrote it."""
    if set(values) != set(spec):
        raise RuntimeError(f"statistics {sorted(values)} are not the declared {sorted(spec)}")
    out = {}
    for key, (dtype, shape) in spec.items():
        array = np.asarray(values[key])
        if array.shape != shape:
            raise RuntimeError(f"statistic {key!r} has shape {array.shape}, declared {shape}")
        out[key] = array.astype(dtype)
    return out


def spec_nbytes(spec: Spec) -> dict[str, int]:
    """Uncompressed bytes of every fixed-size array of `spec` (strings left out)."""
    return {key: np.dtype(dtype).itemsize * math.prod(shape)
            for key, (dtype, shape) in spec.items() if np.dtype(dtype).kind != "U"}
