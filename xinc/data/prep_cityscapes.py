"""Our own reimplementation of the official Cityscapes-VPS preparation (docs/spec/datasets.md §1.1,
§3: fetch_city_images, merge_datasets, create_panoptic_labels, create_panoptic_video_labels),
restricted to chosen videos. It writes the layout `xinc.data.cityscapes_vps` reads:
`val/img_all/`, `val/panoptic_inst/`, `val/panoptic_video/`, `panoptic_gt_val_city_vps.json`
and the VPS JSONs. Files are located by name anywhere below the given roots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xinc.data.cityscapes_vps import CATEGORIES, GT_JSON, SPLIT
from xinc.data.common import layout_error, read_json, read_label, read_rgb
from xinc.data.prep_common import (
    extract_nested,
    find_file,
    index_files,
    link_or_copy,
    save_image,
    save_label16,
    staged_output,
)
from xinc.data.synth import SegmentColours

__all__ = ["extract_nested", "panoptic_from_raw", "prepare_cityscapes_vps", "sequence_members"]

IM_JSON = f"panoptic_im_{SPLIT}_city_vps.json"
ALL_JSON = f"im_all_info_{SPLIT}_city_vps.json"
VOID = 255
BEFORE, AFTER = 19, 10  # the snippet: frames -19 ... +10 around the fine-annotated 20th frame
FIX = ("extract cityscapes-vps-dataset-1.0.zip (with its nested val_gt.zip), "
       "gtFine_trainvaltest.zip and the sequence frames of the chosen videos again")
_COLOUR_CODES = np.asarray([c["color"][0] + 256 * c["color"][1] + 65536 * c["color"][2]
                            for c in CATEGORIES], np.int64)
_THING = np.zeros(VOID + 1, bool)
_THING[[c["id"] for c in CATEGORIES if c["isthing"]]] = True


def read_images(path: Path) -> list[dict[str, Any]]:
    """The `images` list of a VPS JSON (panoptic_im_* or im_all_info_*)."""
    data = read_json(path, FIX)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise layout_error(path, "expected a JSON object with an 'images' list", FIX)
    return data["images"]


def _entries(images: list[dict[str, Any]], video: str, path: Path) -> list[dict[str, Any]]:
    """The annotated-frame entries of `video` in panoptic_im (file names `VVVV_FFFF_...`)."""
    entries = sorted((e for e in images if str(e.get("file_name", "")).startswith(f"{video}_")),
                     key=lambda e: e["file_name"])
    if not entries:
        known = sorted({str(e.get("file_name", ""))[:4] for e in images})
        raise layout_error(path, f"no annotated frames of video {video!r}",
                           f"choose one of the listed videos {known[:10]} ...")
    return entries


def _snippet(entries: list[dict[str, Any]], video: str, path: Path) -> list[str]:
    """The 30 frame names of a video: its 20th frame (the `leftImg8bit` entry) -19 ... +10."""
    twentieth = [e["file_name"] for e in entries if "leftImg8bit" in e["file_name"]]
    if len(twentieth) != 1:
        raise layout_error(path, f"video {video} has {len(twentieth)} fine-annotated "
                           "(leftImg8bit) entries, expected 1", FIX)
    fields = twentieth[0].split("_")
    if len(fields) < 6 or not fields[4].isdigit():
        raise layout_error(path, f"entry {twentieth[0]!r} is not "
                           "VVVV_FFFF_<city>_<seq>_<frame>_leftImg8bit.png", FIX)
    city, seq, frame = fields[2], fields[3], int(fields[4])
    return [f"{city}_{seq}_{f:06d}_leftImg8bit.png"
            for f in range(frame - BEFORE, frame + AFTER + 1)]


def sequence_members(vps_root: str | Path, videos: Sequence[str]) -> list[str]:
    """Basenames of the 30 snippet frames of each video, in order, as listed in
    im_all_info_val_city_vps.json and checked against the 20th frame's number -19 ... +10."""
    vps_root = Path(vps_root)
    im_path = find_file(vps_root, IM_JSON, FIX)
    all_path = find_file(vps_root, ALL_JSON, FIX)
    images = read_images(im_path)
    listed = {str(e.get("file_name")) for e in read_images(all_path)}
    members: list[str] = []
    for video in videos:
        names = _snippet(_entries(images, video, im_path), video, im_path)
        missing = [n for n in names if n not in listed]
        if missing:
            raise layout_error(all_path, f"video {video}: {len(missing)} of the 30 snippet "
                               f"frames (20th frame {names[BEFORE]} -19 ... +10) are not "
                               f"listed, e.g. {missing[0]}", FIX)
        members += names
    return members


def semantic_from_colour(rgb: np.ndarray) -> np.ndarray:
    """trainId of each pixel by exact colour match on channels :3; other colours -> 255."""
    codes = rgb[..., :3].astype(np.int64) @ np.asarray([1, 256, 65536], np.int64)
    order = np.argsort(_COLOUR_CODES)
    keys = _COLOUR_CODES[order]
    pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    return np.where(keys[pos] == codes, order[pos], VOID)


