"""Fig 10/14 (xinc.plots.fig10): cluster files made by `cluster_points` from well separated blobs
whose seed (or architecture) make-up, and so every count and mixing entropy, is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.cluster.layer import ClusterSettings, cluster_points, write_clusters
from xinc.cluster.points import Points
from xinc.io import save_npz
from xinc.plots import fig10
from xinc.plots.style import figure_style

DPI = 40
DS = "cityscapes_vps"

# Blobs 10 apart in 4-D, spread 0.3: UMAP + k-means recover them exactly. Each blob is a list of
# (group, points); blobs of equal size are numbered in order of their first point.
FFN_L1 = [[(1, 40)], [(2, 40)], [(1, 20), (2, 20)]]   # seed-pure, seed-pure, even mix
NERV_HEAD = [[(1, 20), (2, 10)], [(2, 10), (3, 20)]]  # three seeds, 20 points each
JOINT = [[("ffn", 40)], [("nerv", 40)], [("ffn", 20), ("nerv", 20)]]
ONE_SEED = [[(1, 30)], [(1, 30)]]
# NERV_HEAD cluster 0: w = (20/20, 10/20, 0/20) -> p = (2/3, 1/3, 0); cluster 1 the mirror image
H_HEAD = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(3)


def make_points(blobs, *, arch: str, layer: str, by: str = "seed") -> Points:
    """Points of the blobs; `by` says whether a blob's groups are seeds or architectures."""
    rng = np.random.default_rng(0)
    features, groups = [], []
    for b, parts in enumerate(blobs):
        for group, n in parts:
            centre = np.zeros(4, np.float32)
            centre[b] = 10.0
            features.append(centre + rng.normal(0.0, 0.3, (n, 4)).astype(np.float32))
            groups += [group] * n
    n = len(groups)
    seeds = np.asarray(groups if by == "seed" else [1] * n, np.int64)
    archs = np.asarray(groups if by == "arch" else [arch] * n, "U8")
    return Points(np.concatenate(features), seeds, np.arange(n, dtype=np.int64), archs,
                  np.full(n, layer, "U8"))


def write(path: Path, blobs, *, video: str, arch: str, layer: str, by: str = "seed") -> Path:
    pts = make_points(blobs, arch=arch, layer=layer, by=by)
    meta = {"dataset": DS, "video": video, "frame": 0, "arch": arch, "layer": layer,
            "seeds": sorted({int(s) for s in pts.seed}), "feature": "gabor"}
    settings = ClusterSettings(n_neighbors=10, k=len(blobs), stability=0)
    write_clusters(path, path.with_suffix(".csv"),
                   cluster_points(pts, settings, mix=by, meta=meta))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clusters")
    return {"l1": write(root / "l1.npz", FFN_L1, video="0005", arch="ffn", layer="l1"),
            "head": write(root / "head.npz", NERV_HEAD, video="0005", arch="nerv", layer="head"),
            "joint": write(root / "joint.npz", JOINT, video="0005", arch="joint", layer="all",
                           by="arch"),
            "other": write(root / "other.npz", ONE_SEED, video="0175", arch="ffn", layer="l1")}


def _given(files):
    """Out of order: the second video's file first, the joint file before NeRV head."""
    return [files["other"], files["l1"], files["joint"], files["head"]]


