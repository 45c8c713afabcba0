"""Writers of one frame's explorer files: the frame, its overlays, and each layer's data
(docs/formats.md §11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xinc.explorer.encode import (
    SHARE_MAX,
    atlas,
    id_dtype,
    js_number,
    pack,
    quantise_share,
    quantise_signed,
    quantise_unsigned,
    rgb_png_bytes,
    write_bytes,
    write_js,
    write_png,
)
from xinc.explorer.layer import LayerView
from xinc.explorer.palettes import palette

__all__ = ["write_frame", "write_layer"]

OTHER_INDEX = 255  # palette index of the instances overlay's "other" (void) pixels
ADD = "XINC.add"  # the page's loader: XINC.add(path of the file, data)


def _rgb8(image: np.ndarray) -> np.ndarray:
    """uint8 RGB of a working-resolution frame (float frames: clipped to [0, 1], rounded)."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.rint(np.clip(image.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def _instance_index(labels: np.ndarray, pan_ids: np.ndarray) -> np.ndarray:
    """Palette indices of the instances overlay: a colour per panoptic id (the same over the
    video's frames), OTHER_INDEX for "other"."""
    colour = np.where(pan_ids < 0, OTHER_INDEX, (pan_ids * 7 + pan_ids // 1000) % 60)
    return colour.astype(np.uint8)[labels]


def _grid_edges(cells: np.ndarray) -> np.ndarray:
    """1 on the first row and column of every grid cell (the cell borders), else 0."""
    edge = np.zeros(cells.shape, np.uint8)
    edge[1:] |= (cells[1:] != cells[:-1]).astype(np.uint8)
    edge[:, 1:] |= (cells[:, 1:] != cells[:, :-1]).astype(np.uint8)
    return edge


def write_frame(folder: Path, key: str, image: np.ndarray, groups: Mapping[str, np.ndarray],
                segments: Sequence[dict[str, Any]]) -> None:
    """frame.png (the RGB frame), the overlays instances/rgb/gabor/grid.png (palette PNGs:
    label colours; grid: white cell borders, transparent elsewhere) and frame.js (the
    instances label map and its segments, for the segment under a clicked pixel)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / "frame.png", rgb_png_bytes(_rgb8(image)))
    labels = palette("labels")
    instances = np.asarray(groups["instances"])
    pan_ids = np.asarray(groups["instances_ids"], np.int64)
    write_png(folder / "instances.png", _instance_index(instances, pan_ids), labels)
    for name in ("rgb", "gabor"):
        write_png(folder / f"{name}.png", (np.asarray(groups[name]) % OTHER_INDEX)
                  .astype(np.uint8), labels)
    alpha = np.zeros(256, np.uint8)
    alpha[1] = 255
    write_png(folder / "grid.png", _grid_edges(np.asarray(groups["grid_contiguous"])),
              np.full((256, 3), 255, np.uint8), alpha)
    write_js(folder / "frame.js", ADD, key, {
        "height": int(instances.shape[0]), "width": int(instances.shape[1]),
        "instances": pack(instances.astype(id_dtype(len(pan_ids)))),
        "segments": list(segments),
    })


def _scaled_png(path: Path, values: np.ndarray) -> dict[str, Any]:
    """A sequential-palette PNG of values ≥ 0 scaled by their maximum; returns its legend."""
    vmax = float(np.max(values)) if values.size else 0.0
    write_png(path, quantise_unsigned(values, vmax), palette("sequential"))
    return {"file": path.name, "max": js_number(vmax)}


def write_layer(folder: Path, key: str, view: LayerView, stats: Mapping[str, np.ndarray]
                ) -> None:
    """{layer}.js (top-k ids and shares, kept maps' ids and scales, legends),
    {layer}_maps.png (the atlas of kept maps), {layer}_heat.png, {layer}_npp10/50.png."""
    layer = view.layer
    peak = np.abs(view.maps).reshape(len(view.maps), -1).max(1) if len(view.maps) else []
    scale = np.array([js_number(s) for s in peak], np.float64)  # as the page reads it
    image, cols, rows = atlas(quantise_signed(view.maps, scale))
    write_png(folder / f"{layer}_maps.png", image, palette("diverging"))
    dtype = id_dtype(view.neurons)
    ids = np.where(view.ids < 0, np.iinfo(dtype).max, view.ids).astype(dtype)
    share = quantise_share(view.shares)
    write_js(folder / f"{layer}.js", ADD, key, {
        "layer": layer, "neurons": view.neurons, "k": int(view.ids.shape[0]),
        "height": int(view.ids.shape[1]), "width": int(view.ids.shape[2]),
        "ids": pack(ids), "shares": pack(share), "share_max": SHARE_MAX,
        "maps": {"file": f"{layer}_maps.png", "cols": cols, "rows": rows,
                 "ids": view.kept, "sources": view.sources,
                 "scale": scale.tolist()},
        "heat": _scaled_png(folder / f"{layer}_heat.png", np.asarray(stats["heat"])),
        "npp10": _scaled_png(folder / f"{layer}_npp10.png",
                             np.asarray(stats["neurons_per_pixel_10"])),
        "npp50": _scaled_png(folder / f"{layer}_npp50.png",
                             np.asarray(stats["neurons_per_pixel_50"])),
    })
