"""Fig 8/19 (xinc.plots.fig08): segment shares with hand-computed answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.instances import video_instance_table, write_instance_table
from xinc.io import save_npz
from xinc.plots import StatsInput, fig08

DPI = 50
CATEGORIES = [{"id": 0, "name": "road", "isthing": 0, "color": [128, 64, 128]},
              {"id": 11, "name": "person", "isthing": 1, "color": [220, 20, 60]},
              {"id": 13, "name": "car", "isthing": 1, "color": [0, 0, 142]}]
# 16 pixels per frame; frame -> (panoptic ids, areas) as stored ("other" = void, last)
SEGMENTS = {0: ([0, 11001, 13001, -2], [8, 2, 4, 2]),
            5: ([0, 13001, 13002], [8, 4, 4]),
            10: ([0, 11001, 13002, 13003, 13004], [8, 2, 2, 1, 3])}
# tracks by first appearance: 13001 car_1, 13002 car_2, 13003 car_3, 13004 car_4, 11001 person_1


def uniform(frame: int) -> list[float]:
    """S of a neuron with |C| = 1 on every pixel: the areas."""
    return [float(a) for a in SEGMENTS[frame][1]]


def only(frame: int, pan: int, value: float) -> list[float]:
    """S of a neuron confined to segment `pan`."""
    return [value if p == pan else 0.0 for p in SEGMENTS[frame][0]]


def write_stats(root: Path, arch: str, layer: str, frame: int, sums) -> StatsInput:
    ids, areas = SEGMENTS[frame]
    sums = np.asarray(sums, np.float64)
    path = root / arch / "cityscapes_vps" / "0005" / "s1" / f"f{frame}" / f"{layer}.npz"
    meta = {"arch": arch, "layer": layer, "frame": frame, "seed": 1,
            "dataset": "cityscapes_vps", "video": "0005"}
    save_npz(path, meta_json=json.dumps(meta), total=sums.sum(1),
             group_sums_instances=sums, areas_instances=np.asarray(areas, np.int64),
             instances_ids=np.asarray(ids, np.int64))
    return StatsInput.from_path(path, dataset="cityscapes_vps")


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "stats"
    zero = [0.0] * 4
    ffn = [write_stats(root, "ffn", "l1", 0, [only(0, 13001, 4.0), uniform(0), zero]),
           write_stats(root, "ffn", "l2", 0, [uniform(0)])]
    nerv = [write_stats(root, "nerv", "head", f, [first, uniform(f), [0.0] * len(uniform(f))])
            for f, first in ((0, only(0, 13001, 4.0)), (5, only(5, 13001, 8.0)),
                             (10, [0.0] * 5))]
    meta = tmp_path / "work" / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"dataset": "cityscapes_vps", "video": "0005",
                                "categories": CATEGORIES}))
    table = write_instance_table(tmp_path / "tables" / "0005.csv",
                                 video_instance_table([x.path for x in nerv], meta))
    return ffn, nerv, {("cityscapes_vps", "0005"): table}


def _shares(df: pd.DataFrame, **where) -> dict:
    part = df
    for key, value in where.items():
        part = part[part[key] == value]
    return dict(zip(part["track"], part["share"], strict=True))


def test_ffn_shares(data):
    ffn, _, tables = data
    df = fig08.compute(ffn[:1], [], tables)
    assert list(df.columns) == fig08.COLUMNS
    assert sorted(set(df["neuron_id"])) == [0, 1] and (df["dead"] == 1).all()
    assert list(_shares(df, neuron_id=0)) == ["car_1", "person_1", "road", "other"]
    assert _shares(df, neuron_id=0) == {"car_1": 1.0, "person_1": 0.0, "road": 0.0, "other": 0.0}
    assert _shares(df, neuron_id=1) == pytest.approx(dict.fromkeys(_shares(df, neuron_id=1), 0.25))
    assert df.set_index("track").loc["car_1", "kind"].tolist() == ["thing"] * 2
    # the authors' "other" = union of all masks (14 px): neuron 0's mean there is 4/14
    union = fig08.compute(ffn[:1], [], tables, other="union")
    assert _shares(union, neuron_id=0) == pytest.approx(
        {"car_1": 7 / 9, "person_1": 0.0, "road": 0.0, "other": 2 / 9})
    assert _shares(union, neuron_id=1) == pytest.approx(dict.fromkeys(
        ["car_1", "person_1", "road", "other"], 0.25))


def test_nerv_over_time(data):
    _, nerv, tables = data
    df = fig08.compute([], nerv, tables)
    assert (df["dead"] == 1).all() and sorted(set(df["neuron_id"])) == [0, 1]
    # ≤ 3 car tracks shown: by area over the video car_1 8, car_2 6, car_4 3, car_3 1 px
    assert sorted(set(df["track"])) == ["car_1", "car_2", "car_4", "other", "person_1", "road"]
    n0 = df[(df["neuron_id"] == 0) & (df["track"] == "car_1")]
    assert n0["frame"].tolist() == [0, 5, 10]
    np.testing.assert_allclose(n0["share"], [1 / 3, 2 / 3, 0.0])  # absent at frame 10
    assert df.loc[(df["neuron_id"] == 0) & (df["track"] != "car_1"), "share"].eq(0).all()
    n1 = df[df["neuron_id"] == 1]
    present = {0: {"road", "person_1", "car_1", "other"}, 5: {"road", "car_1", "car_2"},
               10: {"road", "person_1", "car_2", "car_4"}}
    for rec in n1.itertuples():  # uniform: 1/12 per segment present (4 + 3 + 5 segments)
        assert rec.share == pytest.approx(1 / 12 if rec.track in present[rec.frame] else 0.0)


def test_kind_shares(data):
    ffn, nerv, tables = data
    ks = fig08.kind_shares([*ffn, *nerv], tables)
    assert list(ks.columns) == fig08.KIND_COLUMNS
    sums = ks.groupby(["arch", "layer", "frame"])["share"].sum()
    np.testing.assert_allclose(sums, 1.0)
    get = ks.set_index(["layer", "frame", "kind"])["share"]
    # l2 holds one uniform neuron: the shares are the area fractions 6/16, 8/16, 2/16
    assert [get[("l2", 0, k)] for k in fig08.KINDS] == pytest.approx([6 / 16, 8 / 16, 2 / 16])
    # l1: confined (car 4) + uniform: thing 4 + 6, stuff 8, other 2 of 20
    assert [get[("l1", 0, k)] for k in fig08.KINDS] == pytest.approx([0.5, 0.4, 0.1])
    union = fig08.kind_shares(ffn[:1], tables, other="union").set_index("kind")["share"]
    assert union["other"] == pytest.approx(0.5)  # the union overlaps every segment


def test_sampling_is_seeded(tmp_path, data):
    _, _, tables = data
    rng = np.random.default_rng(5)
    sums = rng.random((12, 4)) * uniform(0)
    sums[[2, 7]] = 0.0
    item = write_stats(tmp_path / "more", "ffn", "l3", 0, sums)
    df = fig08.compute([item], [], tables, ffn_neurons=3, seed=4)
    ids = list(dict.fromkeys(df["neuron_id"]))
    alive = np.array([n for n in range(12) if n not in (2, 7)])
    assert ids == sorted(np.random.default_rng(4).choice(alive, 3, replace=False).tolist())
    assert (df["dead"] == 2).all()
    again = fig08.compute([item], [], tables, ffn_neurons=3, seed=4)
    pd.testing.assert_frame_equal(df, again)


def test_render(data, tmp_path):
    ffn, nerv, tables = data
    outs = []
    for run in ("a", "b"):
        png, csv, summ = (tmp_path / run / n for n in ("f.png", "f.csv", "s.csv"))
        fig08.render(ffn, nerv, tables, png, csv, summary_csv=summ, dpi=DPI)
        outs.append((png.read_bytes(), csv.read_bytes(), summ.read_bytes()))
    assert outs[0] == outs[1]
    img = np.asarray(Image.open(tmp_path / "a" / "f.png").convert("RGB"), dtype=np.float64)
    assert img.shape[0] > 100 and img.std() > 1.0
    assert list(pd.read_csv(tmp_path / "a" / "f.csv").columns) == fig08.COLUMNS
    assert list(pd.read_csv(tmp_path / "a" / "s.csv").columns) == fig08.KIND_COLUMNS
    # Fig 19: NeRV only (no FFN section; drawn, not saved, to keep the test fast)
    df = fig08.compute([], nerv, tables)
    assert set(df["arch"]) == {"nerv"}
    fig = fig08.draw(df, fig08.kind_shares(nerv, tables))
    assert len(fig.subfigs) == 2 and len(fig.subfigs[0].axes) == 2  # 2 alive neurons sampled


def test_errors(data, tmp_path):
    ffn, nerv, tables = data
    with pytest.raises(ValueError, match="no instance table"):
        fig08.compute(ffn, [], {})
    with pytest.raises(ValueError, match="another architecture"):
        fig08.compute(nerv, [], tables)
    with pytest.raises(ValueError, match="frame 3 is not in the instance table"):
        fig08.compute([ffn[0].with_labels(frame=3)], [], tables)
    stray = write_stats(tmp_path / "x", "ffn", "l1", 5, [uniform(5)])
    stray = stray.with_labels(frame=0)  # claims frame 0 but holds frame 5's segments
    with pytest.raises(ValueError, match="not the instance table's"):
        fig08.compute([stray], [], tables)
