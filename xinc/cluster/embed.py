"""UMAP embedding and k-means labels, deterministic for a given seed and thread count.

UMAP (umap-learn) runs on exact euclidean nearest neighbours computed by scikit-learn and passed
in as `precomputed_knn`: the same neighbours umap-learn itself uses below 4,096 points, and
above that deterministic and faster on CPU than its NNDescent, whose numba kernels are
recompiled in every process. umap-learn's own numba kernels are not cached on disk by the
package; `_cache_umap_kernels` turns numba's on-disk cache on for them, so only the first job
on a machine compiles them and later jobs start at once (docs/benchmarks.md §2).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np


@cache
def _cache_umap_kernels() -> None:
    """Enable numba's on-disk cache for umap-learn's module-level jitted functions."""
    import umap.distances
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.registry import CPUDispatcher

    for module in (umap.umap_, umap.layouts, umap.spectral, umap.utils, umap.distances):
        for fn in vars(module).values():
            if isinstance(fn, CPUDispatcher) and type(fn._cache).__name__ == "NullCache":
                fn.enable_caching()


def exact_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and euclidean distances [N, k] of each point's k nearest points (itself first)."""
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors(x)
    return idx.astype(np.int64), dist.astype(np.float32)


def umap_xy(x: np.ndarray, knn: tuple[np.ndarray, np.ndarray], *, min_dist: float,
            random_state: int, epochs: int | None = None) -> np.ndarray:
    """2-D UMAP embedding [N, 2] (float32) of the rows of `x`, on their nearest neighbours
    `knn` (`exact_neighbours`; n_neighbors = its width, ≥ 2 and < N); `epochs` None =
    umap-learn's default (500 below 10,000 points, else 200)."""
    import umap

    _cache_umap_kernels()
    n, n_neighbors = knn[0].shape
    if not 2 <= n_neighbors < n:
        raise ValueError(f"UMAP needs 2 ≤ n_neighbors < points, got {n_neighbors} for {n} "
                         "points")
    with warnings.catch_warnings():
        # no NNDescent search index (only transform() would need it); n_jobs=1 is chosen
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist,
                            metric="euclidean", random_state=random_state, n_jobs=1,
                            n_epochs=epochs, precomputed_knn=(*knn, None))
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def umap_runs(x: np.ndarray, knn: tuple[np.ndarray, np.ndarray], *, min_dist: float,
              states: list[int], epochs: int | None = None,
              jobs: int = 1) -> list[np.ndarray]:
    """`umap_xy` for each random state, `jobs` processes at a time (each run is
    single-threaded and deterministic, so the result does not depend on `jobs`)."""
    if jobs <= 1 or len(states) <= 1:
        return [umap_xy(x, knn, min_dist=min_dist, random_state=s, epochs=epochs)
                for s in states]
    from joblib import Parallel, delayed

    run = delayed(umap_xy)
    return Parallel(n_jobs=min(jobs, len(states)))(
        run(x, knn, min_dist=min_dist, random_state=s, epochs=epochs) for s in states)


def kmeans_labels(x: np.ndarray, k: int, *, seed: int, n_init: int) -> np.ndarray:
    """k-means labels (int64) numbered by decreasing cluster size (ties: the cluster whose
    first point comes first), so cluster 0 is the largest whatever k-means' own numbering.
    Single-threaded: as fast on these sizes (2-D embeddings, ≤ 128-d vectors), and the
    same labels on every machine."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        raw = KMeans(n_clusters=k, random_state=seed, n_init=n_init).fit_predict(
            np.asarray(x, dtype=np.float64))
    return relabel_by_size(raw)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """`labels` renumbered 0, 1, … by decreasing count, ties by first occurrence."""
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    new = np.empty(len(values), np.int64)
    new[order] = np.arange(len(values))
    return new[np.searchsorted(values, labels)]
