"""Byte formats of the explorer's files (docs/formats.md §11): deflated little-endian arrays in
base64, 8-bit palette PNGs, map atlases and the `.js` data files the page loads with <script>."""

from __future__ import annotations

import base64
import io
import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from xinc.io import atomic_path

__all__ = ["SHARE_MAX", "atlas", "id_dtype", "js_number", "pack", "png_bytes",
           "quantise_share", "quantise_signed", "quantise_unsigned", "rgb_png_bytes",
           "write_bytes", "write_js", "write_png"]

ZLIB_LEVEL = 6  # zlib's default: level 9 is several times slower for hardly smaller files
SHARE_MAX = 10000  # a share in [0, 1] is stored as round(share · SHARE_MAX): 0.01 % steps


def id_dtype(n_neurons: int) -> np.dtype:
    """Smallest unsigned type whose maximum (the "no neuron" marker) exceeds every id
    0 … N − 1: uint8 up to 255 neurons, uint16 up to 65,535, else uint32."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n_neurons <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{n_neurons} neurons do not fit uint32 ids")


def pack(array: np.ndarray) -> dict[str, Any]:
    """{"dtype", "shape", "planes", "data"}: the C-order little-endian bytes, zlib-deflated
    (RFC 1950, ZLIB_LEVEL), base64 — what `DecompressionStream("deflate")` inflates in the
    browser. With `planes` (multi-byte types, when it deflates smaller) the bytes are stored
    as byte planes: every element's byte 0, then every byte 1, … (a shuffle filter)."""
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<")
    raw = np.frombuffer(array.astype(dtype, copy=False).tobytes(), np.uint8)
    plain = zlib.compress(raw.tobytes(), ZLIB_LEVEL)
    planes = None
    if dtype.itemsize > 1:
        planes = zlib.compress(raw.reshape(-1, dtype.itemsize).T.tobytes(), ZLIB_LEVEL)
    use_planes = planes is not None and len(planes) < len(plain)
    return {"dtype": dtype.name, "shape": list(array.shape), "planes": use_planes,
            "data": base64.b64encode(planes if use_planes else plain).decode("ascii")}


def quantise_signed(maps: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Palette indices of signed maps [n, H, W]: round(127.5 + 127.5·C/s) clipped to 0 … 255,
    s = `scale[n]` (a map with s = 0 is all 128). Decoded C = (index − 127.5)/127.5 · s, off by
    at most s/255."""
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)[:, None, None]
    index = np.rint(127.5 + 127.5 * maps.astype(np.float64) / safe)
    return np.clip(index, 0, 255).astype(np.uint8)


def quantise_share(share: np.ndarray) -> np.ndarray:
    """uint16 round(SHARE_MAX · share) of shares in [0, 1] (clipped)."""
    return np.rint(np.clip(share, 0.0, 1.0) * SHARE_MAX).astype(np.uint16)


def quantise_unsigned(values: np.ndarray, vmax: float) -> np.ndarray:
    """Palette indices round(255·v/vmax) clipped to 0 … 255 (all 0 when vmax = 0)."""
    if vmax <= 0:
        return np.zeros(values.shape, np.uint8)
    return np.clip(np.rint(255.0 * values.astype(np.float64) / vmax), 0, 255).astype(np.uint8)


def atlas(tiles: np.ndarray, fill: int = 128) -> tuple[np.ndarray, int, int]:
    """(image [rows·H, cols·W], cols, rows) with tile i at row i // cols, column i % cols;
    cols = ⌈√(n·H/W)⌉ (a roughly square atlas), unused cells `fill`. No tiles: one fill cell."""
    n, height, width = tiles.shape
    cols = max(1, math.ceil(math.sqrt(n * height / width)))
    rows = max(1, math.ceil(n / cols))
    image = np.full((rows * height, cols * width), fill, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        image[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    return image, cols, rows


def png_bytes(index: np.ndarray, palette: np.ndarray, alpha: np.ndarray | None = None
              ) -> bytes:
    """An 8-bit palette PNG (mode "P") of `index` [H, W] uint8 with `palette` [256, 3] uint8
    (and `alpha` [256] uint8 per index, a tRNS chunk): no metadata chunks, ZLIB_LEVEL, so
    equal inputs give equal bytes."""
    image = Image.frombytes("P", (index.shape[1], index.shape[0]),
                            np.ascontiguousarray(index, np.uint8).tobytes())
    image.putpalette(np.ascontiguousarray(palette, np.uint8).tobytes())
    options = {} if alpha is None else {"transparency": np.asarray(alpha, np.uint8).tobytes()}
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=ZLIB_LEVEL, optimize=False, **options)
    return out.getvalue()


def rgb_png_bytes(image: np.ndarray) -> bytes:
    """A truecolour PNG of `image` [H, W, 3] uint8 (ZLIB_LEVEL, no metadata chunks)."""
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8), "RGB").save(
        out, format="PNG", compress_level=ZLIB_LEVEL, optimize=False)
    return out.getvalue()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_png(path: str | Path, index: np.ndarray, palette: np.ndarray,
              alpha: np.ndarray | None = None) -> None:
    write_bytes(path, png_bytes(index, palette, alpha))


def js_number(value: float) -> float:
    """A float rounded to 7 significant digits (float32 precision) for the JSON of a .js file."""
    return float(f"{float(value):.7g}")


def write_js(path: str | Path, call: str, *args: Any) -> None:
    """`call(arg, …);` with each argument as compact JSON (keys sorted): the page's data files
    are scripts, since a page opened from file:// may not fetch() its neighbours."""
    text = ", ".join(json.dumps(a, sort_keys=True, separators=(",", ":"), allow_nan=False)
                     for a in args)
    with atomic_path(path) as tmp:
        tmp.write_text(f"{call}({text});\n", encoding="utf-8")
