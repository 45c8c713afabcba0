"""Embedded synthetic datasets, written in the prepared official layouts the authors' code reads.

`generate("cityscapes_vps" | "vipseg", out_dir, truth_path, seed=, scale="tiny" | "small")`
writes the dataset tree (docs/spec/datasets.md §1.1 "what XINC reads" / §1.2 `VIPSeg_720P`) and
the ground truth (docs/formats.md §1) outside it. Its command is `xinc synth` (xinc/cli.py).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xinc.data import cityscapes_vps, vipseg
from xinc.data.common import check_own_folder, remap
from xinc.data.prepare import SYNTHETIC_MARKER
from xinc.data.resize import center_crop, crop_box
from xinc.data.scene import CROWD, VOID, Palette, Scene, build_scene
from xinc.frame_plan import SYNTH_VIDEOS, SynthVideo
from xinc.io import atomic_path

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SynthScale:
    """Frame height written, the dataset crop [h, w] (None: none) and the working size [h, w]."""

    height: int
    crop: tuple[int, int] | None
    working: tuple[int, int]


SCALES: dict[str, dict[str, SynthScale]] = {
    "tiny": {"cityscapes_vps": SynthScale(64, None, (32, 64)),
             "vipseg": SynthScale(72, (64, 128), (32, 64))},
    "small": {"cityscapes_vps": SynthScale(256, None, (128, 256)),
              "vipseg": SynthScale(720, (640, 1280), (128, 256))},
}

CITYSCAPES_PALETTE = Palette(
    bands=((10, "sky"), (2, "building"), (8, "vegetation"), (1, "sidewalk"), (0, "road")),
    things={"car": 13, "person": 11}, crowd=11, ego_void=True, max_inst=1000)

#: Stand-in for panoVIPSeg_categories.json: the classes used, with their real ids and colours.
VIPSEG_CATEGORIES: tuple[dict[str, Any], ...] = (
    {"id": 0, "name": "wall", "isthing": 0, "color": [120, 120, 120]},
    {"id": 15, "name": "grass", "isthing": 0, "color": [255, 6, 82]},
    {"id": 18, "name": "road", "isthing": 0, "color": [255, 51, 7]},
    {"id": 28, "name": "sky", "isthing": 0, "color": [255, 9, 92]},
    {"id": 48, "name": "car", "isthing": 1, "color": [140, 140, 140]},
    {"id": 60, "name": "person", "isthing": 1, "color": [11, 200, 200]},
    {"id": 62, "name": "dog", "isthing": 1, "color": [0, 255, 245]},
)
VIPSEG_PALETTE = Palette(
    bands=((28, "sky"), (0, "wall"), (15, "grass"), (18, "road")),
    things={"car": 48, "person": 60, "dog": 62}, crowd=None, ego_void=False, max_inst=100)


def _isthing(categories: Sequence[dict[str, Any]]) -> dict[int, bool]:
    return {int(c["id"]): bool(c["isthing"]) for c in categories}


def _encode(pan: np.ndarray, fn: Callable[[int], int]) -> np.ndarray:
    """Scene labels (>= CROWD) -> uint16 raw labels, `fn` applied once per distinct value."""
    return remap(pan.astype(np.int64) - CROWD,
                 lambda values: np.asarray([fn(v + CROWD) for v in values.tolist()], np.uint16))


def encode_cityscapes(pan: np.ndarray, crowd: int) -> np.ndarray:
    """Scene labels -> panoptic_inst (stuff trainId, thing trainId*1000+k, crowd class, 255)."""
    thing = _isthing(cityscapes_vps.CATEGORIES)
    return _encode(pan, lambda v: 255 if v == VOID else crowd if v == CROWD
                   else v if thing[v // 1000] else v // 1000)


def encode_vipseg(pan: np.ndarray) -> np.ndarray:
    """Scene labels -> panomasks (0 void, stuff id+1, thing (id+1)*100 + k)."""
    thing = _isthing(VIPSEG_CATEGORIES)
    return _encode(pan, lambda v: 0 if v < 0 else (v // 1000 + 1) * 100 + v % 1000
                   if thing[v // 1000] else v // 1000 + 1)


class SegmentColours:
    """panopticapi-IdGenerator-like colours, one instance per video: a stuff class keeps its
    colour, a thing takes its class colour once and then seeded jitters of +-30 (never a colour
    in use or black). Segment id = R + 256 G + 65536 B."""

    def __init__(self, categories: Sequence[dict[str, Any]], rng: np.random.Generator) -> None:
        self._cats = {int(c["id"]): c for c in categories}
        self._rng = rng
        self._taken: set[tuple[int, int, int]] = {(0, 0, 0)}
        self._taken.update(tuple(c["color"]) for c in categories if not c["isthing"])
        self._by_value: dict[int, tuple[int, int, int]] = {}

    def colour(self, value: int, category: int) -> tuple[int, int, int]:
        """Colour of the raw label `value` (class `category`), stable within the video."""
        if value not in self._by_value:
            cat = self._cats[category]
            colour = tuple(int(c) for c in cat["color"])
            while cat["isthing"] and colour in self._taken:
                jitter = self._rng.integers(-30, 31, 3)
                colour = tuple(int(c) for c in np.clip(np.asarray(cat["color"]) + jitter, 0, 255))
            self._taken.add(colour)
            self._by_value[value] = colour
        return self._by_value[value]

    def paint(self, raw: np.ndarray, classes: Callable[[int], tuple[int, int] | None]
              ) -> tuple[np.ndarray, list[dict[str, int]]]:
        """RGB id image and segments_info of one label image; `classes(value)` gives
        (category, iscrowd) or None for void."""
        counts = np.bincount(raw.ravel())
        table = np.zeros((len(counts), 3), np.uint8)
        segments = []
        for value in np.flatnonzero(counts).tolist():
            cls = classes(value)
            if cls is None:
                continue
            colour = self.colour(value, cls[0])
            table[value] = colour
            segments.append({"id": colour[0] + 256 * colour[1] + 65536 * colour[2],
                             "category_id": cls[0], "iscrowd": cls[1],
                             "area": int(counts[value])})
        return table[raw], segments


def _cityscapes_classes(value: int) -> tuple[int, int] | None:
    thing = _isthing(cityscapes_vps.CATEGORIES)
    cat = value if value < 1000 else value // 1000
    if cat not in thing:
        return None
    return cat, int(value < 1000 and thing[cat])


def _vipseg_classes(value: int) -> tuple[int, int] | None:
    if value == 0:
        return None
    return (value - 1 if value < vipseg.STUFF_LIMIT else value // 100 - 1), 0


def _save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, compress_level=1)


def _save_truth(path: str | Path, arrays: dict[str, Any]) -> None:
    """npz readable by np.load: frames stored (noisy pixels barely compress), the rest deflated."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            stored = key.endswith("/frames")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(value), allow_pickle=False)


