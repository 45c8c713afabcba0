"""Texture sources for the synthetic dataset: photos bundled with scikit-image, else procedural.

scikit-image ships `gravel`, `brick`, `grass` (CC0 textures), `chelsea`, `coffee` (CC0),
`astronaut`, `rocket` (public domain) and the `horse` silhouette inside its wheel, so they load
offline. Without scikit-image, seeded procedural stand-ins of the same names are used.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
GREYS = ("gravel", "brick", "grass")


@functools.cache
def load_textures(procedural: bool = False) -> dict[str, np.ndarray]:
    """uint8 [H, W, 3] images by name (GREYS + PHOTOS) and "horse" (bool [H, W], True on it)."""
    if not procedural:
        try:
            from skimage import data
        except ImportError:
            procedural = True
    if procedural:
        return _procedural()
    out = {name: _rgb(getattr(data, name)()) for name in GREYS + PHOTOS}
    out["horse"] = ~data.horse()  # scikit-image draws the horse as False
    return out


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img[..., :3]


def _noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [0, 1]: a random grid of `cells` bilinearly upsampled to `size`."""
    grid = Image.fromarray(rng.random(cells, dtype=np.float32), mode="F")
    return np.asarray(grid.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _octaves(
    rng: np.random.Generator, size: tuple[int, int], cells: list[tuple[int, int]]
) -> np.ndarray:
    """Sum of value-noise octaves (coarse to fine, weights 1, 1/2, ...), rescaled to [0, 1]."""
    total = sum(_noise(rng, size, c) / (i + 1) for i, c in enumerate(cells))
    return (total - total.min()) / (np.ptp(total) + 1e-6)


def _procedural() -> dict[str, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(20240601))
    n = 256
    out: dict[str, np.ndarray] = {}
    gravel = _octaves(rng, (n, n), [(8, 8), (32, 32), (128, 128)])
    out["gravel"] = _rgb((60 + 150 * gravel).astype(np.uint8))
    yy, xx = np.mgrid[:n, :n]
    course = yy // 16
    brick_id = course * 16 + (xx + 24 * (course % 2)) // 48
    shade = rng.uniform(90, 170, brick_id.max() + 1)[brick_id]
    mortar = (yy % 16 < 2) | ((xx + 24 * (course % 2)) % 48 < 2)
    brick = np.where(mortar, 210, shade) + 20 * _noise(rng, (n, n), (64, 64))
    out["brick"] = _rgb(np.clip(brick, 0, 255).astype(np.uint8))
    grass = _octaves(rng, (n, n), [(4, 64), (16, 128), (64, 256)])
    out["grass"] = _rgb((40 + 180 * grass).astype(np.uint8))
    for name in PHOTOS:
        chans = [_octaves(rng, (n, n), [(3, 3), (9, 9), (27, 27)]) for _ in range(3)]
        out[name] = (255 * np.stack(chans, axis=-1)).astype(np.uint8)
    hy, hx = np.mgrid[:160, :200] / np.array([160.0, 200.0])[:, None, None]
    body = ((hx - 0.45) / 0.3) ** 2 + ((hy - 0.45) / 0.18) ** 2 <= 1
    head = ((hx - 0.82) / 0.12) ** 2 + ((hy - 0.25) / 0.1) ** 2 <= 1
    legs = (hy > 0.45) & (hy < 0.95) & (((hx % 0.15) < 0.05) & (hx > 0.2) & (hx < 0.72))
    out["horse"] = body | head | legs
    return out


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
