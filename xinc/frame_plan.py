"""Which raw frames of each video the workflow analyses, decided when the workflow loads.

Standard library only (the Snakefile imports it before any job runs, so the DAG, and
`snakemake -n`, show every job). A video's length and annotated frames come from the embedded
synthetic table or, for real data, from the file names of the dataset folder:
- Cityscapes-VPS: 30-frame snippets labelled at 0-based frames 4, 9, …, 29 (docs/formats.md §1).
- VIPSeg: every frame with a mask in `panomasks/<vid>/` (sorted `images/<vid>/*.{jpg,png}`).

`canvas.frames` selects the NeRV frames: `first` (the first annotated frame), `annotated`
(Cityscapes-VPS: all 6; VIPSeg: 6 evenly spaced annotated frames ⌊i(A−1)/5⌋, i = 0…5, as the
authors), or a list of raw frame indices, each annotated. The first of them is the video's key
frame: the per-frame figures show it, and the FFNs are trained on it (`canvas.ffn_frames: key`)
or on every analysed frame (`all`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xinc.config import ConfigError

SNIPPET_LENGTH = 30  # Cityscapes-VPS frames per video
FIRST_ANNOTATED = 4  # Cityscapes-VPS: first labelled 0-based frame ...
ANNOTATION_STEP = 5  # ... then every 5th
EVENLY_SPACED = 6  # VIPSeg frames of `annotated`


@dataclass(frozen=True)
class SynthVideo:
    """One synthetic video: fixed id (independent of the seed), split, length, frame aspect."""

    video: str
    split: str
    n_frames: int
    aspect: float  # frame width / height
    has_masks: bool = True


SYNTH_VIDEOS: dict[str, tuple[SynthVideo, ...]] = {
    "cityscapes_vps": (SynthVideo("0001", "val", 30, 2.0), SynthVideo("0002", "val", 30, 2.0)),
    "vipseg": (
        SynthVideo("1_xincSynth01a", "train", 31, 16 / 9),
        SynthVideo("2_xincSynth02b", "val", 12, 4 / 3),
        SynthVideo("3_xincSynth03c", "train", 46, 16 / 9),
        SynthVideo("4_xincSynth04d", "test", 10, 16 / 9, has_masks=False),
    ),
}


def cityscapes_annotated(n_frames: int = SNIPPET_LENGTH) -> list[int]:
    """0-based labelled positions in a Cityscapes-VPS snippet: 4, 9, ..., 29."""
    return list(range(FIRST_ANNOTATED, n_frames, ANNOTATION_STEP))


@dataclass(frozen=True)
class VideoFrames:
    """The frames of one video the workflow uses."""

    n_frames: int
    annotated: tuple[int, ...]
    nerv: tuple[int, ...]  # NeRV canvases (canvas.frames)
    ffn: tuple[int, ...]  # FFNs trained and traced (canvas.ffn_frames)

    @property
    def key(self) -> int:
        """The frame of the per-frame figures: the first analysed one."""
        return self.nerv[0]


def video_length(config: dict[str, Any], dataset: str, video: str,
                 known: Mapping[str, tuple[int, list[int]]] | None = None
                 ) -> tuple[int, list[int]]:
    """(T, annotated raw frames) of one configured video; `known` holds those of downloaded
    and custom videos ({video: (T, annotated)}, from videos.csv, `xinc.data_plan`)."""
    if known is not None and video in known:
        return known[video]
    if config["source"] == "synthetic":
        specs = {s.video: s for s in SYNTH_VIDEOS[dataset]}
        if video not in specs:
            raise ConfigError(f"config key datasets.{dataset}.videos: {video!r} is not a "
                              f"synthetic video; choose from {', '.join(specs)}")
        spec = specs[video]
        if not spec.has_masks:
            return spec.n_frames, []
        if dataset == "cityscapes_vps":
            return spec.n_frames, cityscapes_annotated(spec.n_frames)
        return spec.n_frames, list(range(spec.n_frames))
    if dataset == "cityscapes_vps":
        return SNIPPET_LENGTH, cityscapes_annotated()
    root = config["datasets"][dataset].get("root")
    if not root:
        raise ConfigError(f"datasets.{dataset}.videos: the frames of {video!r} are known once "
                          f"select_videos has written data/prepared/{dataset}/<variant>/"
                          "videos.csv (the workflow's data stage)")
    return _vipseg_frames(Path(root), video)


def _vipseg_frames(root: Path, video: str) -> tuple[int, list[int]]:
    images = sorted(p for p in (root / "images" / video).glob("*") if p.suffix in (".jpg", ".png"))
    if not images:
        raise ConfigError(f"config key datasets.vipseg.videos: {root / 'images' / video} holds "
                          f"no .jpg frames (nor .png); check the video id or datasets.vipseg.root")
    masks = root / "panomasks" / video
    return len(images), [i for i, p in enumerate(images) if (masks / f"{p.stem}.png").exists()]


def select_frames(spec: str | list[int], dataset: str, video: str, n_frames: int,
                  annotated: list[int], key: str = "canvas.frames") -> list[int]:
    """The raw frames `spec` (first | annotated | a list of raw indices) selects."""
    if not annotated:
        raise ConfigError(f"config key datasets.{dataset}.videos: video {video!r} has no "
                          "annotated frames (no panoptic masks); the analyses need them, so "
                          "remove it from the list")
    if spec == "first":
        return [annotated[0]]
    if spec == "annotated":
        if dataset == "cityscapes_vps":
            return list(annotated)
        count = len(annotated)
        picks = sorted({i * (count - 1) // (EVENLY_SPACED - 1) for i in range(EVENLY_SPACED)})
        return [annotated[i] for i in picks]
    missing = [f for f in spec if f not in annotated]
    if missing:
        raise ConfigError(f"config key {key}: frames {missing} of {dataset}/{video} are not "
                          f"annotated (its {n_frames} frames are annotated at "
                          f"{_ranges(annotated)}); list annotated frames or use 'annotated'")
    return list(spec)


def _ranges(frames: list[int]) -> str:
    """'4, 9, 14' or '0 … 30' for a contiguous run."""
    if len(frames) > 6 and frames == list(range(frames[0], frames[-1] + 1)):
        return f"{frames[0]} … {frames[-1]}"
    return ", ".join(map(str, frames))


def plan_frames(config: dict[str, Any], videos: dict[str, list[str]],
                known: Mapping[str, Mapping[str, tuple[int, list[int]]]] | None = None
                ) -> dict[str, dict[str, VideoFrames]]:
    """{dataset: {video: VideoFrames}} of every configured video (`known`: {dataset: {video:
    (T, annotated)}} of the videos whose lengths come from videos.csv)."""
    canvas = config["canvas"]
    known = known or {}
    plan: dict[str, dict[str, VideoFrames]] = {}
    for dataset, ids in videos.items():
        plan[dataset] = {}
        for video in ids:
            n_frames, annotated = video_length(config, dataset, video, known.get(dataset))
            nerv = select_frames(canvas["frames"], dataset, video, n_frames, annotated)
            ffn = nerv if canvas["ffn_frames"] == "all" else nerv[:1]
            plan[dataset][video] = VideoFrames(n_frames, tuple(annotated), tuple(nerv),
                                               tuple(ffn))
    return plan
