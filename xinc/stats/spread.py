"""How unevenly a quantity is spread over units (pixels per neuron, Fig 6 and the findings)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def gini(x: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative values x_1..x_n:

    G = Σ_i Σ_j |x_i − x_j| / (2 n² x̄) = 2 Σ_i i·x_(i) / (n Σ_i x_i) − (n + 1)/n,

    with x_(1) ≤ … ≤ x_(n) sorted ascending. 0 when all values are equal (also when all are
    zero: nobody serves more than anybody else), (n − 1)/n when one value holds everything.
    NaN for an empty input.
    """
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    if x.size == 0:
        return math.nan
    if np.any(x < 0):
        raise ValueError("gini needs non-negative values")
    total = float(x.sum())
    if total == 0.0:
        return 0.0
    n = x.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1) / n)
