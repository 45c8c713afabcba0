"""The official raw archives of a synthetic dataset (docs/formats.md §1b), under their real names
and inner layouts, with deterministic bytes (fixed member order, times and owners).

`write_official_archives(dataset, prepared_root, out_dir)` reads a tree written by
`xinc.data.synth.generate` (the prepared layout) and undoes the official preparation:
- cityscapes_vps: `leftImg8bit_sequence_trainvaltest.zip`, `gtFine_trainvaltest.zip` (the 20th
  frame's colour, instanceIds, labelIds and polygons) and `cityscapes-vps-dataset-1.0.zip` (the
  VPS JSONs and a nested `val_gt.zip` with `val/cls` and `val/inst` of the other 5 frames);
- vipseg: `VIPSeg.tar` (imgs, panomasks, split lists, label_num_dic_final.json) plus the files
  the official repository pins beside it (categories JSON and split lists).
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from xinc.data import cityscapes_vps, vipseg
from xinc.data.common import read_label
from xinc.io import atomic_path

#: Official Cityscapes labelIds of the 19 trainIds (cityscapesScripts labels.py).
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
SEQUENCE_ZIP = "leftImg8bit_sequence_trainvaltest.zip"
GTFINE_ZIP = "gtFine_trainvaltest.zip"
VPS_ZIP = "cityscapes-vps-dataset-1.0.zip"
VPS_TOP = "cityscapes-vps-dataset-1.0"
VIPSEG_TAR = "VIPSeg.tar"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FIX = "regenerate the synthetic dataset (xinc synth)"

Member = tuple[str, bytes | Path]


def _bytes(source: bytes | Path) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _zip_into(fileobj: IO[bytes], members: Iterable[Member]) -> None:
    """Write `members` (name, bytes or file) into a zip, sorted by name, fixed times."""
    with zipfile.ZipFile(fileobj, "w") as zf:
        for name, source in sorted(members, key=lambda m: m[0]):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            stored = name.endswith((".png", ".jpg", ".zip"))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            zf.writestr(info, _bytes(source))


def _write_zip(path: Path, members: Iterable[Member]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        _zip_into(fh, members)
    return path


def _write_tar(path: Path, members: Iterable[Member]) -> Path:
    """An uncompressed tar of `members`, sorted by name, mtime 0, owner root with no names."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, source in sorted(members, key=lambda m: m[0]):
            data = _bytes(source)
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tf.addfile(info, io.BytesIO(data))
    return path


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def cityscapes_raw(pan: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prepared panoptic_inst -> the raw (colour RGB uint8, instanceIds uint16, labelIds uint8).

    Stuff trainId s: colour of s, instanceIds = labelIds = labelId(s). Thing trainId*1000+k:
    labelId*1000+k. Crowd (a thing trainId < 1000): labelId. Void (255): black, 0.
    """
    v = pan.astype(np.int64)
    train = np.where(v < 1000, v, v // 1000)
    known = train < len(CITYSCAPES_LABEL_IDS)
    train = np.where(known, train, 0)
    label = np.where(known, np.asarray(CITYSCAPES_LABEL_IDS)[train], 0)
    colours = np.asarray([c["color"] for c in cityscapes_vps.CATEGORIES], np.uint8)
    colour = np.where(known[..., None], colours[train], 0).astype(np.uint8)
    inst = np.where(known & (v >= 1000), label * 1000 + v % 1000, label)
    return colour, inst.astype(np.uint16), label.astype(np.uint8)


def _label_stem(label: Path) -> str:
    """`VVVV_FFFF_<city>_<seq>_<frame>_<kind>.png` -> `<city>_<seq>_<frame>`."""
    return "_".join(label.name.split("_")[2:5])


def _gtfine_members(label: Path) -> list[Member]:
    raw = read_label(label, _FIX)
    colour, inst, label_ids = cityscapes_raw(raw)
    stem = _label_stem(label)
    base = f"gtFine/{cityscapes_vps.SPLIT}/{stem.split('_')[0]}/{stem}_gtFine_"
    alpha = np.full(colour.shape[:2] + (1,), 255, np.uint8)
    polygons = {"imgHeight": int(raw.shape[0]), "imgWidth": int(raw.shape[1]), "objects": []}
    return [(base + "color.png", _png(np.concatenate([colour, alpha], -1))),
            (base + "instanceIds.png", _png(inst)),
            (base + "labelIds.png", _png(label_ids)),
            (base + "polygons.json", json.dumps(polygons, indent=2).encode())]


def _vps_members(root: Path, labels: list[Path]) -> list[Member]:
    split = cityscapes_vps.SPLIT
    im_json = root / f"panoptic_im_{split}_city_vps.json"
    cats = json.loads(im_json.read_text())["categories"]
    empty = json.dumps({"images": [], "categories": cats}).encode()
    all_json = root / f"im_all_info_{split}_city_vps.json"
    members: list[Member] = [(f"{VPS_TOP}/{p.name}", p) for p in (im_json, all_json)]
    for name in ("panoptic_im_train_city_vps.json", "panoptic_im_test_city_vps.json",
                 "im_all_info_test_city_vps.json"):
        members.append((f"{VPS_TOP}/{name}", empty))
    nested: list[Member] = []
    for label in labels:
        colour, inst, _ = cityscapes_raw(read_label(label, _FIX))
        nested += [(f"{split}/cls/{label.name}", _png(colour)),
                   (f"{split}/inst/{label.name}", _png(inst))]
    buf = io.BytesIO()
    _zip_into(buf, nested)
    members.append((f"{VPS_TOP}/{split}_gt.zip", buf.getvalue()))
    return members


def _cityscapes_archives(root: Path, out_dir: Path) -> dict[str, Path]:
    split = cityscapes_vps.SPLIT
    frames = sorted((root / split / "img_all").glob("*_leftImg8bit.png"))
    labels = sorted((root / split / "panoptic_inst").glob("*.png"))
    twentieth = [p for p in labels if p.name.endswith("_gtFine_color.png")]
    vps = [p for p in labels if p.name.endswith("_final_mask.png")]
    sequence = [(f"leftImg8bit_sequence/{split}/{p.name.split('_')[0]}/{p.name}", p)
                for p in frames]
    gtfine = [m for p in twentieth for m in _gtfine_members(p)]
    return {SEQUENCE_ZIP: _write_zip(out_dir / SEQUENCE_ZIP, sequence),
            GTFINE_ZIP: _write_zip(out_dir / GTFINE_ZIP, gtfine),
            VPS_ZIP: _write_zip(out_dir / VPS_ZIP, _vps_members(root, vps))}


def _copy(src: Path, dst: Path) -> Path:
    with atomic_path(dst) as tmp:
        tmp.write_bytes(src.read_bytes())
    return dst


def _vipseg_archives(root: Path, out_dir: Path) -> dict[str, Path]:
    cats: list[dict[str, Any]] = json.loads((root / vipseg.CATEGORIES_JSON).read_text())
    label_num = {"others": "0", **{c["name"]: str(int(c["id"]) + 1) for c in cats}}
    members: list[Member] = [("VIPSeg/label_num_dic_final.json",
                              json.dumps(label_num, indent=1).encode())]
    members += [(f"VIPSeg/imgs/{p.parent.name}/{p.name}", p)
                for p in (root / "images").glob("*/*.jpg")]
    members += [(f"VIPSeg/panomasks/{p.parent.name}/{p.name}", p)
                for p in (root / "panomasks").glob("*/*.png")]
    splits = [f"{s}.txt" for s in vipseg.SPLITS]
    members += [(f"VIPSeg/{name}", root / name) for name in splits]
    out = {VIPSEG_TAR: _write_tar(out_dir / VIPSEG_TAR, members)}
    for name in (vipseg.CATEGORIES_JSON, *splits):
        out[name] = _copy(root / name, out_dir / name)
    return out


WRITERS = {"cityscapes_vps": _cityscapes_archives, "vipseg": _vipseg_archives}


def write_official_archives(dataset: str, prepared_root: str | Path,
                            out_dir: str | Path) -> dict[str, Path]:
    """Write the official raw archives of the synthetic `dataset` at `prepared_root` into
    `out_dir`; return {official file name: path}."""
    if dataset not in WRITERS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(WRITERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return WRITERS[dataset](Path(prepared_root), out_dir)
