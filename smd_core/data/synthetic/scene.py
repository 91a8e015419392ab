"""Scene description: a random stack of planar layers (wall, ground, objects, thin structures).

Each layer is a shape (`shapes`) on a disparity plane d(x, y) in the LEFT image frame, with a texture
(`textures`) and a shading ramp; `build_scene` draws them all from one random generator in a fixed
order, so a seed always gives the same scene. `scene_options` validates the options of `render_scene`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from smd_core.data.synthetic.shapes import SHAPE_KINDS, SHAPE_WEIGHTS, THIN_SHAPES, THIN_WEIGHTS, Shape, random_shape
from smd_core.data.synthetic.textures import TEXTURE_KINDS, TEXTURE_WEIGHTS, make_texture


@dataclasses.dataclass
class Layer:
    """A planar surface patch in the left frame; `pose(layer, t)` places it in frame t of a sequence."""

    ident: int
    shape: Shape | None
    # Disparity plane around the reference point: d = disp + slope_x (x - ref_x) + slope_y (y - ref_y).
    ref: tuple[float, float]
    disp: float
    slope: tuple[float, float]
    texture: np.ndarray
    tex_affine: np.ndarray  # left-frame point (x, y) -> texture pixel: tex_affine @ (x - origin_x, y - origin_y, 1)
    origin: tuple[float, float]
    shading: tuple[float, float]
    # Motion (sequences): translation velocity (px / frame) and a bounded disparity oscillation.
    velocity: tuple[float, float] = (0.0, 0.0)
    disp_amp: float = 0.0
    disp_freq: float = 0.0
    disp_phase: float = 0.0


@dataclasses.dataclass
class Posed:
    """A layer placed in one frame: plane d = a x + b y + c in absolute left coordinates."""

    layer: Layer
    shift: tuple[float, float]
    a: float
    b: float
    c: float


def pose(layer: Layer, t: float) -> Posed:
    """`layer` moved to frame `t` (translation and disparity oscillation of sequences)."""
    sx, sy = layer.velocity[0] * t, layer.velocity[1] * t
    disp = layer.disp + layer.disp_amp * (math.sin(layer.disp_freq * t + layer.disp_phase) - math.sin(layer.disp_phase))
    a, b = layer.slope
    rx, ry = layer.ref[0] + sx, layer.ref[1] + sy
    return Posed(layer, (sx, sy), a, b, disp - a * rx - b * ry)


def fit_slopes(rng: np.random.Generator, centre: float, half_w: float, half_h: float, lo: float, hi: float,
               max_slope: float) -> tuple[float, float]:
    """Random slopes (a, b) keeping centre +- (|a| half_w + |b| half_h) inside [lo, hi]."""
    a, b = rng.uniform(-max_slope, max_slope, size=2)
    if rng.random() < 0.35:  # plenty of fronto-parallel surfaces, as in man-made scenes
        a, b = 0.0, 0.0
    room = min(centre - lo, hi - centre)
    spread = abs(a) * half_w + abs(b) * half_h
    if spread > room:
        k = max(room, 0.0) / spread
        a, b = a * k, b * k
    return float(a), float(b)


@dataclasses.dataclass
class SceneOptions:
    """Validated scene options (see `render_scene` for their meaning)."""

    height: int
    width: int
    max_disparity: float
    min_disparity: float
    num_objects: int | None
    num_thin: int | None
    ground_plane: bool | None
    textures: tuple[str, ...]
    max_slope: float
    shapes: tuple[str, ...] = SHAPE_KINDS


# Keyword options of `render_scene` that describe the scene (besides size and disparity range).
SCENE_OPTION_NAMES = ("min_disparity", "num_objects", "num_thin", "ground_plane", "textures", "max_slope", "shapes")


def _kinds(value: tuple[str, ...] | list[str] | str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    kinds = (value,) if isinstance(value, str) else tuple(value)
    bad = [k for k in kinds if k not in allowed]
    if not kinds or bad:
        raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {kinds}")
    return kinds


def scene_options(height: int, width: int, max_disparity: float, min_disparity: float | None = None,
                  num_objects: int | None = None, num_thin: int | None = None, ground_plane: bool | None = None,
                  textures: tuple[str, ...] | list[str] | str = TEXTURE_KINDS, max_slope: float = 0.15,
                  shapes: tuple[str, ...] | list[str] | str | None = None) -> SceneOptions:
    """Check the scene options of `render_scene` (clear ValueError naming the bad value) and fill defaults."""
    if int(height) < 8 or int(width) < 8:
        raise ValueError(f"height and width must be >= 8, got {height}x{width}")
    if not max_disparity > 0:
        raise ValueError(f"max_disparity must be > 0, got {max_disparity}")
    lo = 0.05 * float(max_disparity) if min_disparity is None else float(min_disparity)
    if not 0 < lo < float(max_disparity):
        raise ValueError(f"need 0 < min_disparity < max_disparity, got {lo} and {max_disparity}")
    if num_objects is not None and num_objects < 0:
        raise ValueError(f"num_objects must be >= 0, got {num_objects}")
    if num_thin is not None and num_thin < 0:
        raise ValueError(f"num_thin must be >= 0, got {num_thin}")
    kinds = _kinds(textures, TEXTURE_KINDS, "textures")
    if not 0 <= max_slope < 0.9:
        raise ValueError(f"max_slope must be in [0, 0.9), got {max_slope}")
    shape_kinds = _kinds(SHAPE_KINDS if shapes is None else shapes, SHAPE_KINDS, "shapes")
    return SceneOptions(int(height), int(width), float(max_disparity), lo, num_objects, num_thin, ground_plane,
                        kinds, float(max_slope), shape_kinds)


def options_from(height: int, width: int, max_disparity: float,
                 options: Mapping[str, Any]) -> tuple[SceneOptions, bool]:
    """(SceneOptions, photometric) of `render_scene`'s keyword options; ValueError naming unknown ones."""
    options = dict(options)
    photometric = bool(options.pop("photometric", True))
    if unknown := sorted(set(options) - set(SCENE_OPTION_NAMES)):
        raise ValueError(f"unknown options {unknown}; expected some of {SCENE_OPTION_NAMES} or photometric")
    return scene_options(height, width, max_disparity, **options), photometric


