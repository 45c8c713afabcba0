"""Reader of the prepared Cityscapes-VPS layout (mcahny/vps DATASET.md, val split).

Labels: `val/panoptic_inst/<VVVV_FFFF_><city>_<seq>_<frame>_{final_mask|gtFine_color}.png`,
16-bit, stuff = trainId, thing = trainId*1000 + k (k may be 0), 255 = void; values < 1000 of a
thing class are crowd regions and become void. Frames: `val/img_all/<city>_<seq>_<frame>_
leftImg8bit.png`, the 30-frame snippet whose labelled frames are 4, 9, ..., 29 (0-based).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xinc.data.common import VideoSource, category_lut, layout_error, read_json, remap
from xinc.frame_plan import FIRST_ANNOTATED, SNIPPET_LENGTH, cityscapes_annotated

DATASET = "cityscapes_vps"
SPLIT = "val"
FPS = 17.0  # Cityscapes records video at 17 Hz
CITIES = ("frankfurt", "lindau", "munster")
GT_JSON = f"panoptic_gt_{SPLIT}_city_vps.json"
FIX = ("run the official Cityscapes-VPS preparation (fetch_city_images, merge_datasets, "
       "create_panoptic_labels, create_panoptic_video_labels) or regenerate the synthetic dataset")

_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
          "vegitation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
          "motorcycle", "bicycle")
_SUPER = ("flat", "flat", "construction", "construction", "construction", "object", "object",
          "object", "nature", "nature", "sky", "human", "human", "vehicle", "vehicle", "vehicle",
          "vehicle", "vehicle", "vehicle")
_ORI_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
_COLORS = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
           (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
           (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
           (0, 80, 100), (0, 0, 230), (119, 11, 32))

#: The 19 trainId categories as in mcahny/vps `city_default.py` (copied into the GT JSON).
CATEGORIES: tuple[dict[str, Any], ...] = tuple(
    {"id": i, "name": _NAMES[i], "supercategory": _SUPER[i], "isthing": int(i >= 11),
     "instance_eval": int(i >= 11), "trainid": i, "ori_id": _ORI_ID[i], "color": list(_COLORS[i])}
    for i in range(19)
)


def annotated_frames(n_frames: int = SNIPPET_LENGTH) -> list[int]:
    """0-based labelled positions in a snippet: 4, 9, ..., 29."""
    return cityscapes_annotated(n_frames)


def decode_panoptic(raw: np.ndarray, categories: Sequence[dict[str, Any]]) -> np.ndarray:
    """panoptic_inst values -> common ids (cat*1000 + inst, stuff cat*1000, void/crowd -1)."""
    known, isthing = category_lut(categories)

    def decode(values: np.ndarray) -> np.ndarray:
        cat = np.where(values < 1000, values, values // 1000)
        ok = cat < len(known)
        ok[ok] = known[cat[ok]]
        thing = np.zeros_like(ok)
        thing[ok] = isthing[cat[ok]]
        pan = np.where(thing, cat * 1000 + values % 1000, cat * 1000)
        pan[~ok | (thing & (values < 1000))] = -1
        return pan.astype(np.int32)

    return remap(raw.astype(np.int64), decode)


def _label_dir(root: Path) -> Path:
    label_dir = root / SPLIT / "panoptic_inst"
    if not label_dir.is_dir():
        raise layout_error(label_dir, "label folder not found", FIX)
    return label_dir


def list_videos(root: str | Path) -> list[str]:
    """Video ids (the 4-digit `VVVV` prefixes) that have labels under val/panoptic_inst."""
    return sorted({p.name[:4] for p in _label_dir(Path(root)).glob("*.png")})


def _parse_label_name(path: Path) -> tuple[str, str, int]:
    fields = path.name.split("_")
    if len(fields) < 6 or not (fields[3].isdigit() and fields[4].isdigit()):
        raise layout_error(
            path, "label name is not <VVVV>_<FFFF>_<city>_<seq>_<frame>_<kind>.png", FIX)
    return fields[2], fields[3], int(fields[4])


def video_source(root: str | Path, video: str) -> VideoSource:
    """Frames (30-frame snippet) and labels of one video; checks that every file exists."""
    root = Path(root)
    label_dir = _label_dir(root)
    labels = sorted(label_dir.glob(f"{video}_*.png"))
    if not labels:
        raise layout_error(label_dir, f"no labels for video {video!r} (files {video}_*.png)",
                           f"pick one of {list_videos(root)[:10]} or {FIX}")
    parsed = [_parse_label_name(p) for p in labels]
    city, seq = parsed[0][:2]
    if any(p[:2] != (city, seq) for p in parsed):
        raise layout_error(label_dir, f"labels of video {video} span several sequences", FIX)
    start = parsed[0][2] - FIRST_ANNOTATED
    annotated_t = tuple(p[2] - start for p in parsed)
    bad = [t for t in annotated_t if t not in annotated_frames()]
    if bad:
        raise layout_error(labels[annotated_t.index(bad[0])],
                           f"label frame is not at a snippet position {annotated_frames()}", FIX)
    img_dir = root / SPLIT / "img_all"
    frames = tuple(img_dir / f"{city}_{seq}_{start + t:06d}_leftImg8bit.png"
                   for t in range(SNIPPET_LENGTH))
    for path in frames:
        if not path.is_file():
            raise layout_error(path, f"frame of video {video} not found", FIX)
    gt = read_json(root / GT_JSON, FIX)
    categories = tuple(gt.get("categories") or ()) if isinstance(gt, dict) else ()
    if not categories:
        raise layout_error(root / GT_JSON, "no 'categories' list", FIX)
    return VideoSource(
        dataset=DATASET, video=video, split=SPLIT, fps=FPS, root=root, frame_paths=frames,
        annotated_t=annotated_t, label_paths=tuple(labels), categories=categories,
        decode=lambda raw: decode_panoptic(raw, categories),
    )
