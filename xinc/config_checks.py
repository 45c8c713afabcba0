"""Checks of a validated workflow config that the schema cannot express, run when the Snakefile
loads (before any job): sizes that fit the models, and every file or folder the config names.

Like `xinc.config`, this needs only the standard library and PyYAML.
"""

from __future__ import annotations

import copy
import math
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from xinc.config import ConfigError
from xinc.frame_plan import VideoFrames, plan_frames

PLACEHOLDERS = {"nerv": ("dataset", "video", "seed"), "ffn": ("dataset", "video", "seed", "frame")}
SHOWN_PATHS = 10  # missing paths listed in a message; the rest are counted


def nerv_size_problems(config: Mapping[str, Any]) -> list[str]:
    """The NeRV renders fc_hw × prod(strides): that must be the working size."""
    nerv = config["models"]["nerv"]
    scale = math.prod(nerv["strides"])
    size = list(config["working_size"])
    out = [v * scale for v in nerv["fc_hw"]]
    if out == size:
        return []
    head = (f"config key working_size: {size} is not what the NeRV renders "
            f"(models.nerv.fc_hw {list(nerv['fc_hw'])} × strides "
            f"{'·'.join(map(str, nerv['strides']))} = {out}); ")
    if all(v % scale == 0 for v in size):
        return [head + f"set models.nerv.fc_hw: {[v // scale for v in size]}, or "
                f"working_size: {out}"]
    near = [max(scale, round(v / scale) * scale) for v in size]
    return [head + f"with these strides both sides must be multiples of {scale}: e.g. "
            f"working_size: {near} with models.nerv.fc_hw: {[v // scale for v in near]}"]


def grid_problems(config: Mapping[str, Any]) -> list[str]:
    """Grid cells must fit the frame (at least one pixel per row and column of cells)."""
    (sh, sw), (h, w) = config["stats"]["grid"], config["working_size"]
    if sh <= h and sw <= w:
        return []
    return [f"config key stats.grid: {[sh, sw]} cells do not fit the working size {[h, w]}; "
            "use at most one cell per pixel row and column"]


def dataset_root_problems(config: Mapping[str, Any], datasets: Sequence[str]) -> list[str]:
    """A `datasets.<ds>.root` that is set must be an existing folder (`source: real`; without
    a root the workflow downloads the dataset)."""
    if config["source"] != "real":
        return []
    problems = []
    for ds in datasets:
        root = config["datasets"][ds].get("root")
        if root and not Path(root).is_dir():
            problems.append(f"config key datasets.{ds}.root: {root} is not a folder "
                            f"(working directory {Path.cwd()}); check the path")
    return problems


def custom_problems(config: Mapping[str, Any]) -> list[str]:
    """Every video of `datasets.custom.videos` has a `files` entry whose paths exist."""
    custom = config["datasets"].get("custom") or {}
    files = custom.get("files") or {}
    problems = []
    for vid in custom.get("videos") or []:
        key = f"datasets.custom.files.{vid}"
        entry = files.get(vid)
        if entry is None:
            problems.append(f"config key {key}: missing; add {{path: <video file or frame "
                            f"folder>}} for video {vid!r} or remove it from datasets.custom.videos")
            continue
        paths = {"path": entry["path"], **{f"panoptic.{k}": v
                                           for k, v in (entry.get("panoptic") or {}).items()}}
        problems += [f"config key {key}.{name}: {path} does not exist (working directory "
                     f"{Path.cwd()}); check the path" for name, path in paths.items()
                     if not Path(path).exists()]
    return problems


def _template_fields(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0]
            for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def pretrained_paths(config: Mapping[str, Any], arch: str,
                     frames: Mapping[str, Mapping[str, Sequence[int]]]) -> list[str]:
    """Every path `pretrained.<arch>` expands to for the configured videos, seeds (and the FFN
    frames {dataset: {video: frames}}); `ConfigError` for an unknown placeholder."""
    template = config["pretrained"][arch]
    allowed = PLACEHOLDERS[arch]
    unknown = _template_fields(template) - set(allowed)
    if unknown:
        raise ConfigError(
            f"config key pretrained.{arch}: unknown placeholder(s) "
            f"{', '.join('{' + u + '}' for u in sorted(unknown))} in {template!r}; "
            f"allowed: {', '.join('{' + a + '}' for a in allowed)}")
    paths = []
    for ds, videos in frames.items():
        for video, video_frames in videos.items():
            for seed in config["seeds"]:
                for frame in video_frames if arch == "ffn" else [None]:
                    path = template.format(dataset=ds, video=video, seed=seed, frame=frame)
                    if path not in paths:
                        paths.append(path)
    return paths