def test_counts_and_mixing(files):
    df = fig10.compute(_given(files))
    assert list(df.columns) == fig10.COLUMNS
    # panels: row 0175 first (it came first), then 0005: FFN L1, joint, NeRV head
    panels = df[["video", "arch", "layer"]].drop_duplicates().values.tolist()
    assert panels == [["0175", "ffn", "l1"], ["0005", "ffn", "l1"], ["0005", "joint", "all"],
                      ["0005", "nerv", "head"]]
    l1 = df[(df["arch"] == "ffn") & (df["video"] == "0005")]
    assert l1["cluster"].tolist() == [0, 0, 1, 1, 2, 2]
    assert l1["group"].tolist() == ["1", "2"] * 3
    assert l1["count"].tolist() == [40, 0, 0, 40, 20, 20]
    assert l1["share"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.5, 0.5]
    assert l1["cluster_mixing"].to_numpy() == pytest.approx([0, 0, 0, 0, 1, 1], abs=1e-9)
    head = df[df["layer"] == "head"]
    assert head["group"].tolist() == ["1", "2", "3"] * 2
    assert head["count"].tolist() == [20, 10, 0, 0, 10, 20]
    assert head["cluster_mixing"].to_numpy() == pytest.approx([H_HEAD] * 6, abs=1e-9)
    joint = df[df["arch"] == "joint"]
    assert joint["group"].tolist() == ["ffn", "nerv"] * 3
    assert joint["count"].tolist() == [40, 0, 0, 40, 20, 20]
    assert joint["cluster_mixing"].to_numpy() == pytest.approx([0, 0, 0, 0, 1, 1], abs=1e-9)
    one = df[df["video"] == "0175"]
    assert one["count"].tolist() == [30, 30] and one["cluster_mixing"].isna().all()
    points = {("0175", "l1"): 60, ("0005", "l1"): 120, ("0005", "all"): 120,
              ("0005", "head"): 60}
    for key, panel in df.groupby(["video", "layer"]):
        sizes = panel.groupby("cluster")["count"].sum()
        assert (sizes == panel.groupby("cluster")["cluster_size"].first()).all()
        assert sizes.sum() == points[key]
    assert (df["frame"] == 0).all() and (df["dataset"] == DS).all()


def test_medians_are_the_points(files):
    df = fig10.compute([files["head"]])
    with np.load(files["head"]) as z:
        xy, labels = z["xy"].astype(np.float64), z["labels"]
    for c, part in df.groupby("cluster"):
        assert part["x_median"].iloc[0] == pytest.approx(np.median(xy[labels == c, 0]))
        assert part["y_median"].iloc[0] == pytest.approx(np.median(xy[labels == c, 1]))


def test_figure_layout(files):
    given = _given(files)
    df = fig10.compute(given)
    with figure_style():
        fig = fig10.draw(df, given)
    assert fig.get_suptitle() == ("Neuron clusters across seeds (UMAP of Gabor features, "
                                  "k-means)")
    axes = np.array(fig.axes).reshape(2, 3)
    titles = [[ax.get_title() for ax in row] for row in axes]
    assert titles[0] == ["FFN L1\nn=60 · H=–", "", ""]  # 0175 has no joint or NeRV file
    assert titles[1] == ["FFN L1\nn=120 · H=0.33", "FFN + NeRV\nn=120 · H=0.33",
                         f"NeRV head\nn=60 · H={H_HEAD:.2f}"]
    assert axes[1, 0].get_ylabel() == f"{DS}\n0005\nf0"
    assert [t.get_text() for t in axes[1, 2].texts] == ["0", "1"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["seed 1", "seed 2", "seed 3", "FFN", "NeRV"]


def test_render_deterministic(files, tmp_path):
    outs = []
    for run in ("a", "b"):
        png, csv = tmp_path / run / "f.png", tmp_path / run / "f.csv"
        table = fig10.render(_given(files), png, csv, dpi=DPI, title="clusters")
        outs.append((png.read_bytes(), csv.read_bytes()))
    assert outs[0] == outs[1]
    img = np.asarray(Image.open(tmp_path / "a" / "f.png").convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 100 and img.std() > 1.0
    back = pd.read_csv(tmp_path / "a" / "f.csv", dtype={"video": str, "group": str})
    assert list(back.columns) == fig10.COLUMNS and len(back) == len(table)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_bad_inputs(files, tmp_path):
    with np.load(files["l1"]) as z:
        arrays = {k: z[k] for k in z.files if k != "xy"}
    save_npz(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match=r"broken\.npz.*missing \['xy'\]"):
        fig10.compute([files["l1"], tmp_path / "broken.npz"])
    with pytest.raises(ValueError, match="same panel"):
        fig10.compute([files["l1"], files["l1"]])
    with np.load(files["l1"]) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta_json"]))
    del meta["video"]
    save_npz(tmp_path / "nolabel.npz", **{**arrays, "meta_json": json.dumps(meta)})
    with pytest.raises(ValueError, match=r"nolabel\.npz: meta_json lacks \['video'\]"):
        fig10.compute([tmp_path / "nolabel.npz"])
    with pytest.raises(ValueError, match="at least one"):
        fig10.compute([])
