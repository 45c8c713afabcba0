"""Optical flow (xinc.flow) on a textured image translated by a known shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from xinc.flow import METHODS, PARAMS, optical_flow, read_flow, video_flow, write_flow
from xinc.intermediate import IntermediateFileError
from xinc.io import save_npy, save_npz

H, W = 64, 128
SHIFT_X, SHIFT_Y = 2, 1  # the content moves 2 px right and 1 px down from frame t-1 to t
MARGIN = 16  # pixels near the border see content entering the frame; the winsize is 15


def _texture(seed: int = 0) -> np.ndarray:
    """A smooth random grey texture (blurred noise, σ = 2 px) stretched to 0..255, with a
    border of 8 px around the H × W window."""
    rng = np.random.default_rng(seed)
    t = ndimage.gaussian_filter(rng.random((H + 16, W + 16)), 2.0)
    return (t - t.min()) / (t.max() - t.min()) * 255.0


def _pair(shift_x: int = SHIFT_X, shift_y: int = SHIFT_Y) -> tuple[np.ndarray, np.ndarray]:
    big = _texture()
    prev = big[8:8 + H, 8:8 + W]
    # nxt(y, x) = prev(y - shift_y, x - shift_x)
    nxt = big[8 - shift_y:8 - shift_y + H, 8 - shift_x:8 - shift_x + W]
    rgb = [np.repeat(f[..., None], 3, axis=2).round().astype(np.uint8) for f in (prev, nxt)]
    return rgb[0], rgb[1]


@pytest.mark.parametrize("method", METHODS)
def test_translated_texture(method):
    prev, nxt = _pair()
    u, v = optical_flow(prev, nxt, method)
    assert u.dtype == v.dtype == np.float32 and u.shape == v.shape == (H, W)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    # Measured errors in the interior are < 0.002 px (Farnebäck) and < 0.05 px (DIS) for integer
    # shifts of a smooth texture; 0.05 px on the median leaves room for OpenCV builds.
    assert np.median(u[inner]) == pytest.approx(SHIFT_X, abs=0.05)
    assert np.median(v[inner]) == pytest.approx(SHIFT_Y, abs=0.05)
    u2, v2 = optical_flow(prev, nxt, method)
    assert np.array_equal(u, u2) and np.array_equal(v, v2)  # deterministic


def test_no_motion_and_bad_inputs():
    prev, _ = _pair()
    u, v = optical_flow(prev, prev)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    assert np.abs(u[inner]).max() < 1e-3 and np.abs(v[inner]).max() < 1e-3  # border: < 0.1 px
    with pytest.raises(ValueError, match="uint8 RGB"):
        optical_flow(prev.astype(np.float32), prev)
    with pytest.raises(ValueError, match="differ in size"):
        optical_flow(prev, prev[:-2])
    with pytest.raises(ValueError, match="unknown flow method"):
        optical_flow(prev, prev, "raft")


def test_write_read_roundtrip(tmp_path):
    u = np.array([[3.0, 0.0], [-1.0, 2.0]], np.float32)
    v = np.array([[4.0, 0.0], [0.0, -2.0]], np.float32)
    write_flow(tmp_path / "f.npz", u, v, {"frame": 1})
    got = read_flow(tmp_path / "f.npz")
    assert np.array_equal(got["u"], u) and np.array_equal(got["v"], v)
    np.testing.assert_allclose(got["magnitude"], [[5.0, 0.0], [1.0, 8 ** 0.5]], rtol=1e-6)
    assert got["magnitude"].dtype == np.float32 and got["meta"] == {"frame": 1}
    save_npz(tmp_path / "bad.npz", delta=u)
    with pytest.raises(IntermediateFileError, match="bad.npz"):
        read_flow(tmp_path / "bad.npz")


def _video(root: Path) -> Path:
    prev, nxt = _pair()
    frames = np.stack([prev, nxt, nxt])
    folder = root / "work" / "vipseg" / "v" / f"{H}x{W}"
    save_npy(folder / "frames_pil.npy", frames)
    (folder / "meta.json").write_text(json.dumps({"dataset": "vipseg", "video": "v"}))
    return folder / "frames_pil.npy"


def test_video_flow(tmp_path):
    frames = _video(tmp_path)
    out = tmp_path / "flow" / "vipseg" / "v" / "f1.npz"
    meta = video_flow(frames, 1, out, method="farneback")
    got = read_flow(out)
    assert got["meta"] == meta == {"dataset": "vipseg", "video": "v", "frame_prev": 0,
                                   "frame": 1, "method": "farneback",
                                   "params": PARAMS["farneback"]}
    u, v = optical_flow(*_pair())
    assert np.array_equal(got["u"], u) and np.array_equal(got["v"], v)
    np.testing.assert_array_equal(got["magnitude"], np.hypot(u, v).astype(np.float32))
    video_flow(frames, 2, out, method="dis")  # frames 1 and 2 are equal: no motion
    still = read_flow(out)
    assert still["meta"]["frame_prev"] == 1 and not still["magnitude"].any()
    for bad in (0, 3):
        with pytest.raises(ValueError, match=r"frames_pil.npy.*canvas.pair_frames"):
            video_flow(frames, bad, out, method="dis")
