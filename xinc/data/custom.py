"""A user's own video (`datasets.custom`) -> the common per-video format (docs/formats.md §2).

Source: a video file (.mp4/.avi/.mov/.mkv; OpenCV, BGR -> RGB) or a folder of frames
(.png/.jpg/.jpeg, sorted by name). Source frame s is kept as t = s // stride when s % stride
== 0 and t < max_frames. meta `fps`: the configured fps, else OpenCV's (a folder has none),
divided by stride. Masks (optional): a COCO panoptic JSON and RGB PNGs in `dir/` named by each
annotation's file_name (segment id = R + 256 G + 65536 B, 0 void). An annotation's frame is
its image's: in a frame folder, the frame file with the image file_name's stem; for a video
file, the image's integer `frame_index`, else the digits ending its file_name stem
(`000012.png` -> source frame 12, 0-based). Annotations of frames not kept are ignored; kept
frames without one are unannotated. pan = category_id*1000 + inst (things), category_id*1000
(stuff), -1 (void and crowd); inst numbers a category's COCO segment ids from 0 by first
appearance in time order (ascending id within a frame): one COCO id = one instance. Without
masks (meta `has_masks` false) every kept frame counts as annotated, panoptic.npy is all void
(-1), segments.csv is its header and categories []: the workflow skips the analyses that need
instances for such videos.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

import xinc
from xinc.config import ConfigError
from xinc.data.common import (
    SEGMENT_COLUMNS,
    layout_error,
    read_json,
    read_rgb,
    segments_table,
    sha256_file,
)
from xinc.data.resize import center_crop, crop_box
from xinc.io import save_npy, write_json, write_text

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
_KEYS = ("path", "fps", "max_frames", "stride", "panoptic")
_KINDS = {"file": "a file", "folder": "a folder", "video": "an .mp4/.avi/.mov/.mkv file or a "
          "folder of .png/.jpg/.jpeg frames"}
_FIX_VIDEO = "re-encode it (ffmpeg -i IN -c:v libx264 OUT.mp4) or give a folder of frames"
_FIX_FRAMES = "give frames of one size, readable as PNG/JPEG"
_FIX_MASKS = "write COCO panoptic (panopticapi format) masks, or set panoptic: null"
_MAX_CATEGORY = (np.iinfo(np.int32).max - 999) // 1000  # pan = cat*1000 + inst fits int32
#: {source frame: (mask PNG, {COCO segment id: (category id, iscrowd)})}
_Annotations = dict[int, tuple[Path, dict[int, tuple[int, bool]]]]


def _cfg_error(key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"config key {key}: {problem}. Fix: {fix}")


def _number(key: str, value: Any, kind: type, default: Any) -> Any:
    """`value` as a positive `kind` (int or float), `default` when null."""
    ok = isinstance(value, int | float) if kind is float else isinstance(value, int)
    if value is not None and (isinstance(value, bool) or not ok or not 0 < value < math.inf):
        raise _cfg_error(key, f"{value!r} is not a positive {kind.__name__}",
                         f"give a positive {kind.__name__} or null")
    return default if value is None else kind(value)


def _frame_files(folder: Path) -> list[Path]:
    """Frame files of a folder, sorted by name."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES), key=lambda p: p.name)


def _config_path(key: str, value: Any, base: Path, kind: str) -> Path:
    """`base / value`, checked to be a `kind` (a key of `_KINDS`)."""
    path = base / value if isinstance(value, str) and value else None
    if path is None or not path.exists():
        raise _cfg_error(key, f"{path or repr(value)} does not exist",
                         f"give {_KINDS[kind]} (a path relative to {base})")
    video = bool(_frame_files(path)) if path.is_dir() else path.suffix.lower() in VIDEO_SUFFIXES
    if not {"file": path.is_file(), "folder": path.is_dir(), "video": video}[kind]:
        raise _cfg_error(key, f"{path} is not {_KINDS[kind]}", f"give {_KINDS[kind]}")
    return path


