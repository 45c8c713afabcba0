"""Fig 4/16 (xinc.plots.fig04): grid, delta and other switches and the summary on a hand-made
layer whose v are computed by hand below."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.io import save_npz
from xinc.plots import fig04

DPI = 50

# 8 pixels. Instances as stored: segment 1000 (4 px), segment 2000 (2 px), void "other" (2 px).
# Contiguous grid: 4 cells of 2 px. Neuron 3 is dead.
TOTAL = [8, 8, 8, 0, 8]
INSTANCES = ([[4, 2, 2], [8, 0, 0], [0, 0, 8], [0, 0, 0], [2, 2, 4]], [4, 2, 2], [1000, 2000, -2])
GRID = ([[2, 2, 2, 2], [5, 1, 1, 1], [4, 2, 2, 0], [0, 0, 0, 0], [3, 2, 2, 1]], [2, 2, 2, 2])
# By hand (unbiased variance over groups, E = T·A/8):
#   complement: δ n0 [0,0,0] -> 0; n1 [1,1,1] -> 0; n2 [1,1,3] -> 4/3; n4 [.5,0,1] -> 1/4
#   union (groups 1000, 2000, union 6 px; E uses 8 px): n0 -> 0; n1 S [8,0,8] E [4,2,6]
#     δ [1,1,1/3] -> 4/27; n2 S [0,0,0] -> δ [1,1,1] -> 0; n4 S [2,2,4] δ [.5,0,1/3] -> 7/108
#   grid |δ|: n0 0; n1 [1.5,.5,.5,.5] -> 1/4; n2 [1,0,0,1] -> 1/3; n4 [.5,0,0,.5] -> 1/12
#   grid signed: n1 [1.5,-.5,-.5,-.5] -> 1; n2 [1,0,0,-1] -> 2/3; n4 [.5,0,0,-.5] -> 1/6
COMPLEMENT = ([0, 1, 4, 2], [0, 0, 1 / 4, 4 / 3])
UNION = ([0, 2, 4, 1], [0, 0, 7 / 108, 4 / 27])
GRID_ABS = ([0, 4, 1, 2], [0, 1 / 12, 1 / 4, 1 / 3])
GRID_SIGNED = ([0, 4, 2, 1], [0, 1 / 6, 2 / 3, 1])


def write_layer(path: Path, *, layer: str, total=TOTAL, instances=INSTANCES, grid=GRID) -> Path:
    sums, areas, ids = instances
    arrays = {"total": np.asarray(total, np.float64),
              "group_sums_instances": np.asarray(sums, np.float64),
              "areas_instances": np.asarray(areas, np.int64),
              "instances_ids": np.asarray(ids, np.int64),
              "group_sums_grid_contiguous": np.asarray(grid[0], np.float64),
              "areas_grid_contiguous": np.asarray(grid[1], np.int64)}
    meta = {"arch": "nerv", "layer": layer, "height": 2, "width": 4, "frame": 0, "seed": 1,
            "dataset": "vipseg", "video": "26_cbl"}
    save_npz(path, meta_json=json.dumps(meta), **arrays)
    return path


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "stats" / "nerv" / "vipseg" / "26_cbl" / "s1" / "f0"
    dead = ([[0, 0, 0]] * 5, [4, 2, 2], [1000, 2000, -2])
    return [write_layer(root / "head.npz", layer="head"),
            write_layer(root / "b3.npz", layer="b3", total=[0] * 5, instances=dead,
                        grid=([[0] * 4] * 5, [2, 2, 2, 2]))]


def _curve(df: pd.DataFrame, grouping: str, layer: str = "head"):
    part = df[(df["grouping"] == grouping) & (df["layer"] == layer)]
    return part["neuron_id"].tolist(), part["v"].to_numpy()


def test_defaults_are_corrected(files, tmp_path):
    df = fig04.compute(files[:1])
    assert list(df.columns) == fig04.COLUMNS
    assert df["grouping"].unique().tolist() == ["instances", "grid_contiguous"]
    for grouping, (ids, v) in (("instances", COMPLEMENT), ("grid_contiguous", GRID_ABS)):
        got_ids, got_v = _curve(df, grouping)
        assert got_ids == ids and got_v == pytest.approx(v, abs=1e-12)
    assert df["rank"].tolist() == [0, 1, 2, 3] * 2


def test_union_and_reference(files):
    df = fig04.compute(files[:1], other="union", delta="reference", groupings=("instances",
                                                                                "grid"))
    ids, v = _curve(df, "instances")
    assert ids == UNION[0] and v == pytest.approx(UNION[1], abs=1e-12)
    ids, v = _curve(df, "grid_contiguous")
    assert ids == GRID_SIGNED[0] and v == pytest.approx(GRID_SIGNED[1], abs=1e-12)
    with pytest.raises(ValueError, match="other must be one of"):
        fig04.compute(files[:1], other="void")
    with pytest.raises(ValueError, match="delta must be one of"):
        fig04.compute(files[:1], delta="signed")


def test_summary(files):
    s = fig04.summarise(files)
    assert list(s.columns) == fig04.SUMMARY_COLUMNS
    head = s[s["layer"] == "head"].set_index("grouping")
    assert head.loc["instances", "groups"] == 3 and head.loc["grid_contiguous", "groups"] == 4
    assert (head["neurons"] == 5).all() and (head["dead"] == 1).all()
    # medians: complement (0 + 1/4)/2 = 1/8; grid |δ| (1/12 + 1/4)/2 = 1/6
    assert head.loc["instances", "median_v"] == pytest.approx(1 / 8)
    assert head.loc["grid_contiguous", "median_v"] == pytest.approx(1 / 6)
    assert head.loc["instances", "ratio_to_grid"] == pytest.approx(0.75)
    assert head.loc["grid_contiguous", "ratio_to_grid"] == pytest.approx(1.0)
    union = fig04.summarise(files[:1], other="union").set_index("grouping")
    assert union.loc["instances", "ratio_to_grid"] == pytest.approx((7 / 216) / (1 / 6))
    b3 = s[s["layer"] == "b3"]  # every neuron dead: counted, nothing drawn, ratio NaN
    assert (b3["dead"] == 5).all() and b3["median_v"].isna().all()
    assert b3["ratio_to_grid"].isna().all()
    no_grid = fig04.summarise(files[:1], groupings=("instances",))
    assert no_grid["ratio_to_grid"].isna().all()


def test_render(files, tmp_path):
    outs = []
    for run in ("a", "b"):
        png, csv, summ = (tmp_path / run / n for n in ("f.png", "f.csv", "s.csv"))
        table = fig04.render(files, png, csv, summary_csv=summ, grid="both", dpi=DPI)
        outs.append((png.read_bytes(), csv.read_bytes(), summ.read_bytes()))
    assert outs[0] == outs[1]
    img = np.asarray(Image.open(tmp_path / "a" / "f.png").convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 100 and img.std() > 1.0
    back = pd.read_csv(tmp_path / "a" / "f.csv", dtype={"video": str})
    assert list(back.columns) == fig04.COLUMNS and len(back) == len(table)
    # grid 'both' has no lattice in these files: only the contiguous curve is drawn
    assert set(back["grouping"]) == {"instances", "grid_contiguous"}
    assert set(back["layer"]) == {"head"}  # the all-dead b3 panel has no points
    summary = pd.read_csv(tmp_path / "a" / "s.csv")
    assert set(summary["layer"]) == {"head", "b3"}
