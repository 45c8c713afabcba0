"""Reading the workflow's intermediate files: a damaged one names itself and the rule to rerun.

The library does not import Snakemake, so `PRODUCERS` maps the files of docs/formats.md to the
rules that write them by path components: the top folder (`prepared`, `work`, `models`, ...),
for some the folder right below it (an architecture, or the `custom` dataset), and the file
name. Any folders above the top
folder or between it and the file may change (per-run results folders, extra data levels).
Frames and panoptic masks are checked as they are read (`ARRAY_CHECKS`, xinc.checks): a file
that reads but holds what its format rules out names itself and its rule the same way.
"""

from __future__ import annotations

import json
import pickle
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from xinc.checks import ContentError, check_frames, check_panoptic

T = TypeVar("T")

#: What a reader raises on a truncated or malformed file (a missing file is reported apart).
READ_ERRORS = (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error,
               pickle.UnpicklingError)


class IntermediateFileError(ValueError):
    """An intermediate file is truncated, unreadable or holds what its format rules out; the
    message names the rule to rerun."""


@dataclass(frozen=True)
class Producer:
    """Files named like `names` under a folder `folder` (then `sub`, if set) and their rules."""

    folder: str
    sub: str | None  # the folder right below `folder`: an architecture, or a dataset
    names: tuple[str, ...]
    rules: tuple[str, ...]  # the first writes it; the others instead of it (`import_*`)


PREPARED_FILES = ("frames.npy", "panoptic.npy", "segments.csv", "meta.json")
#: The first that matches wins: a specific `sub` stands before the same folder without one.
PRODUCERS: tuple[Producer, ...] = (
    Producer("synthetic", None, ("*.truth.npz",), ("synth_dataset",)),
    Producer("prepared", "custom", PREPARED_FILES, ("prepare_custom_video",)),
    Producer("prepared", None, PREPARED_FILES, ("prepare_video",)),
    Producer("work", None, ("frames_bicubic.npy", "frames_pil.npy", "panoptic.npy",
                            "segments.csv", "meta.json"), ("working_res",)),
    Producer("models", "nerv", ("ckpt.pt", "metrics.json"), ("train_nerv", "import_nerv")),
    Producer("models", "ffn", ("ckpt.pt", "metrics.json"), ("train_ffn_{dataset}", "import_ffn")),
    Producer("pixel_groups", None, ("f*.npz",), ("pixel_groups",)),
    Producer("stats", "nerv", ("*.npz",), ("canvas_stats_nerv_{dataset}",)),
    Producer("stats", "ffn", ("*.npz",), ("canvas_stats_ffn_{dataset}",)),
    Producer("pair", None, ("*.npz",), ("pair_stats",)),
    Producer("flow", None, ("f*.npz",), ("flow",)),
    Producer("instances", None, ("*.csv",), ("instance_table",)),
    Producer("stats_untrained", "nerv", ("*.npz",), ("canvas_stats_nerv_untrained",)),
    Producer("stats_untrained", "ffn", ("*.npz",), ("canvas_stats_ffn_untrained",)),
    Producer("clusters", None, ("seeds_*_members.npz",), ("cluster_members_<arch>",)),
    Producer("clusters", None, ("seeds_*.npz",), ("cluster_layer",)),
    Producer("tables", None, ("clusters.csv",), ("cluster_table",)),
)


def _matches(producer: Producer, folders: tuple[str, ...], i: int, name: str) -> bool:
    below = folders[i + 1:]
    return (folders[i] == producer.folder and any(fnmatch(name, p) for p in producer.names)
            and (producer.sub is None or below[:1] == (producer.sub,)))


def writing_rules(path: str | Path) -> tuple[str, ...]:
    """The workflow rule that writes `path` (then the ones that may instead); () for a file the
    workflow does not write. The innermost matching top folder wins."""
    *folders, name = Path(path).parts
    folders = tuple(folders)
    for i in reversed(range(len(folders))):
        for producer in PRODUCERS:
            if _matches(producer, folders, i, name):
                below = folders[i + 1:]
                dataset = below[1] if producer.sub and len(below) > 1 else "<dataset>"
                return tuple(rule.format(dataset=dataset) for rule in producer.rules)
    return ()


