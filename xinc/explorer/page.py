"""The explorer's page: the static files (package data, xinc/explorer/page/), the manifest of
every model, frame and layer, and the cluster scatters (docs/formats.md §11)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from xinc.explorer import layout
from xinc.explorer.encode import write_bytes, write_js
from xinc.explorer.palettes import palette
from xinc.explorer.scatter import write_scatter
from xinc.intermediate import read_json

__all__ = ["write_page"]

FORMAT = 1


def _scatters(root: Path, cluster_files: Sequence[str | Path]
              ) -> dict[tuple[str, str, str, str, int], dict[str, Any]]:
    """Write each cluster file's scatter; {(dataset, video, arch, layer, seed): scatter} with,
    for a seed in several files, the file of the most seeds (the first of equals)."""
    from xinc.cluster.layer import read_clusters

    best: dict[tuple[str, str, str, str, int], dict[str, Any]] = {}
    for path in cluster_files:
        clusters = read_clusters(path)
        meta = clusters["meta"]
        seeds = [int(s) for s in meta["seeds"]]
        name = layout.cluster_file(meta["dataset"], meta["video"], meta["frame"], meta["arch"],
                                   meta["layer"], "-".join(map(str, seeds)))
        write_scatter(root / name, name, clusters)
        entry = {"file": name, "frame": int(meta["frame"]), "seeds": seeds}
        for seed in seeds:
            key = (str(meta["dataset"]), str(meta["video"]), str(meta["arch"]),
                   str(meta["layer"]), seed)
            if key not in best or len(seeds) > len(best[key]["seeds"]):
                best[key] = entry
    return best


def manifest(models: Sequence[dict[str, Any]], scatters: dict, run: str) -> dict[str, Any]:
    """`window.XINC_MANIFEST`: the run, the label colours, and per video its models (as their
    model.json, plus `scatter` {layer: cluster scatter} where clusters exist)."""
    videos: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for model in models:
        scatter = {}
        for layer in model["layers"]:
            key = (model["dataset"], model["video"], model["arch"], layer, model["seed"])
            if key in scatters:
                scatter[layer] = scatters[key]
        videos.setdefault((model["dataset"], model["video"]), []).append(
            {**model, "scatter": scatter})
    return {
        "format": FORMAT, "run": run,
        "label_colours": palette("labels")[:60].tolist(),
        "videos": [{"dataset": ds, "video": vid,
                    "models": sorted(ms, key=lambda m: (m["arch"] != "nerv", m["seed"]))}
                   for (ds, vid), ms in videos.items()],
    }


def write_page(root: str | Path, model_indexes: Sequence[str | Path],
               cluster_files: Sequence[str | Path], run: str) -> None:
    """Rule explorer: index.html, explorer.js, explorer.css (copied from the package),
    manifest.js (from every data job's model.json, in the given order) and the scatters of
    `cluster_files`, below `root` (results/<run>/explorer)."""
    root = Path(root)
    page = resources.files("xinc.explorer") / "page"
    for name in layout.PAGE_FILES:
        write_bytes(root / name, (page / name).read_bytes())
    models = [read_json(path) for path in model_indexes]
    scatters = _scatters(root, cluster_files)
    write_js(root / layout.MANIFEST, "window.XINC_MANIFEST = Object.freeze",
             manifest(models, scatters, run))
