"""Official layout -> common per-video format `data/prepared/{ds}/<variant>/{vid}/`
(docs/formats.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

import xinc
from xinc.data import cityscapes_vps, vipseg
from xinc.data.common import (
    VideoSource,
    layout_error,
    read_json,
    read_label,
    read_rgb,
    segments_table,
    sha256_file,
)
from xinc.data.resize import center_crop, crop_box
from xinc.io import save_npy, write_json, write_text

READERS = {"cityscapes_vps": cityscapes_vps, "vipseg": vipseg}
DATASETS = tuple(READERS)
#: Provenance file the synthetic generator leaves in a dataset root; copied into meta.json.
SYNTHETIC_MARKER = "xinc_synthetic.json"


def _reader(dataset: str) -> ModuleType:
    try:
        return READERS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}") from None


def first_annotated_frame(dataset: str) -> int:
    """Raw index of the first labelled frame: 4 for cityscapes_vps, 0 for vipseg."""
    return _reader(dataset).annotated_frames(30)[0]


def annotated_frames(dataset: str, n_frames: int) -> list[int]:
    """Nominal labelled raw indices of an `n_frames` video (Cityscapes 4, 9, ..; VIPSeg all)."""
    return _reader(dataset).annotated_frames(n_frames)


def list_videos(dataset: str, root: str | Path) -> list[str]:
    """Video ids present in the official layout under `root`."""
    return _reader(dataset).list_videos(root)


def video_source(dataset: str, root: str | Path, video: str) -> VideoSource:
    """The files of one video (frames, labels, categories) after checking they exist."""
    return _reader(dataset).video_source(root, video)


def describe_video(dataset: str, root: str | Path, video: str) -> dict[str, Any]:
    """Split, frame/label counts and frame size (from the first frame's header) of one video."""
    src = video_source(dataset, root, video)
    with Image.open(src.frame_paths[0]) as img:
        width, height = img.size
    return {"video": video, "split": src.split, "n_frames": len(src.frame_paths),
            "n_annotated": len(src.annotated_t), "height": height, "width": width}


def prepare_video(
    dataset: str,
    root: str | Path,
    video: str,
    out_dir: str | Path,
    *,
    crop: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Write frames.npy, panoptic.npy, segments.csv and meta.json of one video; return the meta.

    `crop` = [h, w] centre crop as torchvision `center_crop` (VIPSeg: [640, 1280]); None keeps
    the native size (Cityscapes).
    """
    src = video_source(dataset, root, video)
    fix = _reader(dataset).FIX
    if not src.annotated_t:
        raise layout_error(src.root, f"video {video!r} ({src.split} split) has no panoptic labels",
                           "choose a video with masks (VIPSeg test videos have none)")
    frames = [read_rgb(p, fix) for p in src.frame_paths]
    native = frames[0].shape[:2]
    for path, frame in zip(src.frame_paths, frames, strict=True):
        if frame.shape[:2] != native:
            raise layout_error(path, f"frame size {frame.shape[:2]} differs from the video's "
                               f"first frame {native}", fix)
    labels = []
    for path in src.label_paths:
        raw = read_label(path, fix)
        if raw.shape != native:
            raise layout_error(path, f"label size {raw.shape} differs from the frame size "
                               f"{native}", fix)
        labels.append(src.decode(raw))
    box = crop_box(native, crop)
    frames_c = center_crop(np.stack(frames), box, 0, axes=(-3, -2))
    panoptic = center_crop(np.stack(labels), box, -1).astype(np.int32)

    out_dir = Path(out_dir)
    save_npy(out_dir / "frames.npy", frames_c)
    save_npy(out_dir / "panoptic.npy", panoptic)
    table = segments_table(panoptic, src.annotated_t, src.categories)
    write_text(out_dir / "segments.csv", table.to_csv(index=False))
    n_frames, n_ann = len(frames), len(src.annotated_t)
    meta: dict[str, Any] = {
        "dataset": src.dataset, "split": src.split, "video": video, "fps": src.fps,
        "native_size": [int(native[0]), int(native[1])], "crop_box": box, "T": n_frames,
        "annotated_t": list(src.annotated_t),
        "t_norm": [t / n_frames for t in src.annotated_t],
        "t_reference": [k / n_ann for k in range(n_ann)],
        "categories": [{k: c[k] for k in ("id", "name", "isthing", "color")}
                       for c in src.categories],
        "sources": {p.relative_to(src.root).as_posix(): sha256_file(p)
                    for p in (*src.frame_paths, *src.label_paths)},
        "xinc_version": xinc.__version__,
    }
    marker = src.root / SYNTHETIC_MARKER
    if marker.is_file():
        meta["synthetic"] = read_json(marker, "regenerate the synthetic dataset")
    write_json(out_dir / "meta.json", meta)
    return meta
