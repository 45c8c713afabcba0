"""The per-video instance table (xinc.instances) from hand-made statistics files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xinc.instances import (
    COLUMNS,
    read_instance_table,
    video_instance_table,
    write_instance_table,
)
from xinc.io import save_npz

CATEGORIES = [{"id": 0, "name": "road", "isthing": 0, "color": [128, 64, 128]},
              {"id": 11, "name": "person", "isthing": 1, "color": [220, 20, 60]},
              {"id": 13, "name": "car", "isthing": 1, "color": [0, 0, 142]},
              {"id": 7, "name": "traffic_sign", "isthing": 0, "color": [220, 220, 0]}]

# frame -> (panoptic ids, areas) as the statistics store them ("other" last)
FRAMES = {
    4: ([0, 11001, 13002, -2], [20, 4, 6, 2]),
    9: ([0, 7000, 13001, 13002], [18, 2, 5, 7]),
    14: ([0, 11001, 11003, -2], [22, 3, 5, 2]),
}


def write_stats(path: Path, ids, areas, *, frame: int | None, with_ids: bool = True,
                video: str = "0005") -> Path:
    arrays = {"areas_instances": np.asarray(areas, np.int64),
              "total": np.ones(2)}
    if with_ids:
        arrays["instances_ids"] = np.asarray(ids, np.int64)
    meta = {"arch": "nerv", "layer": "head", "dataset": "cityscapes_vps", "video": video}
    if frame is not None:
        meta["frame"] = frame
    save_npz(path, meta_json=json.dumps(meta), **arrays)
    return path


def write_meta(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"dataset": "cityscapes_vps", "video": "0005",
                                "categories": CATEGORIES}))
    return path


@pytest.fixture
def video(tmp_path):
    root = tmp_path / "stats" / "nerv" / "cityscapes_vps" / "0005" / "s1"
    paths = [write_stats(root / f"f{f}" / "head.npz", ids, areas, frame=f if f != 9 else None)
             for f, (ids, areas) in FRAMES.items()]
    return paths, write_meta(tmp_path / "work" / "meta.json")


def test_table(video, tmp_path):
    paths, meta = video
    df = video_instance_table(paths[::-1], meta)  # input order does not matter
    assert list(df.columns) == COLUMNS
    assert df["frame"].tolist() == [4] * 4 + [9] * 4 + [14] * 4
    assert df["column"].tolist() == [0, 1, 2, 3] * 3
    # tracks: car 13002 appears first (frame 4) -> car_1; car 13001 first at frame 9 -> car_2;
    # person 11001 at frame 4 -> person_1, person 11003 at frame 14 -> person_2
    assert df["track"].tolist() == ["road", "person_1", "car_1", "other",
                                    "road", "traffic_sign", "car_2", "car_1",
                                    "road", "person_1", "person_2", "other"]
    assert df["kind"].tolist()[:4] == ["stuff", "thing", "thing", "other"]
    assert df["category"].tolist()[4:8] == ["road", "traffic_sign", "car", "car"]
    assert df["category_id"].tolist()[:4] == [0, 11, 13, -1]
    assert df["isthing"].tolist()[:4] == [False, True, True, False]
    assert df["area"].tolist()[:4] == [20, 4, 6, 2]
    assert set(df["dataset"]) == {"cityscapes_vps"} and set(df["video"]) == {"0005"}
    # a second layer of the same frames agrees and changes nothing
    again = video_instance_table([*paths, write_stats(tmp_path / "b3.npz", *FRAMES[4], frame=4)],
                                 meta)
    pd.testing.assert_frame_equal(again, df)

    out = write_instance_table(tmp_path / "tables" / "0005.csv", df)
    back = read_instance_table(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back["video"].tolist()[0] == "0005" and back["isthing"].dtype == bool
    assert back["pan_id"].dtype == np.int64
    write_instance_table(tmp_path / "again.csv", df)
    assert (tmp_path / "again.csv").read_bytes() == out.read_bytes()


def test_errors(video, tmp_path):
    paths, meta = video
    old = write_stats(tmp_path / "old" / "f4" / "l1.npz", *FRAMES[4], frame=4, with_ids=False)
    with pytest.raises(ValueError, match=r"old/f4/l1.npz.*instances_ids.*rerun the canvas"):
        video_instance_table([old], meta)
    other = write_stats(tmp_path / "x.npz", [0, 13001], [30, 2], frame=4)
    with pytest.raises(ValueError, match="both frame 4"):
        video_instance_table([paths[0], other], meta)
    alien = write_stats(tmp_path / "y.npz", [0, 99001], [30, 2], frame=4)
    with pytest.raises(ValueError, match=r"category 99 .*meta.json"):
        video_instance_table([alien], meta)
    stranger = write_stats(tmp_path / "w.npz", *FRAMES[4], frame=4, video="0175")
    with pytest.raises(ValueError, match="from video '0175'"):
        video_instance_table([stranger], meta)
    nowhere = write_stats(tmp_path / "z.npz", [0], [32], frame=None)
    with pytest.raises(ValueError, match="cannot tell its frame"):
        video_instance_table([nowhere], meta)
    bad = tmp_path / "bad.csv"
    bad.write_text("frame,track\n0,road\n")
    with pytest.raises(ValueError, match="bad.csv: not an instance table"):
        read_instance_table(bad)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_instance_table(tmp_path / "missing.csv")