def pretrained_problems(config: Mapping[str, Any],
                        frames: Mapping[str, Mapping[str, Sequence[int]]]) -> list[str]:
    """Every pretrained checkpoint the config names must exist and be readable."""
    problems = []
    for arch in PLACEHOLDERS:
        if not config["pretrained"][arch]:
            continue
        paths = pretrained_paths(config, arch, frames)
        missing = [p for p in paths if not (Path(p).is_file() and os.access(p, os.R_OK))]
        if missing:
            shown = "\n".join(f"  {p}" for p in missing[:SHOWN_PATHS])
            more = len(missing) - SHOWN_PATHS
            problems.append(
                f"config key pretrained.{arch}: {len(missing)} of {len(paths)} checkpoints "
                f"that {config['pretrained'][arch]!r} names are missing or unreadable "
                f"(relative to {Path.cwd()}):\n{shown}"
                + (f"\n  ... and {more} more" if more > 0 else "")
                + f"\n  fix the template, or set pretrained.{arch}: null to train the models")
    return problems


def pair_problems(config: Mapping[str, Any],
                  plan: Mapping[str, Mapping[str, VideoFrames]]) -> list[str]:
    """Every pair frame t of `canvas.pair_frames` needs frames t − 1 and t of every video."""
    return [f"config key canvas.pair_frames: t = {t} needs frames {t - 1} and {t}, but "
            f"{ds}/{vid} has {frames.n_frames} frames; use t within 1 … {frames.n_frames - 1}"
            for ds, videos in plan.items() for vid, frames in videos.items()
            for t in config["canvas"]["pair_frames"] if t >= frames.n_frames]


def cluster_problems(config: Mapping[str, Any]) -> list[str]:
    """clusters.shown within k; an n_neighbors entry for every traced layer (and for `joint`
    when joint_archs is on)."""
    own = config["clusters"]
    problems = []
    if own["shown"] > own["k"]:
        problems.append(f"config key clusters.shown: {own['shown']} clusters shown but k is "
                        f"{own['k']}; lower shown or raise k")
    layers = [*config["canvas"]["layers"]["ffn"], *config["canvas"]["layers"]["nerv"]]
    if own["joint_archs"]:
        layers.append("joint")
    missing = [layer for layer in layers if layer not in own["n_neighbors"]]
    if missing:
        problems.append(f"config key clusters.n_neighbors: no entry for {', '.join(missing)}; "
                        "add one per traced layer (e.g. n_neighbors: {b4: 25})")
    return problems


def check_workflow_config(config: Mapping[str, Any], videos: Mapping[str, Sequence[str]],
                          known: Mapping[str, Mapping[str, tuple[int, list[int]]]] | None = None
                          ) -> dict[str, dict[str, VideoFrames]]:
    """All checks of the config with `videos` {dataset: ids} (`known`: lengths from videos.csv,
    `xinc.frame_plan.plan_frames`); returns the frames of every video. Raises `ConfigError`
    listing every problem."""
    problems = [*nerv_size_problems(config), *grid_problems(config),
                *cluster_problems(config), *dataset_root_problems(config, list(videos)),
                *custom_problems(config)]
    if problems:  # the frame plan reads the dataset folders
        raise ConfigError("\n".join(problems))
    plan = plan_frames(dict(config), {ds: list(ids) for ds, ids in videos.items()}, known)
    ffn = {ds: {vid: frames.ffn for vid, frames in vids.items()} for ds, vids in plan.items()}
    problems = [*pretrained_problems(config, ffn), *pair_problems(config, plan)]
    if problems:
        raise ConfigError("\n".join(problems))
    return plan


class _Absent:
    """An entry that one of two compared dicts does not have."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def differences(old: Any, new: Any, key: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every differing leaf of two nested dicts (a key
    that one of them lacks gives `ABSENT` on that side)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [(key or "<top level>", old, new)]
    return [diff for k in sorted(set(old) | set(new), key=str)
            for diff in differences(old.get(k, ABSENT), new.get(k, ABSENT),
                                    f"{key}.{k}" if key else str(k))]


def config_differences(recorded: Any, current: Any) -> list[str]:
    """`key: recorded → now` for every leaf where two configs differ (a missing key is None)."""
    def show(value: Any) -> str:
        return repr(None if value is ABSENT else value)

    return [f"{key}: {show(old)} → {show(new)}"
            for key, old, new in differences(recorded, current)]


#: Settings that change how fast results are computed, never the results: not recorded, so
#: changing them neither reruns a job nor makes a run's record differ.
SPEED_KEYS = (("canvas", "chunk"), ("device",))


def recorded_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` as `results/<run>/config.yaml` records it: without `SPEED_KEYS`."""
    out = copy.deepcopy(dict(config))
    for *parents, last in SPEED_KEYS:
        node = out
        for key in parents:
            node = node.get(key, {})
        node.pop(last, None)
    return out


def recorded_differences(path: str | Path, config: Mapping[str, Any]) -> list[str]:
    """Differences between the config recorded in a run folder (`path`) and `config` (both
    without `SPEED_KEYS`); empty when nothing is recorded yet."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        recorded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        return [f"{path} is unreadable ({err})"]
    return config_differences(recorded_config(recorded or {}), recorded_config(config))
