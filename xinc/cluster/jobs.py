"""Entry points of the clustering rules (`cluster_layer`, `cluster_members`): files in, files
out, the math in `xinc.cluster.layer` and `xinc.cluster.members`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xinc.cluster.layer import (
    TRUST_COLUMNS,
    ClusterSettings,
    cluster_points,
    read_clusters,
    trust_rows,
    write_clusters,
)
from xinc.cluster.members import draw_members, neuron_maps, write_members
from xinc.cluster.points import read_points
from xinc.intermediate import read_json
from xinc.io import save_table

LOG = logging.getLogger(__name__)


def cluster_layer(stats: Sequence[str | Path], npz: str | Path, csv: str | Path, *,
                  settings: Mapping[str, Any], feature: str, mix: str = "seed",
                  untrained: Sequence[str | Path] = (), meta: Mapping[str, Any],
                  threads: int = 1) -> None:
    """Rule cluster_layer: the neurons of `stats` (one file per seed, or per arch, layer and
    seed for a joint embedding) embedded and clustered; `untrained`: the same files of the
    untrained models (null model of the mixing)."""
    from threadpoolctl import threadpool_limits

    points, dead = read_points(stats, feature)
    null = read_points(untrained, feature)[0] if untrained else None
    LOG.info("%d alive neurons (dead dropped: %s)", len(points), dead)
    info = {**meta, "feature": feature, "dead": dead,
            "sources": [str(p) for p in stats], "untrained_sources": [str(p) for p in untrained]}
    with threadpool_limits(threads):
        result = cluster_points(points, ClusterSettings(**settings), mix=mix, null=null,
                                meta=info, jobs=threads)
    write_clusters(npz, csv, result)


def cluster_members(clusters: Sequence[str | Path], ckpts: Mapping[int, str | Path],
                    video_meta: str | Path, npzs: Sequence[str | Path],
                    csvs: Sequence[str | Path], *, shown: int, per_cluster: int, draw: str,
                    seed: int, canvas: Mapping[str, Any], device: str = "auto") -> None:
    """Rule cluster_members: per cluster file (one layer each), `per_cluster` members of each
    of clusters 0 … shown − 1, with their maps computed from the checkpoint of their seed."""
    from xinc.device import resolve_device
    from xinc.workflow_steps import frame_time, load_model

    info = read_json(video_meta)
    height, width = info["working_size"]
    dev = resolve_device(device)
    models = {}
    for path, npz, csv in zip(clusters, npzs, csvs, strict=True):
        c = read_clusters(path)
        frame, layer = int(c["meta"]["frame"]), c["meta"]["layer"]
        cluster, slot, index = draw_members(c["labels"], shown=shown, per_cluster=per_cluster,
                                            seed=seed, draw=draw)
        maps = np.zeros((len(index), height, width), np.float32)
        times = {}
        for s in np.unique(c["seed"][index]).tolist():
            if s not in models:
                models[s] = load_model(ckpts[s]).to(dev)
            rows = np.flatnonzero(c["seed"][index] == s)
            times[s] = frame_time(models[s], frame, info, canvas["time_index"])
            maps[rows] = neuron_maps(models[s], layer, c["neuron"][index[rows]], t=times[s],
                                     height=height, width=width, mode=canvas["mode"],
                                     bias=canvas["bias"], neuron=canvas["neuron"])
        meta = {key: c["meta"].get(key) for key in ("dataset", "video", "frame", "arch",
                                                    "layer", "seeds", "feature")}
        meta.update(shown=shown, per_cluster=per_cluster, draw=draw, draw_seed=seed,
                    clusters_file=str(path), t={str(s): t for s, t in times.items()},
                    **{key: canvas[key] for key in ("mode", "bias", "neuron", "time_index")})
        write_members(npz, csv, {
            "cluster": cluster, "slot": slot, "seed": c["seed"][index],
            "neuron": c["neuron"][index], "maps": maps,
            "meta_json": np.array(json.dumps(meta, sort_keys=True))})


def cluster_table(clusters: Sequence[str | Path], csv: str | Path) -> pd.DataFrame:
    """Rule cluster_table: `trust_rows` of every cluster file, in order."""
    parts = [trust_rows(path) for path in clusters]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TRUST_COLUMNS)
    save_table(table, csv)
    return table
