"""The synthetic video scene (docs/spec/datasets.md §4), labelled in the common panoptic encoding.

Stuff is horizontal bands with irregular boundaries in a world one pixel wider per frame than
the view, which pans 1 px/frame. Things are textured sprites with constant velocity and slight
scaling, painted back to front (z-ordered occlusion). The nearest sprite (a car) has instance
id 0; another one enters or leaves the view; a thin static object (narrower than the gaps
between the columns a nearest resize samples) vanishes at working resolution. Crowd regions
carry the label CROWD (void in the common encoding); void regions carry VOID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xinc.data import textures as tx
from xinc.data.resize import nearest_indices

VOID = -1
CROWD = -2

#: Sprite size (h, w) relative to the frame height, per kind.
_SPRITE_SIZE = {"car": (0.22, 0.45), "person": (0.4, 0.15), "dog": (0.22, 0.3)}
_SPRITE_PHOTO = {"car": ("rocket", "coffee"), "person": ("astronaut",), "dog": ("chelsea",)}


@dataclass(frozen=True)
class Palette:
    """The dataset categories a scene uses."""

    bands: tuple[tuple[int, str], ...]  # (category id, texture) from top to bottom
    things: dict[str, int]  # sprite kind -> category id; the first kind is the instance-0 one
    crowd: int | None  # category of the crowd region, None for no crowd region
    ego_void: bool  # a static void region at the bottom (Cityscapes' ego vehicle)
    max_inst: int  # instance ids are below this


@dataclass(frozen=True)
class Sprite:
    """A textured thing with a constant velocity and a linear size change."""

    pan_id: int
    mask: np.ndarray  # bool template [th, tw]
    texture: np.ndarray  # uint8 template [th, tw, 3]
    size: tuple[float, float]  # (h, w) in pixels at the first frame
    start: tuple[float, float]  # centre (y, x) at the first frame
    end: tuple[float, float]  # centre (y, x) at the last frame
    growth: float  # relative size change from the first to the last frame

    def paint(self, rgb: np.ndarray, pan: np.ndarray, f: float) -> None:
        """Paint onto the frame at clip fraction `f` in [0, 1]."""
        s = 1.0 + self.growth * f
        hh, ww = max(1, round(self.size[0] * s)), max(1, round(self.size[1] * s))
        cy = self.start[0] + (self.end[0] - self.start[0]) * f
        cx = self.start[1] + (self.end[1] - self.start[1]) * f
        top, left = round(cy - hh / 2), round(cx - ww / 2)
        y0, y1 = max(top, 0), min(top + hh, pan.shape[0])
        x0, x1 = max(left, 0), min(left + ww, pan.shape[1])
        if y0 >= y1 or x0 >= x1:
            return
        th, tw = self.mask.shape
        rows = ((np.arange(y0, y1) - top) * th // hh)[:, None]
        cols = ((np.arange(x0, x1) - left) * tw // ww)[None, :]
        m = self.mask[rows, cols]
        rgb[y0:y1, x0:x1][m] = self.texture[rows, cols][m]
        pan[y0:y1, x0:x1][m] = self.pan_id


@dataclass(frozen=True)
class Scene:
    """A rendered-on-demand clip: panning world, sprites and a static overlay."""

    world_rgb: np.ndarray  # uint8 [H, W + T, 3]
    world_pan: np.ndarray  # int32 [H, W + T]
    sprites: tuple[Sprite, ...]  # back to front
    overlay: np.ndarray  # bool [H, W], static void in front of everything
    overlay_rgb: np.ndarray  # uint8 [H, W, 3]
    n_frames: int
    inst0_id: int  # pan id of the thing with instance id 0
    thin_id: int  # pan id of the thin object
    exit_id: int  # pan id of the thing that enters or leaves the view

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 [H, W, 3] and panoptic int32 [H, W] (common encoding + CROWD) of frame t."""
        width = self.overlay.shape[1]
        rgb = self.world_rgb[:, t:t + width].copy()
        pan = self.world_pan[:, t:t + width].copy()
        f = t / max(self.n_frames - 1, 1)
        for sprite in self.sprites:
            sprite.paint(rgb, pan, f)
        rgb[self.overlay] = self.overlay_rgb[self.overlay]
        pan[self.overlay] = VOID
        return rgb, pan


