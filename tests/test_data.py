"""Data layer: synthetic datasets, readers of the official layouts, prepare and working size."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data as skimage_data

import xinc.data.textures as tx
from xinc.cli import main as xinc_main
from xinc.data import (
    SCALES,
    SYNTH_VIDEOS,
    DataLayoutError,
    annotated_frames,
    describe_video,
    first_annotated_frame,
    generate,
    list_videos,
    prepare_video,
    video_source,
    working_resolution,
)
from xinc.data.cityscapes_vps import CATEGORIES as CITY_CATEGORIES
from xinc.data.cityscapes_vps import decode_panoptic as decode_city
from xinc.data.resize import center_crop, crop_box, nearest_indices, resize_bicubic
from xinc.data.synth import VIPSEG_CATEGORIES
from xinc.data.vipseg import decode_panoptic as decode_vipseg
from xinc.intermediate import IntermediateFileError

DATASETS = ("cityscapes_vps", "vipseg")
SEED = 7
WORK = SCALES["tiny"]["vipseg"].working


def _crop(dataset: str) -> tuple[int, int] | None:
    return SCALES["tiny"][dataset].crop


def _with_masks(dataset: str) -> list[str]:
    return [v.video for v in SYNTH_VIDEOS[dataset] if v.has_masks]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny synthetic datasets, every video with masks prepared and resized to 32x64."""
    base = tmp_path_factory.mktemp("data")
    for ds in DATASETS:
        generate(ds, base / "synthetic" / ds, base / "synthetic" / f"{ds}.truth.npz",
                 seed=SEED, scale="tiny")
        for vid in _with_masks(ds):
            prepare_video(ds, base / "synthetic" / ds, vid, base / "prepared" / ds / vid,
                          crop=_crop(ds))
            working_resolution(base / "prepared" / ds / vid, base / "work" / ds / vid, *WORK)
    return base


