"""One explorer data job: every analysed frame and layer of one model (a NeRV, or the FFNs of
one video and seed), written below `results/<run>/explorer/` (docs/formats.md §11)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xinc.device import full_fp32, resolve_device
from xinc.explorer import layout
from xinc.explorer.encode import SHARE_MAX, write_js
from xinc.explorer.layer import layer_view
from xinc.explorer.segments import frame_segments, segment_names, segment_shares
from xinc.explorer.write import ADD, write_frame, write_layer
from xinc.intermediate import read_json, read_npy, read_npz
from xinc.io import write_json
from xinc.stats import read_frame_stats
from xinc.workflow_steps import frame_time, load_model

__all__ = ["explorer_model_data", "member_ids"]

LOG = logging.getLogger(__name__)
SAMPLE_SOURCE, MEMBER_SOURCE = "sample", "member"


def member_ids(paths: Sequence[str | Path], seed: int) -> dict[tuple[int, str], list[int]]:
    """{(frame, layer): neuron ids} of the cluster members (docs/formats.md §9) of `seed`,
    in the files' order, each once."""
    from xinc.cluster.members import read_members

    found: dict[tuple[int, str], list[int]] = {}
    for path in paths:
        members = read_members(path)
        key = (int(members["meta"]["frame"]), str(members["meta"]["layer"]))
        ids = members["neuron"][members["seed"] == seed].tolist()
        found[key] = list(dict.fromkeys([*found.get(key, []), *ids]))
    return found


def _by_frame(items: Sequence[Any], n_frames: int, what: str) -> list[Any]:
    """One item per frame: the items, or one shared item repeated (a NeRV's checkpoint)."""
    if len(items) == n_frames:
        return list(items)
    if len(items) == 1:
        return list(items) * n_frames
    raise ValueError(f"{n_frames} frames need 1 or {n_frames} {what}; got {len(items)}")


@dataclass(frozen=True)
class _Job:
    """What every frame of one data job shares."""

    folder: Path
    base: str  # the folder below explorer/: the prefix of the files' keys
    info: dict[str, Any]  # the video's meta.json
    layers: Sequence[str]
    names: dict[int, str]  # segment names
    members: dict[tuple[int, str], list[int]]
    canvas: Mapping[str, Any]
    explorer: Mapping[str, Any]


def _explore_frame(job: _Job, net: torch.nn.Module, frame: int, image: np.ndarray,
                   groups: dict[str, np.ndarray], stats: Sequence[str | Path]
                   ) -> dict[str, tuple[int, dict[str, Any]]]:
    """One frame: its files, and per layer (neurons, the frame's segment shares)."""
    sub = layout.frame_dir(frame)
    height, width = job.info["working_size"]
    layer_stats = [read_frame_stats(path) for path in stats]
    write_frame(job.folder / sub, f"{job.base}/{sub}/frame.js", image, groups,
                frame_segments(layer_stats[0], job.names))
    t = frame_time(net, frame, job.info, job.canvas["time_index"])
    found = {}
    for layer, st in zip(job.layers, layer_stats, strict=True):
        LOG.info("frame %d, layer %s: top-%d neurons per pixel and kept maps", frame, layer,
                 job.explorer["top_k"])
        priority = [(SAMPLE_SOURCE, st["sample_ids"].tolist()),
                    (MEMBER_SOURCE, job.members.get((frame, layer), []))]
        with full_fp32():
            view = layer_view(net, layer, t=t, height=height, width=width, canvas=job.canvas,
                              top_k=job.explorer["top_k"], cap=job.explorer["maps"],
                              grid=job.explorer["grid"], priority=priority)
        write_layer(job.folder / sub, f"{job.base}/{sub}/{layer}.js", view, st)
        found[layer] = (view.neurons, {"frame": frame, "segments": frame_segments(st, job.names),
                                       "shares": segment_shares(st)})
    return found


def explorer_model_data(ckpts: Sequence[str | Path], stats: Sequence[str | Path],
                        groups: Sequence[str | Path], frames_file: str | Path,
                        meta: str | Path, members: Sequence[str | Path],
                        folder: str | Path, model: Mapping[str, Any], frames: Sequence[int],
                        layers: Sequence[str], *, canvas: Mapping[str, Any],
                        explorer: Mapping[str, Any], device: str = "auto") -> None:
    """Rules explorer_data_*: for each frame, the frame and its overlays, and per layer the
    top-k neurons of every pixel and the kept maps; then each layer's segment shares over the
    frames and `model.json`, all in `folder` (results/<run>/explorer/ +
    `layout.model_dir(arch, dataset, video, seed)`, the files' keys).

    `ckpts`: one checkpoint (a NeRV) or one per frame (FFNs); `stats`: the statistics files
    frame by frame, each frame's in the order of `layers`; `groups`: one pixel-groups file per
    frame; `members`: cluster-members files (their neurons of `model["seed"]` are kept);
    `model`: arch, dataset, video, seed; `canvas`: the run's switches (mode, bias, neuron,
    time_index, chunk); `explorer`: top_k, maps, grid.
    """
    if len(stats) != len(frames) * len(layers) or len(groups) != len(frames):
        raise ValueError(f"{len(frames)} frames x {len(layers)} layers need "
                         f"{len(frames) * len(layers)} statistics files and {len(frames)} "
                         f"pixel-groups files; got {len(stats)} and {len(groups)}")
    base = layout.model_dir(model["arch"], model["dataset"], model["video"], model["seed"])
    job = _Job(Path(folder), base, read_json(meta), list(layers),
               segment_names(stats[::len(layers)], meta),
               member_ids(members, int(model["seed"])), canvas, explorer)
    images = read_npy(frames_file, mmap_mode="r")
    target = resolve_device(device)
    per_layer: dict[str, list[tuple[int, dict[str, Any]]]] = {layer: [] for layer in layers}
    loaded, net = None, None  # a NeRV's one checkpoint is loaded once
    for i, (frame, ckpt) in enumerate(zip(frames, _by_frame(ckpts, len(frames), "checkpoints"),
                                          strict=True)):
        if ckpt != loaded:
            loaded, net = ckpt, load_model(ckpt).to(target)
        found = _explore_frame(job, net, frame, np.asarray(images[frame]),
                               read_npz(groups[i]), stats[i * len(layers):(i + 1) * len(layers)])
        for layer, entry in found.items():
            per_layer[layer].append(entry)
    for layer in layers:
        write_js(job.folder / f"{layer}_segments.js", ADD, f"{base}/{layer}_segments.js",
                 {"layer": layer, "frames": [e for _, e in per_layer[layer]],
                  "share_max": SHARE_MAX})
    height, width = job.info["working_size"]
    write_json(job.folder / layout.MODEL_INDEX, {
        **{key: model[key] for key in ("arch", "dataset", "video")}, "seed": int(model["seed"]),
        "frames": [int(f) for f in frames], "layers": list(layers),
        "neurons": {layer: per_layer[layer][0][0] for layer in layers},
        "height": int(height), "width": int(width), "top_k": int(explorer["top_k"]),
        "path": base,
        "canvas": {key: canvas[key] for key in ("mode", "bias", "neuron", "time_index")},
    })
