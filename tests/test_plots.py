"""Figures 3, 4 and 6 from small synthetic statistics files with hand-computed numbers."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from xinc.io import save_npz
from xinc.plots import StatsInput, as_inputs, fig03, fig04, fig06, pair_inputs, read_stats
from xinc.plots.style import choose_yscale, minmax
from xinc.stats import grouping_variance

H, W = 4, 8  # 32 pixels
DPI = 60  # low resolution keeps the tests fast; fig03 also runs at the default
SVG = "http://www.w3.org/2000/svg"


def _reference_grouping_variance(group_sums, areas, total, *, signed=False):
    """Independent restatement of docs/method.md §8.3 "Group deltas"."""
    s = np.asarray(group_sums, np.float64)
    a = np.asarray(areas, np.float64)
    t = np.asarray(total, np.float64)
    out = np.full(t.shape, np.nan)
    for n in range(t.size):
        if t[n] == 0:
            continue
        e = t[n] * a / a.sum()
        d = (s[n] - e) / e
        if not signed:
            d = np.abs(d)
        out[n] = np.var(d, ddof=1) if d.size > 1 else np.nan
    return out


def test_grouping_variance_matches_reference():
    """The v_n fig04 uses (xinc.stats.grouping_variance) against the reference above, on
    random sums with dead neurons and both δ conventions."""
    rng = np.random.default_rng(3)
    sums = rng.random((7, 5)) * 4
    sums[2] = 0
    areas = np.array([3, 5, 8, 8, 8])
    total = sums.sum(1) * rng.uniform(0.5, 1.5, 7)
    total[2] = 0
    for signed in (False, True):
        got = grouping_variance(sums, areas, total, signed=signed)
        want = _reference_grouping_variance(sums, areas, total, signed=signed)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert np.isnan(got[2])


def _write_stats(path: Path, *, arch: str, layer: str, total, groups: dict, ppn,
                 sample_ids, sample_maps, seed: int = 1, frame: int = 0,
                 dataset: str | None = None, video: str | None = None) -> Path:
    """A statistics file; its meta names dataset and video as the canvas job's do (left out
    where None)."""
    arrays = {"total": np.asarray(total, np.float64),
              "pixels_per_neuron": np.asarray(ppn, np.int64),
              "heat": np.ones((H, W), np.float32),
              "sample_ids": np.asarray(sample_ids, np.int64),
              "sample_maps": np.asarray(sample_maps, np.float16)}
    for g, (sums, areas) in groups.items():
        arrays[f"group_sums_{g}"] = np.asarray(sums, np.float64)
        arrays[f"areas_{g}"] = np.asarray(areas, np.int64)
    meta = {"arch": arch, "layer": layer, "mode": "test", "neurons": len(total), "height": H,
            "width": W, "t": 0.0, "frame": frame, "seed": seed}
    meta |= {k: v for k, v in (("dataset", dataset), ("video", video)) if v is not None}
    save_npz(path, meta_json=json.dumps(meta), **arrays)
    return path


# Hand-made layer: 4 neurons; neuron 2 is dead, neurons 0 and 3 spread exactly by area.
TOTAL = [32, 32, 0, 64]
GROUPS = {
    "instances": ([[8, 8, 16], [16, 0, 16], [0, 0, 0], [32, 0, 32]], [8, 8, 16]),
    "grid_lattice": ([[8, 8, 8, 8], [16, 0, 8, 8], [0, 0, 0, 0], [16, 16, 16, 16]],
                     [8, 8, 8, 8]),
    "grid_contiguous": ([[8, 8, 8, 8], [16, 0, 8, 8], [0, 0, 0, 0], [32, 0, 16, 16]],
                        [8, 8, 8, 8]),
    "rgb": ([[4, 12, 16], [8, 8, 16], [0, 0, 0], [8, 24, 32]], [4, 12, 16]),
    "gabor": ([[8, 8, 16], [0, 16, 16], [0, 0, 0], [24, 24, 16]], [8, 8, 16]),
}
PPN = [5, 0, 32, 5]
MAP3 = np.arange(H * W, dtype=np.float64).reshape(H, W) - 10.0   # |C| in 0..21
MAP1 = -np.eye(H, W) * 4.0                                         # |C| in {0, 4}
MAP0 = np.full((H, W), 2.0)                                        # constant -> zeros


@pytest.fixture
def stats_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "results" / "stats"
    city, vip = {"dataset": "cityscapes_vps", "video": "0005"}, {"dataset": "vipseg",
                                                                  "video": "26_cbl"}
    a = _write_stats(root / "ffn/cityscapes_vps/0005/s1/f0/l3.npz", arch="ffn", layer="l3",
                     total=TOTAL, groups=GROUPS, ppn=PPN, sample_ids=[3, 1, 0],
                     sample_maps=[MAP3, MAP1, MAP0], **city)
    rng = np.random.default_rng(0)
    n, g = 6, 5
    sums = rng.random((n, g)) * 10
    sums[4] = 0.0
    areas = np.array([4, 6, 6, 8, 8])
    total = sums.sum(1)
    groups = {k: (sums * (i + 1) ** 0.5 % 7, areas) for i, k in enumerate(GROUPS)}
    b = _write_stats(root / "ffn/cityscapes_vps/0005/s1/f0/l2.npz", arch="ffn", layer="l2",
                     total=np.where(np.arange(n) == 4, 0.0, total), groups=groups,
                     ppn=rng.integers(0, H * W, n), sample_ids=[2, 5],
                     sample_maps=rng.normal(size=(2, H, W)), **city)
    c = _write_stats(root / "nerv/vipseg/26_cbl/s1/f0/head.npz", arch="nerv", layer="head",
                     total=TOTAL, groups={k: v for k, v in GROUPS.items() if k != "instances"},
                     ppn=[1, 2, 3, 4], sample_ids=[0],
                     sample_maps=[MAP0 - 3.0], **vip)
    return [a, b, c]


def _assert_image(path: Path) -> None:
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01


# ---------------------------------------------------------------- inputs

def test_stats_input_from_path(stats_files):
    x = StatsInput.from_path(stats_files[2])
    assert (x.dataset, x.video, x.arch, x.layer, x.seed, x.frame) == (
        "vipseg", "26_cbl", "nerv", "head", 1, 0)
    y = StatsInput.from_path(stats_files[0], video="renamed")
    assert y.video == "renamed" and y.layer == "l3"
    with pytest.raises(ValueError, match="duplicate"):
        as_inputs([stats_files[0], stats_files[0]])
    panels = [{"dataset": "d", "video": "v", "arch": "ffn", "layer": "l3", "seed": 1,
               "frame": 0, "extra": 1}]
    (z,) = pair_inputs(stats_files[:1], panels)
    assert (z.dataset, z.video, z.path) == ("d", "v", stats_files[0])
    st = read_stats(stats_files[0], ["total", "missing"])
    assert set(st) == {"total", "meta"} and st["meta"]["height"] == H


def test_stats_input_labels_from_meta(tmp_path):
    p = _write_stats(tmp_path / "odd.npz", arch="nerv", layer="b3", total=TOTAL, groups={},
                     ppn=PPN, sample_ids=[], sample_maps=np.zeros((0, H, W)), seed=7, frame=3)
    x = StatsInput.from_path(p, dataset="d", video="v")
    assert (x.arch, x.layer, x.seed, x.frame) == ("nerv", "b3", 7, 3)


def test_stats_input_labels_never_come_from_the_path(tmp_path):
    """A file in the standard layout whose folders say otherwise: the meta wins, as the
    canvas job records it."""
    p = _write_stats(tmp_path / "stats/ffn/vipseg/9_x/s5/f8/l1.npz", arch="nerv", layer="head",
                     total=TOTAL, groups={}, ppn=PPN, sample_ids=[],
                     sample_maps=np.zeros((0, H, W)), seed=2, frame=4,
                     dataset="cityscapes_vps", video="0005")
    x = StatsInput.from_path(p)
    assert x.labels() == {"dataset": "cityscapes_vps", "video": "0005", "arch": "nerv",
                          "layer": "head", "seed": 2, "frame": 4}


def test_stats_input_of_a_file_without_dataset_names_the_rule(tmp_path):
    """Statistics whose meta lacks the dataset and video (not the canvas job's): one error
    naming the file, what is missing and the rule to rerun; labels given instead are fine."""
    p = _write_stats(tmp_path / "results/stats/nerv/vipseg/26_cbl/s1/f0/head.npz", arch="nerv",
                     layer="head", total=TOTAL, groups={}, ppn=PPN, sample_ids=[],
                     sample_maps=np.zeros((0, H, W)))
    with pytest.raises(ValueError, match=r"head\.npz: meta_json lacks \['dataset', 'video'\].*"
                                         r"rerun it with `snakemake --forcerun "
                                         r"canvas_stats_nerv_vipseg`"):
        StatsInput.from_path(p)
    assert StatsInput.from_path(p, dataset="vipseg", video="26_cbl").group_key == (
        "vipseg", "26_cbl", "nerv", 1, 0)


# ---------------------------------------------------------------- fig03

def test_fig03_maps(stats_files, tmp_path):
    png, csv = tmp_path / "fig03.png", tmp_path / "fig03.csv"
    table = fig03.render(stats_files, png, csv, max_neurons=2)
    again = tmp_path / "again"
    fig03.render(stats_files, again / "fig03.png", again / "fig03.csv", max_neurons=2)
    assert (again / "fig03.png").read_bytes() == png.read_bytes()
    assert (again / "fig03.csv").read_bytes() == csv.read_bytes()
    _assert_image(png)
    df = pd.read_csv(csv)
    assert list(df.columns) == fig03.COLUMNS
    assert df.equals(pd.read_csv(csv)) and len(df) == len(table) == 2 + 2 + 1
    assert df["neuron_id"].tolist() == [3, 1, 2, 5, 0]
    assert df["panel"].tolist() == [0, 1, 0, 1, 0]
    first = df.iloc[0]
    assert (first["dataset"], first["video"], first["arch"], first["layer"]) == (
        "cityscapes_vps", "0005", "ffn", "l3")
    assert first["min"] == 0.0 and first["max"] == 21.0
    assert first["mean"] == pytest.approx(np.abs(MAP3).mean())
    assert (df.iloc[1]["min"], df.iloc[1]["max"]) == (0.0, 4.0)
    assert df.iloc[1]["mean"] == pytest.approx(4.0 * 4 / (H * W))
    assert df.iloc[4][["min", "max", "mean"]].tolist() == [1.0, 1.0, 1.0]
    assert not df["dead"].any()
    assert df["source"].tolist() == [str(stats_files[i]) for i in (0, 0, 1, 1, 2)]


def test_fig03_dead_neurons(tmp_path):
    """A sampled neuron is dead when `alive` says so or its stored map is all zero; its panel
    is drawn (marked) and counted, not dropped."""
    path = _write_stats(tmp_path / "ffn/d/v/s1/f0/l2.npz", arch="ffn", layer="l2",
                        total=[1, 0, 1], groups={}, ppn=[1, 0, 1], sample_ids=[0, 1, 2],
                        sample_maps=[MAP3, MAP1, np.zeros((H, W))], dataset="d", video="v")
    with np.load(path) as z:
        arrays = dict(z)
    save_npz(path, **{**arrays, "alive": np.array([True, False, True])})
    df = fig03.compute([path])
    assert df["dead"].tolist() == [False, True, True]
    assert df.iloc[2][["min", "max", "mean"]].tolist() == [0.0, 0.0, 0.0]
    fig = fig03.draw(df)  # rows from the table's sources when no inputs are given
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("dead") == 2
    fig03.render([path], tmp_path / "d.png", tmp_path / "d.csv", dpi=DPI)
    _assert_image(tmp_path / "d.png")


def test_fig03_minmax():
    out = minmax(np.abs(MAP3))
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0] == pytest.approx(10 / 21)
    assert not minmax(MAP0).any()


# ---------------------------------------------------------------- fig04

EXPECTED_FIG04_L3 = {  # grouping -> (neuron ids, v) sorted, dead neuron 2 dropped
    "instances": ([0, 1, 3], [0.0, 1 / 3, 1 / 3]),
    "grid_lattice": ([0, 3, 1], [0.0, 0.0, 2 / 3]),
    "rgb": ([0, 3, 1], [0.0, 0.0, 7 / 27]),
    "gabor": ([0, 3, 1], [0.0, 0.0, 1 / 3]),
}


def test_fig04_hand_computed(stats_files, tmp_path):
    png, csv = tmp_path / "fig04.png", tmp_path / "fig04.csv"
    fig04.render(stats_files, png, csv, grid="lattice", delta="reference", dpi=DPI)
    _assert_image(png)
    df = pd.read_csv(csv, dtype={"video": str})
    assert list(df.columns) == fig04.COLUMNS
    l3 = df[df["layer"] == "l3"]
    assert l3["grouping"].unique().tolist() == ["instances", "grid_lattice", "rgb", "gabor"]
    for grouping, (ids, v) in EXPECTED_FIG04_L3.items():
        part = l3[l3["grouping"] == grouping]
        assert part["rank"].tolist() == [0, 1, 2]
        assert part["neuron_id"].tolist() == ids
        np.testing.assert_allclose(part["v"].to_numpy(), v, atol=1e-12)
    # The NeRV file has no instance grouping: that curve is skipped, the rest are drawn.
    head = df[df["arch"] == "nerv"]
    assert set(head["grouping"]) == {"grid_lattice", "rgb", "gabor"}


def test_fig04_matches_reference_on_random_layer(stats_files, tmp_path):
    df = fig04.render(stats_files[1:2], tmp_path / "a.png", tmp_path / "a.csv", grid="lattice",
                      delta="reference", dpi=DPI)
    st = read_stats(stats_files[1])
    for grouping, part in df.groupby("grouping", sort=False):
        v = _reference_grouping_variance(st[f"group_sums_{grouping}"], st[f"areas_{grouping}"],
                                         st["total"], signed=grouping.startswith("grid"))
        finite = np.flatnonzero(np.isfinite(v))
        assert 4 not in part["neuron_id"].tolist() and len(part) == finite.size == 5
        np.testing.assert_allclose(part["v"], np.sort(v[finite]))
        np.testing.assert_allclose(v[part["neuron_id"].to_numpy()], part["v"])
        assert np.all(np.diff(part["v"]) >= 0)


def test_fig04_contiguous_absolute(stats_files, tmp_path):
    df = fig04.render(stats_files[:1], tmp_path / "c.png", tmp_path / "c.csv",
                      grid="contiguous", delta="absolute", groupings=("grid",), dpi=DPI)
    assert df["grouping"].unique().tolist() == ["grid_contiguous"]
    # neuron 1: |δ| = [1, 1, 0, 0] -> 1/3; neuron 3: δ = [1, -1, 0, 0] -> |δ| var 1/3
    assert df["neuron_id"].tolist() == [0, 1, 3]
    np.testing.assert_allclose(df["v"], [0.0, 1 / 3, 1 / 3])
    with pytest.raises(ValueError):
        fig04.render(stats_files, tmp_path / "x.png", tmp_path / "x.csv", grid="blocks", dpi=DPI)


def test_fig04_both_grids(stats_files, tmp_path):
    df = fig04.render(stats_files[:1], tmp_path / "b.png", tmp_path / "b.csv", grid="both",
                      delta="reference",
                      groupings=("grid",), dpi=DPI)
    assert df["grouping"].unique().tolist() == ["grid_lattice", "grid_contiguous"]
    cont = df[df["grouping"] == "grid_contiguous"]
    # signed: neuron 1 δ = [1, -1, 0, 0] -> 2/3; neuron 3 δ = [1, -1, 0, 0] -> 2/3
    assert cont["neuron_id"].tolist() == [0, 1, 3]
    np.testing.assert_allclose(cont["v"], [0.0, 2 / 3, 2 / 3])


def test_choose_yscale():
    assert choose_yscale(np.array([0.0, 1e-6, 1.0])) == "log"
    assert choose_yscale([np.array([0.5, 2.0]), np.array([np.nan, 3.0])]) == "linear"
    assert choose_yscale(np.array([0.0, 0.0])) == "linear"


# ---------------------------------------------------------------- fig06

def test_fig06_pixels_per_neuron(stats_files, tmp_path):
    png, csv, summ = tmp_path / "fig06.png", tmp_path / "fig06.csv", tmp_path / "fig06_s.csv"
    fig06.render(stats_files, png, csv, summary_csv=summ, dpi=DPI)
    again = tmp_path / "again"
    fig06.render(stats_files, again / "fig06.png", again / "fig06.csv", dpi=DPI)
    assert (again / "fig06.png").read_bytes() == png.read_bytes()
    assert (again / "fig06.csv").read_bytes() == csv.read_bytes()
    _assert_image(png)
    df = pd.read_csv(csv, dtype={"video": str})
    assert list(df.columns) == fig06.COLUMNS
    l3 = df[df["layer"] == "l3"]
    assert l3["rank"].tolist() == [0, 1, 2, 3]
    assert l3["neuron_id"].tolist() == [1, 0, 3, 2]
    assert l3["pixels"].tolist() == [0, 5, 5, 32]
    l2 = df[df["layer"] == "l2"]
    ppn = read_stats(stats_files[1], ["pixels_per_neuron"])["pixels_per_neuron"]
    assert l2["pixels"].tolist() == sorted(ppn.tolist())
    assert ppn[l2["neuron_id"].to_numpy()].tolist() == l2["pixels"].tolist()
    s = pd.read_csv(summ, dtype={"video": str}).set_index("layer")
    assert list(pd.read_csv(summ).columns) == fig06.SUMMARY_COLUMNS
    row = s.loc["l3"]
    assert row["neurons"] == 4 and row["pixels_total"] == H * W
    assert row["median"] == 5 and row["zero_fraction"] == 0.25
    assert row["p10"] == pytest.approx(1.5) and row["p90"] == pytest.approx(23.9)
    assert row["gini"] == pytest.approx(192 / 336)
    assert s.loc["head", "gini"] == pytest.approx(fig06.gini(np.array([1, 2, 3, 4])))
    assert s["dead"].tolist() == [1, 1, 1]  # T_n = 0: l3 neuron 2, l2 neuron 4, head neuron 2
    table = fig06.compute(stats_files)
    assert table.equals(pd.read_csv(csv, dtype={"video": str}))
    assert fig06.summary_table(stats_files).equals(pd.read_csv(summ, dtype={"video": str}))


# ---------------------------------------------------------------- determinism

def test_byte_reproducible_pdf(stats_files, tmp_path):
    outs = []
    for run in ("a", "b"):
        img, csv = tmp_path / run / "fig04.pdf", tmp_path / run / "fig04.csv"
        fig04.render(stats_files[:1], img, csv, dpi=DPI)
        outs.append((img.read_bytes(), csv.read_bytes()))
    assert outs[0] == outs[1]
    assert b"CreationDate" not in outs[0][0]
    assert not list((tmp_path / "a").glob(".*tmp"))


def test_save_figure_formats_without_dates(tmp_path):
    """A 2 × 1.5 inch figure with one line: the same bytes twice, the size in points, the line
    drawn, no date (SVG) or the fixed epoch (EPS)."""
    from xml.etree import ElementTree

    from xinc.plots.style import figure_style, new_figure, save_figure, save_table

    for suffix in ("svg", "eps"):  # png and pdf: the figure tests
        blobs = []
        for run in ("a", "b"):
            with figure_style():
                fig = new_figure(2, 1.5)
                fig.subplots().plot([0, 1], [1, 0])
                blobs.append(save_figure(fig, tmp_path / run / f"t.{suffix}", dpi=40).read_bytes())
        assert blobs[0] == blobs[1], suffix
        if suffix == "svg":
            svg = ElementTree.fromstring(blobs[0])
            assert svg.tag == "{http://www.w3.org/2000/svg}svg"
            assert (svg.get("width"), svg.get("height")) == ("144pt", "108pt")
            assert any(g.get("id", "").startswith("line2d") for g in svg.iter(f"{{{SVG}}}g"))
            assert b"<dc:date>" not in blobs[0]
        else:
            head = blobs[0].split(b"%%EndComments")[0].decode()
            assert head.startswith("%!PS-Adobe-3.0 EPSF-3.0")
            assert "%%BoundingBox: 0 0 144 108" in head and "%%Creator: xinc" in head
            assert "%%CreationDate: Thu Jan 01 00:00:00 1970" in head
    save_table(pd.DataFrame({"a": [1, 2], "b": [0.1, np.nan]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,0.1\n2,\n"