def _truth(base: Path, ds: str) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(base / "synthetic" / f"{ds}.truth.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads(str(arrays.pop("meta_json")))


def _segments(pan: np.ndarray, annotated_t: np.ndarray) -> pd.DataFrame:
    """Reference segment table computed one mask at a time."""
    rows = []
    for t, frame in zip(annotated_t, pan, strict=True):
        for pan_id in np.unique(frame):
            if pan_id < 0:
                continue
            ys, xs = np.nonzero(frame == pan_id)
            rows.append((int(t), int(pan_id), len(ys), xs.min(), ys.min(),
                         xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    return pd.DataFrame(rows, columns=["t", "pan_id", "area", "x", "y", "w", "h"]).astype("int64")


@pytest.mark.parametrize("ds", DATASETS)
def test_prepared_equals_truth(data: Path, ds: str) -> None:
    truth, info = _truth(data, ds)
    assert info["seed"] == SEED and info["dataset"] == ds
    for vid in _with_masks(ds):
        out = data / "prepared" / ds / vid
        meta = json.loads((out / "meta.json").read_text())
        pan, frames = np.load(out / "panoptic.npy"), np.load(out / "frames.npy")
        assert pan.dtype == np.int32 and frames.dtype == np.uint8
        np.testing.assert_array_equal(pan, truth[f"{vid}/panoptic"])
        np.testing.assert_array_equal(frames, truth[f"{vid}/frames"])
        assert meta["annotated_t"] == truth[f"{vid}/annotated_t"].tolist()
        assert meta["annotated_t"] == annotated_frames(ds, meta["T"])
        assert meta["T"] == len(frames) == info["videos"][vid]["n_frames"]
        assert meta["crop_box"] == info["videos"][vid]["crop_box"]
        assert meta["t_norm"] == [t / meta["T"] for t in meta["annotated_t"]]
        assert len(meta["sources"]) == meta["T"] + len(meta["annotated_t"])
        assert meta["synthetic"]["seed"] == SEED
        table = pd.read_csv(out / "segments.csv")
        expected = _segments(pan, truth[f"{vid}/annotated_t"])
        pd.testing.assert_frame_equal(table[expected.columns], expected)
        assert (table.category_id == table.pan_id // 1000).all() and (table.iscrowd == 0).all()


@pytest.mark.parametrize("ds", DATASETS)
def test_working_resolution_is_nearest_of_truth(data: Path, ds: str) -> None:
    truth, _ = _truth(data, ds)
    h, w = WORK
    for vid in _with_masks(ds):
        native = truth[f"{vid}/panoptic"]
        H, W = native.shape[1:]
        rows, cols = (np.arange(h) * H) // h, (np.arange(w) * W) // w
        expected = native[:, rows][:, :, cols]
        out = data / "work" / ds / vid
        np.testing.assert_array_equal(np.load(out / "panoptic.npy"), expected)
        table = pd.read_csv(out / "segments.csv")
        ref = _segments(expected, truth[f"{vid}/annotated_t"])
        pd.testing.assert_frame_equal(table[ref.columns], ref)
        meta = json.loads((out / "meta.json").read_text())
        assert meta["working_size"] == [h, w]
        bicubic, pil = np.load(out / "frames_bicubic.npy"), np.load(out / "frames_pil.npy")
        assert bicubic.dtype == np.float32 and bicubic.shape == (meta["T"], h, w, 3)
        assert pil.dtype == np.uint8 and pil.shape == bicubic.shape


@pytest.mark.parametrize("ds", DATASETS)
def test_thin_object_vanishes_and_exiting_object_leaves(data: Path, ds: str) -> None:
    _, info = _truth(data, ds)
    for vid in _with_masks(ds):
        thin, exiting = info["videos"][vid]["thin_id"], info["videos"][vid]["exit_id"]
        native = np.load(data / "prepared" / ds / vid / "panoptic.npy")
        work = np.load(data / "work" / ds / vid / "panoptic.npy")
        assert all((frame == thin).any() for frame in native)
        assert not (work == thin).any()
        assert thin in set(pd.read_csv(data / "prepared" / ds / vid / "segments.csv").pan_id)
        assert thin not in set(pd.read_csv(data / "work" / ds / vid / "segments.csv").pan_id)
        present = [(frame == exiting).any() for frame in native]
        assert any(present) and not all(present)


def test_cityscapes_instance_zero_crowd_and_void(data: Path) -> None:
    truth, info = _truth(data, "cityscapes_vps")
    root = data / "synthetic" / "cityscapes_vps"
    for vid in _with_masks("cityscapes_vps"):
        inst0 = info["videos"][vid]["inst0_id"]
        assert inst0 % 1000 == 0 and CITY_CATEGORIES[inst0 // 1000]["isthing"] == 1
        table = pd.read_csv(data / "prepared" / "cityscapes_vps" / vid / "segments.csv")
        rows = table[table.pan_id == inst0]
        assert len(rows) == 6 and (rows.isthing == 1).all()
        assert inst0 in set(pd.read_csv(data / "work" / "cityscapes_vps" / vid / "segments.csv")
                            .pan_id)
        src = video_source("cityscapes_vps", root, vid)
        pan = np.load(data / "prepared" / "cityscapes_vps" / vid / "panoptic.npy")
        for path, decoded in zip(src.label_paths, pan, strict=True):
            raw = np.asarray(Image.open(path)).astype(np.int64)
            crowd = (raw < 1000) & (raw >= 11) & (raw <= 18)
            assert crowd.any() and (raw == 255).any()
            assert (decoded[crowd] == -1).all() and (decoded[raw == 255] == -1).all()
            assert (decoded[raw == inst0] == inst0).all() and (raw == inst0).any()
    names = sorted(p.name for p in (root / "val" / "panoptic_inst").iterdir())
    assert names[0].startswith("0001_0001_frankfurt_9") and "0002_0012_lindau" in names[-1]
    assert sum("gtFine_color" in n for n in names) == 2
    assert len(list((root / "val" / "img_all").iterdir())) == 60


@pytest.mark.parametrize(("ds", "vid", "rgb_dir", "gt_json"), [
    ("cityscapes_vps", "0002", "val/panoptic_video", "panoptic_gt_val_city_vps.json"),
    ("vipseg", "3_xincSynth03c", "panomasksRGB/3_xincSynth03c", "panoptic_gt_VIPSeg.json")])
def test_rgb_ids_match_gt_json(data: Path, ds: str, vid: str, rgb_dir: str, gt_json: str) -> None:
    """The authors' loaders look each label value's RGB id up in the GT JSON's segments_info."""
    root = data / "synthetic" / ds
    gt = json.loads((root / gt_json).read_text())
    annotations = gt["annotations"]
    if ds == "vipseg":
        annotations = next(a["annotations"] for a in annotations if a["video_id"] == vid)
    by_file = {a["file_name"]: a["segments_info"] for a in annotations}
    ids_per_value: dict[int, set[int]] = {}
    for path in video_source(ds, root, vid).label_paths:
        raw = np.asarray(Image.open(path)).astype(np.int64)
        rgb = np.asarray(Image.open(root / rgb_dir / path.name)).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        info = {s["id"]: s for s in by_file[path.name]}
        for value in np.unique(raw):
            seg_ids = np.unique(ids[raw == value])
            assert len(seg_ids) == 1
            if seg_ids[0] == 0:  # void
                continue
            seg = info[int(seg_ids[0])]
            assert seg["area"] == (raw == value).sum()
            ids_per_value.setdefault(int(value), set()).add(int(seg_ids[0]))
    assert all(len(v) == 1 for v in ids_per_value.values())  # ids stable across frames


def test_decoders_on_known_values() -> None:
    raw = np.array([[0, 10, 11, 255], [13000, 13005, 18999, 2000]], np.uint16)
    np.testing.assert_array_equal(
        decode_city(raw, CITY_CATEGORIES),
        [[0, 10000, -1, -1], [13000, 13005, 18999, 2000]])
    raw = np.array([[0, 1, 16, 29, 61], [4900, 4901, 6100, 6399, 50]], np.uint16)
    np.testing.assert_array_equal(
        decode_vipseg(raw, VIPSEG_CATEGORIES),
        [[-1, 0, 15000, 28000, -1], [48000, 48001, 60000, 62099, -1]])


def test_vipseg_thing_ids_and_layout(data: Path) -> None:
    root = data / "synthetic" / "vipseg"
    truth, info = _truth(data, "vipseg")
    vid = "1_xincSynth01a"
    src = video_source("vipseg", root, vid)
    raw = np.asarray(Image.open(src.label_paths[0])).astype(np.int64)
    things = np.unique(raw[raw >= 125])
    assert len(things) >= 2 and set((things // 100 - 1).tolist()) <= {48, 60, 62}
    top = info["videos"][vid]["crop_box"][0]
    native = truth[f"{vid}/panoptic"][0]
    for value in things:
        expected = (value // 100 - 1) * 1000 + value % 100
        assert (native[raw[top:top + native.shape[0]] == value] == expected).all()
    assert 4900 in things  # the instance-0 car: (48 + 1) * 100 + 0
    assert list_videos("vipseg", root) == [v.video for v in SYNTH_VIDEOS["vipseg"]]
    assert describe_video("vipseg", root, "2_xincSynth02b") == {
        "video": "2_xincSynth02b", "split": "val", "n_frames": 12, "n_annotated": 12,
        "height": 72, "width": 96}
    assert describe_video("vipseg", root, "4_xincSynth04d")["n_annotated"] == 0
    with pytest.raises(DataLayoutError, match="no panoptic labels"):
        prepare_video("vipseg", root, "4_xincSynth04d", data / "x", crop=[64, 128])
    # the 4:3 video is zero-padded left and right by the 64x128 centre crop (torchvision)
    pan = np.load(data / "prepared" / "vipseg" / "2_xincSynth02b" / "panoptic.npy")
    frames = np.load(data / "prepared" / "vipseg" / "2_xincSynth02b" / "frames.npy")
    assert (pan[..., :16] == -1).all() and (pan[..., -16:] == -1).all()
    assert (frames[:, :, :16] == 0).all() and (frames[:, :, 16:-16] > 0).any()
    names = [p.stem for p in video_source("vipseg", root, "2_xincSynth02b").frame_paths]
    assert names == sorted(names) and int(names[1]) - int(names[0]) > 1


def test_annotated_frame_rules() -> None:
    assert first_annotated_frame("cityscapes_vps") == 4
    assert first_annotated_frame("vipseg") == 0
    assert annotated_frames("cityscapes_vps", 30) == [4, 9, 14, 19, 24, 29]
    assert annotated_frames("vipseg", 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown dataset"):
        annotated_frames("kitti", 3)


def test_determinism(tmp_path: Path) -> None:
    def decoded(name: str, seed: int) -> list[np.ndarray]:
        root = tmp_path / name
        assert xinc_main(["synth", "cityscapes_vps", str(root), "--truth",
                          str(tmp_path / f"{name}.npz"), "--seed", str(seed),
                          "--scale", "tiny"]) == 0
        src = video_source("cityscapes_vps", root, "0001")
        labels = [src.decode(np.asarray(Image.open(p))) for p in src.label_paths]
        return labels + [np.asarray(Image.open(p)) for p in src.frame_paths]

    a, b, c = decoded("a", 3), decoded("b", 3), decoded("c", 4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_regenerate_replaces_stale_tree(tmp_path: Path) -> None:
    root = tmp_path / "vipseg"
    generate("vipseg", root, tmp_path / "t.npz", seed=0, scale="tiny")
    (root / "images" / "stale").mkdir()
    generate("vipseg", root, tmp_path / "t.npz", seed=1, scale="tiny")
    assert "stale" not in list_videos("vipseg", root)
    assert json.loads((root / "xinc_synthetic.json").read_text())["seed"] == 1
    with np.load(tmp_path / "t.npz") as truth:
        assert json.loads(str(truth["meta_json"]))["seed"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_generate_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "images" / "stale").mkdir(parents=True)
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"mine.*not written by the synthetic generator.*empty"):
        generate("vipseg", root, tmp_path / "t.npz", seed=0, scale="tiny")
    assert (root / "notes.txt").read_text() == "keep me" and (root / "images" / "stale").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing else written


def test_generate_fills_an_empty_folder_and_refuses_the_current_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    generate("cityscapes_vps", ".", tmp_path / "cs.npz", seed=0, scale="tiny")
    assert Path.cwd() == empty and (empty / "xinc_synthetic.json").is_file()
    generate("cityscapes_vps", ".", tmp_path / "cs.npz", seed=0, scale="tiny")  # ours: replaced
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("keep me")
    monkeypatch.chdir(work)
    with pytest.raises(ValueError, match="not written by the synthetic generator"):
        generate("vipseg", ".", tmp_path / "v.npz", seed=0, scale="tiny")
    assert [p.name for p in work.iterdir()] == ["thesis.tex"]


def test_generate_keeps_a_truth_path_it_did_not_write(tmp_path: Path) -> None:
    truth = tmp_path / "results.npz"
    np.savez(truth, x=np.arange(3))
    with pytest.raises(ValueError, match="results.npz.*not a ground-truth file"):
        generate("vipseg", tmp_path / "vipseg", truth, seed=0, scale="tiny")
    with np.load(truth) as z:
        assert z.files == ["x"]
    assert not (tmp_path / "vipseg").exists()
    with pytest.raises(ValueError, match="inside the dataset folder"):
        generate("vipseg", tmp_path / "vipseg", tmp_path / "vipseg" / "t.npz", seed=0,
                 scale="tiny")


def test_fps_is_recorded_only_where_the_dataset_documents_it(data: Path) -> None:
    for ds, fps in (("cityscapes_vps", 17.0), ("vipseg", None)):
        for vid in _with_masks(ds):
            for stage in ("prepared", "work"):
                meta = json.loads((data / stage / ds / vid / "meta.json").read_text())
                assert meta["fps"] == fps, (ds, vid, stage)


def test_textures_are_scikit_image_data() -> None:
    textures = tx.load_textures()
    assert set(textures) == {*tx.GREYS, *tx.PHOTOS, "horse"}
    for name in tx.GREYS:  # grey pictures, the grey value in all three channels
        img = textures[name]
        assert img.dtype == np.uint8 and img.shape[2] == 3
        np.testing.assert_array_equal(img[..., 0], getattr(skimage_data, name)())
        np.testing.assert_array_equal(img[..., 2], img[..., 0])
    for name in tx.PHOTOS:
        np.testing.assert_array_equal(textures[name], getattr(skimage_data, name)()[..., :3])
    horse = textures["horse"]  # True on the horse: the border is background
    assert horse.dtype == bool and not horse[0].any() and not horse[-1].any()
    assert horse[horse.shape[0] // 2, horse.shape[1] // 2]


def test_errors_name_the_file(data: Path, tmp_path: Path) -> None:
    root = tmp_path / "cs"
    shutil.copytree(data / "synthetic" / "cityscapes_vps", root)
    label = sorted((root / "val" / "panoptic_inst").glob("0001_*.png"))[2]
    label.write_bytes(b"not a png")
    with pytest.raises(DataLayoutError, match=label.name) as err:
        prepare_video("cityscapes_vps", root, "0001", tmp_path / "out")
    assert "Fix:" in str(err.value)
    frame = video_source("cityscapes_vps", root, "0002").frame_paths[7]
    frame.unlink()
    with pytest.raises(DataLayoutError, match=frame.name):
        prepare_video("cityscapes_vps", root, "0002", tmp_path / "out")
    with pytest.raises(DataLayoutError, match="no labels for video '0009'"):
        video_source("cityscapes_vps", root, "0009")
    (root / "panoptic_gt_val_city_vps.json").write_text("{")
    with pytest.raises(DataLayoutError, match="panoptic_gt_val_city_vps.json"):
        video_source("cityscapes_vps", root, "0001")

    vip = tmp_path / "vip"
    shutil.copytree(data / "synthetic" / "vipseg", vip)
    (vip / "panoVIPSeg_categories.json").unlink()
    with pytest.raises(DataLayoutError, match="panoVIPSeg_categories.json.*not found"):
        video_source("vipseg", vip, "1_xincSynth01a")
    with pytest.raises(DataLayoutError, match="nope"):
        video_source("vipseg", vip, "nope")


def test_crop_box_follows_torchvision() -> None:
    assert crop_box((720, 1280), (640, 1280)) == [40, 0, 640, 1280]
    assert crop_box((72, 96), (64, 128)) == [4, -16, 64, 128]
    assert crop_box((5, 9), (2, 4)) == [2, 2, 2, 4]  # round(1.5) = 2, round(2.5) = 2
    assert crop_box((3, 4), (6, 7)) == [-1, -1, 6, 7]  # pad (6-3)//2 before
    assert crop_box((1024, 2048), None) == [0, 0, 1024, 2048]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12), st.integers(1, 12))
def test_center_crop_is_pad_then_crop(H: int, W: int, h: int, w: int) -> None:
    """torchvision: pad symmetrically (extra pixel after) up to the crop, then crop at round()."""
    img = np.arange(H * W).reshape(H, W) + 1
    ph, pw = max(h - H, 0), max(w - W, 0)
    padded = np.pad(img, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2)))
    top, left = round((padded.shape[0] - h) / 2), round((padded.shape[1] - w) / 2)
    expected = padded[top:top + h, left:left + w]
    np.testing.assert_array_equal(center_crop(img, crop_box((H, W), (h, w)), 0), expected)


@pytest.mark.parametrize("sizes", [(64, 32), (72, 32), (100, 37), (1280, 256), (640, 128),
                                   (1024, 128), (7, 3), (5, 9)])
def test_nearest_indices_match_torch(sizes: tuple[int, int]) -> None:
    n_in, n_out = sizes
    src = torch.arange(n_in, dtype=torch.float32)[None, None, None, :]
    ref = F.interpolate(src, size=(1, n_out), mode="nearest")[0, 0, 0].long().numpy()
    np.testing.assert_array_equal(nearest_indices(n_in, n_out), ref)


def test_bicubic_is_not_clamped() -> None:
    step = np.zeros((1, 16, 16, 3), np.uint8)
    step[:, :, 8:] = 255
    out = resize_bicubic(step, (8, 8))
    assert out.dtype == np.float32 and out.max() > 1.05 and out.min() < -0.05


def test_working_resolution_names_a_truncated_prepared_file(data: Path, tmp_path: Path) -> None:
    prepared = tmp_path / "data" / "prepared" / "cityscapes_vps" / "0001"
    shutil.copytree(data / "prepared" / "cityscapes_vps" / "0001", prepared)
    frames = prepared / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:300])  # header intact, data cut
    with pytest.raises(IntermediateFileError,
                       match=r"frames\.npy: truncated or unreadable .*rule prepare_video"):
        working_resolution(prepared, tmp_path / "work", *WORK)


def test_regenerate_keeps_what_the_generator_does_not_write(tmp_path: Path) -> None:
    root = tmp_path / "vipseg"
    generate("vipseg", root, tmp_path / "t.npz", seed=0, scale="tiny")
    (root / "notes.txt").write_text("keep me")
    generate("vipseg", root, tmp_path / "t.npz", seed=1, scale="tiny")
    assert (root / "notes.txt").read_text() == "keep me"
    assert json.loads((root / "xinc_synthetic.json").read_text())["seed"] == 1
