"""How far the clusters can be trusted (beyond the paper; docs/method.md §9.4).

Seed mixing: for a cluster, w_s = (its points of group s) / (points of group s in the layer),
p_s = w_s / Σ w, and the normalised entropy H = −Σ p_s log p_s / log S over the S groups
(seeds, or architectures for a joint embedding). H = 1 when every seed gives the cluster the
same share of its neurons, 0 when one seed makes it up; it is undefined (NaN) for one group.
A layer's mixing is the size-weighted mean over its clusters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixing_entropy(labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster 0 … max(labels): (normalised entropy, number of groups present)."""
    names, group = np.unique(groups, return_inverse=True)
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    counts = np.zeros((n_clusters, len(names)))
    np.add.at(counts, (labels, group), 1)
    present = (counts > 0).sum(1)
    if len(names) < 2:
        return np.full(n_clusters, np.nan), present
    shares = counts / counts.sum(0, keepdims=True)
    p = shares / shares.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (0.0 - np.where(p > 0, p * np.log(p), 0.0).sum(1)) / np.log(len(names))
    return h, present


def layer_mixing(labels: np.ndarray, groups: np.ndarray) -> float:
    """Size-weighted mean mixing entropy of the clusters (NaN for one group)."""
    h, _ = mixing_entropy(labels, groups)
    sizes = np.bincount(labels, minlength=len(h))
    return float((h * sizes).sum() / sizes.sum()) if len(labels) else float("nan")


def silhouette(x: np.ndarray, labels: np.ndarray, *, sample: int, seed: int) -> float:
    """Silhouette of `labels` on `x` (euclidean), on a seeded sample of at most `sample` points;
    NaN when there are fewer than two clusters or no point left to compare."""
    from sklearn.metrics import silhouette_score

    k = len(np.unique(labels))
    if not 2 <= k < len(labels):
        return float("nan")
    size = None if len(labels) <= sample else sample
    return float(silhouette_score(np.asarray(x, np.float64), labels, sample_size=size,
                                  random_state=seed))


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labellings of the same points."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def cluster_rows(labels: np.ndarray, groups: np.ndarray, seeds: np.ndarray) -> pd.DataFrame:
    """One row per cluster: size, seeds present (count and list), mixing entropy."""
    h, present = mixing_entropy(labels, groups)
    rows = []
    for c in range(len(h)):
        mine = np.unique(seeds[labels == c])
        rows.append({"cluster": c, "size": int((labels == c).sum()),
                     "groups_present": int(present[c]), "seeds_present": len(mine),
                     "seeds": " ".join(map(str, mine)), "mixing": float(h[c])})
    return pd.DataFrame.from_records(rows)
