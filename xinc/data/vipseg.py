"""Reader of the prepared VIPSeg layout (`VIPSeg_720P`, VIPSeg-Dataset change2_720p.py).

Frames: `images/<vid>/<8 digits>.jpg` (or all `.png`), in sorted name order (numbers need not
be contiguous).
Labels: `panomasks/<vid>/<same name>.png`, 16-bit, 0 = void, stuff = id + 1 (< 125),
thing = (id + 1)*100 + k with k from 0. Categories: `panoVIPSeg_categories.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xinc.data.common import VideoSource, category_lut, layout_error, read_json, remap

DATASET = "vipseg"
# VIPSeg documents no frame rate (docs/spec/datasets.md §1.2 only infers ≈ 5 fps)
FPS: float | None = None
SPLITS = ("train", "val", "test")
CATEGORIES_JSON = "panoVIPSeg_categories.json"
STUFF_LIMIT = 125
FRAME_SUFFIXES = (".jpg", ".png")  # .png: prepared without the JPEG q75 round trip
FIX = ("run the official VIPSeg preparation (change2_720p.py, copy panoVIPSeg_categories.json, "
       "create_panoptic_video_labels.py) or regenerate the synthetic dataset")


def annotated_frames(n_frames: int) -> list[int]:
    """Every VIPSeg frame is annotated (train/val)."""
    return list(range(n_frames))


def decode_panoptic(raw: np.ndarray, categories: Sequence[dict[str, Any]]) -> np.ndarray:
    """panomasks values -> common ids (cat*1000 + inst, stuff cat*1000, void -1).

    A thing-class value below 125 (a thing without instance id) is treated like a Cityscapes
    crowd region: void.
    """
    known, isthing = category_lut(categories)

    def decode(values: np.ndarray) -> np.ndarray:
        cat = np.where(values < STUFF_LIMIT, values - 1, values // 100 - 1)
        ok = (values > 0) & (cat < len(known))
        ok[ok] = known[cat[ok]]
        thing = np.zeros_like(ok)
        thing[ok] = isthing[cat[ok]]
        pan = np.where(thing, cat * 1000 + values % 100, cat * 1000)
        pan[~ok | (thing & (values < STUFF_LIMIT))] = -1
        return pan.astype(np.int32)

    return remap(raw.astype(np.int64), decode)


def _splits(root: Path) -> dict[str, str]:
    split_of = {}
    for split in SPLITS:
        path = root / f"{split}.txt"
        if not path.is_file():
            raise layout_error(path, "split list not found", FIX)
        for line in path.read_text().split():
            split_of[line] = split
    return split_of


def list_videos(root: str | Path) -> list[str]:
    """Videos that have a frame folder under images/."""
    img_dir = Path(root) / "images"
    if not img_dir.is_dir():
        raise layout_error(img_dir, "frame folder not found", FIX)
    return sorted(p.name for p in img_dir.iterdir() if p.is_dir())


def video_source(root: str | Path, video: str) -> VideoSource:
    """Frames and (where present) masks of one video, with its split from {train,val,test}.txt."""
    root = Path(root)
    split = _splits(root).get(video)
    if split is None:
        raise layout_error(root, f"video {video!r} is in none of {[s + '.txt' for s in SPLITS]}",
                           "check the video id against the split lists")
    frames = tuple(sorted(p for p in (root / "images" / video).glob("*")
                          if p.suffix in FRAME_SUFFIXES))
    if not frames:
        raise layout_error(root / "images" / video, f"no .jpg frames (nor .png) for video "
                           f"{video!r}", FIX)
    if len({p.suffix for p in frames}) > 1:
        raise layout_error(root / "images" / video, "mixes .jpg and .png frames", FIX)
    masks = [root / "panomasks" / video / f"{p.stem}.png" for p in frames]
    annotated_t = tuple(t for t, m in enumerate(masks) if m.is_file())
    data = read_json(root / CATEGORIES_JSON, FIX)
    if not isinstance(data, list) or not data:
        raise layout_error(root / CATEGORIES_JSON, "expected a non-empty list of categories", FIX)
    categories = tuple(data)
    return VideoSource(
        dataset=DATASET, video=video, split=split, fps=FPS, root=root, frame_paths=frames,
        annotated_t=annotated_t, label_paths=tuple(masks[t] for t in annotated_t),
        categories=categories, decode=lambda raw: decode_panoptic(raw, categories),
    )