def _render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    frames, pans = zip(*(scene.render(t) for t in range(scene.n_frames)), strict=True)
    return np.stack(frames), np.stack(pans)


def _scene_info(
    spec: SynthVideo, scene: Scene, box: list[int], size: tuple[int, int]
) -> dict[str, Any]:
    return {"split": spec.split, "n_frames": spec.n_frames, "native_size": list(size),
            "crop_box": box, "has_masks": spec.has_masks, "inst0_id": scene.inst0_id,
            "thin_id": scene.thin_id, "exit_id": scene.exit_id}


def _write_cityscapes(root: Path, scale: SynthScale, seeds: Sequence[np.random.SeedSequence]
                      ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    cats = list(cityscapes_vps.CATEGORIES)
    split_dir = root / cityscapes_vps.SPLIT
    size = (scale.height, 2 * scale.height)
    box = crop_box(size, None)
    im_json, all_json, gt_images, gt_annotations = [], [], [], []
    truth: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    for spec, seq_seed in zip(SYNTH_VIDEOS["cityscapes_vps"], seeds, strict=True):
        rng = np.random.Generator(np.random.PCG64(seq_seed))
        scene = build_scene(rng, CITYSCAPES_PALETTE, size, spec.n_frames, box, scale.working[1])
        frames, pans = _render(scene)
        v = int(spec.video)
        city = cityscapes_vps.CITIES[(v - 1) % len(cityscapes_vps.CITIES)]
        seq, start = f"{900000 + v:06d}", 100 * v
        for t, frame in enumerate(frames):
            name = f"{city}_{seq}_{start + t:06d}_leftImg8bit.png"
            _save_png(split_dir / "img_all" / name, frame)
            all_json.append({"id": len(all_json) + 1, "file_name": name,
                             "width": size[1], "height": size[0]})
        colours = SegmentColours(cats, rng)
        annotated = cityscapes_vps.annotated_frames(spec.n_frames)
        for k, t in enumerate(annotated):
            twentieth = t == 19
            image_id = f"{v:04d}_{6 * (v - 1) + k + 1:04d}_{city}_{seq}_{start + t:06d}"
            label_name = image_id + ("_gtFine_color.png" if twentieth else "_final_mask.png")
            image_name = image_id + ("_leftImg8bit.png" if twentieth else "_newImg8bit.png")
            raw = encode_cityscapes(pans[t], CITYSCAPES_PALETTE.crowd)
            _save_png(split_dir / "panoptic_inst" / label_name, raw)
            rgb, segments = colours.paint(raw, _cityscapes_classes)
            _save_png(split_dir / "panoptic_video" / label_name, rgb)
            entry = {"id": image_id, "width": size[1], "height": size[0], "file_name": image_name}
            im_json.append(entry)
            gt_images.append(entry)
            gt_annotations.append({"image_id": image_id, "file_name": label_name,
                                   "segments_info": segments})
        truth[f"{spec.video}/panoptic"] = np.where(pans[annotated] == CROWD, VOID,
                                                   pans[annotated]).astype(np.int32)
        truth[f"{spec.video}/annotated_t"] = np.asarray(annotated, np.int64)
        truth[f"{spec.video}/frames"] = frames
        info[spec.video] = _scene_info(spec, scene, box, size)
    split = cityscapes_vps.SPLIT
    (root / f"panoptic_im_{split}_city_vps.json").write_text(
        json.dumps({"images": im_json, "categories": cats}))
    (root / f"im_all_info_{split}_city_vps.json").write_text(json.dumps({"images": all_json}))
    (root / cityscapes_vps.GT_JSON).write_text(json.dumps(
        {"images": gt_images, "annotations": gt_annotations, "categories": cats}))
    return truth, info


def _write_vipseg(root: Path, scale: SynthScale, seeds: Sequence[np.random.SeedSequence]
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    cats = list(VIPSEG_CATEGORIES)
    videos, annotations = [], []
    truth: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    for k, (spec, seq_seed) in enumerate(zip(SYNTH_VIDEOS["vipseg"], seeds, strict=True)):
        rng = np.random.Generator(np.random.PCG64(seq_seed))
        size = (scale.height, round(scale.height * spec.aspect))
        box = crop_box(size, scale.crop)
        scene = build_scene(rng, VIPSEG_PALETTE, size, spec.n_frames, box, scale.working[1])
        frames, pans = _render(scene)
        names = [f"{10 * k + 1 + (k + 1) * i:08d}" for i in range(spec.n_frames)]
        decoded = []
        for name, frame in zip(names, frames, strict=True):
            path = root / "images" / spec.video / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(path, quality=75)
            with Image.open(path) as img:
                decoded.append(np.asarray(img.convert("RGB")))
        annotated = vipseg.annotated_frames(spec.n_frames) if spec.has_masks else []
        colours = SegmentColours(cats, rng)
        images, frame_annotations = [], []
        for t in annotated:
            raw = encode_vipseg(pans[t])
            _save_png(root / "panomasks" / spec.video / f"{names[t]}.png", raw)
            rgb, segments = colours.paint(raw, _vipseg_classes)
            _save_png(root / "panomasksRGB" / spec.video / f"{names[t]}.png", rgb)
            images.append({"id": names[t], "width": size[1], "height": size[0],
                           "file_name": f"{names[t]}.png"})
            frame_annotations.append({"image_id": names[t], "file_name": f"{names[t]}.png",
                                      "segments_info": segments})
        if annotated:
            videos.append({"video_id": spec.video, "images": images})
            annotations.append({"video_id": spec.video, "annotations": frame_annotations})
        truth[f"{spec.video}/panoptic"] = center_crop(pans[annotated], box, VOID).astype(np.int32)
        truth[f"{spec.video}/annotated_t"] = np.asarray(annotated, np.int64)
        truth[f"{spec.video}/frames"] = center_crop(np.stack(decoded), box, 0, axes=(-3, -2))
        info[spec.video] = _scene_info(spec, scene, box, size)
    for split in vipseg.SPLITS:
        ids = sorted(s.video for s in SYNTH_VIDEOS["vipseg"] if s.split == split)
        (root / f"{split}.txt").write_text("".join(f"{v}\n" for v in ids))
    (root / vipseg.CATEGORIES_JSON).write_text(json.dumps(cats))
    (root / "panoptic_gt_VIPSeg.json").write_text(
        json.dumps({"videos": videos, "annotations": annotations, "categories": cats}))
    return truth, info


WRITERS = {"cityscapes_vps": _write_cityscapes, "vipseg": _write_vipseg}


def generate(dataset: str, out_dir: str | Path, truth_path: str | Path, *, seed: int,
             scale: str) -> None:
    """Write the synthetic `dataset` at `out_dir` and its truth npz at `truth_path`.

    `out_dir` must be new, empty or an earlier output of `generate` (it holds the marker
    `xinc_synthetic.json`), and `truth_path` new or an earlier truth file: anything else is
    refused (ValueError) before anything is written. The tree is built in a hidden sibling
    folder and moved into place at the end.
    """
    if dataset not in WRITERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(WRITERS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {tuple(SCALES)}")
    out_dir, truth_path = Path(out_dir).resolve(), Path(truth_path).resolve()
    check_dataset_folder(out_dir)
    check_truth_path(truth_path, out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    provenance = {"dataset": dataset, "seed": int(seed), "scale": scale,
                  "generator_version": GENERATOR_VERSION}
    try:
        seeds = np.random.SeedSequence(int(seed)).spawn(len(SYNTH_VIDEOS[dataset]))
        truth, info = WRITERS[dataset](tmp, SCALES[scale][dataset], seeds)
        (tmp / SYNTHETIC_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _save_truth(truth_path, {**truth, "meta_json": json.dumps({**provenance, "videos": info})})


def check_dataset_folder(out_dir: Path) -> None:
    """Refuse an `out_dir` that holds anything but an earlier output of `generate`."""
    check_own_folder(out_dir, SYNTHETIC_MARKER, writer="the synthetic generator",
                     purpose="the synthetic dataset", fate="emptied")


def check_truth_path(truth_path: Path, out_dir: Path) -> None:
    """Refuse a truth path inside the dataset tree, or one holding another file."""
    if truth_path == out_dir or out_dir in truth_path.parents:
        raise ValueError(f"{truth_path}: the ground truth lies inside the dataset folder "
                         f"{out_dir}; put it beside the folder (e.g. {out_dir}.truth.npz)")
    if truth_path.exists() and not is_truth_file(truth_path):
        raise ValueError(f"{truth_path}: exists and is not a ground-truth file of the synthetic "
                         "generator (an npz with its meta_json); choose a new truth path")


def is_truth_file(path: Path) -> bool:
    """Whether `path` is a ground-truth npz written by `generate` (its meta_json names the
    generator version)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("meta_json.npy") as member:
            meta = json.loads(str(np.lib.format.read_array(member)))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return isinstance(meta, dict) and "generator_version" in meta


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished tree onto a new `out_dir`; in an existing one (empty or ours; it may
    be the working directory) each entry the generator writes is replaced, its marker last, and
    anything else there is left alone."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    for new in sorted(tmp.iterdir(), key=lambda p: p.name == SYNTHETIC_MARKER):
        old = out_dir / new.name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        os.replace(new, old)

