"""Official raw archives of the synthetic datasets, our reimplementation of the official
preparation, and video selection (docs/spec/datasets.md §1, §3, §4), all offline at scale tiny."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.cli import main as cli_main
from xinc.data import SCALES, SYNTH_VIDEOS, DataLayoutError, generate, prepare_video
from xinc.data.cityscapes_vps import CATEGORIES as CITY_CATEGORIES
from xinc.data.extract import safe_extract
from xinc.data.official_archives import (
    CITYSCAPES_LABEL_IDS,
    GTFINE_ZIP,
    SEQUENCE_ZIP,
    VIPSEG_TAR,
    VPS_ZIP,
    write_official_archives,
)
from xinc.data.prep_cityscapes import extract_nested, prepare_cityscapes_vps, sequence_members
from xinc.data.prep_common import PREP_MARKER
from xinc.data.prep_vipseg import convert_frame, convert_mask, prepare_vipseg
from xinc.data.select import (
    cityscapes_candidates,
    read_selection,
    select_videos,
    vipseg_candidates,
    write_selection,
)
from xinc.data.synth import VIPSEG_CATEGORIES

SEED = 3
HEIGHT = SCALES["tiny"]["vipseg"].height
CITY = [v.video for v in SYNTH_VIDEOS["cityscapes_vps"]]
VIP = [v.video for v in SYNTH_VIDEOS["vipseg"] if v.has_masks]
VIP_TEST = next(v.video for v in SYNTH_VIDEOS["vipseg"] if not v.has_masks)
#: The official Cityscapes labelIds (cityscapesScripts labels.py) of the 19 trainId classes.
OFFICIAL_LABEL_IDS = {
    "road": 7, "sidewalk": 8, "building": 11, "wall": 12, "fence": 13, "pole": 17,
    "traffic light": 19, "traffic sign": 20, "vegitation": 21, "terrain": 22, "sky": 23,
    "person": 24, "rider": 25, "car": 26, "truck": 27, "bus": 28, "train": 31,
    "motorcycle": 32, "bicycle": 33}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic datasets, their official archives, extracted (nested zips too) and prepared."""
    base = tmp_path_factory.mktemp("official")
    for ds in ("cityscapes_vps", "vipseg"):
        generate(ds, base / "synth" / ds, base / "synth" / f"{ds}.truth.npz", seed=SEED,
                 scale="tiny")
        for name, path in write_official_archives(ds, base / "synth" / ds,
                                                  base / "downloads" / ds).items():
            if name in (SEQUENCE_ZIP, GTFINE_ZIP, VPS_ZIP, VIPSEG_TAR):
                safe_extract(path, base / "raw" / name)
    extract_nested(base / "raw" / VPS_ZIP)
    prepare_cityscapes_vps(base / "raw" / VPS_ZIP, base / "raw" / GTFINE_ZIP,
                           base / "raw" / SEQUENCE_ZIP, base / "layout" / "cityscapes_vps", CITY)
    for variant, emulate in (("jpeg", True), ("png", False)):
        prepare_vipseg(base / "raw" / VIPSEG_TAR,
                       base / "downloads" / "vipseg" / "panoVIPSeg_categories.json",
                       base / "downloads" / "vipseg", base / "layout" / f"vipseg_{variant}", VIP,
                       target_height=HEIGHT, emulate_720p_jpeg=emulate)
    return base


def _truth(base: Path, ds: str) -> dict[str, np.ndarray]:
    with np.load(base / "synth" / f"{ds}.truth.npz") as npz:
        return {k: npz[k] for k in npz.files}


def _prepared(base: Path, ds: str, layout: str, vid: str) -> tuple[np.ndarray, np.ndarray, dict]:
    out = base / "prepared" / layout / vid
    meta = prepare_video(ds, base / "layout" / layout, vid, out, crop=SCALES["tiny"][ds].crop)
    return np.load(out / "frames.npy"), np.load(out / "panoptic.npy"), meta


