"""`xinc bench clusters`: one layer's UMAP + k-means at paper size, ours against umap-learn's
defaults (what the authors ran), in the same process.

Points: `seeds` × the layer's neurons of the paper models (NeRV head 66, B3 2,288, B2 3,224,
B1 18,352; FFN L1 208, L2/L3 104 per seed), times `scale`; features: 32-d vectors in [0, 1]
drawn around 12 seeded centres, like Gabor-32 features. `ours` = `xinc.cluster.layer.embed`
(exact neighbours, umap-learn's kernels from numba's disk cache); `umap-default` =
`umap.UMAP(n_neighbors, min_dist, random_state)` as is (NNDescent from 4,096 points, its kernels
compiled in the process). Both then run the same k-means (k = 6) on the embedding. Each case
runs in a fresh Python process, as one workflow job: its start-up (imports), the clustering's
wall time and the process's peak RSS are reported.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from xinc.bench import CLUSTER_LAYERS

#: Neurons per seed of the paper models (docs/method.md §1.4).
PAPER_NEURONS = {"head": 66, "b3": 2288, "b2": 3224, "b1": 18352, "l1": 208, "l2": 104,
                 "l3": 104}
#: The paper's n_neighbors per layer (docs/method.md §9.2).
PAPER_NEIGHBOURS = {"head": 5, "b3": 25, "b2": 75, "b1": 150, "l1": 5, "l2": 5, "l3": 5}


def features(n: int, *, dim: int = 32, centres: int = 12, seed: int = 0) -> np.ndarray:
    """n seeded feature vectors in [0, 1]^dim around `centres` centres."""
    rng = np.random.default_rng(seed)
    middle = rng.random((centres, dim))
    x = middle[rng.integers(0, centres, n)] + 0.08 * rng.standard_normal((n, dim))
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _ours(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    from xinc.cluster.layer import ClusterSettings, embed
    from xinc.cluster.points import Points

    n = len(x)
    points = Points(x, np.zeros(n, np.int64), np.arange(n), np.full(n, "nerv"),
                    np.full(n, "b1"))
    return embed(points, ClusterSettings(n_neighbors=n_neighbors), [42]).labels[0]


def _default(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    import umap

    from xinc.cluster.embed import kmeans_labels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xy = umap.UMAP(n_neighbors=n_neighbors, min_dist=0.1, random_state=42).fit_transform(x)
    return kmeans_labels(xy, 6, seed=0, n_init=10)


CASES = {"ours": _ours, "umap-default": _default}


def case(name: str, n: int, n_neighbors: int) -> dict[str, Any]:
    """One case in this process: start-up (imports), seconds of the clustering, peak RSS."""
    start = time.perf_counter()
    import umap  # noqa: F401 - the start-up a job pays

    import xinc.cluster.layer  # noqa: F401
    ready = time.perf_counter()
    labels = CASES[name](features(n), n_neighbors)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"startup_s": ready - start, "seconds": done - ready, "peak_mib": peak,
            "labels": labels.tolist()}


def _in_process(name: str, n: int, n_neighbors: int) -> dict[str, Any]:
    """`case` in a fresh Python process (as a workflow job runs it)."""
    out = subprocess.run([sys.executable, "-m", "xinc.bench.clusters", name, str(n),
                          str(n_neighbors)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"bench case {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def run(layers: Sequence[str] = CLUSTER_LAYERS, *, seeds: int = 5, scale: float = 1.0,
        baseline: bool = True) -> dict[str, Any]:
    """Per layer: points, and per case (each in a fresh process) start-up seconds, clustering
    seconds and peak RSS; with the baseline, the speed-up and the ARI of the two clusterings."""
    from sklearn.metrics import adjusted_rand_score

    rows = []
    for layer in layers:
        n = max(8, round(PAPER_NEURONS[layer] * seeds * scale))
        k = min(PAPER_NEIGHBOURS[layer], n - 1)
        row: dict[str, Any] = {"layer": layer, "points": n, "n_neighbors": k}
        for name in ("ours", "umap-default") if baseline else ("ours",):
            result = _in_process(name, n, k)
            row[name] = {key: result[key] for key in ("startup_s", "seconds", "peak_mib")}
            row[f"{name}_labels"] = np.asarray(result["labels"])
        if baseline:
            row["speedup"] = row["umap-default"]["seconds"] / row["ours"]["seconds"]
            row["ari"] = float(adjusted_rand_score(row["ours_labels"],
                                                   row["umap-default_labels"]))
        for name in CASES:
            row.pop(f"{name}_labels", None)
        rows.append(row)
    return {"seeds": seeds, "scale": scale, "rows": rows}


def format_report(result: dict[str, Any]) -> str:
    """A text table of a `run` result."""
    lines = [f"UMAP + k-means per layer, {result['seeds']} seeds × paper neurons × "
             f"{result['scale']:g}", ""]
    base = "umap-default" in result["rows"][0]
    head = f"{'layer':<6}{'points':>8}{'k':>5}{'ours s':>9}{'start':>7}{'MiB':>7}"
    if base:
        head += f"{'default s':>11}{'start':>7}{'MiB':>7}{'speed-up':>10}{'ARI':>6}"
    lines.append(head)
    for r in result["rows"]:
        ours = r["ours"]
        line = (f"{r['layer']:<6}{r['points']:>8}{r['n_neighbors']:>5}{ours['seconds']:>9.1f}"
                f"{ours['startup_s']:>7.1f}{ours['peak_mib']:>7.0f}")
        if base:
            d = r["umap-default"]
            line += (f"{d['seconds']:>11.1f}{d['startup_s']:>7.1f}{d['peak_mib']:>7.0f}"
                     f"{r['speedup']:>10.2f}{r['ari']:>6.2f}")
        lines.append(line)
    lines.append("")
    lines.append("seconds: the clustering (neighbours, UMAP, k-means) in a fresh process; start: "
                 "its imports; MiB: the process's peak RSS; ARI: agreement of the two "
                 "clusterings")
    return "\n".join(lines)


if __name__ == "__main__":  # one case in a fresh process (`_in_process`)
    print(json.dumps(case(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
