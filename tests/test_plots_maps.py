"""Figures 1, 5, 7 and 18 from hand-made statistics files and frames with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from xinc.io import save_npz
from xinc.plots import StatsInput, fig01, fig05, fig07, fig18, map_correlations

H, W = 4, 8
DPI = 40
DS, VID = "cityscapes_vps", "0005"

# Frame 0: a vertical step (columns 0-3 black, 4-7 white); frame 1: a horizontal ramp.
STEP = np.zeros((H, W, 3), np.uint8)
STEP[:, W // 2:] = 255
RAMP = np.repeat(np.repeat(np.arange(W, dtype=np.uint8)[None, :, None] * 30, H, 0), 3, 2)
# Sobel of the step (reflect borders): |sx| = 1·(1 + 2 + 1) = 4 at the two columns beside the
# step, 0 elsewhere; sy = 0.
STEP_EDGES = np.zeros((H, W))
STEP_EDGES[:, W // 2 - 1:W // 2 + 1] = 4.0
RIGHT = (STEP[..., 0] > 0).astype(np.float64)

# fig18: pooled |C| = nine 1s and one 9 (Σ = 18). Descending running sums 9, 10, ..., 18:
# τ₀.₅ (first reaching 9) = 9, τ₀.₁ (first reaching 16.2) = 1. Levels q = k/10 take the value
# at rank ⌊q·9⌋ (method "lower"); mass = share of Σ up to that rank.
CURVE_Q = np.linspace(0.0, 1.0, 11)
CURVE_V = np.array([1.0] * 10 + [9.0])
CURVE_M = np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 18]) / 18.0


def _write(path: Path, *, arch: str, layer: str, heat=None, sample_ids=(), sample_maps=None,
           alive=None, npp=None, tau=(1.0, 9.0), curve=None) -> StatsInput:
    """A statistics file with just the arrays the map figures read."""
    arrays = {"heat": np.asarray(np.ones((H, W)) if heat is None else heat, np.float32),
              "sample_ids": np.asarray(sample_ids, np.int64),
              "sample_maps": np.asarray(np.zeros((0, H, W)) if sample_maps is None
                                        else sample_maps, np.float16),
              "alive": np.asarray(np.ones(5, bool) if alive is None else alive, bool),
              "tau_10": np.float64(tau[0]), "tau_50": np.float64(tau[1])}
    npp = npp or (np.full((H, W), 0.25), np.full((H, W), 0.25))
    arrays["neurons_per_pixel_10"], arrays["neurons_per_pixel_50"] = (
        np.asarray(m, np.float32) for m in npp)
    q, v, m = curve if curve is not None else (CURVE_Q, CURVE_V, CURVE_M)
    arrays.update(value_curve_q=q, value_curve=v, value_curve_mass=m)
    meta = {"arch": arch, "layer": layer, "height": H, "width": W, "neurons": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(path, meta_json=json.dumps(meta), **arrays)
    return StatsInput(path, DS, VID, arch, layer, 1, 0)


@pytest.fixture
def frames(tmp_path: Path) -> dict[tuple[str, str], Path]:
    path = tmp_path / "frames_pil.npy"
    np.save(path, np.stack([STEP, RAMP]))
    return {(DS, VID): path}


@pytest.fixture
def inputs(tmp_path: Path) -> list[StatsInput]:
    root = tmp_path / "stats"
    ramp_map = np.arange(H * W, dtype=np.float64).reshape(H, W) - 8.0
    half = np.where(np.arange(W) < W // 2, 0.0, 1.0)[None, :].repeat(H, 0)
    zero_curve = (CURVE_Q, np.zeros(11), np.zeros(11))
    return [
        # heat = intensity of the step; sample: a ramp, a dead neuron (alive False), a zero map
        _write(root / "l3.npz", arch="ffn", layer="l3", heat=RIGHT * 5 + 2,
               sample_ids=[0, 2, 4], sample_maps=[ramp_map, ramp_map, np.zeros((H, W))],
               alive=[True, True, False, True, True], npp=(half, np.zeros((H, W)))),
        # heat = the step's edges; value curve with zeros
        _write(root / "head.npz", arch="nerv", layer="head", heat=STEP_EDGES / 4,
               sample_ids=[1], sample_maps=[-ramp_map], npp=(half * 0.5 + 0.25, half),
               curve=(CURVE_Q, np.r_[np.zeros(5), CURVE_V[5:]], CURVE_M)),
        # uniform heat, no samples, every |C| zero
        _write(root / "b3.npz", arch="nerv", layer="b3", heat=np.full((H, W), 3.0),
               tau=(0.0, 0.0), curve=zero_curve),
    ]


def _assert_png(path: Path) -> None:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert float(img[..., :3].std()) > 0.01


def _render_twice(module, tmp_path: Path, *args, **options) -> pd.DataFrame:
    """render into two folders; same bytes; CSV columns = COLUMNS; PNG not blank."""
    blobs = []
    for run in ("a", "b"):
        png, csv = tmp_path / run / "f.png", tmp_path / run / "f.csv"
        table = module.render(*args, png, csv, dpi=DPI, **options)
        blobs.append((png.read_bytes(), csv.read_bytes()))
    assert blobs[0] == blobs[1]
    _assert_png(png)
    df = pd.read_csv(csv, dtype={"video": str})
    assert list(df.columns) == list(table.columns) == module.COLUMNS
    assert len(df) == len(table)
    return table


# ---------------------------------------------------------------- fig05

def test_intensity_edges_correlations():
    np.testing.assert_allclose(fig05.intensity(STEP), 3 * RIGHT)
    np.testing.assert_allclose(fig05.edges(STEP), STEP_EDGES, atol=1e-12)
    assert not fig05.intensity(np.full((H, W, 3), 7, np.uint8)).any()
    p, s = map_correlations(RIGHT * 2 + 1, RIGHT)
    assert p == pytest.approx(1.0) and s == pytest.approx(1.0)
    assert all(math.isnan(x) for x in map_correlations(np.ones((H, W)), RIGHT))
    assert all(math.isnan(x) for x in map_correlations(RIGHT, np.zeros((H, W))))


def test_fig05_known_correlations(inputs, frames, tmp_path):
    df = _render_twice(fig05, tmp_path, inputs, frames).set_index("layer")
    assert df.loc["l3", "pearson_intensity"] == pytest.approx(1.0)
    assert df.loc["l3", "spearman_intensity"] == pytest.approx(1.0)
    # the right half against the two columns beside the step: covariance 0
    assert df.loc["l3", "pearson_edges"] == pytest.approx(0.0, abs=1e-12)
    assert df.loc["l3", "spearman_edges"] == pytest.approx(0.0, abs=1e-12)
    assert df.loc["head", "pearson_edges"] == pytest.approx(1.0)
    assert df.loc["head", "spearman_edges"] == pytest.approx(1.0)
    assert df.loc["b3", ["pearson_intensity", "spearman_intensity", "pearson_edges",
                         "spearman_edges"]].isna().all()
    assert df.loc["b3", ["heat_min", "heat_max", "heat_mean"]].tolist() == [3.0, 3.0, 3.0]
    assert df.loc["l3", ["heat_min", "heat_max", "heat_mean"]].tolist() == [2.0, 7.0, 4.5]
    assert (df["pixels"] == H * W).all() and (df["frame"] == 0).all()
    assert df.loc["head", "source"] == str(inputs[1].path)


def test_fig05_frame_errors(inputs, frames, tmp_path):
    with pytest.raises(ValueError, match="no frames file"):
        fig05.compute([inputs[0].with_labels(video="other")], frames)
    with pytest.raises(ValueError, match="frame 5 not in"):
        fig05.compute([inputs[0].with_labels(frame=5)], frames)


# ---------------------------------------------------------------- fig01

def test_fig01_teaser_marks_dead(inputs, frames, tmp_path):
    df = _render_twice(fig01, tmp_path, inputs, frames, neurons=2)
    # l3: the first two of [0, 2, 4]; neuron 2 is dead by `alive` although its map is not zero
    assert df["layer"].tolist() == ["l3", "l3", "head"]
    assert df["neuron_id"].tolist() == [0, 2, 1]
    assert df["dead"].tolist() == [False, True, False]
    assert df["panel"].tolist() == [0, 1, 0]
    assert df.iloc[0][["min", "max", "mean"]].tolist() == [0.0, 23.0, 9.75]
    three = fig01.compute(inputs, neurons=3)
    assert three["neuron_id"].tolist() == [0, 2, 4, 1]
    assert three["dead"].tolist() == [False, True, True, False]  # 4: all-zero map
    assert (three.iloc[2][["min", "max", "mean"]] == 0).all()


# ---------------------------------------------------------------- fig07

def test_fig07_map_stats(inputs, frames, tmp_path):
    df = _render_twice(fig07, tmp_path, inputs, frames)
    assert df["area"].tolist() == [0.1, 0.5] * 3
    l3 = df[df["layer"] == "l3"].set_index("area")
    assert l3.loc[0.1, ["tau", "mean", "std", "cv", "min", "max"]].tolist() == [
        1.0, 0.5, 0.5, 1.0, 0.0, 1.0]
    assert l3.loc[0.5, "tau"] == 9.0 and math.isnan(l3.loc[0.5, "cv"])
    head = df[df["layer"] == "head"].set_index("area")
    assert head.loc[0.1, ["mean", "std", "cv"]].tolist() == [
        pytest.approx(0.5), pytest.approx(0.25), pytest.approx(0.5)]
    b3 = df[df["layer"] == "b3"]
    assert (b3["std"] == 0).all() and (b3["cv"] == 0).all() and (b3["tau"] == 0).all()
    assert fig07.map_stats(np.zeros((2, 2)))["mean"] == 0.0


# ---------------------------------------------------------------- fig18

def test_fig18_known_tau(inputs, tmp_path):
    df = _render_twice(fig18, tmp_path, inputs)
    assert len(df) == 3 * CURVE_Q.size
    l3 = df[df["layer"] == "l3"]
    np.testing.assert_array_equal(l3["q"], CURVE_Q)
    np.testing.assert_array_equal(l3["value"], CURVE_V)
    np.testing.assert_allclose(l3["mass"], CURVE_M)
    assert (l3["tau_10"] == 1.0).all() and (l3["tau_50"] == 9.0).all()
    # τ₀.₅ = 9 is reached at the last level; the values below it carry 9/18 = a of the mass
    at = fig18.tau_level(CURVE_V, 9.0)
    assert at == 10 and CURVE_M[at - 1] == pytest.approx(0.5)
    assert fig18.tau_level(CURVE_V, 1.0) == 0 and fig18.tau_level(CURVE_V, 10.0) is None
    b3 = df[df["layer"] == "b3"]
    assert (b3["value"] == 0).all() and (b3["tau_50"] == 0).all()
