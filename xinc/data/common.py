"""Shared pieces of the dataset readers: errors, file reading, the per-video source record,
and the guard of folders a writer replaces."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

#: Label values must lie in [0, MAX_LABEL): both encodings stay below 2**16.
MAX_LABEL = 1 << 20
SEGMENT_COLUMNS = ("t", "pan_id", "category_id", "isthing", "iscrowd", "area", "x", "y", "w", "h")


class DataLayoutError(RuntimeError):
    """A dataset file is missing, unreadable or not what the official layout says it is."""


@dataclass(frozen=True)
class VideoSource:
    """Where one video of an official layout lives and how its labels decode."""

    dataset: str
    video: str
    split: str
    fps: float | None  # frames per second as the dataset documents it; None: undocumented
    root: Path
    frame_paths: tuple[Path, ...]
    annotated_t: tuple[int, ...]
    label_paths: tuple[Path, ...]
    categories: tuple[dict[str, Any], ...]
    decode: Callable[[np.ndarray], np.ndarray]


def layout_error(path: Path, problem: str, fix: str) -> DataLayoutError:
    """An error that names the file, what is wrong with it, and what to do."""
    return DataLayoutError(f"{path}: {problem}. Fix: {fix}")


def read_json(path: Path, fix: str) -> Any:
    """Parse a JSON file, turning a missing or corrupt file into a DataLayoutError."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise layout_error(path, "file not found", fix) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise layout_error(path, f"not valid JSON ({exc})", fix) from None


def _open_image(path: Path, fix: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise layout_error(path, "file not found", fix) from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise layout_error(path, f"unreadable image ({exc})", fix) from None
    return img


def read_rgb(path: Path, fix: str) -> np.ndarray:
    """An RGB image as uint8 [H, W, 3] (alpha dropped, grey expanded)."""
    return np.asarray(_open_image(path, fix).convert("RGB"))


def read_label(path: Path, fix: str) -> np.ndarray:
    """A single-channel label PNG as int64 [H, W] (Pillow gives uint16 or int32; cast first)."""
    img = _open_image(path, fix)
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise layout_error(path, f"expected a single-channel label image, got mode {img.mode}", fix)
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= MAX_LABEL):
        raise layout_error(path, f"label values span [{arr.min()}, {arr.max()}], outside "
                           f"[0, {MAX_LABEL})", fix)
    return arr


def remap(labels: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Map every value of a non-negative label array through `fn`, a vectorised function of
    the distinct values present (evaluated once per value, applied by table lookup)."""
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=1))
    mapped = np.asarray(fn(present))
    table = np.zeros(int(present.max(initial=0)) + 1, mapped.dtype)
    table[present] = mapped
    return table[labels]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def category_lut(categories: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(known, isthing) boolean lookup tables indexed by category id."""
    size = max((int(c["id"]) for c in categories), default=-1) + 1
    known = np.zeros(size, bool)
    isthing = np.zeros(size, bool)
    for cat in categories:
        known[int(cat["id"])] = True
        isthing[int(cat["id"])] = bool(cat["isthing"])
    return known, isthing


def segments_table(
    panoptic: np.ndarray, annotated_t: Sequence[int], categories: Sequence[dict[str, Any]]
) -> pd.DataFrame:
    """One row per (annotated frame, segment): area and COCO bbox [x, y, w, h] of each pan id."""
    _, isthing = category_lut(categories)
    rows = []
    for t, pan in zip(annotated_t, panoptic, strict=True):
        ids, codes, areas = np.unique(pan, return_inverse=True, return_counts=True)
        codes = codes.reshape(pan.shape)
        h, w = pan.shape
        in_row = np.zeros((len(ids), h), bool)
        in_row[codes, np.arange(h)[:, None]] = True
        in_col = np.zeros((len(ids), w), bool)
        in_col[codes, np.arange(w)[None, :]] = True
        y0, y1 = in_row.argmax(1), h - 1 - in_row[:, ::-1].argmax(1)
        x0, x1 = in_col.argmax(1), w - 1 - in_col[:, ::-1].argmax(1)
        for i, pan_id in enumerate(ids.tolist()):
            if pan_id < 0:
                continue
            cat = pan_id // 1000
            rows.append((int(t), pan_id, cat, int(isthing[cat]), 0, int(areas[i]),
                         int(x0[i]), int(y0[i]), int(x1[i] - x0[i] + 1), int(y1[i] - y0[i] + 1)))
    return pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS)).astype("int64")


def check_own_folder(folder: Path, marker: str, *, writer: str, purpose: str,
                     fate: str) -> None:
    """Refuse a `folder` that exists and holds anything but an earlier output of `writer` (a
    tree with `marker` in it) or nothing: it would be `fate` ("replaced", "emptied")."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder; choose a new or empty folder "
                         f"for {purpose}")
    if (folder / marker).is_file() or not any(folder.iterdir()):
        return
    raise ValueError(f"{folder}: the folder holds files not written by {writer} (no {marker}) "
                     f"and would be {fate}; choose a new or empty folder")
