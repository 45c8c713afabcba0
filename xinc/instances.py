"""The per-video segment table over time (docs/method.md §8.6 and §10 Fig 8).

Built from the per-frame statistics alone (docs/formats.md §6: `areas_instances`, `instances_ids`,
`meta_json`) and the video's `meta.json` (docs/formats.md §2: `categories`), so Figs 8/19 never need
maps. One row per instance column of each analysed frame:

- `column`: the index of the column in that frame's stored instance grouping (as stored, i.e.
  "other" = the void pixels, last, when the frame has any);
- `pan_id`: category·1000 + inst for things, category·1000 for stuff, −2 for "other";
- `track`: a name stable over the video. Panoptic ids are video-consistent in both datasets, so
  one pan_id is one track. Things: `<category name>_<k>`, k = 1, 2, … numbering the category's
  tracks by first appearance (frame, then pan_id); stuff: `<category name>`; "other": `other`;
- `category_id` (−1 for "other"), `category` (name), `kind` (thing | stuff | other), `isthing`,
  `area` (pixels at working resolution).

Rows are sorted by frame, then column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xinc.intermediate import read_intermediate, read_json
from xinc.io import save_table
from xinc.plots import read_stats
from xinc.stats.segments import OTHER_ID

__all__ = ["COLUMNS", "OTHER_ID", "read_instance_table", "video_instance_table",
           "write_instance_table"]

COLUMNS = ["dataset", "video", "frame", "column", "pan_id", "track", "category_id", "category",
           "kind", "isthing", "area"]


def _frame_of(path: Path, meta: Mapping[str, Any]) -> int:
    """The raw frame of a statistics file: its meta's `frame`, else the `f{f}` folder."""
    if meta.get("frame") is not None:
        return int(meta["frame"])
    name = path.parent.name
    if name.startswith("f") and name[1:].isdigit():
        return int(name[1:])
    raise ValueError(f"{path}: cannot tell its frame (no 'frame' in meta_json, no f<frame> "
                     "folder)")


def _frame_segments(path: Path) -> tuple[int, np.ndarray, np.ndarray, dict[str, Any]]:
    """(frame, panoptic ids, areas, meta) of one statistics file."""
    st = read_stats(path, ("areas_instances", "instances_ids"))
    if "areas_instances" not in st:
        raise ValueError(f"{path}: no instance grouping (areas_instances); the video needs "
                         "panoptic masks for an instance table")
    if "instances_ids" not in st:
        raise ValueError(f"{path}: no 'instances_ids' (statistics written before the instance "
                         "table existed); rerun the canvas rules for this video, e.g. "
                         "`snakemake --forcerun canvas_stats_nerv_<dataset> "
                         "canvas_stats_ffn_<dataset>`")
    ids = np.asarray(st["instances_ids"], dtype=np.int64)
    areas = np.asarray(st["areas_instances"], dtype=np.int64)
    if ids.shape != areas.shape:
        raise ValueError(f"{path}: instances_ids {ids.shape} and areas_instances {areas.shape} "
                         "differ")
    return _frame_of(path, st["meta"]), ids, areas, st["meta"]