def test_cityscapes_prepared_equals_truth(base: Path) -> None:
    truth = _truth(base, "cityscapes_vps")
    for vid in CITY:
        frames, pan, meta = _prepared(base, "cityscapes_vps", "cityscapes_vps", vid)
        np.testing.assert_array_equal(pan, truth[f"{vid}/panoptic"])
        np.testing.assert_array_equal(frames, truth[f"{vid}/frames"])
        assert meta["annotated_t"] == truth[f"{vid}/annotated_t"].tolist()
    ours, theirs = (base / "layout" / "cityscapes_vps", base / "synth" / "cityscapes_vps")
    labels = sorted((theirs / "val" / "panoptic_inst").glob("*.png"))
    assert [p.name for p in labels] == sorted(
        p.name for p in (ours / "val" / "panoptic_inst").glob("*.png"))
    crowd_pixels = 0
    for path in labels:  # the official preparation turns crowd regions (a thing id < 1000) void
        mine = Image.open(ours / "val" / "panoptic_inst" / path.name)
        assert mine.mode == "I;16"
        synth = np.asarray(Image.open(path))
        crowd = (synth >= 11) & (synth < 1000) & (synth != 255)
        crowd_pixels += crowd.sum()
        np.testing.assert_array_equal(np.asarray(mine), np.where(crowd, 255, synth))
    assert crowd_pixels > 0


def test_cityscapes_panoptic_video_and_gt_json(base: Path) -> None:
    root = base / "layout" / "cityscapes_vps"
    gt = json.loads((root / "panoptic_gt_val_city_vps.json").read_text())
    assert gt["categories"] == [dict(c) for c in CITY_CATEGORIES]
    assert len(gt["images"]) == len(gt["annotations"]) == 6 * len(CITY)
    for ann in gt["annotations"]:
        rgb = np.asarray(Image.open(root / "val" / "panoptic_video" / ann["file_name"]))
        ids = rgb.astype(np.int64) @ np.asarray([1, 256, 65536])
        pan = np.asarray(Image.open(root / "val" / "panoptic_inst" / ann["file_name"]))
        for seg in ann["segments_info"]:
            assert (ids == seg["id"]).sum() == seg["area"] and seg["iscrowd"] == 0
            assert len(np.unique(pan[ids == seg["id"]])) == 1
        assert ((ids == 0) == (pan == 255)).all()
    for name in ("panoptic_im_val_city_vps.json", "im_all_info_val_city_vps.json",
                 "panoptic_im_train_city_vps.json", PREP_MARKER):
        assert (root / name).is_file()


def test_vipseg_prepared_equals_truth(base: Path) -> None:
    truth = _truth(base, "vipseg")
    for vid in VIP:
        frames, pan, meta = _prepared(base, "vipseg", "vipseg_jpeg", vid)
        np.testing.assert_array_equal(pan, truth[f"{vid}/panoptic"])
        diff = np.abs(frames.astype(np.int64) - truth[f"{vid}/frames"])
        assert 0 < diff.mean() < 3
        lossless, pan_png, _ = _prepared(base, "vipseg", "vipseg_png", vid)
        np.testing.assert_array_equal(lossless, truth[f"{vid}/frames"])
        np.testing.assert_array_equal(pan_png, truth[f"{vid}/panoptic"])
        assert meta["annotated_t"] == truth[f"{vid}/annotated_t"].tolist()
    assert not (base / "layout" / "vipseg_png" / "images" / VIP_TEST).exists()
    assert sorted((base / "layout" / "vipseg_png" / "images" / VIP[0]).iterdir())[0].suffix \
        == ".png"


def test_convert_720p_upscales(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (36, 64, 3), dtype=np.uint8)
    mask = rng.choice([0, 19, 6100, 6101, 12399], (36, 64)).astype(np.uint16)
    Image.fromarray(frame).save(tmp_path / "00000001.jpg")
    Image.fromarray(mask).save(tmp_path / "00000001.png")
    labels = convert_mask(tmp_path / "00000001.png", tmp_path / "out" / "m.png", 72)
    expected = np.repeat(np.repeat(mask.astype(np.int64), 2, 0), 2, 1)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "m.png")), expected)
    written = convert_frame(tmp_path / "00000001.jpg", tmp_path / "out", 72, True)
    ref = Image.open(tmp_path / "00000001.jpg").convert("RGB").resize((128, 72), Image.BILINEAR)
    ref.save(tmp_path / "ref.jpg", quality=75)
    np.testing.assert_array_equal(np.asarray(Image.open(written)),
                                  np.asarray(Image.open(tmp_path / "ref.jpg")))
    lossless = convert_frame(tmp_path / "00000001.jpg", tmp_path / "png", 72, False)
    np.testing.assert_array_equal(np.asarray(Image.open(lossless)), np.asarray(ref))