@dataclass(frozen=True)
class CustomVideo:
    """One `datasets.custom.files.<id>` entry, validated, with absolute paths."""

    video_id: str
    path: Path
    base_dir: Path
    fps: float | None = None
    max_frames: int | None = None
    stride: int = 1
    panoptic_json: Path | None = None
    panoptic_dir: Path | None = None

    @classmethod
    def from_config(cls, video_id: str, entry: Mapping[str, Any], base_dir: str | Path
                    ) -> CustomVideo:
        """Validate a config entry; relative paths are resolved against `base_dir`."""
        key, base = f"datasets.custom.files.{video_id}", Path(base_dir).absolute()
        if not isinstance(entry, Mapping):
            raise _cfg_error(key, f"expected a mapping, got {entry!r}", "give {path: ...}")
        unknown = sorted(set(entry) - set(_KEYS))
        if unknown:
            raise _cfg_error(f"{key}.{unknown[0]}", "unknown key", f"use only {list(_KEYS)}")
        path = _config_path(f"{key}.path", entry.get("path"), base, "video")
        pan = entry.get("panoptic")
        if pan is not None and (not isinstance(pan, Mapping) or set(pan) != {"json", "dir"}):
            raise _cfg_error(f"{key}.panoptic", f"{pan!r} is not {{json, dir}}",
                             "give {json: <COCO panoptic JSON>, dir: <mask PNG folder>} or null")
        pan_json, pan_dir = (None, None) if pan is None else (
            _config_path(f"{key}.panoptic.json", pan["json"], base, "file"),
            _config_path(f"{key}.panoptic.dir", pan["dir"], base, "folder"))
        return cls(video_id, path, base, _number(f"{key}.fps", entry.get("fps"), float, None),
                   _number(f"{key}.max_frames", entry.get("max_frames"), int, None),
                   _number(f"{key}.stride", entry.get("stride"), int, 1), pan_json, pan_dir)


def _iter_kept(video: CustomVideo, pixels: bool = True
               ) -> Iterator[tuple[int, Path, np.ndarray | None]]:
    """(source index, file, RGB uint8 frame) of each kept frame; `pixels` False: None after
    the first frame (a video file is still decoded)."""
    if video.path.is_dir():
        files = _frame_files(video.path)
        for k, s in enumerate(range(0, len(files), video.stride)[:video.max_frames]):
            yield s, files[s], read_rgb(files[s], _FIX_FRAMES) if pixels or k == 0 else None
        return
    cap, s, kept = cv2.VideoCapture(str(video.path)), 0, 0
    try:
        while (video.max_frames is None or kept < video.max_frames) and cap.grab():
            if s % video.stride == 0:
                ok, bgr = cap.retrieve() if pixels or kept == 0 else (True, None)
                if not ok:
                    raise layout_error(video.path, f"OpenCV cannot decode frame {s}", _FIX_VIDEO)
                yield s, video.path, None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                kept += 1
            s += 1
    finally:
        cap.release()
    if s == 0:
        raise layout_error(video.path, "OpenCV opens or decodes no frame", _FIX_VIDEO)


def _kept_fps(video: CustomVideo) -> float | None:
    """Rate of the kept frames: the configured or the file's fps / stride (None: unknown)."""
    fps = video.fps
    if fps is None and video.path.is_file():
        cap = cv2.VideoCapture(str(video.path))
        fps = cap.get(cv2.CAP_PROP_FPS)
        cap.release()
    return float(fps) / video.stride if fps and 0 < fps < math.inf else None


def _frame_of(image: Mapping[str, Any], stems: dict[str, int] | None, json_path: Path) -> int:
    """Source frame index of a COCO image entry (module docstring)."""
    stem, index = Path(str(image["file_name"])).stem, image.get("frame_index")
    digits = re.search(r"\d+$", stem)
    if stems is not None or index is None:
        index = stems.get(stem) if stems is not None else digits and int(digits.group())
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise layout_error(json_path, f"image {image['file_name']!r} names no frame", "name it "
                           "after its frame file, or (video file) give it an integer frame_index")
    return index