def _advice(path: str | Path) -> str:
    rules = writing_rules(path)
    if not rules:
        return "it is not a file this workflow writes: check that it is the right, complete file"
    first, others = rules[0], "".join(f" (or {rule})" for rule in rules[1:])
    return (f"it is written by rule {first}{others}: rerun it with "
            f"`snakemake --forcerun {first}`{others}")


def first_line(err: BaseException) -> str:
    """The first line of an error's message (torch's can run to a page), or its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def unreadable(path: str | Path, err: BaseException) -> IntermediateFileError:
    """The error for a file that exists but cannot be read: file, reason, rule to rerun."""
    kind = f"{Path(path).suffix} file" if Path(path).suffix else "file"
    detail = first_line(err)
    return IntermediateFileError(
        f"{path}: truncated or unreadable {kind} ({detail}); {_advice(path)}")


def bad_content(path: str | Path, err: ContentError) -> IntermediateFileError:
    """The error for a file that reads but holds what its format rules out."""
    return IntermediateFileError(f"{path}: {err}; {_advice(path)}")


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Checks run in this block that raise `ContentError` name `path` and its rule."""
    try:
        yield
    except ContentError as err:
        raise bad_content(path, err) from None


def missing(path: str | Path) -> FileNotFoundError:
    """The error for a file that does not exist, with the rule that writes it (if any)."""
    rules = writing_rules(path)
    where = f"; it is written by rule {rules[0]}: run the workflow to make it" if rules else ""
    return FileNotFoundError(f"{path}: file not found{where}")


def read_intermediate(path: str | Path, reader: Callable[[Path], T]) -> T:
    """`reader(path)`, its read errors turned into one-line errors naming the file and the rule
    that writes it. `reader` must read everything it returns (no lazy archive members)."""
    path = Path(path)
    try:
        with reading(path):
            return reader(path)
    except IntermediateFileError:
        raise
    except FileNotFoundError as err:
        if err.filename is not None and Path(err.filename) != path:
            raise
        raise missing(path) from None
    except READ_ERRORS as err:
        raise unreadable(path, err) from err


def read_json(path: str | Path) -> Any:
    """A JSON file (meta.json, metrics.json)."""
    return read_intermediate(path, lambda p: json.loads(p.read_text()))


#: What the arrays of docs/formats.md §2-3 must hold, by file name: checked by `read_npy`.
ARRAY_CHECKS: dict[str, Callable[[np.ndarray], None]] = {
    "frames.npy": partial(check_frames, dtype=np.uint8),
    "frames_pil.npy": partial(check_frames, dtype=np.uint8),
    "frames_bicubic.npy": partial(check_frames, dtype=np.float32),
    "panoptic.npy": check_panoptic,
}


def read_npy(path: str | Path, mmap_mode: str | None = None) -> np.ndarray:
    """A .npy array; `mmap_mode="r"` maps it (a truncated file fails here, not on access).
    Frames and panoptic masks (`ARRAY_CHECKS`) are checked: frames that hold NaN or infinity,
    ids below −1 (void), a wrong shape or dtype raise `IntermediateFileError` naming the file."""
    def read(p: Path) -> np.ndarray:
        array = np.load(p, mmap_mode=mmap_mode, allow_pickle=False)
        if p.name in ARRAY_CHECKS:
            ARRAY_CHECKS[p.name](array)
        return array

    return read_intermediate(path, read)


def read_npz(path: str | Path, required: Sequence[str] = (),
             kind: str = "npz archive") -> dict[str, np.ndarray]:
    """Every array of an .npz archive, read now; one of `required` missing makes it not a
    `kind` file (the same one-line error)."""
    def read(p: Path) -> dict[str, np.ndarray]:
        with np.load(p, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        missing = [key for key in required if key not in arrays]
        if missing:
            raise ValueError(f"not a {kind} file (missing {missing})")
        return arrays

    return read_intermediate(path, read)
