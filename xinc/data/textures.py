"""Texture sources for the synthetic dataset: photos bundled with scikit-image.

scikit-image (a dependency of xinc) ships `gravel`, `brick`, `grass` (CC0 textures), `chelsea`,
`coffee` (CC0), `astronaut`, `rocket` (public domain) and the `horse` silhouette inside its
wheel, so they load offline.
"""

from __future__ import annotations

import functools

import numpy as np
from skimage import data

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
GREYS = ("gravel", "brick", "grass")


@functools.cache
def load_textures() -> dict[str, np.ndarray]:
    """uint8 [H, W, 3] images by name (GREYS + PHOTOS) and "horse" (bool [H, W], True on it)."""
    out = {name: _rgb(getattr(data, name)()) for name in GREYS + PHOTOS}
    out["horse"] = ~data.horse()  # scikit-image draws the horse as False
    return out


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]


def tile(src: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """`src` repeated over `shape`, mirrored every other tile (seamless), from a random offset."""
    def mirrored(n: int, size: int) -> np.ndarray:
        i = (int(rng.integers(2 * n)) + np.arange(size)) % (2 * n)
        return np.where(i < n, i, 2 * n - 1 - i)

    rows, cols = mirrored(src.shape[0], shape[0]), mirrored(src.shape[1], shape[1])
    return src[rows[:, None], cols[None, :]]


def tinted(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Luminance of `img` times `color` (128 grey keeps the colour)."""
    lum = img.astype(np.float32).mean(axis=-1, keepdims=True) / 128.0
    return np.clip(lum * np.asarray(color, np.float32), 0, 255).astype(np.uint8)


def sky(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Vertical blue gradient with light noise."""
    f = np.linspace(0.0, 1.0, shape[0], dtype=np.float32)[:, None, None]
    top, bottom = np.array([70, 120, 190], np.float32), np.array([185, 210, 235], np.float32)
    img = top + f * (bottom - top) + rng.normal(0.0, 3.0, (*shape, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def fit(src: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of `src` with the aspect of `shape`, resampled (nearest) to `shape`."""
    sh, sw = src.shape[:2]
    scale = rng.uniform(0.4, 1.0) * min(sh / shape[0], sw / shape[1])
    ch, cw = max(1, int(shape[0] * scale)), max(1, int(shape[1] * scale))
    y0, x0 = int(rng.integers(sh - ch + 1)), int(rng.integers(sw - cw + 1))
    rows = y0 + (np.arange(shape[0]) * ch) // shape[0]
    cols = x0 + (np.arange(shape[1]) * cw) // shape[1]
    return src[rows[:, None], cols[None, :]]