def _boundary(
    rng: np.random.Generator, height: int, width: int, base: float, blocky: bool
) -> np.ndarray:
    """Row of a band boundary per world column: a skyline (blocky) or a gentle wave."""
    x = np.arange(width)
    if blocky:
        edges = np.cumsum(rng.uniform(0.06, 0.2, 64) * width).astype(int)
        levels = rng.uniform(-0.08, 0.08, 65) * height
        offset = levels[np.searchsorted(edges, x, side="right")]
    else:
        periods = rng.uniform(0.5, 1.5, 2) * width
        phases = rng.uniform(0, 2 * np.pi, 2)
        offset = height * (0.025 * np.sin(2 * np.pi * x / periods[0] + phases[0])
                           + 0.012 * np.sin(2 * np.pi * x / periods[1] + phases[1]))
    return (base + rng.uniform(-0.03, 0.03)) * height + offset


def _band_texture(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    tex = tx.load_textures()
    if kind == "sky":
        return tx.sky(shape, rng)
    source, color = {
        "building": ("brick", (150, 120, 110)), "wall": ("brick", (140, 140, 150)),
        "vegetation": ("grass", (80, 150, 60)), "grass": ("grass", (100, 170, 70)),
        "sidewalk": ("gravel", (190, 170, 180)), "road": ("gravel", (120, 115, 125)),
    }[kind]
    return tx.tinted(tx.tile(tex[source], shape, rng), color)


def _ellipse(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0


def _sprite_mask(kind: str, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    if kind == "dog":
        horse = tx.load_textures()["horse"]
        rows, cols = np.flatnonzero(horse.any(1)), np.flatnonzero(horse.any(0))
        horse = horse[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        ri = np.arange(h) * horse.shape[0] // h
        ci = np.arange(w) * horse.shape[1] // w
        return horse[ri[:, None], ci[None, :]]
    yy, xx = np.mgrid[:h, :w]
    ny, nx = (yy + 0.5) / h * 2 - 1, (xx + 0.5) / w * 2 - 1
    if kind == "car":
        return (np.abs(nx) ** 4 + np.abs(ny) ** 4) <= 1.0
    body = ((ny - 0.25) / 0.75) ** 2 + (nx / 0.9) ** 2 <= 1.0
    head = ((ny + 0.72) / 0.26) ** 2 + (nx / 0.5) ** 2 <= 1.0
    return body | head


def _sprite(rng: np.random.Generator, kind: str, pan_id: int, height: int, scale: float,
            start: tuple[float, float], end: tuple[float, float], growth: float) -> Sprite:
    size = (_SPRITE_SIZE[kind][0] * height * scale, _SPRITE_SIZE[kind][1] * height * scale)
    big = max(1.0, 1.0 + growth)
    shape = (max(4, int(np.ceil(size[0] * big))), max(4, int(np.ceil(size[1] * big))))
    photo = tx.load_textures()[str(rng.choice(_SPRITE_PHOTO[kind]))]
    return Sprite(pan_id, _sprite_mask(kind, shape), tx.fit(photo, shape, rng), size, start, end,
                  growth)


def _thin_columns(width_crop: int, width_work: int, left: int, width: int,
                  rng: np.random.Generator) -> tuple[int, int]:
    """(first native column, width) of a run of columns a nearest resize never samples."""
    sampled = np.zeros(width_crop, bool)
    sampled[nearest_indices(width_crop, width_work)] = True
    gaps = [c for c in range(1, width_crop)
            if not sampled[c] and sampled[c - 1] and 0.3 * width <= c + left <= 0.7 * width]
    if not gaps:
        raise ValueError(f"a {width_crop}->{width_work} nearest resize leaves no column gap")
    first = int(rng.choice(gaps))
    run = 1
    while run < 7 and first + run < width_crop and not sampled[first + run]:
        run += 1
    return first + left, run


def build_scene(rng: np.random.Generator, palette: Palette, size: tuple[int, int],
                n_frames: int, crop_box: list[int], working_width: int) -> Scene:
    """A random scene of `n_frames` frames of `size` (H, W); the thin object is placed so that
    it vanishes when the `crop_box` ([top, left, h, w]) is resized to `working_width` columns."""
    height, width = size
    world_w = width + n_frames
    rows = np.arange(height)[:, None]
    bases = np.linspace(0.3, 0.62, len(palette.bands) - 1)
    bounds = [_boundary(rng, height, world_w, b, blocky=(i == 0)) for i, b in enumerate(bases)]
    for i in range(1, len(bounds)):
        bounds[i] = np.maximum(bounds[i], bounds[i - 1] + 2)
    band = sum((rows >= b[None, :]).astype(np.int64) for b in bounds)
    world_rgb = np.zeros((height, world_w, 3), np.uint8)
    world_pan = np.zeros((height, world_w), np.int32)
    for k, (cat, kind) in enumerate(palette.bands):
        sel = band == k
        world_rgb[sel] = _band_texture(kind, (height, world_w), rng)[sel]
        world_pan[sel] = cat * 1000

    photos = tx.load_textures()
    always = (n_frames + 0.1 * width, width - 0.1 * width)  # world columns visible in every frame
    void = _ellipse((height, world_w), (0.36 * height, rng.uniform(*always)),
                    (0.05 * height, 0.035 * width))
    world_rgb[void] = tx.tinted(tx.tile(photos["gravel"], (height, world_w), rng)[void],
                                (40, 40, 45))
    world_pan[void] = VOID
    if palette.crowd is not None:
        crowd = _ellipse((height, world_w), (0.56 * height, rng.uniform(*always)),
                         (0.07 * height, 0.06 * width))
        world_rgb[crowd] = tx.tile(photos["astronaut"], (height, world_w), rng)[crowd]
        world_pan[crowd] = CROWD

    overlay = np.zeros((height, width), bool)
    if palette.ego_void:
        arc = 1.0 - ((np.arange(width) - width / 2) / (width / 2)) ** 2
        overlay = rows >= ((0.94 - 0.04 * arc) * height)[None, :]
    overlay_rgb = tx.tinted(tx.tile(photos["gravel"], (height, width), rng), (30, 30, 35))

    kinds = list(palette.things)
    insts = rng.choice(np.arange(1, palette.max_inst), size=3, replace=False)
    first = kinds[0]
    car = _sprite(rng, first, palette.things[first] * 1000, height, 1.0,
                  (0.76 * height, 0.55 * width), (0.76 * height, 0.42 * width),
                  float(rng.uniform(-0.15, 0.15)))
    kind = str(rng.choice(kinds))
    w_exit = _SPRITE_SIZE[kind][1] * height * 1.1
    inside = 0.25 * width
    outside = inside + (width + 0.6 * w_exit - inside) / 0.75  # out of view for a quarter clip
    leave = bool(rng.integers(2))
    y_exit = (0.70 + rng.uniform(-0.03, 0.03)) * height
    mover = _sprite(rng, kind, palette.things[kind] * 1000 + int(insts[0]), height, 1.0,
                    (y_exit, inside if leave else outside), (y_exit, outside if leave else inside),
                    float(rng.uniform(-0.1, 0.1)))
    sprites = [mover, car]
    if rng.integers(2):
        kind = str(rng.choice(kinds))
        x0 = rng.uniform(0.1, 0.3) * width
        sprites.insert(0, _sprite(rng, kind, palette.things[kind] * 1000 + int(insts[1]), height,
                                  0.6, (0.6 * height, x0),
                                  (0.6 * height, x0 + rng.uniform(-0.1, 0.2) * width),
                                  float(rng.uniform(-0.1, 0.1))))

    top, left, crop_h, crop_w = crop_box
    x_thin, w_thin = _thin_columns(crop_w, working_width, left, width, rng)
    h_thin = max(3, round(0.25 * crop_h))
    y_thin = top + round(0.3 * crop_h)
    thin_id = palette.things["person"] * 1000 + int(insts[2])
    thin_tex = tx.tinted(tx.tile(photos["gravel"], (h_thin, w_thin), rng), (60, 50, 50))
    sprites.append(Sprite(thin_id, np.ones((h_thin, w_thin), bool), thin_tex, (h_thin, w_thin),
                          (y_thin + h_thin / 2, x_thin + w_thin / 2),
                          (y_thin + h_thin / 2, x_thin + w_thin / 2), 0.0))
    return Scene(world_rgb, world_pan, tuple(sprites), overlay, overlay_rgb, n_frames,
                 inst0_id=car.pan_id, thin_id=thin_id, exit_id=mover.pan_id)