def panoptic_from_raw(cls_rgb: np.ndarray, inst: np.ndarray) -> np.ndarray:
    """cls colours + Cityscapes instanceIds -> panoptic_inst values (int64): stuff trainId,
    thing trainId*1000 + inst%1000 (class = majority colour inside the instance), else 255."""
    sem = semantic_from_colour(cls_rgb)
    inst = inst.astype(np.int64)
    pan = np.where(_THING[sem], VOID, sem)
    for value in np.unique(inst[inst >= 1000]).tolist():
        mask = inst == value
        cls = int(np.bincount(sem[mask], minlength=VOID + 1).argmax())
        pan[mask] = cls * 1000 + value % 1000 if _THING[cls] else VOID
    return pan


def _pick(index: dict[str, list[Path]], name: str, root: Path, parent: str | None = None
          ) -> Path:
    paths = [p for p in index.get(name, []) if parent is None or p.parent.name == parent]
    if not paths:
        where = f"{parent}/{name}" if parent else name
        raise layout_error(root, f"no file {where} anywhere below this folder", FIX)
    return paths[0]


def _label_sources(entry: dict[str, Any], vps: dict[str, list[Path]], vps_root: Path,
                   gt: dict[str, list[Path]], gt_root: Path) -> tuple[str, Path, Path]:
    """(prepared label name, cls file, inst file) of one annotated frame."""
    stem = entry["file_name"].rsplit("_", 1)[0]
    if "leftImg8bit" in entry["file_name"]:
        base = stem.split("_", 2)[2]
        return (f"{stem}_gtFine_color.png", _pick(gt, f"{base}_gtFine_color.png", gt_root),
                _pick(gt, f"{base}_gtFine_instanceIds.png", gt_root))
    name = f"{stem}_final_mask.png"
    return name, _pick(vps, name, vps_root, "cls"), _pick(vps, name, vps_root, "inst")


def _read_pair(cls_path: Path, inst_path: Path) -> np.ndarray:
    cls_rgb, inst = read_rgb(cls_path, FIX), read_label(inst_path, FIX)
    if cls_rgb.shape[:2] != inst.shape:
        raise layout_error(inst_path, f"size {inst.shape} differs from its colour label "
                           f"{cls_path.name} {cls_rgb.shape[:2]}", FIX)
    return panoptic_from_raw(cls_rgb, inst)


def _segment_class(value: int) -> tuple[int, int] | None:
    cat = value if value < 1000 else value // 1000
    return None if value == VOID or cat >= len(CATEGORIES) else (cat, 0)


def _write_labels(tmp: Path, videos: Sequence[str], entries: dict[str, list[dict[str, Any]]],
                  roots: tuple[Path, Path], seed: int) -> dict[str, Any]:
    """panoptic_inst, panoptic_video (seeded colours, one map per video) and the GT JSON."""
    vps = index_files(roots[0], "*_final_mask.png")
    gt = index_files(roots[1], "*_gtFine_*.png")
    images, annotations = [], []
    for video in videos:
        colours = SegmentColours(CATEGORIES, np.random.Generator(np.random.PCG64(
            [seed, int(video)])))
        for entry in entries[video]:
            name, cls_path, inst_path = _label_sources(entry, vps, roots[0], gt, roots[1])
            pan = _read_pair(cls_path, inst_path)
            save_label16(tmp / SPLIT / "panoptic_inst" / name, pan)
            rgb, segments = colours.paint(pan, _segment_class)
            save_image(tmp / SPLIT / "panoptic_video" / name, rgb)
            image_id = name.rsplit("_", 2)[0]
            images.append({"id": image_id, "width": int(pan.shape[1]),
                           "height": int(pan.shape[0]), "file_name": entry["file_name"]})
            annotations.append({"image_id": image_id, "file_name": name,
                                "segments_info": segments})
    return {"images": images, "annotations": annotations, "categories": list(CATEGORIES)}


def prepare_cityscapes_vps(vps_root: str | Path, gtfine_root: str | Path,
                           sequence_root: str | Path, out_root: str | Path,
                           videos: Sequence[str], *, seed: int = 0) -> dict[str, Any]:
    """Write the prepared Cityscapes-VPS layout of `videos` at `out_root`; return its summary.

    `out_root` must be new, empty or an earlier output (it holds the marker); it is built in a
    temporary sibling and moved into place at the end.
    """
    vps_root, gtfine_root, sequence_root = Path(vps_root), Path(gtfine_root), Path(sequence_root)
    videos = list(videos)
    members = sequence_members(vps_root, videos)
    im_path = find_file(vps_root, IM_JSON, FIX)
    images = read_images(im_path)
    entries = {v: _entries(images, v, im_path) for v in videos}
    frames = index_files(sequence_root, "*_leftImg8bit.png")
    sources = {name: _pick(frames, name, sequence_root) for name in members}
    info = {"dataset": "cityscapes_vps", "prepared_by": __name__, "videos": videos,
            "seed": int(seed), "n_frames": len(members),
            "n_labels": sum(len(e) for e in entries.values())}
    with staged_output(out_root, info) as tmp:
        for name, src in sources.items():
            link_or_copy(src, tmp / SPLIT / "img_all" / name)
        gt_json = _write_labels(tmp, videos, entries, (vps_root, gtfine_root), seed)
        (tmp / GT_JSON).write_text(json.dumps(gt_json))
        for name, paths in index_files(vps_root, "*city_vps*.json").items():
            if name != GT_JSON:
                link_or_copy(paths[0], tmp / name)
    return info
