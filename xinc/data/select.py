"""Which videos the workflow analyses (the `select_videos` checkpoint, docs/spec/datasets.md §3).

Candidates come from the extracted official files (`cityscapes_candidates`,
`vipseg_candidates`); `select_videos` applies the filters (train/val with masks, frame count,
size after the 720p conversion) or keeps the configured list; `write_selection` writes videos.csv
and categories.csv, `read_selection` reads videos.csv back with video ids as text.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from PIL import Image

from xinc.data import prep_cityscapes, prep_vipseg
from xinc.data.common import layout_error
from xinc.data.prep_common import find_file
from xinc.io import save_table

COLUMNS = ("video", "split", "n_frames", "n_annotated", "height", "width", "selected", "reason")
DATASETS = ("cityscapes_vps", "vipseg")
CATEGORY_COLUMNS = ("id", "name", "isthing", "r", "g", "b", "source_id")
_TYPES = {"video": str, "split": str, "n_frames": "int64", "n_annotated": "int64",
          "height": "int64", "width": "int64", "selected": bool, "reason": str}


def cityscapes_candidates(vps_root: str | Path) -> pd.DataFrame:
    """Every val video listed in panoptic_im_val_city_vps.json: 30 frames, its annotated
    frames, the size of its entries."""
    path = find_file(Path(vps_root), prep_cityscapes.IM_JSON, prep_cityscapes.FIX)
    rows: dict[str, dict[str, Any]] = {}
    for entry in prep_cityscapes.read_images(path):
        name = str(entry.get("file_name", ""))
        video = name[:4]
        if not (video.isdigit() and name[4:5] == "_"):
            raise layout_error(path, f"entry {name!r} is not VVVV_FFFF_...", prep_cityscapes.FIX)
        row = rows.setdefault(video, {"video": video, "split": "val",
                                      "n_frames": prep_cityscapes.BEFORE + 1 +
                                      prep_cityscapes.AFTER, "n_annotated": 0,
                                      "height": int(entry["height"]),
                                      "width": int(entry["width"])})
        row["n_annotated"] += 1
    return pd.DataFrame([rows[v] for v in sorted(rows)], columns=list(COLUMNS[:6]))


def vipseg_candidates(raw_root: str | Path, split_dir: str | Path, *,
                      target_height: int) -> pd.DataFrame:
    """Every video under the extracted `VIPSeg/imgs/`: split, frame and mask counts, and the
    size after the 720p conversion (from the first frame's header)."""
    raw = prep_vipseg.find_raw_root(raw_root)
    split_of = prep_vipseg.read_splits(Path(split_dir))
    rows = []
    for folder in sorted(p for p in (raw / "imgs").iterdir() if p.is_dir()):
        frames = sorted(folder.glob("*.jpg"))
        if not frames:
            continue
        mask_dir = raw / "panomasks" / folder.name
        masks = {p.stem for p in mask_dir.glob("*.png")} if mask_dir.is_dir() else set()
        with Image.open(frames[0]) as img:
            width, height = prep_vipseg.target_size(*img.size, target_height)
        rows.append({"video": folder.name, "split": split_of.get(folder.name, "unlisted"),
                     "n_frames": len(frames),
                     "n_annotated": sum(p.stem in masks for p in frames),
                     "height": height, "width": width})
    return pd.DataFrame(rows, columns=list(COLUMNS[:6]))


def _unusable(row: Any) -> str | None:
    """Why a candidate cannot be analysed at all (no masks, not in train/val), or None."""
    if row.n_annotated == 0:
        return f"{row.split} split: no masks"
    if row.split not in ("train", "val"):
        return f"{row.split} split, not train or val"
    return None


def _failures(row: Any, min_frames: int | None, max_frames: int | None,
              require_size: Sequence[int] | None) -> list[str]:
    """The filters a candidate fails, as reasons."""
    out = [reason] if (reason := _unusable(row)) else []
    if min_frames is not None and row.n_frames < min_frames:
        out.append(f"{row.n_frames} frames < min_frames {min_frames}")
    if max_frames is not None and row.n_frames > max_frames:
        out.append(f"{row.n_frames} frames > max_frames {max_frames}")
    if require_size is not None and (row.height, row.width) != tuple(require_size):
        out.append(f"size {row.height}x{row.width}, not {require_size[0]}x{require_size[1]}")
    return out


def _check_configured(candidates: pd.DataFrame, configured: Sequence[str]) -> None:
    known = [str(v) for v in candidates.video]
    by_id = dict(zip(known, candidates.itertuples(index=False), strict=True))
    for video in configured:
        if video not in by_id:
            close = difflib.get_close_matches(video, known, n=3, cutoff=0.3) or known[:3]
            raise ValueError(f"configured video {video!r} is not among the {len(known)} "
                             f"candidates; closest: {', '.join(close) or 'none'}")
        if reason := _unusable(by_id[video]):
            raise ValueError(f"configured video {video!r} cannot be analysed ({reason}); the "
                             "analyses need its masks and split, so remove it from the list")


def select_videos(dataset: str, candidates: pd.DataFrame, *,
                  configured: Sequence[str] | Literal["all"], min_frames: int | None = None,
                  max_frames: int | None = None, require_size: Sequence[int] | None = None
                  ) -> pd.DataFrame:
    """The candidates of `dataset` with `selected` and `reason`. "all": selected = passes every
    filter (train/val with masks, min_frames <= n_frames <= max_frames, (height, width) ==
    require_size; None switches a filter off). A list: exactly those videos are selected, each
    must be a train/val candidate with masks, and a failed filter only shows in the reason
    ("configured; ...")."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if isinstance(configured, str) and configured != "all":
        raise ValueError(f"configured must be 'all' or a list of video ids, not {configured!r}")
    if configured != "all":
        configured = [str(v) for v in configured]
        _check_configured(candidates, configured)
    out = candidates.loc[:, list(COLUMNS[:6])].reset_index(drop=True).copy()
    selected, reasons = [], []
    for row in out.itertuples(index=False):
        failed = _failures(row, min_frames, max_frames, require_size)
        if configured == "all":
            selected.append(not failed)
            reasons.append("; ".join(failed) or "selected")
        else:
            chosen = row.video in configured
            selected.append(chosen)
            reasons.append("; ".join(["configured" if chosen else "not configured", *failed]))
    out["selected"], out["reason"] = selected, reasons
    return out.astype(_TYPES)


def category_table(categories: Sequence[dict[str, Any]], *, dataset: str) -> pd.DataFrame:
    """id, name, isthing, r, g, b, source_id: the label value of the category in the source
    files (Cityscapes: the trainId; VIPSeg: id + 1, the raw mask value; otherwise the id)."""
    def source_id(cat: dict[str, Any]) -> int:
        if dataset == "cityscapes_vps":
            return int(cat.get("trainid", cat["id"]))
        return int(cat["id"]) + (dataset == "vipseg")

    rows = [(int(c["id"]), str(c["name"]), int(c["isthing"]), *map(int, c["color"][:3]),
             source_id(c)) for c in categories]
    return pd.DataFrame(rows, columns=list(CATEGORY_COLUMNS))


def write_selection(df: pd.DataFrame, videos_csv: str | Path,
                    categories: Sequence[dict[str, Any]], categories_csv: str | Path, *,
                    dataset: str) -> None:
    """Write videos.csv (`select_videos`' columns first, then any others of `df`) and
    categories.csv, each atomically."""
    save_table(df.loc[:, _ordered(df, videos_csv)], videos_csv)
    save_table(category_table(categories, dataset=dataset), categories_csv)


def read_selection(videos_csv: str | Path) -> pd.DataFrame:
    """videos.csv with video ids as text ("0005" stays "0005")."""
    df = pd.read_csv(videos_csv, dtype={"video": str, "split": str, "reason": str},
                     keep_default_na=False)
    return df.loc[:, _ordered(df, videos_csv)].astype(_TYPES)


def _ordered(df: pd.DataFrame, where: str | Path) -> list[str]:
    """`COLUMNS`, then the other columns of `df`; an error names missing ones."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: videos table lacks the columns {missing}; rerun "
                         "select_videos")
    return [*COLUMNS, *(c for c in df.columns if c not in COLUMNS)]
