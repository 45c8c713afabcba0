"""A user's own video as a dataset (xinc.data.custom): video files, frame folders, COCO masks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from xinc.config import ConfigError
from xinc.data.common import SEGMENT_COLUMNS, DataLayoutError, sha256_file
from xinc.data.custom import CustomVideo, describe_custom, prepare_custom_video
from xinc.data.resize import crop_box
from xinc.intermediate import IntermediateFileError, read_npy, writing_rules

H, W, N = 96, 160, 12
WORK = [32, 64]
# COCO segment ids (R + 256 G + 65536 B) that use all three channels.
PERSON, PERSON2, CAR, ROAD, CROWD = 200 + 256 * 100 + 65536 * 50, 5 + 65536 * 3, 131071, 7, 2304
CATEGORIES = [{"id": 1, "name": "person", "isthing": 1, "color": [220, 20, 60]},
              {"id": 2, "name": "car", "isthing": 1},
              {"id": 3, "name": "road", "isthing": 0, "color": [128, 64, 128]}]


def scene(t: int) -> tuple[np.ndarray, dict[int, tuple[int, int, int, int]]]:
    """RGB frame t and the COCO segments on it: {segment id: (x, y, w, h)}."""
    boxes = {PERSON: (10 + 6 * t, 8, 16, 24), ROAD: (0, 70, W, H - 70), CROWD: (120, 40, 20, 20)}
    if t >= 3:
        boxes[CAR] = (60, 36 + t, 30, 14)
    if t >= 5:
        boxes[PERSON2] = (2, 40, 10, 20)
    colours = {PERSON: (230, 40, 40), ROAD: (90, 90, 90), CROWD: (40, 200, 40),
               CAR: (40, 40, 230), PERSON2: (240, 240, 20)}
    frame = np.full((H, W, 3), 20, np.uint8)
    for sid, (x, y, w, h) in boxes.items():
        frame[y:y + h, x:x + w] = colours[sid]
    return frame, boxes


def id_png(boxes: dict[int, tuple[int, int, int, int]], size: tuple[int, int] = (H, W)
           ) -> np.ndarray:
    ids = np.zeros(size, np.int64)
    for sid, (x, y, w, h) in boxes.items():
        ids[y:y + h, x:x + w] = sid
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)


def segment_info(sid: int, bbox: tuple[int, int, int, int]) -> dict:
    cat = {PERSON: 1, PERSON2: 1, CROWD: 1, CAR: 2, ROAD: 3}[sid]
    return {"id": sid, "category_id": cat, "iscrowd": int(sid == CROWD),
            "area": bbox[2] * bbox[3], "bbox": list(bbox)}


def write_video(path: Path, fourcc: str, n: int = N, fps: float = 10) -> list[np.ndarray]:
    frames = [scene(t)[0] for t in range(n)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return frames


def write_coco(root: Path, names: dict[int, str], *, image_extra: dict | None = None) -> None:
    """masks.json + masks/ for the frames {t: image file_name}."""
    (root / "masks").mkdir()
    images, annotations = [], []
    for image_id, (t, name) in enumerate(names.items()):
        _, boxes = scene(t)
        png = Path(name).stem + ".png"
        Image.fromarray(id_png(boxes)).save(root / "masks" / png)
        images.append({"id": image_id, "file_name": name, "width": W, "height": H,
                       **(image_extra or {}).get(t, {})})
        annotations.append({"image_id": image_id, "file_name": png,
                            "segments_info": [segment_info(s, b) for s, b in boxes.items()]})
    (root / "masks.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": CATEGORIES}))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """6 PNG frames with masks on frames 0, 2, 3, 5."""
    (tmp_path / "frames").mkdir()
    for t in range(6):
        Image.fromarray(scene(t)[0]).save(tmp_path / "frames" / f"f_{t:03d}.png")
    write_coco(tmp_path, {t: f"f_{t:03d}.jpg" for t in (0, 2, 3, 5)})
    return tmp_path


def video(base: Path, **entry) -> CustomVideo:
    return CustomVideo.from_config("v", entry, base)


def expected_pan(t: int) -> np.ndarray:
    _, boxes = scene(t)
    pan = np.full((H, W), -1, np.int32)
    values = {PERSON: 1000, PERSON2: 1001, CAR: 2000, ROAD: 3000, CROWD: -1}
    for sid, (x, y, w, h) in boxes.items():
        pan[y:y + h, x:x + w] = values[sid]
    return pan


def test_mp4_frames_fps_and_no_masks(tmp_path: Path) -> None:
    truth = np.stack(write_video(tmp_path / "clip.mp4", "mp4v"))
    v = video(tmp_path, path="clip.mp4")
    assert describe_custom(v) == {"n_frames": N, "height": H, "width": W, "fps": 10.0,
                                  "has_masks": False, "annotated_t": []}
    meta = prepare_custom_video(v, tmp_path / "out", crop=None, working_size=WORK)
    frames = np.load(tmp_path / "out" / "frames.npy")
    assert frames.dtype == np.uint8 and frames.shape == (N, H, W, 3)
    err = np.abs(frames.astype(float)[:, None] - truth.astype(float)[None]).mean((2, 3, 4))
    assert (err.argmin(1) == np.arange(N)).all() and err.diagonal().max() < 4.5  # lossy
    assert np.abs(frames[0, 20, 18].astype(int) - (230, 40, 40)).max() < 25  # RGB, not BGR
    panoptic = np.load(tmp_path / "out" / "panoptic.npy")
    assert panoptic.dtype == np.int32 and panoptic.shape == (N, H, W) and (panoptic == -1).all()
    assert (tmp_path / "out" / "segments.csv").read_text().strip() == ",".join(SEGMENT_COLUMNS)
    assert meta == json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["annotated_t"] == list(range(N)) and meta["T"] == N and not meta["has_masks"]
    assert meta["t_norm"] == [t / N for t in range(N)]
    assert (meta["dataset"], meta["split"], meta["video"], meta["fps"]) == ("custom", "custom",
                                                                           "v", 10.0)
    assert meta["categories"] == [] and meta["crop_box"] == [0, 0, H, W]
    assert meta["sources"] == {"clip.mp4": sha256_file(tmp_path / "clip.mp4")}


def test_avi_stride_max_frames(tmp_path: Path) -> None:
    truth = write_video(tmp_path / "clip.avi", "MJPG")
    v = video(tmp_path, path="clip.avi", stride=3, max_frames=3)
    info = describe_custom(v)
    assert (info["n_frames"], info["fps"]) == (3, pytest.approx(10 / 3))
    meta = prepare_custom_video(v, tmp_path / "out", crop=None, working_size=WORK)
    frames = np.load(tmp_path / "out" / "frames.npy")
    assert frames.shape == (3, H, W, 3) and meta["T"] == 3
    for t, s in enumerate((0, 3, 6)):
        assert np.abs(frames[t].astype(float) - truth[s]).mean() < 4
    assert describe_custom(video(tmp_path, path="clip.avi", stride=5))["n_frames"] == 3  # 0,5,10


def test_folder_with_coco_panoptic(folder: Path) -> None:
    v = video(folder, path="frames", panoptic={"json": "masks.json", "dir": "masks"})
    assert describe_custom(v) == {"n_frames": 6, "height": H, "width": W, "fps": None,
                                  "has_masks": True, "annotated_t": [0, 2, 3, 5]}
    meta = prepare_custom_video(v, folder / "out", crop=None, working_size=WORK)
    out = folder / "out"
    assert (np.load(out / "frames.npy") == np.stack([scene(t)[0] for t in range(6)])).all()
    panoptic = np.load(out / "panoptic.npy")
    assert panoptic.dtype == np.int32
    assert (panoptic == np.stack([expected_pan(t) for t in (0, 2, 3, 5)])).all()
    seg = pd.read_csv(out / "segments.csv")
    assert list(seg.columns) == list(SEGMENT_COLUMNS)
    rows = {(r.t, r.pan_id): (r.category_id, r.isthing, r.iscrowd, r.area, r.x, r.y, r.w, r.h)
            for r in seg.itertuples()}
    want = {}
    for t in (0, 2, 3, 5):
        for sid, (x, y, w, h) in scene(t)[1].items():
            if sid != CROWD:
                pan = int(expected_pan(t)[y, x])
                want[(t, pan)] = (pan // 1000, int(pan // 1000 != 3), 0, w * h, x, y, w, h)
    assert rows == want
    assert meta["annotated_t"] == [0, 2, 3, 5] and meta["T"] == 6 and meta["has_masks"]
    assert meta["t_norm"] == [0, 2 / 6, 3 / 6, 5 / 6]
    assert meta["t_reference"] == [0, 0.25, 0.5, 0.75]
    cats = {c["id"]: c for c in meta["categories"]}
    assert cats[1] == CATEGORIES[0] and cats[3] == CATEGORIES[2]
    assert cats[2]["isthing"] == 1 and len(cats[2]["color"]) == 3  # palette colour
    again = prepare_custom_video(v, folder / "out2", crop=None, working_size=WORK)
    assert again["categories"] == meta["categories"]  # deterministic palette
    assert {"frames/f_000.png", "frames/f_001.png", "masks.json",
            "masks/f_005.png"} <= set(meta["sources"])


def test_folder_stride_keeps_instances(folder: Path) -> None:
    v = video(folder, path="frames", stride=2, max_frames=2, fps=8,
              panoptic={"json": "masks.json", "dir": "masks"})
    info = describe_custom(v)
    assert (info["n_frames"], info["fps"], info["annotated_t"]) == (2, 4.0, [0, 1])
    meta = prepare_custom_video(v, folder / "out", crop=None, working_size=WORK)
    assert meta["annotated_t"] == [0, 1] and meta["T"] == 2 and meta["fps"] == 4.0
    panoptic = np.load(folder / "out" / "panoptic.npy")
    assert (panoptic == np.stack([expected_pan(0), expected_pan(2)])).all()
    v = video(folder, path="frames", stride=3, panoptic={"json": "masks.json", "dir": "masks"})
    prepare_custom_video(v, folder / "out3", crop=None, working_size=WORK)  # frames 0, 3
    pan3 = np.load(folder / "out3" / "panoptic.npy")
    assert set(np.unique(pan3[1])) == {-1, 1000, 2000, 3000}  # car is inst 0 of its category


def test_crop(folder: Path) -> None:
    v = video(folder, path="frames", panoptic={"json": "masks.json", "dir": "masks"})
    full = np.stack([scene(t)[0] for t in range(6)])
    meta = prepare_custom_video(v, folder / "a", working_size=WORK)  # default "aspect"
    assert meta["crop_box"] == crop_box((H, W), (80, 160)) == [8, 0, 80, 160]
    assert (np.load(folder / "a" / "frames.npy") == full[:, 8:88]).all()
    pan = np.stack([expected_pan(t) for t in (0, 2, 3, 5)])
    assert (np.load(folder / "a" / "panoptic.npy") == pan[:, 8:88]).all()
    meta = prepare_custom_video(v, folder / "b", working_size=[64, 32])  # taller: 96 x 48
    assert meta["crop_box"] == crop_box((H, W), (96, 48)) == [0, 56, 96, 48]
    meta = prepare_custom_video(v, folder / "c", crop=[64, 64], working_size=WORK)
    assert meta["crop_box"] == [16, 48, 64, 64] and meta["native_size"] == [H, W]
    assert (np.load(folder / "c" / "frames.npy") == full[:, 16:80, 48:112]).all()


def test_video_frame_index_rules(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.mp4", "mp4v")
    write_coco(tmp_path, {4: "000004.jpg", 7: "x.png"}, image_extra={7: {"frame_index": 7}})
    v = video(tmp_path, path="clip.mp4", panoptic={"json": "masks.json", "dir": "masks"})
    assert describe_custom(v)["annotated_t"] == [4, 7]
    prepare_custom_video(v, tmp_path / "out", crop=None, working_size=WORK)
    panoptic = np.load(tmp_path / "out" / "panoptic.npy")
    assert (panoptic == np.stack([expected_pan(4), expected_pan(7)])).all()


def test_config_errors(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.mp4", "mp4v", n=2)
    (tmp_path / "notes.txt").write_text("x")
    cases = [({"path": "missing.mp4"}, "datasets.custom.files.v.path", "missing.mp4"),
             ({"path": "notes.txt"}, "datasets.custom.files.v.path", "notes.txt"),
             ({"path": "clip.mp4", "stride": 0}, "datasets.custom.files.v.stride", "0"),
             ({"path": "clip.mp4", "fps": "fast"}, "datasets.custom.files.v.fps", "fast"),
             ({"path": "clip.mp4", "colour": 1}, "datasets.custom.files.v.colour", "unknown"),
             ({"path": "clip.mp4", "panoptic": {"json": "m.json", "dir": "."}},
              "datasets.custom.files.v.panoptic.json", "m.json")]
    for entry, key, detail in cases:
        with pytest.raises(ConfigError, match="Fix:") as err:
            video(tmp_path, **entry)
        assert key in str(err.value) and detail in str(err.value)
    v = video(tmp_path, path=str(tmp_path / "clip.mp4"), max_frames=1)  # absolute path
    assert v.path == tmp_path / "clip.mp4" and v.max_frames == 1 and v.stride == 1


def test_unreadable_video(tmp_path: Path) -> None:
    (tmp_path / "bad.mp4").write_text("not a video")
    v = video(tmp_path, path="bad.mp4")
    for call in (lambda: describe_custom(v),
                 lambda: prepare_custom_video(v, tmp_path / "out", working_size=WORK)):
        with pytest.raises(DataLayoutError, match="bad.mp4.*Fix:"):
            call()
    assert not (tmp_path / "out").exists()


def test_a_damaged_custom_file_names_its_rule(tmp_path: Path) -> None:
    """A custom video's prepared files come from prepare_custom_video, the others' from
    prepare_video; the working-size copies of both from working_res."""
    for name in ("frames.npy", "panoptic.npy", "segments.csv", "meta.json"):
        assert writing_rules(f"data/prepared/custom/real/clip/{name}") == ("prepare_custom_video",)
        assert writing_rules(f"data/prepared/vipseg/real/clip/{name}") == ("prepare_video",)
    assert writing_rules("data/work/custom/real/clip/32x64/frames_pil.npy") == ("working_res",)
    frames = tmp_path / "data" / "prepared" / "custom" / "real" / "clip" / "frames.npy"
    frames.parent.mkdir(parents=True)
    frames.write_bytes(b"\x93NUMPY")
    with pytest.raises(IntermediateFileError, match="frames.npy.*rule prepare_custom_video"):
        read_npy(frames)


def test_mask_errors(folder: Path) -> None:
    v = video(folder, path="frames", panoptic={"json": "masks.json", "dir": "masks"})
    good = (folder / "masks" / "f_002.png").read_bytes()
    Image.fromarray(id_png(scene(2)[1], (H, W - 1))).save(folder / "masks" / "f_002.png")
    with pytest.raises(DataLayoutError, match=r"f_002\.png: mask size"):
        prepare_custom_video(v, folder / "out", working_size=WORK)
    boxes = {**scene(2)[1], 999: (0, 0, 4, 4)}
    Image.fromarray(id_png(boxes)).save(folder / "masks" / "f_002.png")
    with pytest.raises(DataLayoutError, match=r"f_002\.png: segment id 999"):
        prepare_custom_video(v, folder / "out", working_size=WORK)
    (folder / "masks" / "f_002.png").write_bytes(good)
    coco = json.loads((folder / "masks.json").read_text())
    coco["annotations"][1]["segments_info"][0]["category_id"] = 42
    (folder / "masks.json").write_text(json.dumps(coco))
    with pytest.raises(DataLayoutError, match=r"masks\.json: .*category_id \[42\]"):
        describe_custom(v)
    coco["annotations"][1]["segments_info"][0]["category_id"] = 1
    coco["images"][0]["file_name"] = "other.png"
    (folder / "masks.json").write_text(json.dumps(coco))
    with pytest.raises(DataLayoutError, match=r"masks\.json: image 'other\.png' names no frame"):
        describe_custom(v)
    (folder / "masks.json").write_text("{not json")
    with pytest.raises(DataLayoutError, match=r"masks\.json: not valid JSON"):
        prepare_custom_video(v, folder / "out", working_size=WORK)


def test_frames_of_different_sizes(folder: Path) -> None:
    Image.fromarray(np.zeros((H, W + 2, 3), np.uint8)).save(folder / "frames" / "f_004.png")
    v = video(folder, path="frames")
    with pytest.raises(DataLayoutError, match=r"f_004\.png: frame 4 is \(96, 162\)"):
        prepare_custom_video(v, folder / "out", working_size=WORK)
