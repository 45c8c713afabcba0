"""Fig 9 (xinc.plots.fig09): Δ_t against |flow| and the frame difference, known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.flow import write_flow
from xinc.io import save_npy
from xinc.plots import fig09
from xinc.stats import write_pair_stats

H, W = 16, 32
DPI = 50


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, H, W, 3), dtype=np.uint8)
    frames_path = tmp_path / "work" / "frames_pil.npy"
    save_npy(frames_path, frames)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    u, v = xx / 4, yy / 8  # |flow| grows to the bottom right
    flow = tmp_path / "flow" / "f2.npz"
    write_flow(flow, u, v, {"dataset": "cityscapes_vps", "video": "0175", "frame_prev": 1,
                            "frame": 2, "method": "farneback"})
    magnitude = np.hypot(u, v)
    diff = fig09.frame_difference(frames, 2)
    meta = {"arch": "nerv", "dataset": "cityscapes_vps", "video": "0175", "seed": 1,
            "frame_prev": 1, "frame": 2}
    root = tmp_path / "pair" / "s1" / "t2"
    pairs = [root / "head.npz", root / "b3.npz"]
    write_pair_stats(pairs[0], magnitude ** 2, {**meta, "layer": "head"})  # monotone in |flow|
    write_pair_stats(pairs[1], 3 * diff + 1, {**meta, "layer": "b3"})  # linear in the diff
    return pairs, {("cityscapes_vps", "0175", 2): flow}, {("cityscapes_vps", "0175"): frames_path}


def test_frame_difference():
    frames = np.zeros((2, 1, 2, 3), np.uint8)
    frames[1, 0, 0] = [100, 0, 0]
    frames[1, 0, 1] = [10, 20, 30]
    np.testing.assert_allclose(fig09.frame_difference(frames, 1),
                               [[29.9, 0.299 * 10 + 0.587 * 20 + 0.114 * 30]])


def test_compute(data):
    df = fig09.compute(*data)
    assert list(df.columns) == fig09.COLUMNS
    assert df["layer"].tolist() == ["head", "b3"] and (df["pixels"] == H * W).all()
    head, b3 = df.iloc[0], df.iloc[1]
    assert head["spearman_flow"] == pytest.approx(1.0)  # Δ = |flow|² ranks like |flow|
    assert head["pearson_flow"] < 1.0 - 1e-3  # but is not linear in it
    assert b3["spearman_diff"] == pytest.approx(1.0) and b3["pearson_diff"] == pytest.approx(1.0)
    assert abs(head["spearman_diff"]) < 0.2  # random frames: unrelated to the smooth flow
    assert (head["frame_prev"], head["frame"], head["seed"]) == (1, 2, 1)


def test_constant_and_missing(data, tmp_path):
    pairs, flows, frames = data
    flat = tmp_path / "flat.npz"
    write_pair_stats(flat, np.zeros((H, W)), {"dataset": "cityscapes_vps", "video": "0175",
                                              "seed": 1, "frame_prev": 1, "frame": 2,
                                              "layer": "b2"})
    row = fig09.compute([flat], flows, frames).iloc[0]
    assert np.isnan(row["spearman_flow"]) and np.isnan(row["pearson_diff"])
    with pytest.raises(ValueError, match="no flow file"):
        fig09.compute(pairs, {}, frames)
    with pytest.raises(ValueError, match="no frames file"):
        fig09.compute(pairs, flows, {})


def test_render(data, tmp_path):
    outs = []
    for run in ("a", "b"):
        png, csv = tmp_path / run / "fig09.png", tmp_path / run / "fig09.csv"
        table = fig09.render(*data, png, csv, dpi=DPI)
        outs.append((png.read_bytes(), csv.read_bytes()))
    assert outs[0] == outs[1]
    img = np.asarray(Image.open(tmp_path / "a" / "fig09.png").convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 50 and img.std() > 1.0
    back = pd.read_csv(tmp_path / "a" / "fig09.csv", dtype={"video": str})
    assert list(back.columns) == fig09.COLUMNS and len(back) == len(table) == 2