def test_archive_layouts(base: Path) -> None:
    with zipfile.ZipFile(base / "downloads" / "cityscapes_vps" / GTFINE_ZIP) as zf:
        names = zf.namelist()
        assert names == sorted(names) and len(names) == 4 * len(CITY)
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
        colour = next(n for n in names if n.endswith("_gtFine_color.png"))
        assert colour.startswith("gtFine/val/frankfurt/frankfurt_")
        assert Image.open(zf.open(colour)).mode == "RGBA"
        inst = np.asarray(Image.open(zf.open(colour.replace("color", "instanceIds"))))
    values = set(np.unique(inst).tolist())
    assert {26000, 24} <= values  # the instance-0 car and the person crowd region
    assert values <= {0, 7, 8, 11, 21, 23, 24} | set(range(24000, 27000))
    with zipfile.ZipFile(base / "downloads" / "cityscapes_vps" / VPS_ZIP) as zf:
        assert {n.split("/")[0] for n in zf.namelist()} == {"cityscapes-vps-dataset-1.0"}
        assert "cityscapes-vps-dataset-1.0/val_gt.zip" in zf.namelist()
    nested = base / "raw" / VPS_ZIP / "cityscapes-vps-dataset-1.0" / "val_gt" / "val"
    assert len(list((nested / "cls").glob("*_final_mask.png"))) == 5 * len(CITY)
    with tarfile.open(base / "downloads" / "vipseg" / VIPSEG_TAR) as tf:
        members = tf.getmembers()
    assert all(m.mtime == 0 and m.uid == m.gid == 0 and m.uname == "" for m in members)
    assert any(m.name.startswith(f"VIPSeg/imgs/{VIP_TEST}/") for m in members)
    assert not any(m.name.startswith(f"VIPSeg/panomasks/{VIP_TEST}/") for m in members)
    label_num = json.loads((base / "raw" / VIPSEG_TAR / "VIPSeg" /
                            "label_num_dic_final.json").read_text())
    assert label_num["others"] == "0" and label_num["person"] == "61"


def test_archives_are_deterministic(base: Path, tmp_path: Path) -> None:
    for ds in ("cityscapes_vps", "vipseg"):
        again = write_official_archives(ds, base / "synth" / ds, tmp_path / ds)
        for name, path in again.items():
            first = base / "downloads" / ds / name
            assert hashlib.sha256(path.read_bytes()).digest() == \
                hashlib.sha256(first.read_bytes()).digest(), name


def test_label_ids_are_the_official_ones() -> None:
    assert {c["name"]: CITYSCAPES_LABEL_IDS[c["id"]] for c in CITY_CATEGORIES} \
        == OFFICIAL_LABEL_IDS


def test_sequence_members(base: Path, tmp_path: Path) -> None:
    names = sequence_members(base / "raw" / VPS_ZIP, CITY)
    assert len(names) == 30 * len(CITY) and len(set(names)) == len(names)
    assert sorted(names) == sorted(p.name for p in (base / "synth" / "cityscapes_vps" / "val" /
                                                    "img_all").iterdir())
    bad = tmp_path / "vps"
    shutil.copytree(base / "raw" / VPS_ZIP, bad)
    path = bad / "cityscapes-vps-dataset-1.0" / "im_all_info_val_city_vps.json"
    data = json.loads(path.read_text())
    city, seq, frame, kind = data["images"][33]["file_name"].split("_")  # video 0002, t = 3
    data["images"][33]["file_name"] = f"{city}_{seq}_{int(frame) + 900:06d}_{kind}"
    path.write_text(json.dumps(data))
    with pytest.raises(DataLayoutError, match=r"im_all_info_val_city_vps\.json.*video 0002"):
        sequence_members(bad, CITY)
    with pytest.raises(DataLayoutError, match="no annotated frames of video '0003'"):
        sequence_members(bad, ["0003"])