def _category(cat: Mapping[str, Any]) -> dict[str, Any]:
    cid, color = int(cat["id"]), cat.get("color")
    if not 0 <= cid <= _MAX_CATEGORY:
        raise ValueError(f"category id {cid} outside [0, {_MAX_CATEGORY}]")
    color = color or np.random.default_rng(cid).integers(0, 256, 3).tolist()  # palette
    return {"id": cid, "name": str(cat["name"]), "isthing": int(bool(cat["isthing"])),
            "color": [int(c) for c in color][:3]}


def _load_panoptic(video: CustomVideo) -> tuple[_Annotations, list[dict[str, Any]]]:
    """(annotations, categories) of the video's COCO panoptic JSON."""
    json_path, png_dir = Path(str(video.panoptic_json)), Path(str(video.panoptic_dir))
    data = read_json(json_path, _FIX_MASKS)
    folder = video.path.is_dir()
    stems = {p.stem: i for i, p in enumerate(_frame_files(video.path))} if folder else None
    try:
        categories = [_category(c) for c in data["categories"]]
        images = {img["id"]: img for img in data["images"]}
        annotations: _Annotations = {}
        for ann in data["annotations"]:
            s = _frame_of(images[ann["image_id"]], stems, json_path)
            if s in annotations:
                raise ValueError(f"two annotations for source frame {s}")
            segments = {int(seg["id"]): (int(seg["category_id"]), bool(seg.get("iscrowd", 0)))
                        for seg in ann["segments_info"]}
            missing = {cat for cat, _ in segments.values()} - {c["id"] for c in categories}
            if missing:
                raise ValueError(f"{ann['file_name']}: category_id {sorted(missing)} missing "
                                 "from categories")
            annotations[s] = (png_dir / str(ann["file_name"]), segments)
    except (KeyError, TypeError, ValueError) as exc:
        raise layout_error(json_path, f"not a valid COCO panoptic JSON ({type(exc).__name__}: "
                           f"{exc})", _FIX_MASKS) from None
    return annotations, categories


def _decode(png: Path, segments: dict[int, tuple[int, bool]], size: tuple[int, int],
            isthing: dict[int, int], instances: dict[int, dict[int, int]]) -> np.ndarray:
    """int32 pan map of one mask PNG; `instances` {category: {COCO id: inst}} grows."""
    rgb = read_rgb(png, _FIX_MASKS).astype(np.int64)  # int64 before arithmetic (uint8 wraps)
    if rgb.shape[:2] != size:
        raise layout_error(png, f"mask size {rgb.shape[:2]} differs from its frame's {size}",
                           "write each mask at its frame's resolution")
    ids, inverse = np.unique((rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).ravel(),
                             return_inverse=True)
    values = np.full(len(ids), -1, np.int64)
    for i, sid in enumerate(ids.tolist()):
        if sid != 0 and sid not in segments:
            raise layout_error(png, f"segment id {sid} is not in its annotation's "
                               "segments_info", _FIX_MASKS)
        if sid == 0 or segments[sid][1]:  # void or crowd
            continue
        cat = segments[sid][0]
        seen = instances.setdefault(cat, {})
        inst = seen.setdefault(sid, len(seen)) if isthing[cat] else 0
        if inst > 999:
            raise layout_error(png, f"category {cat} has over 1000 instances", "merge some")
        values[i] = cat * 1000 + inst
    return values[inverse].reshape(size).astype(np.int32)


