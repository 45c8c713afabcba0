"""One layer's clusters (rule `cluster_layer`): UMAP, k-means, trust measures, one file.

Steps (docs/method.md §9.2): the alive neurons' feature vectors of every seed are pooled; UMAP
embeds them in 2-D; k-means on the embedding gives the clusters. For trust: k-means on the raw
vectors (silhouette, ARI against the embedding's clusters), `stability` further UMAP runs with
random states umap_seed + 1, … (ARI of each run's clusters against the main one), and, when
given, the same embedding and clustering of an untrained model's neurons (the null model of the
seed mixing). The file format is docs/formats.md §9.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xinc.cluster.embed import exact_neighbours, kmeans_labels, umap_runs
from xinc.cluster.points import Points
from xinc.cluster.trust import agreement, cluster_rows, layer_mixing, silhouette
from xinc.intermediate import read_npz
from xinc.io import save_npz, save_table

LOG = logging.getLogger(__name__)

POINT_KEYS = ("xy", "labels", "seed", "neuron", "arch", "layer")
POINT_COLUMNS = ["arch", "layer", "seed", "neuron", "x", "y", "cluster"]
TRUST_MEASURES = ("mixing", "silhouette_umap", "silhouette_raw", "ari_umap_raw",
                  "stability_ari_mean", "stability_ari_min", "null_mixing")
#: Columns of results/<run>/tables/clusters.csv (`trust_rows`).
TRUST_COLUMNS = ["dataset", "video", "frame", "arch", "layer", "seed_set", "feature",
                 "mixing_of", "cluster", "size", "groups_present", "seeds_present", "seeds",
                 "mixing", *(f"layer_{m}" for m in TRUST_MEASURES), "points"]


@dataclass(frozen=True)
class ClusterSettings:
    """UMAP and k-means settings of one layer (config `clusters`)."""

    n_neighbors: int
    k: int = 6
    min_dist: float = 0.1
    umap_seed: int = 42
    kmeans_seed: int = 0
    n_init: int = 10
    stability: int = 5
    silhouette_sample: int = 10000
    epochs: int | None = None


@dataclass(frozen=True)
class Embeddings:
    """UMAP coordinates and k-means labels of some points for one or more random states, with
    the n_neighbors and k actually used (capped at what the points allow)."""

    xy: list[np.ndarray]
    labels: list[np.ndarray]
    n_neighbors: int
    k: int


def embed(points: Points, s: ClusterSettings, states: list[int], jobs: int = 1) -> Embeddings:
    """UMAP (one neighbour graph, one run per random state) + k-means of `points`."""
    n = len(points)
    if n < 4:  # UMAP's spectral initialisation fails on 3 points
        raise ValueError(f"{n} alive neurons: too few to embed (UMAP needs at least 4)")
    n_neighbors, k = max(2, min(s.n_neighbors, n - 1)), min(s.k, n)
    knn = exact_neighbours(points.features, n_neighbors)
    xys = umap_runs(points.features, knn, min_dist=s.min_dist, states=states, epochs=s.epochs,
                    jobs=jobs)
    return Embeddings(xys, [kmeans_labels(xy, k, seed=s.kmeans_seed, n_init=s.n_init)
                            for xy in xys], n_neighbors, k)


def cluster_points(points: Points, s: ClusterSettings, *, mix: str = "seed",
                   null: Points | None = None, meta: dict[str, Any] | None = None,
                   jobs: int = 1) -> dict[str, np.ndarray]:
    """The arrays of one cluster file (docs/formats.md §9) for `points`; `mix` names the
    point attribute whose mixing is measured (`seed`, or `arch` for a joint embedding);
    `jobs`: UMAP runs at a time."""
    states = [s.umap_seed + 1 + i for i in range(s.stability)]
    runs = embed(points, s, [s.umap_seed, *states], jobs)
    xy, labels = runs.xy[0], runs.labels[0]
    if runs.n_neighbors != s.n_neighbors or runs.k != s.k:
        LOG.warning("%d points: n_neighbors %d, k %d (configured %d, %d)", len(points),
                    runs.n_neighbors, runs.k, s.n_neighbors, s.k)
    raw = kmeans_labels(points.features, runs.k, seed=s.kmeans_seed, n_init=s.n_init)
    others = np.stack(runs.labels[1:]) if states else np.zeros((0, len(points)), np.int64)
    stable = [agreement(labels, r) for r in others]
    groups = getattr(points, mix)
    trust = {
        "mixing": layer_mixing(labels, groups),
        "silhouette_umap": silhouette(xy, labels, sample=s.silhouette_sample,
                                      seed=s.kmeans_seed),
        "silhouette_raw": silhouette(points.features, raw, sample=s.silhouette_sample,
                                     seed=s.kmeans_seed),
        "ari_umap_raw": agreement(labels, raw),
        "stability_ari_mean": float(np.mean(stable)) if stable else float("nan"),
        "stability_ari_min": float(np.min(stable)) if stable else float("nan"),
        "null_mixing": float("nan"),
    }
    out: dict[str, np.ndarray] = {
        "xy": xy, "labels": labels, "seed": points.seed, "neuron": points.neuron,
        "arch": points.arch, "layer": points.layer, "features": points.features,
        "raw_labels": raw, "stability_states": np.asarray(states, np.int64),
        "stability_labels": others,
    }
    if null is not None:
        base = embed(null, s, [s.umap_seed])
        trust["null_mixing"] = layer_mixing(base.labels[0], getattr(null, mix))
        out.update(null_xy=base.xy[0], null_labels=base.labels[0], null_seed=null.seed,
                   null_neuron=null.neuron, null_arch=null.arch, null_layer=null.layer)
    info = {**(meta or {}), **asdict(s), "mix": mix, "points": len(points),
            "n_neighbors_used": runs.n_neighbors, "k_used": runs.k, "knn": "exact",
            "null_model": null is not None, "versions": _versions()}
    out["meta_json"] = np.array(json.dumps(info, sort_keys=True))
    out["trust_json"] = np.array(json.dumps(trust, sort_keys=True))
    return out


def _versions() -> dict[str, str]:
    import sklearn
    import umap

    return {"umap-learn": umap.__version__, "scikit-learn": sklearn.__version__}


def point_table(result: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per point (:data:`POINT_COLUMNS`)."""
    return pd.DataFrame({"arch": result["arch"], "layer": result["layer"],
                         "seed": result["seed"], "neuron": result["neuron"],
                         "x": result["xy"][:, 0], "y": result["xy"][:, 1],
                         "cluster": result["labels"]}, columns=POINT_COLUMNS)