def test_select_vipseg(base: Path) -> None:
    cands = vipseg_candidates(base / "raw" / VIPSEG_TAR, base / "downloads" / "vipseg",
                              target_height=HEIGHT)
    filters = {"min_frames": 30, "max_frames": 45, "require_size": (72, 128)}
    rows = select_videos("vipseg", cands, configured="all", **filters).set_index("video")
    assert rows.loc[VIP, "n_frames"].tolist() == [31, 12, 46]
    assert rows.loc[VIP, "selected"].tolist() == [True, False, False]
    assert rows.loc[VIP[0], "reason"] == "selected"
    assert rows.loc[VIP[1], "reason"] == "12 frames < min_frames 30; size 72x96, not 72x128"
    assert rows.loc[VIP[2], "reason"] == "46 frames > max_frames 45"
    assert rows.loc[VIP_TEST, "reason"].startswith("test split: no masks")
    assert (rows.loc[VIP_TEST, "split"], rows.loc[VIP_TEST, "n_annotated"]) == ("test", 0)
    assert (rows.loc[VIP[1], "height"], rows.loc[VIP[1], "width"]) == (72, 96)
    chosen = select_videos("vipseg", cands, configured=[VIP[1]], **filters).set_index("video")
    assert chosen.selected.tolist() == [v == VIP[1] for v in chosen.index]
    assert chosen.loc[VIP[1], "reason"].startswith("configured; 12 frames < min_frames 30")
    assert chosen.loc[VIP[0], "reason"] == "not configured"
    off = select_videos("vipseg", cands, configured="all")
    assert off.selected.tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match=f"'1_xincSynth01'.*closest: {VIP[0]}"):
        select_videos("vipseg", cands, configured=["1_xincSynth01"])
    with pytest.raises(ValueError, match="cannot be analysed .test split: no masks"):
        select_videos("vipseg", cands, configured=[VIP_TEST])


def test_select_cityscapes_and_csv_round_trip(base: Path, tmp_path: Path) -> None:
    cands = cityscapes_candidates(base / "raw" / VPS_ZIP)
    rows = select_videos("cityscapes_vps", cands, configured=["0002"])
    assert rows.video.tolist() == CITY and rows.selected.tolist() == [False, True]
    assert rows.n_frames.tolist() == [30, 30] and rows.n_annotated.tolist() == [6, 6]
    assert (rows.height.tolist(), rows.width.tolist()) == ([64, 64], [128, 128])
    rows["extra"] = ["a", "b"]
    write_selection(rows, tmp_path / "videos.csv", CITY_CATEGORIES, tmp_path / "cats.csv",
                    dataset="cityscapes_vps")
    back = read_selection(tmp_path / "videos.csv")
    assert back.video.tolist() == ["0001", "0002"] and back.selected.dtype == bool
    pd.testing.assert_frame_equal(back, rows)
    cats = pd.read_csv(tmp_path / "cats.csv")
    assert cats.source_id.tolist() == list(range(19)) and cats.isthing.sum() == 8
    write_selection(rows, tmp_path / "v.csv", VIPSEG_CATEGORIES, tmp_path / "vc.csv",
                    dataset="vipseg")
    assert (pd.read_csv(tmp_path / "vc.csv").eval("source_id - id") == 1).all()


def test_prep_refuses_foreign_out_root(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not written by the official preparation"):
        prepare_cityscapes_vps(base / "raw" / VPS_ZIP, base / "raw" / GTFINE_ZIP,
                               base / "raw" / SEQUENCE_ZIP, out, CITY[:1])
    with pytest.raises(ValueError, match="not written by the official preparation"):
        prepare_vipseg(base / "raw" / VIPSEG_TAR,
                       base / "downloads" / "vipseg" / "panoVIPSeg_categories.json",
                       base / "downloads" / "vipseg", out, VIP[:1], target_height=HEIGHT)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_prep_replaces_its_own_output_and_rejects_test_video(base: Path, tmp_path: Path) -> None:
    args = (base / "raw" / VIPSEG_TAR, base / "downloads" / "vipseg" /
            "panoVIPSeg_categories.json", base / "downloads" / "vipseg", tmp_path / "out")
    prepare_vipseg(*args, VIP[:2], target_height=HEIGHT)
    info = prepare_vipseg(*args, VIP[1:2], target_height=HEIGHT)
    assert info["n_frames"] == {VIP[1]: 12}
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == [VIP[1]]
    with pytest.raises(DataLayoutError, match="test-split video has no masks"):
        prepare_vipseg(*args, [VIP_TEST], target_height=HEIGHT)
    assert (tmp_path / "out" / "images" / VIP[1]).is_dir()


def test_cli_synth_emits_archives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["synth", "vipseg", str(tmp_path / "dl"), "--scale", "tiny",
                     "--emit", "archives"]) == 0
    names = {p.name for p in (tmp_path / "dl").iterdir()}
    assert names == {VIPSEG_TAR, "panoVIPSeg_categories.json", "train.txt", "val.txt",
                     "test.txt", "vipseg.truth.npz"}
    assert "VIPSeg.tar" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["dl"]
