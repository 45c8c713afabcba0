"""Geometry as in the authors' code: torchvision centre crop, bicubic, PIL and nearest resizes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from xinc.checks import check_masks
from xinc.data.common import segments_table
from xinc.intermediate import read_json, read_npy, reading
from xinc.io import save_npy, write_json, write_text


def crop_box(size: Sequence[int], crop: Sequence[int] | None) -> list[int]:
    """[top, left, h, w] of torchvision's `center_crop(size -> crop)` in source pixels.

    top = round((H - h) / 2) (Python rounding, as torchvision); a crop larger than the image
    pads it symmetrically (extra pixel at the end), i.e. top = -((h - H) // 2).
    """
    if crop is None:
        return [0, 0, int(size[0]), int(size[1])]
    offsets = [-((c - s) // 2) if c > s else int(round((s - c) / 2.0))
               for s, c in zip(size, crop, strict=True)]
    return [offsets[0], offsets[1], int(crop[0]), int(crop[1])]


def center_crop(
    arr: np.ndarray, box: Sequence[int], fill: int, axes: tuple[int, int] = (-2, -1)
) -> np.ndarray:
    """The `box` ([top, left, h, w]) of `arr` along its (row, col) `axes`; pixels outside the
    source take `fill` (torchvision zero-pads frames; padded mask pixels are void)."""
    top, left, h, w = box
    ay, ax = (a % arr.ndim for a in axes)
    shape = list(arr.shape)
    H, W = shape[ay], shape[ax]
    shape[ay], shape[ax] = h, w
    out = np.full(shape, fill, arr.dtype)
    y0, y1, x0, x1 = max(top, 0), min(top + h, H), max(left, 0), min(left + w, W)
    src, dst = [slice(None)] * arr.ndim, [slice(None)] * arr.ndim
    src[ay], src[ax] = slice(y0, y1), slice(x0, x1)
    dst[ay], dst[ax] = slice(y0 - top, y1 - top), slice(x0 - left, x1 - left)
    out[tuple(dst)] = arr[tuple(src)]
    return out


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source index of each output index for torch `F.interpolate(mode="nearest")`:
    floor(i * in/out) with the scale in float32, as ATen computes it."""
    if in_size == out_size:
        return np.arange(out_size)
    scale = np.float32(in_size) / np.float32(out_size)
    idx = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(idx, in_size - 1)


def resize_nearest(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest resize of label maps [..., H, W] (no new values, matches torch nearest)."""
    rows = nearest_indices(labels.shape[-2], int(size[0]))
    cols = nearest_indices(labels.shape[-1], int(size[1]))
    return labels[..., rows[:, None], cols[None, :]]


def resize_bicubic(frames: np.ndarray, size: Sequence[int], chunk: int = 8) -> np.ndarray:
    """uint8 [T, H, W, 3] -> float32 [T, h, w, 3]: torch bicubic of frames/255,
    align_corners=False, no antialias, not clamped (the authors' NeRV targets)."""
    out = []
    for start in range(0, len(frames), chunk):
        x = torch.from_numpy(np.ascontiguousarray(frames[start:start + chunk]))
        x = x.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        y = F.interpolate(x, size=(int(size[0]), int(size[1])), mode="bicubic",
                          align_corners=False, antialias=False)
        out.append(y.permute(0, 2, 3, 1).numpy())
    return np.concatenate(out).astype(np.float32, copy=False)


def resize_pil(frames: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, h, w, 3] with PIL BILINEAR (antialiased when shrinking),
    as torchvision `Resize` on PIL images (the authors' FFN targets)."""
    wh = (int(size[1]), int(size[0]))
    return np.stack([np.asarray(Image.fromarray(f).resize(wh, Image.Resampling.BILINEAR))
                     for f in frames])


def working_resolution(
    prepared_dir: str | Path, out_dir: str | Path, height: int, width: int
) -> None:
    """Write `data/work/{ds}/<variant>/{vid}/{H}x{W}/` (docs/formats.md §3) from a prepared
    video; masks that do not fit its frames or categories (`xinc.checks.check_masks`) raise
    `IntermediateFileError` naming panoptic.npy."""
    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    meta = read_json(prepared_dir / "meta.json")
    frames = read_npy(prepared_dir / "frames.npy")
    masks = read_npy(prepared_dir / "panoptic.npy")
    with reading(prepared_dir / "panoptic.npy"):
        check_masks(masks, frames.shape, meta["annotated_t"], meta["categories"])
    panoptic = resize_nearest(masks, (height, width))
    save_npy(out_dir / "frames_bicubic.npy", resize_bicubic(frames, (height, width)))
    save_npy(out_dir / "frames_pil.npy", resize_pil(frames, (height, width)))
    save_npy(out_dir / "panoptic.npy", panoptic.astype(np.int32))
    table = segments_table(panoptic, meta["annotated_t"], meta["categories"])
    write_text(out_dir / "segments.csv", table.to_csv(index=False))
    write_json(out_dir / "meta.json", {**meta, "working_size": [int(height), int(width)]})
