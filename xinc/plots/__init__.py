"""Figures of xinc: pure plotting from the per-frame, per-layer statistics (docs/formats.md §6).

Each figure module (`fig03`, `fig04`, `fig06`, ...) has a `render(inputs, png_path, csv_path,
**options)` function. `inputs` is a sequence of :class:`StatsInput` (or plain paths, whose labels
are read from the file's `meta_json`, never from its path).
Every figure writes the image and a CSV holding exactly the numbers drawn; both are byte-for-byte
reproducible for the same inputs.

This module does not import matplotlib; `xinc.plots.style` and the figure modules do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xinc.checks import ContentError
from xinc.intermediate import bad_content, read_intermediate, read_npy

__all__ = ["FRAME_KEY", "Frames", "StatsInput", "as_inputs", "by_key", "frame_groups",
           "grey_frame", "groups_in_order", "map_correlations", "pair_inputs", "read_frame",
           "read_stats"]

#: (dataset, video) → the video's working-resolution `frames_pil.npy` (docs/formats.md §3).
Frames = Mapping[tuple[str, str], str | Path]
#: Columns naming one frame of one model: a row of the map figures.
FRAME_KEY = ["dataset", "video", "seed", "frame"]
#: The labels of one statistics file, in CSV order; seed and frame may be unknown (None).
LABELS = ("dataset", "video", "arch", "layer", "seed", "frame")
REQUIRED_LABELS = ("dataset", "video", "arch", "layer")
#: Grey = RGB · these weights (skimage.color.rgb2gray, ITU-R BT.709).
GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


@dataclass(frozen=True)
class StatsInput:
    """One statistics file (one layer of one frame of one model) plus the labels to show."""

    path: Path
    dataset: str
    video: str
    arch: str
    layer: str
    seed: int | None = None
    frame: int | None = None

    @classmethod
    def from_path(cls, path: str | Path, **labels: Any) -> StatsInput:
        """Labels from the file's `meta_json` (docs/formats.md §6: the canvas job records
        dataset, video, arch, layer, seed and frame); keyword `labels` win. The path's folders
        carry no meaning here: a file may live anywhere."""
        path = Path(path)
        needed = [key for key in LABELS if key not in labels]
        meta = read_stats(path, ()).get("meta", {}) if needed else {}
        missing = [key for key in needed if key in REQUIRED_LABELS and key not in meta]
        if missing:  # a file of older code, or not the canvas job's: name the rule to rerun
            raise bad_content(path, ContentError(
                f"meta_json lacks {missing} and no labels give them (the canvas job records "
                "them)"))
        found = {key: meta.get(key) for key in needed} | labels
        for key in ("seed", "frame"):
            if found.get(key) is not None:
                found[key] = int(found[key])
        return cls(path=path, **{key: found[key] for key in LABELS})

    def with_labels(self, **labels: Any) -> StatsInput:
        return replace(self, **labels)

    @property
    def group_key(self) -> tuple[str, str, str, int | None, int | None]:
        """(dataset, video, arch, seed, frame): the model and frame this layer belongs to."""
        return (self.dataset, self.video, self.arch, self.seed, self.frame)

    def labels(self) -> dict[str, Any]:
        """Identifier columns, in CSV order."""
        return {key: getattr(self, key) for key in LABELS}


def as_inputs(inputs: Iterable[StatsInput | str | Path]) -> list[StatsInput]:
    """Normalise a mix of StatsInput and paths; a (group, layer) may appear only once."""
    out = [x if isinstance(x, StatsInput) else StatsInput.from_path(x) for x in inputs]
    seen: set[tuple[Any, ...]] = set()
    for x in out:
        key = (*x.group_key, x.layer)
        if key in seen:
            raise ValueError(f"duplicate statistics input for {key}: {x.path}")
        seen.add(key)
    return out


def pair_inputs(paths: Sequence[str | Path], panels: Sequence[dict[str, Any]]
                ) -> list[StatsInput]:
    """StatsInputs from parallel lists of paths and label dicts (keys: dataset, video, arch,
    layer, seed, frame; missing ones are read from the file's `meta_json`)."""
    if len(paths) != len(panels):
        raise ValueError(f"{len(paths)} statistics paths but {len(panels)} panels")
    return as_inputs(StatsInput.from_path(p, **{k: v for k, v in panel.items() if k in LABELS})
                     for p, panel in zip(paths, panels, strict=True))


def by_key(keys: Sequence[Sequence[Any]], paths: Sequence[str | Path]) -> dict[tuple, str]:
    """{tuple(key): path} from parallel lists, e.g. (dataset, video) → frames file, as the rule
    scripts receive them."""
    if len(keys) != len(paths):
        raise ValueError(f"{len(paths)} files for {len(keys)} keys")
    return {tuple(key): str(path) for key, path in zip(keys, paths, strict=True)}


def read_stats(path: str | Path, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Arrays `keys` (all when None) of a statistics npz plus its parsed `meta` dict.

    Only the requested members are decompressed; missing keys are simply absent from the result.
    """
    def read(file: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with np.load(file, allow_pickle=False) as z:
            names = z.files if keys is None else [k for k in keys if k in z.files]
            for name in names:
                out[name] = z[name]
            out["meta"] = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
        return out

    return read_intermediate(path, read)


def groups_in_order(inputs: Sequence[StatsInput]) -> dict[tuple, list[StatsInput]]:
    """Inputs grouped by `group_key`, groups and layers in order of first appearance."""
    groups: dict[tuple, list[StatsInput]] = {}
    for x in inputs:
        groups.setdefault(x.group_key, []).append(x)
    return groups


def read_frame(frames: Frames, dataset: str, video: str, frame: int | None) -> np.ndarray:
    """Raw frame `frame` of the video's working-resolution frames (uint8 [H, W, 3])."""
    if (dataset, video) not in frames:
        raise ValueError(f"no frames file for {dataset}/{video}")
    array = read_npy(frames[(dataset, video)], mmap_mode="r")
    if frame is None or not 0 <= int(frame) < array.shape[0]:
        raise ValueError(f"frame {frame} not in {frames[(dataset, video)]} "
                         f"({array.shape[0]} frames)")
    return np.array(array[int(frame)])


def grey_frame(rgb: np.ndarray, weights: np.ndarray = GREY_WEIGHTS) -> np.ndarray:
    """Grey image (float64 [H, W], same scale as `rgb`): RGB · `weights`."""
    return np.asarray(rgb, dtype=np.float64) @ weights


def map_correlations(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Pearson, Spearman) of two maps over all pixels; NaN when either map is constant."""
    from scipy import stats  # imported here: most readers of statistics need no scipy

    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    return float(stats.pearsonr(x, y).statistic), float(stats.spearmanr(x, y).statistic)


def frame_groups(df: pd.DataFrame) -> list[pd.DataFrame]:
    """The rows of `df` per :data:`FRAME_KEY`, in order of first appearance."""
    keys = [tuple(None if pd.isna(v) else v for v in r)
            for r in df[FRAME_KEY].itertuples(index=False)]
    return [df[[k == key for k in keys]] for key in dict.fromkeys(keys)]