def background_disparity(layers: list[Layer], x: float, y: float) -> float:
    """Disparity of the nearest background plane (wall / ground) at left pixel (x, y)."""
    return max(layer.disp + layer.slope[0] * (x - layer.ref[0]) + layer.slope[1] * (y - layer.ref[1])
               for layer in layers if layer.shape is None)


def weighted_choice(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """One key of `weights`, drawn with probability proportional to its value (one uniform draw)."""
    keys = list(weights)
    cum = np.cumsum([weights[k] for k in keys])
    return keys[min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(keys) - 1)]


def _texture_for(rng: np.random.Generator, h: float, w: float, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A texture of a kind drawn from `kinds` (by TEXTURE_WEIGHTS) for a region of h x w left pixels."""
    kind = weighted_choice(rng, {k: TEXTURE_WEIGHTS[k] for k in kinds})
    return make_texture(rng, kind, int(math.ceil(h)) + 4, int(math.ceil(w)) + 4)


def _shading(rng: np.random.Generator, opt: SceneOptions) -> tuple[float, float]:
    """A gentle linear brightness ramp (relative change per left pixel in x and y)."""
    g = rng.uniform(0.0, 0.6) / max(opt.height, opt.width)
    ang = rng.uniform(0, 2 * math.pi)
    return g * math.cos(ang), g * math.sin(ang)


def _motion(rng: np.random.Generator, opt: SceneOptions, motion: float, disp: float, spread: float) -> dict[str, Any]:
    """Layer motion fields for sequences (none when `motion` is 0): velocity and a disparity oscillation
    that keeps the plane (centre disparity `disp` +- `spread`) inside the disparity range."""
    if motion <= 0:
        return {}
    lo, hi = opt.min_disparity, opt.max_disparity
    speed = motion * rng.uniform(0.3, 2.5) * min(opt.height, opt.width) / 480.0
    ang = rng.uniform(0, 2 * math.pi)
    room = max(min(disp - spread - lo, hi - disp - spread), 0.0)
    return {"velocity": (speed * math.cos(ang), 0.5 * speed * math.sin(ang)),
            "disp_amp": min(room, 0.05 * (hi - lo) * motion) * rng.uniform(0.2, 1.0),
            "disp_freq": rng.uniform(0.02, 0.1) * motion, "disp_phase": rng.uniform(0, 2 * math.pi)}


def _background(rng: np.random.Generator, opt: SceneOptions) -> list[Layer]:
    """The wall (covering all both views see) and, optionally, a ground plane slanting towards the camera."""
    H, W = opt.height, opt.width
    lo, hi = opt.min_disparity, opt.max_disparity
    span = hi - lo
    # Background wall: covers the left image and everything the right view can see (x up to W + hi).
    wall_w, wall_h = W + hi + 8, H + 8
    wall_d = lo + rng.uniform(0.0, 0.3) * span
    a, b = fit_slopes(rng, wall_d, wall_w / 2, wall_h / 2, lo, lo + 0.45 * span, opt.max_slope * 0.5)
    tex, aff = _texture_for(rng, wall_h, wall_w, opt.textures)
    layers = [Layer(0, None, (W / 2 + hi / 2, H / 2), wall_d, (a, b), tex, aff, (-4.0, -4.0), _shading(rng, opt))]

    # Ground plane: disparity grows towards the bottom; the z-buffer cuts it at the wall.
    if opt.ground_plane if opt.ground_plane is not None else rng.random() < 0.5:
        horizon = rng.uniform(0.25, 0.7) * H
        d_bottom = wall_d + rng.uniform(0.15, 0.5) * span
        d_bottom = min(d_bottom, hi)
        gb = (d_bottom - (wall_d - 0.02 * span)) / max(H - 1 - horizon, 1.0)
        ga = rng.uniform(-0.3, 0.3) * gb
        # Keep the plane below `hi` along the bottom row for every x the views see.
        ga = float(np.clip(ga, -(hi - d_bottom) / (W + hi), (hi - d_bottom) / (W + hi)))
        kinds = tuple(k for k in opt.textures if k != "gradient") or opt.textures
        tex, aff = _texture_for(rng, wall_h, wall_w, kinds)
        layers.append(Layer(len(layers), None, (W / 2, H - 1.0), d_bottom, (ga, gb), tex, aff, (-4.0, -4.0),
                            _shading(rng, opt)))
    return layers


def _object(rng: np.random.Generator, opt: SceneOptions, layers: list[Layer], kind: str, motion: float) -> Layer:
    """A foreground layer of shape `kind`, placed in front of (or sometimes sunk into) the background."""
    H, W = opt.height, opt.width
    lo, hi = opt.min_disparity, opt.max_disparity
    span = hi - lo
    cx, cy = rng.uniform(-0.1 * W, 1.1 * W), rng.uniform(-0.1 * H, 1.1 * H)
    shape = random_shape(rng, kind, cx, cy, H, W, hi)
    x0, y0, x1, y1 = shape.bounds()
    hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
    # Mostly in front of the background at the object's centre; sometimes anywhere, so objects also
    # sink into the wall or the ground (intersecting planes).
    base = lo if rng.random() < 0.15 else max(background_disparity(layers, (x0 + x1) / 2, (y0 + y1) / 2), lo)
    d = base + (hi - base) * (0.03 + 0.97 * rng.random() ** 0.8)
    d = float(np.clip(d, lo + 1e-3 * span, hi - 1e-3 * span))
    a, b = fit_slopes(rng, d, hw, hh, lo, hi, opt.max_slope)
    spread = abs(a) * hw + abs(b) * hh
    # Photos make poor textures for a few-pixel-wide structure.
    kinds = opt.textures
    if kind in THIN_SHAPES:
        kinds = tuple(k for k in opt.textures if k != "image") or opt.textures
    tex, aff = _texture_for(rng, y1 - y0, x1 - x0, kinds)
    return Layer(len(layers), shape, ((x0 + x1) / 2, (y0 + y1) / 2), d, (a, b), tex, aff, (x0 - 2.0, y0 - 2.0),
                 _shading(rng, opt), **_motion(rng, opt, motion, d, spread))


def build_scene(rng: np.random.Generator, opt: SceneOptions, motion: float) -> list[Layer]:
    """All layers of one scene, background first; `motion` > 0 gives objects velocities (sequences)."""
    layers = _background(rng, opt)
    n_obj = int(rng.integers(5, 15)) if opt.num_objects is None else opt.num_objects
    n_thin = int(rng.integers(1, 5)) if opt.num_thin is None else opt.num_thin
    specs = [weighted_choice(rng, {k: SHAPE_WEIGHTS[k] for k in opt.shapes}) for _ in range(n_obj)]
    specs += [weighted_choice(rng, THIN_WEIGHTS) for _ in range(n_thin)]
    for kind in specs:
        layers.append(_object(rng, opt, layers, kind, motion))
    return layers