def _frames(stats_paths: Sequence[str | Path], video: Mapping[str, Any]
            ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{frame: (ids, areas)} in frame order; several files of one frame must agree, and each
    file's dataset and video (where its meta names them) must be the `video` meta's."""
    frames: dict[int, tuple[np.ndarray, np.ndarray, Path]] = {}
    for p in map(Path, stats_paths):
        frame, ids, areas, meta = _frame_segments(p)
        for key in ("dataset", "video"):
            if key in meta and key in video and str(meta[key]) != str(video[key]):
                raise ValueError(f"{p} is from {key} {meta[key]!r}, the meta.json from "
                                 f"{video[key]!r}")
        if frame in frames:
            old_ids, old_areas, old = frames[frame]
            if not (np.array_equal(ids, old_ids) and np.array_equal(areas, old_areas)):
                raise ValueError(f"{p} and {old} are both frame {frame} but hold different "
                                 "segments: are they from the same video?")
            continue
        frames[frame] = (ids, areas, p)
    return {f: frames[f][:2] for f in sorted(frames)}


def _categories(meta_path: Path, meta: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    cats = meta.get("categories")
    if not cats:
        raise ValueError(f"{meta_path}: no 'categories' list (docs/formats.md §2); rerun "
                         "prepare_video and working_res for this video")
    return {int(c["id"]): c for c in cats}


def video_instance_table(stats_paths: Sequence[str | Path],
                         meta_path: str | Path) -> pd.DataFrame:
    """The segment table (:data:`COLUMNS`) of one video from one statistics npz per analysed
    frame (any layer; files of the same frame must agree) and the video's meta.json."""
    meta_path = Path(meta_path)
    meta = read_json(meta_path)
    cats = _categories(meta_path, meta)
    frames = _frames(stats_paths, meta)
    if not frames:
        raise ValueError("video_instance_table needs at least one statistics file")
    rows: list[dict[str, Any]] = []
    for frame, (ids, areas) in frames.items():
        for column, (pan, area) in enumerate(zip(ids.tolist(), areas.tolist(), strict=True)):
            rows.append({"frame": frame, "column": column, "pan_id": pan, "area": area})
    df = pd.DataFrame(rows)
    first = df.groupby("pan_id", sort=False)["frame"].min()
    tracks, info = {}, {}
    counters: dict[int, int] = {}
    for pan in sorted(first.index, key=lambda p: (first[p], p)):
        info[pan] = _segment_info(pan, cats, meta_path)
        name, kind = info[pan]["category"], info[pan]["kind"]
        if kind == "thing":
            counters[pan // 1000] = counters.get(pan // 1000, 0) + 1
            tracks[pan] = f"{name}_{counters[pan // 1000]}"
        else:
            tracks[pan] = name
    df["track"] = df["pan_id"].map(tracks)
    for key in ("category_id", "category", "kind", "isthing"):
        df[key] = df["pan_id"].map({p: v[key] for p, v in info.items()})
    df["dataset"], df["video"] = str(meta.get("dataset", "")), str(meta.get("video", ""))
    df["isthing"] = df["isthing"].astype(bool)
    return df.sort_values(["frame", "column"], kind="stable", ignore_index=True)[COLUMNS]


def _segment_info(pan: int, cats: Mapping[int, Mapping[str, Any]],
                  meta_path: Path) -> dict[str, Any]:
    if pan == OTHER_ID:
        return {"category_id": -1, "category": "other", "kind": "other", "isthing": False}
    cat = cats.get(pan // 1000)
    if cat is None:
        raise ValueError(f"panoptic id {pan}: category {pan // 1000} is not in the categories of "
                         f"{meta_path}; are the statistics from another dataset?")
    thing = bool(cat["isthing"])
    return {"category_id": int(cat["id"]), "category": str(cat["name"]),
            "kind": "thing" if thing else "stuff", "isthing": thing}


def _check(df: pd.DataFrame, where: str) -> pd.DataFrame:
    if list(df.columns) != COLUMNS:
        raise ValueError(f"{where}: not an instance table: columns {list(df.columns)}, expected "
                         f"{COLUMNS}; rebuild it with xinc.instances.video_instance_table")
    return df


def write_instance_table(path: str | Path, df: pd.DataFrame) -> Path:
    """Write the table as CSV atomically (no index, '\\n' line ends)."""
    return save_table(_check(df, "write_instance_table"), path)


def read_instance_table(path: str | Path) -> pd.DataFrame:
    """An instance table written by :func:`write_instance_table`; any other CSV raises an
    error naming the file."""
    df = _check(read_intermediate(path, lambda p: pd.read_csv(p, dtype=str)), str(path))
    try:
        for key in ("frame", "column", "pan_id", "category_id", "area"):
            df[key] = df[key].astype(np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: column {key!r} is not integer ({err})") from None
    isthing = df["isthing"].map({"True": True, "False": False})
    if isthing.isna().any():
        raise ValueError(f"{path}: column 'isthing' holds values other than True/False")
    df["isthing"] = isthing.astype(bool)
    return df