def _crop(native: tuple[int, int], crop: Sequence[int] | None | str,
          working_size: Sequence[int]) -> list[int]:
    """[top, left, h, w] of the requested centre crop (see prepare_custom_video)."""
    if isinstance(crop, str):
        if crop != "aspect":
            raise ValueError(f"crop must be 'aspect', [h, w] or None, not {crop!r}")
        (H, W), (h, w) = native, (int(v) for v in working_size)
        size = [max(1, round(W * h / w)), W] if W * h <= H * w else [H, max(1, round(H * w / h))]
        return crop_box(native, size)
    return crop_box(native, None if crop is None else [int(c) for c in crop])


def describe_custom(video: CustomVideo) -> dict[str, Any]:
    """n_frames (kept), height, width, fps, has_masks, annotated_t (kept frames with a mask).
    A folder is listed; a video file is decoded (not converted) up to its last kept frame, as
    CAP_PROP_FRAME_COUNT can be wrong: about the cost of decoding the video."""
    kept = [(s, frame) for s, _, frame in _iter_kept(video, pixels=False)]
    annotations = _load_panoptic(video)[0] if video.panoptic_json else {}
    return {"n_frames": len(kept), "height": kept[0][1].shape[0], "width": kept[0][1].shape[1],
            "fps": _kept_fps(video), "has_masks": video.panoptic_json is not None,
            "annotated_t": [t for t, (s, _) in enumerate(kept) if s in annotations]}


def prepare_custom_video(video: CustomVideo, out_dir: str | Path, *,
                         crop: Sequence[int] | None | str = "aspect",
                         working_size: Sequence[int]) -> dict[str, Any]:
    """Write frames.npy, panoptic.npy, segments.csv and meta.json (as `prepare_video`, plus
    meta `has_masks`); return the meta. crop: "aspect" = the largest centre crop with
    working_size's aspect ratio (h/w); [h, w] = that centre crop; None = none."""
    has_masks = video.panoptic_json is not None
    annotations, categories = _load_panoptic(video) if has_masks else ({}, [])
    isthing, instances = {c["id"]: c["isthing"] for c in categories}, {}
    frames, labels, annotated_t, used = [], [], [], []
    for t, (s, path, frame) in enumerate(_iter_kept(video)):
        if t == 0:
            native, box = frame.shape[:2], _crop(frame.shape[:2], crop, working_size)
        if frame.shape[:2] != native:
            raise layout_error(path, f"frame {s} is {frame.shape[:2]}, the first frame "
                               f"{native}", _FIX_FRAMES)
        frames.append(center_crop(frame, box, 0, axes=(0, 1)))
        used.append(path)
        if s in annotations:
            pan = _decode(*annotations[s], native, isthing, instances)
            labels.append(center_crop(pan, box, -1))
            annotated_t.append(t)
            used.append(annotations[s][0])
    n_frames = len(frames)
    if not has_masks:
        annotated_t = list(range(n_frames))
    panoptic = np.stack(labels) if labels else np.full((len(annotated_t), *box[2:]), -1, np.int32)
    save_npy(Path(out_dir, "frames.npy"), np.stack(frames))
    save_npy(Path(out_dir, "panoptic.npy"), panoptic)
    csv = (segments_table(panoptic, annotated_t, categories).to_csv(index=False) if categories
           else ",".join(SEGMENT_COLUMNS) + "\n")  # no masks: header only
    write_text(Path(out_dir, "segments.csv"), csv)
    sources = [*dict.fromkeys(used), *([video.panoptic_json] if has_masks else [])]
    meta = {
        "dataset": "custom", "split": "custom", "video": video.video_id, "fps": _kept_fps(video),
        "native_size": [int(native[0]), int(native[1])], "crop_box": box, "T": n_frames,
        "annotated_t": annotated_t, "t_norm": [t / n_frames for t in annotated_t],
        "t_reference": [k / len(annotated_t) for k in range(len(annotated_t))],
        "categories": categories, "has_masks": has_masks, "xinc_version": xinc.__version__,
        "sources": {Path(os.path.relpath(p, video.base_dir)).as_posix(): sha256_file(p)
                    for p in sources},
    }
    write_json(Path(out_dir, "meta.json"), meta)
    return meta
