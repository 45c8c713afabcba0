"""Pixel groupings of one frame (docs/method.md §8.2; docs/formats.md §5).

Every grouping is an int32 label map [H, W] with the values 0 … G−1 (empty groups dropped):
- `instances`: one group per panoptic segment present (things and stuff, in increasing panoptic
  id), then "other" = the void pixels (panoptic < 0), if any. `instances_ids` [G] holds the
  panoptic id of each group, −2 for "other". (The authors' "other" is the union of all masks,
  docs/method.md §6.3 B9; here it is the uncovered region its comment describes.)
- `rgb`: k-means (K, n_init=1, random_state=seed) on the per-pixel float RGB in [0, 1].
- `gabor`: k-means (K, sklearn's default n_init, random_state=seed) on per-pixel Gabor
  responses of the grey image (PIL "L"). `reference`: the authors' bank, which stops after the
  first orientation (θ = 0; σ ∈ {1, 3} × f ∈ {0.05, 0.25, 0.5} = 6 filters), convolved with
  `scipy.ndimage.convolve(mode="wrap")` on the uint8 grey image into uint8 output, so responses
  are truncated and wrap modulo 256 (B1, B2). `full`: the intended bank, 4 orientations
  (24 filters), on the float grey image in [0, 1] with float output.
- `grid_lattice`: group i·sw + j = pixels with row ≡ i (mod sh) and column ≡ j (mod sw) (the
  authors' unfold-based "gridcells", B4).
- `grid_contiguous`: sh × sw blocks; pixel (y, x) is in block (⌊y·sh/H⌋, ⌊x·sw/W⌋).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
from PIL import Image

GROUPINGS = ("instances", "rgb", "gabor", "grid_lattice", "grid_contiguous")
OTHER_ID = -2
GABOR_MODES = ("reference", "full")


def _as_rgb(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float RGB in [0, 1] as float64, uint8 RGB) of a uint8 or float [H, W, 3] frame.

    A float frame is used as is for the RGB clusters and rounded after clipping to [0, 1]
    for the uint8 image.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [H, W, 3], got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return frame.astype(np.float64) / 255.0, frame
    rgb = frame.astype(np.float64)
    return rgb, np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0 … G−1 in increasing order of the old label (empty groups dropped)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def _kmeans(features: np.ndarray, k: int, seed: int, **kwargs) -> np.ndarray:
    """k-means labels of [P, F] features; fewer distinct points than k just gives fewer groups."""
    # imported here: every canvas job imports this module for `grid_groups`, few cluster
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        km = KMeans(n_clusters=k, random_state=seed, **kwargs).fit(features)
    return km.labels_


def gabor_features(grey: np.ndarray, mode: str = "reference") -> np.ndarray:
    """Per-pixel Gabor responses [H, W, F] of a uint8 grey image (see the module docstring)."""
    from scipy import ndimage  # imported here, as sklearn in `_kmeans`
    from skimage.filters import gabor_kernel

    if mode not in GABOR_MODES:
        raise ValueError(f"unknown gabor mode {mode!r}; expected one of {GABOR_MODES}")
    thetas = [0.0] if mode == "reference" else [q / 4.0 * np.pi for q in range(4)]
    image = grey if mode == "reference" else grey.astype(np.float64) / 255.0
    responses = []
    for theta in thetas:
        for sigma in (1, 3):
            for freq in (0.05, 0.25, 0.5):
                kernel = np.real(gabor_kernel(freq, theta=theta, sigma_x=sigma, sigma_y=sigma))
                responses.append(ndimage.convolve(image, kernel, mode="wrap"))
    return np.stack(responses, axis=-1)


def instance_groups(panoptic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label map [H, W] int32, panoptic id per group [G] int64; −2 = "other" = void)."""
    panoptic = np.asarray(panoptic)
    void = panoptic < 0
    ids = np.unique(panoptic[~void]).astype(np.int64)
    labels = np.searchsorted(ids, panoptic).astype(np.int32)
    if void.any():
        labels[void] = len(ids)
        ids = np.append(ids, OTHER_ID)
    return labels, ids


def grid_groups(height: int, width: int, grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """`grid_lattice` and `grid_contiguous` label maps for an sh × sw grid."""
    sh, sw = grid
    if not (1 <= sh <= height and 1 <= sw <= width):
        raise ValueError(f"grid {grid} does not fit a {height}×{width} frame")
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    lattice = (rows % sh) * sw + cols % sw
    contiguous = (rows * sh // height) * sw + cols * sw // width
    return {"grid_lattice": lattice.astype(np.int32),
            "grid_contiguous": contiguous.astype(np.int32)}


def pixel_groups(frame: np.ndarray, panoptic: np.ndarray, *, k: int, grid: tuple[int, int],
                 seed: int, gabor_mode: str = "reference") -> dict[str, np.ndarray]:
    """All groupings of one frame, ready for `xinc.io.save_npz` (docs/formats.md §5).

    `frame`: RGB [H, W, 3], uint8 or float in [0, 1]; `panoptic`: int [H, W], −1 = void.
    """
    rgb, rgb8 = _as_rgb(frame)
    height, width = rgb.shape[:2]
    if np.shape(panoptic) != (height, width):
        raise ValueError(f"panoptic map {np.shape(panoptic)} does not match frame {rgb.shape}")
    instances, instance_ids = instance_groups(panoptic)
    grey = np.asarray(Image.fromarray(rgb8).convert("L"))
    gabor = gabor_features(grey, gabor_mode).reshape(height * width, -1).astype(np.float64)
    groups = {
        "instances": instances,
        "rgb": _relabel(_kmeans(rgb.reshape(-1, 3), k, seed, n_init=1).reshape(height, width)),
        "gabor": _relabel(_kmeans(gabor, k, seed).reshape(height, width)),
        **grid_groups(height, width, tuple(grid)),
        "instances_ids": instance_ids,
    }
    params = {"k": k, "grid": list(grid), "gabor_mode": gabor_mode, "seed": seed}
    groups["params_json"] = np.array(json.dumps(params, sort_keys=True))
    return groups
