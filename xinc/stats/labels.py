"""The label maps a layer's statistics sum over, and their group sums of float64 rows."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from xinc.stats.groupings import grid_groups


def grid_layout(labels: np.ndarray) -> tuple[str, int, int] | None:
    """("lattice" | "contiguous", sh, sw) when `labels` is exactly that `grid_groups` map on a
    grid dividing the frame (its group sums are then plain reshaped sums), else None."""
    height, width = labels.shape
    count = int(labels.max()) + 1 if labels.size else 0
    for sh in range(1, count + 1):
        sw = count // sh
        if sh * sw != count or height % sh or width % sw:
            continue
        grids = grid_groups(height, width, (sh, sw))
        for kind in ("lattice", "contiguous"):
            if np.array_equal(labels, grids[f"grid_{kind}"]):
                return kind, sh, sw
    return None


def label_maps(groups: Mapping[str, np.ndarray], height: int,
               width: int) -> dict[str, np.ndarray]:
    """The integer [H, W] entries of `groups` (so `pixel_groups` output can be passed as is)."""
    arrays = {name: np.asarray(arr) for name, arr in groups.items()}
    return {name: arr for name, arr in arrays.items()
            if arr.shape == (height, width) and np.issubdtype(arr.dtype, np.integer)}


class Groupings:
    """The label maps of one frame (labels 0 … G−1, none empty), their areas, and the group
    sums of rows of per-pixel values: grids by reshaping, other groupings by label."""

    def __init__(self, groups: Mapping[str, np.ndarray], height: int, width: int) -> None:
        self.height, self.width = height, width
        self.labels = label_maps(groups, height, width)
        self.layouts = {g: grid_layout(lab) for g, lab in self.labels.items()}
        self.areas: dict[str, np.ndarray] = {}
        for name, lab in self.labels.items():
            areas = np.bincount(lab.ravel()) if lab.min() >= 0 else np.zeros(1)
            if not areas.all():
                raise ValueError(f"grouping {name!r}: labels must be 0 … G−1, none empty")
            self.areas[name] = areas.astype(np.int64)
        self._index: dict[str, torch.Tensor] = {}  # labels [H·W] of `_label_sums`

    @property
    def sizes(self) -> dict[str, int]:
        """{grouping: G}."""
        return {name: len(areas) for name, areas in self.areas.items()}

    def sums(self, wide: torch.Tensor) -> dict[str, torch.Tensor]:
        """The group sums [n, G] of every grouping, of the rows `wide` [n, H·W]."""
        return {g: self._label_sums(wide, g) if layout is None else self._grid_sums(wide, *layout)
                for g, layout in self.layouts.items()}

    def _label_sums(self, wide: torch.Tensor, name: str) -> torch.Tensor:
        """Group sums [n, G] of a grouping without a grid layout: `scatter_add_` of the values
        by label (one pass, whatever G; a one-hot GEMM costs G multiply-adds a value)."""
        if name not in self._index:
            labels = torch.from_numpy(self.labels[name].ravel().astype(np.int64))
            self._index[name] = labels.to(wide.device)
        sums = wide.new_zeros(wide.shape[0], len(self.areas[name]))
        return sums.scatter_add_(1, self._index[name].expand_as(wide), wide)

    def _grid_sums(self, wide: torch.Tensor, kind: str, sh: int, sw: int) -> torch.Tensor:
        """Group sums [n, sh·sw] of a grid grouping by reshaping (labels row-major); rows
        first, then columns (two reductions over one axis are several times faster here than
        one over two)."""
        n, bh, bw = wide.shape[0], self.height // sh, self.width // sw
        if kind == "lattice":  # label (y mod sh, x mod sw)
            rows = wide.view(n, bh, sh * self.width).sum(1)
            return rows.view(n, sh, bw, sw).sum(2).reshape(n, -1)
        rows = wide.view(n, sh, bh, self.width).sum(2)
        return rows.view(n, sh, sw, bw).sum(3).reshape(n, -1)
