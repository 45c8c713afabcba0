"""Dense optical flow between consecutive raw frames (docs/method.md §10 Fig 9, B24).

The authors' flow files are not shipped and their estimator is undocumented (B24), so xinc
computes its own with OpenCV at working resolution, from raw frame t − 1 to raw frame t (the
direction "flow cannot be computed for frame 0" implies): u, v in pixels per frame (u to the
right, v downwards), so that I_t(y + v, x + u) ≈ I_{t−1}(y, x). Both estimators run on the grey
image (`cv2.COLOR_RGB2GRAY`, ITU-R 601 luma of the uint8 RGB frame) with fixed parameters:

- `farneback`: `cv2.calcOpticalFlowFarneback` with OpenCV's documented example parameters
  (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0). On a
  translated smooth texture it recovers shifts up to 10 px exactly and loses them from ≈ 16 px
  (measured), so fast motion close to the camera is underestimated.
- `dis`: `cv2.DISOpticalFlow_create(cv2.DISOpticalFlow_PRESET_MEDIUM)` (dense inverse search
  with variational refinement; the preset OpenCV recommends for quality; exact on the same test
  to at least 24 px).

OpenCV runs single-threaded while computing (`cv2.setNumThreads(1)`, restored afterwards), so
the same frames give the same bytes. Files (`results/<run>/flow/{ds}/{vid}/f{t}.npz`): `u`, `v`,
`magnitude` float32 [H, W] and `meta_json` {dataset, video, frame_prev, frame, method, params}.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from xinc.intermediate import read_json, read_npy, read_npz
from xinc.io import save_npz

__all__ = ["METHODS", "PARAMS", "optical_flow", "read_flow", "video_flow", "write_flow"]

METHODS = ("farneback", "dis")

#: The fixed parameters of each method, as recorded in the files' meta.
PARAMS: dict[str, dict[str, Any]] = {
    "farneback": {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
                  "poly_sigma": 1.2, "flags": 0},
    "dis": {"preset": "medium"},
}
_DIS_PRESETS = {"ultrafast": cv2.DISOpticalFlow_PRESET_ULTRAFAST,
                "fast": cv2.DISOpticalFlow_PRESET_FAST,
                "medium": cv2.DISOpticalFlow_PRESET_MEDIUM}


@contextmanager
def _single_thread() -> Iterator[None]:
    old = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(old)


def _grey(frame: np.ndarray, name: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"{name} must be a uint8 RGB frame [H, W, 3], got {frame.dtype} "
                         f"{frame.shape}")
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def optical_flow(prev: np.ndarray, nxt: np.ndarray,
                 method: str = "farneback") -> tuple[np.ndarray, np.ndarray]:
    """(u, v) float32 [H, W]: the flow from uint8 RGB frame `prev` (t − 1) to `nxt` (t)."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {METHODS}")
    a, b = _grey(prev, "prev"), _grey(nxt, "nxt")
    if a.shape != b.shape:
        raise ValueError(f"frames differ in size: {a.shape} and {b.shape}")
    with _single_thread():
        if method == "farneback":
            p = PARAMS["farneback"]
            flow = cv2.calcOpticalFlowFarneback(
                a, b, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"],
                p["poly_n"], p["poly_sigma"], p["flags"])
        else:
            dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[PARAMS["dis"]["preset"]])
            flow = dis.calc(a, b, None)
    flow = np.asarray(flow, dtype=np.float32)
    return np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1])


def write_flow(path: str | Path, u: np.ndarray, v: np.ndarray, meta: Mapping[str, Any]) -> None:
    """Write u, v, magnitude = hypot(u, v) (float32 [H, W]) and `meta_json`, atomically."""
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"u {u.shape} and v {v.shape} must be equal 2-D arrays")
    save_npz(path, u=u, v=v, magnitude=np.hypot(u, v).astype(np.float32),
             meta_json=np.array(json.dumps(dict(meta), sort_keys=True)))


def read_flow(path: str | Path) -> dict[str, Any]:
    """{u, v, magnitude, meta} of a file written by :func:`write_flow`; a damaged or foreign
    file raises an error naming it."""
    arrays = read_npz(path, required=("u", "v", "magnitude", "meta_json"), kind="optical flow")
    out: dict[str, Any] = {k: arrays[k] for k in ("u", "v", "magnitude")}
    out["meta"] = json.loads(str(arrays["meta_json"]))
    return out


def video_flow(frames_path: str | Path, frame: int, out_path: str | Path, *,
               method: str) -> dict[str, Any]:
    """Flow from raw frame `frame` − 1 to `frame` of a working-resolution `frames_pil.npy`
    (docs/formats.md §3; its `meta.json` beside it names dataset and video), written to `out_path`.
    Returns the meta written."""
    frames_path = Path(frames_path)
    frames = read_npy(frames_path, mmap_mode="r")
    n_frames = int(frames.shape[0])
    if not 1 <= frame < n_frames:
        raise ValueError(
            f"{frames_path}: flow needs frames {frame} - 1 and {frame}, but the video has frames "
            f"0 … {n_frames - 1}; choose pair frames t with 1 <= t <= {n_frames - 1} "
            "(config key canvas.pair_frames)")
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; choose from {METHODS}")
    video_meta = read_json(frames_path.parent / "meta.json")
    u, v = optical_flow(np.asarray(frames[frame - 1]), np.asarray(frames[frame]), method)
    meta = {"dataset": video_meta.get("dataset"), "video": video_meta.get("video"),
            "frame_prev": int(frame) - 1, "frame": int(frame), "method": method,
            "params": dict(PARAMS[method])}
    write_flow(out_path, u, v, meta)
    return meta
