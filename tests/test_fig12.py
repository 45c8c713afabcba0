"""Figs 12/13 (xinc.plots.fig12): members files whose maps encode their neuron id, so every
drawn |C| statistic and tile is known, and frames whose pixels encode their index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.cluster.members import write_members
from xinc.io import save_npz
from xinc.plots import fig12
from xinc.plots.style import figure_style

H, W = 4, 8
DPI = 40
DS = "vipseg"
VIDEOS = ("79_brZzLyzaXbA", "127_-hIVCYO4C90")


def neuron_map(neuron: int) -> np.ndarray:
    """C = −neuron · (1 … H·W) / (H·W): |C| runs from neuron/32 to neuron, mean neuron·33/64."""
    return -neuron * np.arange(1, H * W + 1, dtype=np.float32).reshape(H, W) / (H * W)


# (cluster, slot, seed, neuron) as `draw_members` writes them: cluster by cluster
L3 = [(0, 0, 1, 5), (0, 1, 1, 7), (0, 2, 1, 2), (0, 3, 1, 9), (1, 0, 1, 3), (1, 1, 1, 11),
      (2, 0, 1, 4)]
HEAD = [(0, 0, 1, 8), (0, 1, 1, 6), (1, 0, 1, 1), (1, 1, 1, 12)]


def write(path: Path, rows, *, video: str, arch: str, layer: str, shown: int = 4) -> Path:
    cluster, slot, seed, neuron = (np.asarray(c, np.int64) for c in zip(*rows, strict=True))
    meta = {"dataset": DS, "video": video, "frame": 2, "arch": arch, "layer": layer,
            "seeds": [1], "shown": shown, "per_cluster": 4, "draw": "without_replacement"}
    maps = np.stack([neuron_map(int(n)) for n in neuron])
    write_members(path, path.with_suffix(".csv"),
                  {"cluster": cluster, "slot": slot, "seed": seed, "neuron": neuron,
                   "maps": maps, "meta_json": np.array(json.dumps(meta))})
    return path


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return [write(tmp_path / "a_l3.npz", L3, video=VIDEOS[0], arch="ffn", layer="l3"),
            write(tmp_path / "b_head.npz", HEAD, video=VIDEOS[1], arch="nerv", layer="head"),
            write(tmp_path / "a_head.npz", HEAD, video=VIDEOS[0], arch="nerv", layer="head")]


@pytest.fixture
def frames(tmp_path: Path) -> dict[tuple[str, str], Path]:
    """Frame t of every video is the constant 40·t."""
    out = {}
    for video in VIDEOS:
        path = tmp_path / video / "frames_pil.npy"
        path.parent.mkdir()
        np.save(path, np.stack([np.full((H, W, 3), 40 * t, np.uint8) for t in range(6)]))
        out[(DS, video)] = path
    return out


def test_map_statistics(files):
    df = fig12.compute(files)
    assert list(df.columns) == fig12.COLUMNS
    # drawing order: video 79_… (L3, then head), then 127_…; within a layer cluster, slot
    assert df["video"].tolist() == [VIDEOS[0]] * 11 + [VIDEOS[1]] * 4
    assert df["layer"].tolist() == ["l3"] * 7 + ["head"] * 8
    drawn = [r[3] for r in L3] + [r[3] for r in HEAD] * 2
    assert df["neuron"].tolist() == drawn
    assert df[["cluster", "slot"]].values.tolist()[:7] == [list(r[:2]) for r in L3]
    n = df["neuron"].to_numpy(np.float64)
    np.testing.assert_allclose(df["min"], n / (H * W))
    np.testing.assert_allclose(df["max"], n)
    np.testing.assert_allclose(df["mean"], n * (H * W + 1) / (2 * H * W))
    assert (df["frame"] == 2).all() and (df["seed"] == 1).all()


def test_montage_tiles():
    sep = 1
    img = fig12.montage([neuron_map(5), neuron_map(3), np.zeros((H, W))], sep)
    assert img.shape == (2 * H + sep, 2 * W + sep, 3)
    assert (img[H, :] == 1).all() and (img[:, W] == 1).all()  # white separators
    # min-max of |C| per neuron: both maps become the same 0 … 1 ramp, whatever the neuron
    np.testing.assert_array_equal(img[:H, :W], img[:H, W + sep:])
    assert img[0, 0].sum() < img[H - 1, W - 1].sum()       # |C| grows along the ramp
    assert not img[H + sep:, W + sep:].any()                 # missing fourth tile: black
    bottom_left = img[H + sep:, :W]                          # a constant map: magma(0)
    assert np.allclose(bottom_left, bottom_left[0, 0]) and bottom_left.sum() < 0.1 * H * W
    with pytest.raises(ValueError, match="5 maps"):
        fig12.montage([neuron_map(1)] * 5, sep)


def test_figure_layout(files, frames):
    shown = {f"{DS}/{VIDEOS[0]}": [2, 0, 4]}
    with figure_style():
        fig = fig12.draw(files, frames, shown_frames=shown)
    assert fig.get_suptitle() == fig12.DEFAULT_TITLE
    first, second, bar = fig.subfigs  # one block per video, the colour bar strip
    assert bar.axes[0].get_xlabel() == "|C| (min-max per neuron)"
    assert first.get_suptitle() == f"{DS}/{VIDEOS[0]} · f2 · s1"
    top, bottom = first.subfigs  # frame row, layer rows
    assert [ax.get_title() for ax in top.axes] == ["frame 2", "frame 0", "frame 4"]
    assert top.axes[0].spines["left"].get_edgecolor()[:3] == (1.0, 0.0, 0.0)
    assert not top.axes[1].spines["left"].get_visible()
    assert top.axes[2].images[0].get_array().max() == 160  # frame t of the video is 40·t
    assert top.axes[0].get_ylabel() == "frames"
    axes = np.array(bottom.axes).reshape(2, 4)  # L3, head; 4 clusters shown
    assert [ax.get_title() for ax in axes[0]] == ["c0", "c1", "c2", ""]
    assert [ax.get_title() for ax in axes[1]] == ["c0", "c1", "", ""]
    assert [axes[r, 0].get_ylabel() for r in range(2)] == ["FFN L3", "NeRV head"]
    # the L3 c1 montage: two ramps, then black tiles
    tiles = axes[0, 1].images[0].get_array()
    np.testing.assert_array_equal(tiles, fig12.montage([neuron_map(3), neuron_map(11)], 1))
    assert not second.subfigs and len(second.axes) == 4  # no frames: the head row only
    assert second.axes[0].get_ylabel() == "NeRV head"


def test_render_deterministic(files, frames, tmp_path):
    shown = {f"{DS}/{v}": [2, 0, 1, 3, 4, 5] for v in VIDEOS}
    outs = []
    for run in ("a", "b"):
        png, csv = tmp_path / run / "f.png", tmp_path / run / "f.csv"
        table = fig12.render(files, frames, png, csv, shown_frames=shown, dpi=DPI)
        outs.append((png.read_bytes(), csv.read_bytes()))
    assert outs[0] == outs[1]
    img = np.asarray(Image.open(tmp_path / "a" / "f.png").convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 100 and img.std() > 1.0
    back = pd.read_csv(tmp_path / "a" / "f.csv", dtype={"video": str})
    assert list(back.columns) == fig12.COLUMNS
    pd.testing.assert_frame_equal(back, table, check_dtype=False)


def test_bad_inputs(files, frames, tmp_path):
    with np.load(files[0]) as z:
        arrays = {k: z[k] for k in z.files}
    save_npz(tmp_path / "nomaps.npz", **{k: v for k, v in arrays.items() if k != "maps"})
    with pytest.raises(ValueError, match=r"nomaps\.npz.*missing \['maps'\]"):
        fig12.compute([tmp_path / "nomaps.npz"])
    save_npz(tmp_path / "short.npz", **{**arrays, "seed": arrays["seed"][:3]})
    with pytest.raises(ValueError, match=r"short\.npz: members arrays of different lengths"):
        fig12.compute([tmp_path / "short.npz"])
    with pytest.raises(ValueError, match="no frames file"), figure_style():
        fig12.draw(files, {}, shown_frames={f"{DS}/{VIDEOS[0]}": [0]})
    with pytest.raises(ValueError, match="at least one"):
        fig12.compute([])