def write_clusters(npz: str | Path, csv: str | Path, result: dict[str, np.ndarray]) -> None:
    """The cluster file and its per-point CSV."""
    save_npz(npz, **result)
    save_table(point_table(result), csv)


def read_clusters(path: str | Path) -> dict[str, Any]:
    """A cluster file's arrays, with `meta` and `trust` decoded from their JSON."""
    arrays = read_npz(path, (*POINT_KEYS, "meta_json", "trust_json"), "cluster")
    arrays["meta"] = json.loads(str(arrays.pop("meta_json")))
    arrays["trust"] = json.loads(str(arrays.pop("trust_json")))
    return arrays


def trust_rows(path: str | Path) -> pd.DataFrame:
    """Rows of `results/<run>/tables/clusters.csv` for one cluster file: one per cluster, the
    file's labels and layer-wide trust measures repeated on each."""
    c = read_clusters(path)
    meta, trust = c["meta"], c["trust"]
    rows = cluster_rows(c["labels"], c[meta["mix"]], c["seed"])
    labels = {key: meta.get(key) for key in ("dataset", "video", "frame", "arch", "layer")}
    labels.update(seed_set=" ".join(map(str, meta.get("seeds", []))),
                  feature=meta.get("feature"), mixing_of=meta["mix"])
    rows = rows.assign(**labels, **{f"layer_{m}": trust[m] for m in TRUST_MEASURES},
                       points=meta["points"])
    return rows[TRUST_COLUMNS]
