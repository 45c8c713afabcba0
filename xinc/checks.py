"""What the workflow's frames, panoptic masks and model weights must hold, checked where read.

Each check raises `ContentError` saying what is wrong and where in the data; the reader, which
knows the file, adds its path and the rule that writes it (`xinc.intermediate.read_npy`,
`xinc.intermediate.reading`). numpy only (tensors are used through their methods), so that every
reader can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

VOID = -1  # the panoptic id of pixels no segment covers
MAX_LISTED = 10


class ContentError(ValueError):
    """A file reads, but holds what its format rules out (the message: what and where)."""


def check_frames(frames: np.ndarray, dtype: type | np.dtype) -> None:
    """Frames [T, H, W, 3] of `dtype`; float frames hold no NaN or infinity."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ContentError(f"frames of shape {list(frames.shape)}, not [T, H, W, 3]")
    if frames.dtype != np.dtype(dtype):
        raise ContentError(f"frames of dtype {frames.dtype}, not {np.dtype(dtype)}")
    if frames.dtype.kind != "f":
        return
    bad = np.count_nonzero(~np.isfinite(frames.reshape(len(frames), -1)), axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ContentError(
            f"frame {first} holds {bad[first]} NaN or infinite values "
            f"({bad.sum()} in {np.count_nonzero(bad)} of {len(frames)} frames)")


def check_panoptic(panoptic: np.ndarray) -> None:
    """Panoptic masks int32 [A, H, W], ids ≥ −1 (−1 = void)."""
    if panoptic.ndim != 3:
        raise ContentError(f"panoptic masks of shape {list(panoptic.shape)}, not [A, H, W]")
    if panoptic.dtype != np.int32:
        raise ContentError(f"panoptic masks of dtype {panoptic.dtype}, not int32")
    if panoptic.size and panoptic.min() < VOID:
        low = int(panoptic.min())
        mask, row, col = _position(panoptic, low)
        raise ContentError(f"panoptic id {low} at mask {mask}, row {row}, column {col} is below "
                           f"{VOID} (void)")


def check_masks(panoptic: np.ndarray, frames_shape: Sequence[int], annotated_t: Sequence[int],
                categories: Iterable[Mapping[str, Any]]) -> None:
    """The masks of a video fit it: one per annotated frame, the frames' size, and every
    panoptic id (category·1000 + instance) of a category of its table."""
    n, height, width = panoptic.shape
    if (height, width) != tuple(frames_shape[1:3]):
        raise ContentError(f"the masks are {height}x{width} but the frames are "
                           f"{frames_shape[1]}x{frames_shape[2]}")
    if n != len(annotated_t):
        raise ContentError(f"{n} masks for {len(annotated_t)} annotated frames "
                           f"{list(annotated_t)}")
    known = np.array(sorted({int(c["id"]) for c in categories}), np.int64)
    ids = np.unique(panoptic)
    ids = ids[ids > VOID].astype(np.int64)
    unknown = ids[~np.isin(ids // 1000, known)]
    if unknown.size:
        pan = int(unknown[0])
        mask, row, col = _position(panoptic, pan)
        more = len(unknown) - 1
        others = f" ({more} more unknown id{'s' if more > 1 else ''})" if more else ""
        raise ContentError(
            f"panoptic id {pan} (category {pan // 1000}) at frame {annotated_t[mask]}, row "
            f"{row}, column {col} is not in the video's category table (meta.json categories: "
            f"ids {_listed(known.tolist())}){others}")


def check_finite_weights(model: Any) -> None:
    """Every floating parameter and buffer of a torch module finite: one NaN weight spreads to
    every contribution map downstream of it."""
    named = [("parameter", *item) for item in model.named_parameters()]
    named += [("buffer", *item) for item in model.named_buffers()]
    for kind, name, tensor in named:
        if not tensor.is_floating_point():
            continue
        nan = int(tensor.isnan().sum())
        inf = int((~tensor.isfinite()).sum()) - nan
        if nan or inf:
            what = " and ".join(f"{count} {label}" for count, label in
                                ((nan, "NaN"), (inf, "infinite")) if count)
            raise ContentError(
                f"{kind} {name} holds {what} of its {tensor.numel()} values: the file is "
                "damaged or the training diverged")


def _position(array: np.ndarray, value: int) -> tuple[int, int, int]:
    """First (mask, row, column) of `value` in `array`."""
    mask, row, col = (int(i) for i in np.argwhere(array == value)[0])
    return mask, row, col


def _listed(ids: Sequence[int]) -> str:
    """`0–18` for a run of ids, else the first few."""
    if not ids:
        return "none"
    if list(ids) == list(range(ids[0], ids[-1] + 1)) and len(ids) > 2:
        return f"{ids[0]}–{ids[-1]}"
    more = ", …" if len(ids) > MAX_LISTED else ""
    return ", ".join(map(str, ids[:MAX_LISTED])) + more
