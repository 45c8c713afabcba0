"""Our reimplementation of the official VIPSeg preparation (docs/spec/datasets.md §1.2, §3) for
chosen videos: change2_720p (frames without a mask skipped; frame RGB, PIL BILINEAR to the target
height, re-saved as JPEG at PIL's default quality 75; mask NEAREST) plus copying
panoVIPSeg_categories.json and the split lists. It writes the `VIPSeg_720P` layout
`xinc.data.vipseg` reads. With `emulate_720p_jpeg=False` frames are saved as lossless PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xinc.data.common import layout_error, read_json, read_label
from xinc.data.prep_common import find_dir_with, link_or_copy, save_label16, staged_output
from xinc.data.vipseg import CATEGORIES_JSON, SPLITS

FIX = ("extract VIPSeg.tar again, and take panoVIPSeg_categories.json and {train,val,test}.txt "
       "from the official repository (VIPSeg-Dataset/VIPSeg-Dataset)")


def target_size(width: int, height: int, target_height: int) -> tuple[int, int]:
    """(width, height) after change2_720p: height `target_height`, width int(th * w / h)."""
    return int(target_height * width / height), target_height


def convert_frame(src: Path, out_dir: Path, target_height: int, emulate_jpeg: bool) -> Path:
    """One frame as change2_720p: RGB, BILINEAR to the target height, saved as
    `<out_dir>/<stem>.jpg` (PIL default quality 75) or, not emulating, lossless `.png`."""
    with Image.open(src) as img:
        rgb = img.convert("RGB")
    resized = rgb.resize(target_size(*rgb.size, target_height), Image.BILINEAR)
    path = Path(out_dir) / f"{Path(src).stem}.{'jpg' if emulate_jpeg else 'png'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    resized.save(path)
    return path


def convert_mask(src: Path, dst: Path, target_height: int) -> np.ndarray:
    """One panomask resized NEAREST to the target height (PIL mode I, exact values), saved as a
    16-bit PNG at `dst`; returns the resized labels."""
    raw = read_label(Path(src), FIX)
    size = target_size(raw.shape[1], raw.shape[0], target_height)
    resized = Image.fromarray(raw.astype(np.int32)).resize(size, Image.NEAREST)
    labels = np.asarray(resized).astype(np.int64)
    save_label16(Path(dst), labels)
    return labels


def read_splits(split_dir: Path) -> dict[str, str]:
    """video -> split from `{train,val,test}.txt` in `split_dir`."""
    split_of: dict[str, str] = {}
    for split in SPLITS:
        path = Path(split_dir) / f"{split}.txt"
        if not path.is_file():
            raise layout_error(path, "split list not found", FIX)
        split_of.update((line, split) for line in path.read_text().split())
    return split_of


def find_raw_root(raw_root: str | Path) -> Path:
    """The extracted `VIPSeg/` folder (the one holding `imgs/`), at any depth."""
    return find_dir_with(Path(raw_root), "imgs", FIX)


def masked_frames(raw: Path, video: str, split: str | None) -> list[tuple[Path, Path]]:
    """(frame, mask) of every frame of `video` that has a mask, in sorted name order."""
    img_dir = raw / "imgs" / video
    if not img_dir.is_dir():
        raise layout_error(img_dir, f"video {video!r} not found",
                           f"choose a video listed under {raw / 'imgs'}")
    pairs = [(p, raw / "panomasks" / video / f"{p.stem}.png")
             for p in sorted(img_dir.glob("*.jpg"))]
    pairs = [(f, m) for f, m in pairs if m.is_file()]
    if not pairs:
        problem = "a test-split video has no masks" if split == "test" else "no frame has a mask"
        raise layout_error(img_dir, f"video {video}: {problem}",
                           "choose train or val videos (the analyses need masks)")
    return pairs


def _convert_video(raw: Path, out: Path, video: str, split: str | None,
                   target_height: int, emulate_jpeg: bool) -> int:
    pairs = masked_frames(raw, video, split)
    for frame, mask in pairs:
        written = convert_frame(frame, out / "images" / video, target_height, emulate_jpeg)
        labels = convert_mask(mask, out / "panomasks" / video / mask.name, target_height)
        with Image.open(written) as img:
            if img.size != (labels.shape[1], labels.shape[0]):
                raise layout_error(mask, f"mask size {labels.shape} after the resize differs "
                                   f"from its frame's {img.size[::-1]}", FIX)
    return len(pairs)


def prepare_vipseg(raw_root: str | Path, categories_json: str | Path, split_dir: str | Path,
                   out_root: str | Path, videos: Sequence[str], *, target_height: int = 720,
                   emulate_720p_jpeg: bool = True) -> dict[str, Any]:
    """Write the prepared VIPSeg layout of `videos` at `out_root`; return its summary.

    `out_root` must be new, empty or an earlier output (it holds the marker); it is built in a
    temporary sibling and moved into place at the end.
    """
    raw = find_raw_root(raw_root)
    categories_json, split_dir = Path(categories_json), Path(split_dir)
    cats = read_json(categories_json, FIX)
    if not isinstance(cats, list) or not cats:
        raise layout_error(categories_json, "expected a non-empty list of categories", FIX)
    split_of = read_splits(split_dir)
    videos = list(videos)
    for video in videos:  # fail before writing anything
        masked_frames(raw, video, split_of.get(video))
    info: dict[str, Any] = {"dataset": "vipseg", "prepared_by": __name__, "videos": videos,
                            "target_height": int(target_height),
                            "emulate_720p_jpeg": bool(emulate_720p_jpeg), "n_frames": {}}
    with staged_output(out_root, info) as tmp:
        for video in videos:
            info["n_frames"][video] = _convert_video(raw, tmp, video, split_of.get(video),
                                                     target_height, emulate_720p_jpeg)
        link_or_copy(categories_json, tmp / CATEGORIES_JSON)
        for split in SPLITS:
            link_or_copy(split_dir / f"{split}.txt", tmp / f"{split}.txt")
    return info
