"""Shared pieces of the official-preparation reimplementations: finding files by name in an
extracted tree, nested archives, staged outputs guarded by a marker, 16-bit PNG labels."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xinc.data.common import check_own_folder, layout_error
from xinc.data.extract import safe_extract

#: Marker a prepared tree holds: written last, it names the function that wrote the tree.
PREP_MARKER = ".xinc_official_prep.json"


def index_files(root: Path, pattern: str) -> dict[str, list[Path]]:
    """basename -> every path under `root` (any depth) matching `pattern`, sorted shallow first."""
    index: dict[str, list[Path]] = {}
    for path in sorted(Path(root).rglob(pattern), key=lambda p: (len(p.parts), p)):
        if path.is_file():
            index.setdefault(path.name, []).append(path)
    return index


def find_file(root: Path, name: str, fix: str) -> Path:
    """The shallowest file called `name` under `root` (a top folder or nesting is allowed)."""
    found = index_files(root, name).get(name)
    if not found:
        raise layout_error(Path(root), f"no file named {name} anywhere below this folder", fix)
    return found[0]


def find_dir_with(root: Path, child: str, fix: str, max_depth: int = 4) -> Path:
    """The shallowest folder under `root` (itself included) that has a sub-folder `child`;
    the search does not descend into `child` folders themselves (they may be huge)."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        for folder in level:
            if (folder / child).is_dir():
                return folder
        level = sorted(p for folder in level for p in folder.iterdir()
                       if p.is_dir() and p.name != child)
    raise layout_error(Path(root), f"no folder holding {child}/ within {max_depth} levels", fix)


def extract_nested(root: str | Path, pattern: str = "*_gt.zip") -> list[Path]:
    """Unpack every nested archive matching `pattern` under an extracted tree in place, into a
    sibling folder named like the archive without `.zip`; return those folders."""
    out = []
    for archive in sorted(Path(root).rglob(pattern)):
        dest = archive.with_name(archive.name.removesuffix(".zip"))
        safe_extract(archive, dest)
        out.append(dest)
    return out


def check_out_root(out_root: Path) -> None:
    """Refuse an `out_root` that holds anything not written by an official preparation."""
    check_own_folder(out_root, PREP_MARKER, writer="the official preparation",
                     purpose="the prepared dataset", fate="replaced")


@contextmanager
def staged_output(out_root: str | Path, info: dict[str, Any]) -> Iterator[Path]:
    """Yield a temporary sibling of `out_root` to write into; on success write the marker
    (`info`) and move the tree onto `out_root` (an earlier prepared tree is replaced)."""
    out_root = Path(out_root).resolve()
    check_out_root(out_root)
    tmp = out_root.parent / f".{out_root.name}.{os.getpid()}.tmp"
    old = out_root.parent / f".{out_root.name}.{os.getpid()}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        (tmp / PREP_MARKER).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        if out_root.exists():
            os.replace(out_root, old)
        os.replace(tmp, out_root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst`, copying where a link is impossible (other file system)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def save_label16(path: Path, labels: np.ndarray) -> None:
    """A label map as a 16-bit grey PNG (Pillow 13 cannot write mode I as PNG)."""
    if labels.size and (labels.min() < 0 or labels.max() > 0xFFFF):
        raise ValueError(f"{path}: label values span [{labels.min()}, {labels.max()}], "
                         "outside a 16-bit PNG's [0, 65535]")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint16)).save(path)


def save_image(path: Path, arr: np.ndarray) -> None:
    """A uint8 image (grey, RGB or RGBA) as PNG, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)
