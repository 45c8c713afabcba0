"""Sums over pixels and what follows from them alone (docs/formats.md §6): T_n, the group sums
and areas, the heat and `alive` (pass 1), the instance means and ids, and pixels per neuron
(pass 2, against the finished heat).

Every sum over pixels (T_n, the group sums, the pools) and the heat read a float64 copy of |C|
(`wide_rows`; exact for float32 maps): they equal a float64 computation on the same maps up to
float64 rounding, whatever the summation order. This matters for v_n (`xinc.stats.variance`):
a neuron spread almost evenly over the groups has S ≈ E, and float32 sums (relative error
≈ 1e-7) gave v_n errors from 1e-3 up to tens of percent. On the CPU the copy is made
`WIDE_BYTES` at a time, so that the sums read it from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch

from xinc.stats.labels import Groupings
from xinc.stats.layout import FrameLayout, Spec
from xinc.stats.workspace import Workspaces

WIDE_BYTES = 4 << 20  # float64 |C| rows summed at a time on the CPU


def wide_rows(idx: np.ndarray, flat: torch.Tensor,
              work: Workspaces) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(neurons, float64 rows) of |C| `flat` [n, P] (neurons `idx`): on the CPU WIDE_BYTES of
    rows at a time, in the workspace `work` unless `flat` is float64 already."""
    step = len(idx) if flat.device.type != "cpu" else WIDE_BYTES // (8 * flat.shape[1])
    step = max(1, step)
    for start in range(0, len(idx), step):
        part = flat[start:start + step]
        if part.dtype != torch.float64:
            part = work.get("wide", tuple(part.shape), part, torch.float64).copy_(part)
        yield idx[start:start + step], part


class PixelSums:
    """Pass 1: T_n, the group sums S_{n,q} and the heat Σ_n |C_n(p)|, from float64 rows."""

    def __init__(self, layout: FrameLayout, groupings: Groupings) -> None:
        self.layout, self.groupings = layout, groupings
        self.total = np.zeros(layout.neurons)
        self.group_sums = {g: np.zeros((layout.neurons, size))
                           for g, size in layout.groups.items()}
        self.heat: torch.Tensor | None = None  # [H·W] float64

    @staticmethod
    def outputs(layout: FrameLayout) -> Spec:
        """`total`, `group_sums_<g>`, `areas_<g>`, `heat`, `alive`."""
        n = layout.neurons
        spec: Spec = {"total": (np.float64, (n,))}
        for g, size in layout.groups.items():
            spec[f"group_sums_{g}"] = (np.float64, (n, size))
            spec[f"areas_{g}"] = (np.int64, (size,))
        spec["heat"] = (np.float32, (layout.height, layout.width))
        spec["alive"] = (np.bool_, (n,))
        return spec

    def add(self, idx: np.ndarray, wide: torch.Tensor) -> None:
        """The float64 rows `wide` [n, H·W] of neurons `idx`."""
        self.total[idx] = wide.sum(1).cpu().numpy()
        for g, sums in self.groupings.sums(wide).items():
            self.group_sums[g][idx] = sums.cpu().numpy()
        heat = wide.sum(0)
        self.heat = heat if self.heat is None else self.heat.add_(heat)

    def values(self) -> dict[str, np.ndarray]:
        """The arrays of `outputs`."""
        out: dict[str, np.ndarray] = {"total": self.total}
        for g in self.layout.groups:
            out[f"group_sums_{g}"] = self.group_sums[g]
            out[f"areas_{g}"] = self.groupings.areas[g]
        out["heat"] = self.heat.reshape(self.layout.height, self.layout.width).cpu().numpy()
        out["alive"] = self.total > 0
        return out


def instance_ids(groups: Mapping[str, np.ndarray], groupings: Groupings) -> np.ndarray | None:
    """`groups["instances_ids"]` (int64) when there is an `instances` label map, else None."""
    areas = groupings.areas
    if "instances" not in areas or "instances_ids" not in groups:
        return None
    ids = np.asarray(groups["instances_ids"], dtype=np.int64)
    if len(ids) != len(areas["instances"]):
        raise ValueError(f"instances_ids has {len(ids)} entries for "
                         f"{len(areas['instances'])} instance groups")
    return ids


class Instances:
    """The instance grouping's means m_{n,s} = S_{n,s}/A_s and the panoptic id of each column
    (`pixel_groups`' `instances_ids`, kept so that the statistics name their segments)."""

    def __init__(self, ids: np.ndarray | None, sums: PixelSums) -> None:
        self.ids, self.sums = ids, sums

    @staticmethod
    def outputs(layout: FrameLayout) -> Spec:
        """`instance_means` with an `instances` grouping, `instances_ids` if they are known."""
        if "instances" not in layout.groups:
            return {}
        size = layout.groups["instances"]
        spec: Spec = {"instance_means": (np.float64, (layout.neurons, size))}
        if layout.instance_ids:
            spec["instances_ids"] = (np.int64, (size,))
        return spec

    def values(self) -> dict[str, np.ndarray]:
        """The arrays of `outputs`."""
        if "instances" not in self.sums.group_sums:
            return {}
        out = {"instance_means": self.sums.group_sums["instances"]
               / self.sums.groupings.areas["instances"]}
        if self.ids is not None:
            out["instances_ids"] = self.ids
        return out


class PixelsPerNeuron:
    """Pass 2: per neuron the pixels with |C_n(p)| / Σ_m |C_m(p)| > 1/N, evaluated as
    |C_n(p)| > heat(p)/N in the maps' dtype (pixels with zero heat never count)."""

    def __init__(self, layout: FrameLayout, sums: PixelSums) -> None:
        self.sums = sums
        self.counts = np.zeros(layout.neurons, dtype=np.int64)
        self._threshold: torch.Tensor | None = None

    @staticmethod
    def outputs(layout: FrameLayout) -> Spec:
        """`pixels_per_neuron`."""
        return {"pixels_per_neuron": (np.int64, (layout.neurons,))}

    def add(self, idx: np.ndarray, flat: torch.Tensor) -> None:
        """|C| `flat` [n, H·W] of neurons `idx` (after pass 1 saw every neuron)."""
        if self._threshold is None:
            self._threshold = (self.sums.heat / len(self.counts)).to(flat.dtype)
        self.counts[idx] = (flat > self._threshold).sum(1, dtype=torch.int32).cpu().numpy()

    def values(self) -> dict[str, np.ndarray]:
        """The arrays of `outputs`."""
        return {"pixels_per_neuron": self.counts}
