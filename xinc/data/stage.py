"""Entry points of the data stage's rules (workflow/rules/data.smk): download, extract, select,
fetch the Cityscapes frames, prepare as the official scripts do, prepare a custom video.

Each takes the rule's inputs, outputs and params as plain values; the scripts only pass them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from xinc.data.custom import CustomVideo, describe_custom, prepare_custom_video
from xinc.data.extract import safe_extract
from xinc.data.prep_cityscapes import prepare_cityscapes_vps, sequence_members
from xinc.data.prep_common import extract_nested
from xinc.data.prep_vipseg import prepare_vipseg
from xinc.data.select import (
    cityscapes_candidates,
    vipseg_candidates,
    write_selection,
)
from xinc.data.select import (
    select_videos as select_rows,
)
from xinc.data.sources import obtain_archive, obtain_members
from xinc.data_plan import read_selection

#: Cityscapes-VPS: 30-frame snippets labelled at 4, 9, ..., 29 (xinc.frame_plan).
from xinc.frame_plan import SNIPPET_LENGTH, cityscapes_annotated


def _archive_dir(downloads: Mapping[str, Any]) -> str | None:
    """downloads.archive_dir, else env XINC_ARCHIVE_DIR, else None."""
    return downloads.get("archive_dir") or os.environ.get("XINC_ARCHIVE_DIR") or None


def _site_options(source: Mapping[str, Any], downloads: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments every download shares: where from, which hosts, how patient."""
    return {"overrides": {source["name"]: source["overrides"],
                          "cityscapes_base_url": source["cityscapes_base_url"],
                          "drive_url": source["drive_url"]},
            "archive_dir": _archive_dir(downloads), "allow_hosts": downloads["allow_hosts"],
            "retries": downloads["retries"], "timeout": downloads["timeout"]}


def download_archive(source: Mapping[str, Any], downloads_dir: str | Path,
                     downloads: Mapping[str, Any]) -> Path:
    """Rule download_archive: `data/downloads/<name>` verified, with its sidecar."""
    return obtain_archive(source["name"], downloads_dir, **_site_options(source, downloads))


def extract_archive(archive: str | Path, dest: str | Path) -> dict[str, Any]:
    """Rule extract_archive: unpack safely, then any nested `*_gt.zip` in place."""
    info = safe_extract(archive, dest)
    extract_nested(dest)
    return info


def _annotated_columns(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Add what the workflow plans from: frames after preparation and their labelled ones."""
    rows = rows.copy()
    if dataset == "cityscapes_vps":
        rows["prepared_frames"] = SNIPPET_LENGTH
        labelled = " ".join(map(str, cityscapes_annotated()))
        rows["annotated_t"] = [labelled] * len(rows)
    else:  # VIPSeg keeps the frames that have masks
        rows["prepared_frames"] = rows["n_annotated"]
        rows["annotated_t"] = [" ".join(map(str, range(n))) for n in rows["n_annotated"]]
    rows["has_masks"] = rows["n_annotated"] > 0
    return rows


def _custom_rows(settings: Mapping[str, Any]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The configured custom videos described (each decoded once) and their categories."""
    rows = []
    for vid in settings["videos"]:
        info = describe_custom(CustomVideo.from_config(vid, settings["files"][vid], Path.cwd()))
        annotated = info["annotated_t"] if info["has_masks"] else range(info["n_frames"])
        rows.append({"video": vid, "split": "custom", "n_frames": info["n_frames"],
                     "n_annotated": len(info["annotated_t"]), "height": info["height"],
                     "width": info["width"], "selected": True, "reason": "configured",
                     "prepared_frames": info["n_frames"],
                     "annotated_t": " ".join(map(str, annotated)),
                     "has_masks": info["has_masks"]})
    return pd.DataFrame(rows), []


def select_videos(dataset: str, inputs: Mapping[str, Any], settings: Mapping[str, Any],
                  videos_csv: str | Path, categories_csv: str | Path) -> pd.DataFrame:
    """Rule select_videos: videos.csv (every candidate, selected or not, and why) and
    categories.csv of one dataset."""
    if dataset == "custom":
        rows, categories = _custom_rows(settings)
    else:
        if dataset == "cityscapes_vps":
            from xinc.data.cityscapes_vps import CATEGORIES
            candidates = cityscapes_candidates(Path(inputs["vps"]).parent)
            categories, filters = list(CATEGORIES), {}
        else:
            import json
            candidates = vipseg_candidates(Path(inputs["raw"]).parent,
                                           Path(inputs["categories"]).parent,
                                           target_height=settings["target_height"])
            categories = json.loads(Path(inputs["categories"]).read_text())
            filters = {key: settings[key] for key in ("min_frames", "max_frames",
                                                      "require_size")}
        rows = _annotated_columns(select_rows(dataset, candidates, configured=settings["videos"],
                                              **filters), dataset)
    write_selection(rows, videos_csv, categories, categories_csv, dataset=dataset)
    return rows


def fetch_sequence_frames(vps_root: str | Path, videos_csv: str | Path, marker: str | Path, *,
                          mode: str, source: Mapping[str, Any],
                          downloads: Mapping[str, Any]) -> dict[str, Any]:
    """Rule fetch_sequence_frames: the analysed videos' 30 frames each, from the sequence
    package over HTTP Range (`remote_zip`) or from the whole archive (`full`)."""
    videos = [vid for vid, row in read_selection(videos_csv).items() if row.selected]
    marker = Path(marker)
    return obtain_members(source["name"], sequence_members(vps_root, videos), marker.parent,
                          "data/downloads", marker_name=marker.name, remote=mode == "remote_zip",
                          **_site_options(source, downloads))


def official_prep(dataset: str, inputs: Mapping[str, Any], video: str, out_dir: Path,
                  **params: Any) -> dict[str, Any]:
    """Rules official_prep_<dataset>: one video's official prepared layout in `out_dir`."""
    if dataset == "cityscapes_vps":
        return prepare_cityscapes_vps(Path(inputs["vps"]).parent, Path(inputs["gtfine"]).parent,
                                      Path(inputs["frames"]).parent, out_dir, [video])
    return prepare_vipseg(Path(inputs["raw"]).parent, inputs["categories"],
                          Path(inputs["categories"]).parent, out_dir, [video], **params)


def prepare_custom(video: str, entry: Mapping[str, Any], out_dir: str | Path, *,
                   crop: Sequence[int] | str | None, working_size: Sequence[int]
                   ) -> dict[str, Any]:
    """Rule prepare_custom_video: one of your videos in the common per-video format."""
    return prepare_custom_video(CustomVideo.from_config(video, entry, Path.cwd()), out_dir,
                                crop=crop, working_size=working_size)
