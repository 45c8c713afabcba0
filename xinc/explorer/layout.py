"""File names of the explorer (docs/formats.md §11), relative to `results/<run>/explorer/`.

Pure Python (no numpy, no torch): the workflow's rules take their outputs from here, so the
files a job writes and the files its rule declares come from one place.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FRAME_FILES", "LAYER_SUFFIXES", "OVERLAYS", "PAGE_FILES", "cluster_file",
           "frame_dir", "layer_files", "model_dir", "model_files"]

PAGE_FILES = ("index.html", "explorer.js", "explorer.css")  # static, xinc/explorer/page/
MANIFEST = "manifest.js"
OVERLAYS = ("instances", "rgb", "gabor", "grid")  # per frame, from the pixel-groups file
FRAME_FILES = ("frame.png", "frame.js", *(f"{name}.png" for name in OVERLAYS))
# per frame and layer: top-k data, the map atlas, Σ|C| heat, neurons per pixel at τ0.1 / τ0.5
LAYER_SUFFIXES = (".js", "_maps.png", "_heat.png", "_npp10.png", "_npp50.png")
MODEL_INDEX = "model.json"


def model_dir(arch: str, dataset: str, video: str, seed: int | str) -> str:
    """Folder of one model's data (an FFN "model" = the FFNs of one video and seed)."""
    return f"data/{arch}/{dataset}/{video}/s{seed}"


def frame_dir(frame: int | str) -> str:
    """Sub-folder of one analysed frame, below the model's folder."""
    return f"f{frame}"


def layer_files(layer: str) -> list[str]:
    return [f"{layer}{suffix}" for suffix in LAYER_SUFFIXES]


def model_files(frames: Sequence[int | str], layers: Sequence[str]) -> list[str]:
    """Every file one data job writes, relative to the model's folder: `model.json`, each
    layer's `{layer}_segments.js`, and per frame FRAME_FILES and each layer's files."""
    files = [MODEL_INDEX, *(f"{layer}_segments.js" for layer in layers)]
    for frame in frames:
        names = [*FRAME_FILES, *(name for layer in layers for name in layer_files(layer))]
        files += [f"{frame_dir(frame)}/{name}" for name in names]
    return files


def cluster_file(dataset: str, video: str, frame: int | str, arch: str, layer: str,
                 seed_set: str) -> str:
    """The page's copy of one cluster file's scatter (docs/formats.md §9)."""
    return f"clusters/{dataset}/{video}/f{frame}/{arch}/{layer}/seeds_{seed_set}.js"
