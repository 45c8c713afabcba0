"""Grouping statistic v_n of docs/method.md §8.3 (Figs 4/16)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SIGNED_GROUPINGS = ("grid_lattice", "grid_contiguous")


def grouping_variance(group_sums: np.ndarray, areas: np.ndarray, total: np.ndarray, *,
                      signed: bool = False, pixels: int | None = None) -> np.ndarray:
    """v_n = unbiased variance over groups g of δ_{n,g}, shape [N].

    E_{n,g} = T_n·A_g / (H·W) with H·W = `pixels`, by default Σ_g A_g (groups that partition
    the frame; pass it for overlapping groups such as the authors' "other", `xinc.stats.
    segments`, or groups that leave pixels out); δ = |S − E| / E, or (S − E) / E when `signed`
    (the authors' gridcells). Dead neurons (T_n = 0) and groupings with < 2 groups give NaN.
    Near-uniform neurons (S ≈ E) amplify relative errors of S and T by ≈ 1/δ: pass float64
    sums (`FrameStats` accumulates them in float64).
    """
    sums = np.asarray(group_sums, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    if sums.shape != (total.shape[0], areas.shape[0]):
        raise ValueError(f"group sums {sums.shape} do not match total {total.shape} and "
                         f"areas {areas.shape}")
    if areas.shape[0] < 2:
        return np.full(total.shape, np.nan)
    expected = total[:, None] * areas[None, :] / (areas.sum() if pixels is None else pixels)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sums - expected) / expected
    if not signed:
        delta = np.abs(delta)
    v = delta.var(axis=1, ddof=1)
    v[total == 0] = np.nan
    return v


def stats_variances(stats: Mapping[str, np.ndarray], *,
                    signed_grids: bool = True) -> dict[str, np.ndarray]:
    """v_n for every grouping in a frame-stats dict (docs/formats.md §6), keyed by grouping name.

    Grid groupings use the signed δ unless `signed_grids` is False (docs/method.md §6.3 B5).
    """
    names = [key.removeprefix("group_sums_") for key in stats if key.startswith("group_sums_")]
    return {g: grouping_variance(stats[f"group_sums_{g}"], stats[f"areas_{g}"], stats["total"],
                                 signed=signed_grids and g in SIGNED_GROUPINGS)
            for g in names}
