"""Where each dataset's videos come from and what is known of them when the workflow loads.

Standard library only (the Snakefile imports it). A dataset's origin is one of:
- `synthetic`: the embedded generator (`source: synthetic`); lengths from `SYNTH_VIDEOS`;
- `root`: a folder the user prepared with the official scripts (`datasets.<ds>.root`);
- `download`: the official archives, fetched and prepared by the workflow under `data/`;
- `custom`: the user's own video files (`datasets.custom`).

For `download` and `custom`, rule `select_videos` writes `data/prepared/<ds>/<variant>/
videos.csv` (docs/formats.md §1b): every candidate video with its length and annotated
frames after preparation. Until it exists, the lengths (and with `videos: all` the videos)
are unknown: the workflow then plans the data stage only, and the next invocation plans the
analyses (frame indices are part of the analyses' file names, so they must be known).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xinc.config import ConfigError

#: Archives of each downloaded dataset: {role: official file name}.
DATASET_ARCHIVES: dict[str, dict[str, str]] = {
    "cityscapes_vps": {"vps": "cityscapes-vps-dataset-1.0.zip",
                       "gtfine": "gtFine_trainvaltest.zip"},
    "vipseg": {"raw": "VIPSeg.tar", "categories": "panoVIPSeg_categories.json",
               "train": "train.txt", "val": "val.txt", "test": "test.txt"},
}
#: Cityscapes' 324 GB frame package: only the analysed videos' frames are fetched from it.
SEQUENCE_ARCHIVE = "leftImg8bit_sequence_trainvaltest.zip"
#: Archives that are unpacked whole (rule extract_archive).
EXTRACTED = ("cityscapes-vps-dataset-1.0.zip", "gtFine_trainvaltest.zip", "VIPSeg.tar")


def dataset_origin(config: Mapping[str, Any], dataset: str) -> str:
    """synthetic | root | download | custom (see the module docstring)."""
    if dataset == "custom":
        return "custom"
    if config["source"] == "synthetic":
        return "synthetic"
    return "root" if config["datasets"][dataset].get("root") else "download"


def selection_csv(dataset: str, variant: str) -> str:
    """Path of the dataset's `videos.csv` (rule select_videos)."""
    return f"data/prepared/{dataset}/{variant}/videos.csv"


@dataclass(frozen=True)
class SelectedVideo:
    """One row of videos.csv: whether it is analysed, its prepared length and labelled frames."""

    video: str
    selected: bool
    n_frames: int  # after preparation (VIPSeg keeps the frames that have masks)
    annotated: tuple[int, ...]
    has_masks: bool


def read_selection(path: str | Path) -> dict[str, SelectedVideo]:
    """{video: SelectedVideo} of a videos.csv (ids stay text: "0005")."""
    rows: dict[str, SelectedVideo] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                rows[row["video"]] = SelectedVideo(
                    row["video"], row["selected"].strip().lower() == "true",
                    int(row["prepared_frames"]),
                    tuple(int(t) for t in row["annotated_t"].split()),
                    row["has_masks"].strip().lower() == "true")
            except (KeyError, ValueError) as err:
                raise ConfigError(f"{path}: not a videos.csv written by select_videos ({err}); "
                                  "delete it and run the workflow again") from None
    return rows


def analysed_videos(config: Mapping[str, Any], dataset: str, variant: str
                    ) -> tuple[list[str] | None, dict[str, SelectedVideo] | None]:
    """(videos, their selection rows) of a `download` or `custom` dataset.

    videos is None while `videos: all` awaits select_videos; the rows are None until
    videos.csv exists. A configured video missing from an existing videos.csv is an error.
    """
    wanted = config["datasets"][dataset]["videos"]
    path = Path(selection_csv(dataset, variant))
    if not path.is_file():
        return (None if wanted == "all" else list(wanted)), None
    rows = read_selection(path)
    if wanted == "all":
        return [vid for vid, row in rows.items() if row.selected], rows
    missing = [vid for vid in wanted if vid not in rows or not rows[vid].selected]
    if missing:  # videos.csv was written for another list: select_videos runs again
        return list(wanted), None
    return list(wanted), rows
