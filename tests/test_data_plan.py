"""Where each dataset comes from and what the workflow knows of its videos when it loads."""

from __future__ import annotations

import pytest

from xinc.config import ConfigError, load_config
from xinc.data_plan import analysed_videos, dataset_origin, read_selection, selection_csv

HEAD = ("video,split,n_frames,n_annotated,height,width,selected,reason,prepared_frames,"
        "annotated_t,has_masks\n")
ROWS = ("0005,val,30,6,1024,2048,True,configured,30,4 9 14 19 24 29,True\n"
        "0006,val,30,6,1024,2048,False,not configured,30,4 9 14 19 24 29,True\n")


@pytest.fixture
def config():
    return load_config()


def test_origin_follows_source_root_and_custom(config):
    assert dataset_origin(config, "vipseg") == "synthetic"
    assert dataset_origin(config, "custom") == "custom"
    config["source"] = "real"
    assert dataset_origin(config, "vipseg") == "download"
    config["datasets"]["vipseg"]["root"] = "/data/VIPSeg_720P"
    assert dataset_origin(config, "vipseg") == "root"


def test_selection_keeps_ids_as_text_and_reads_frames(tmp_path):
    path = tmp_path / "videos.csv"
    path.write_text(HEAD + ROWS)
    rows = read_selection(path)
    assert list(rows) == ["0005", "0006"]
    assert rows["0005"].selected and not rows["0006"].selected
    assert rows["0005"].n_frames == 30 and rows["0005"].annotated == (4, 9, 14, 19, 24, 29)
    path.write_text("video,selected\n0005,True\n")
    with pytest.raises(ConfigError, match="not a videos.csv written by select_videos"):
        read_selection(path)


def test_analysed_videos_wait_for_the_selection(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config["source"] = "real"
    spec = config["datasets"]["cityscapes_vps"]
    spec["videos"] = "all"
    assert analysed_videos(config, "cityscapes_vps", "real") == (None, None)
    spec["videos"] = ["0005"]
    assert analysed_videos(config, "cityscapes_vps", "real") == (["0005"], None)
    path = tmp_path / selection_csv("cityscapes_vps", "real")
    path.parent.mkdir(parents=True)
    path.write_text(HEAD + ROWS)
    videos, rows = analysed_videos(config, "cityscapes_vps", "real")
    assert videos == ["0005"] and rows["0005"].n_frames == 30
    spec["videos"] = "all"
    assert analysed_videos(config, "cityscapes_vps", "real")[0] == ["0005"]
    spec["videos"] = ["0006"]  # written for another list: select_videos runs again first
    assert analysed_videos(config, "cityscapes_vps", "real") == (["0006"], None)
