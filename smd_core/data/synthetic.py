"""Procedural stereo pairs with exact disparity for both views: `smd synth`.

A scene is a stack of layers in the LEFT camera's pixel frame. Each layer has

- a shape (ellipse, box, star polygon; see-through ring, spoked wheel, fence / grid / window frame,
  perforated plate; thin pole, sagging wire; the background has none and covers everything), given by a
  signed distance function in left-image pixels. The see-through and thin shapes are where matchers
  produce flying pixels, so scenes contain plenty of them;
- a disparity plane d(x, y) = a x + b y + c (left-image pixels; slanted or fronto-parallel);
- an appearance: a texture image addressed through an affine map of the left coordinates, times a smooth
  shading ramp. Natural textures dominate (crops of the photographs bundled with scikit-image, 1/f
  noise, wood, woven cloth, multi-scale noise); periodic stripes / checkers and near-textureless
  gradients are a minority (TEXTURE_WEIGHTS).

Both views are rendered by forward geometry, so both disparity maps are exact:

- left view: pixel (x, y) shows the layer point at (x, y); its disparity is the plane value there;
- right view: a layer point at left x lands at x_r = x - d(x, y). For a plane that inverts in closed
  form, x = (x_r + b y + c) / (1 - a), so right pixel (x_r, y) shows the layer point at that x and
  its right-view disparity is d_R = x - x_r = (a x_r + b y + c) / (1 - a), again a plane.
  Shape, texture and shading are all evaluated at that left-frame point (texture through
  `cv2.remap`, i.e. bilinear at sub-pixel positions), so a surface point looks the same in both
  views up to resampling.

Occlusion is a per-pixel z-buffer in each view: the layer with the larger disparity wins. Layers are
composited back to front with anti-aliased edges (coverage from the signed distance); the ground
truth at a pixel is the front-most layer whose shape contains the pixel centre.

Photometric differences between the views (gain, per-channel gain, gamma, blur, sensor noise) are
applied last; `photometric=False` turns them off (then a right image resampled at x - d_left matches
the left image on non-occluded pixels, which the tests check).

Entry points: `render_scene`, `render_sequence` (objects move smoothly), `SyntheticDataset`
(on the fly, deterministic per index), `write_dataset` (PNG + NPY + list file) and the CLI
`smd synth --out DIR --num N`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "SyntheticFrame",
    "SyntheticDataset",
    "render_scene",
    "render_sequence",
    "write_dataset",
    "add_arguments",
    "run",
    "TEXTURE_KINDS",
    "TEXTURE_WEIGHTS",
    "SHAPE_WEIGHTS",
    "SHAPE_KINDS",
    "THIN_WEIGHTS",
]

TEXTURE_KINDS = ("image", "pink", "wood", "fabric", "noise", "stripes", "gradient")
# Relative frequency of each kind (renormalised over the kinds a caller allows): natural textures
# (photos, 1/f noise, wood, cloth, multi-scale noise) dominate, as in the world; periodic stripes /
# checkers and near-textureless gradients are a minority, about 8 % each.
TEXTURE_WEIGHTS = {"image": 3.0, "pink": 2.0, "wood": 1.2, "fabric": 1.0, "noise": 1.0, "stripes": 0.8,
                   "gradient": 0.8}
# Foreground shapes and their relative frequency; the see-through ones (ring, wheel, fence, perforated)
# show the background through holes, where matchers produce flying pixels.
SHAPE_WEIGHTS = {"ellipse": 2.0, "box": 2.0, "polygon": 2.0, "ring": 1.2, "wheel": 0.8, "fence": 1.2,
                 "perforated": 0.6}
# Thin structures (a few pixels wide at 480 px height).
SHAPE_KINDS = tuple(SHAPE_WEIGHTS)
THIN_WEIGHTS = {"pole": 0.6, "wire": 0.4}
# Shapes too thin for a photo crop to read as texture.
_THIN_SHAPES = ("pole", "wire", "wheel", "fence")
# Images bundled with scikit-image (no download needed); used as texture crops.
_SKIMAGE_TEXTURES = (
    "astronaut", "brick", "camera", "coffee", "grass", "gravel", "rocket", "chelsea", "coins",
    "moon", "page", "text", "clock", "hubble_deep_field", "immunohistochemistry", "cell",
)
_texture_cache: dict[str, np.ndarray] = {}
# Gaussian sigma (texture pixels) applied to every texture.
_TEXTURE_BLUR = 0.7


@dataclasses.dataclass
class SyntheticFrame:
    """One rendered stereo pair.

    left, right: (H, W, 3) BGR uint8.
    disp_left, disp_right: (H, W) float32 disparity in pixels, exact, > 0 everywhere
        (left pixel x matches right x - disp_left; right pixel x matches left x + disp_right).
    occlusion_left: (H, W) bool, left pixels whose surface point is not visible in the right view
        (hidden behind a nearer layer or outside the right image).
    instance_left, instance_right: (H, W) int32 id of the visible layer (0 = background wall).
    """

    left: np.ndarray
    right: np.ndarray
    disp_left: np.ndarray
    disp_right: np.ndarray
    occlusion_left: np.ndarray
    instance_left: np.ndarray
    instance_right: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ----------------------------------------------------------------------------------------------------
# Shapes: signed distance (px, negative inside) in the left frame
# ----------------------------------------------------------------------------------------------------


class _Shape:
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in left pixels, enclosing the shape."""
        raise NotImplementedError

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass
class _Ellipse(_Shape):
    cx: float
    cy: float
    rx: float
    ry: float
    theta: float
    # > 0: a ring whose hole is the same ellipse scaled by `hole`.
    hole: float = 0.0

    def bounds(self) -> tuple[float, float, float, float]:
        c, s = math.cos(self.theta), math.sin(self.theta)
        hw = math.hypot(self.rx * c, self.ry * s)
        hh = math.hypot(self.rx * s, self.ry * c)
        return self.cx - hw, self.cy - hh, self.cx + hw, self.cy + hh

    def _sd(self, u: np.ndarray, v: np.ndarray, rx: float, ry: float) -> np.ndarray:
        # First-order distance to the ellipse: (q - 1) / |grad q| with q the normalised radius.
        q = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        g = np.sqrt((u / rx**2) ** 2 + (v / ry**2) ** 2)
        return np.where(q > 1e-9, (q - 1.0) * q / np.maximum(g, 1e-12), -min(rx, ry))

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c, s = math.cos(self.theta), math.sin(self.theta)
        dx, dy = x - self.cx, y - self.cy
        u, v = c * dx + s * dy, -s * dx + c * dy
        d = self._sd(u, v, self.rx, self.ry)
        if self.hole > 0:
            d = np.maximum(d, -self._sd(u, v, self.rx * self.hole, self.ry * self.hole))
        return d


@dataclasses.dataclass
class _Polygon(_Shape):
    vertices: np.ndarray  # (V, 2) left pixels, simple polygon

    def bounds(self) -> tuple[float, float, float, float]:
        (x0, y0), (x1, y1) = self.vertices.min(0), self.vertices.max(0)
        return float(x0), float(y0), float(x1), float(y1)

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        verts = self.vertices.tolist()  # Python floats keep float32 inputs in float32
        shape = np.broadcast_shapes(x.shape, y.shape)
        dist2 = np.full(shape, np.inf, np.float32)
        inside = np.zeros(shape, bool)
        for i in range(len(verts)):
            (xa, ya), (xb, yb) = verts[i], verts[(i + 1) % len(verts)]
            ex, ey = xb - xa, yb - ya
            px, py = x - xa, y - ya
            t = np.clip((px * ex + py * ey) / max(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
            dist2 = np.minimum(dist2, (px - t * ex) ** 2 + (py - t * ey) ** 2)
            # Even-odd rule: does a ray to +x cross this edge?
            if ya != yb:
                crosses = ((ya > y) != (yb > y)) & (x < xa + (y - ya) * ex / (yb - ya))
                inside ^= crosses
        d = np.sqrt(dist2)
        return np.where(inside, -d, d)


@dataclasses.dataclass
class _Capsule(_Shape):
    """A thick segment (poles, posts, branches)."""

    x0: float
    y0: float
    x1: float
    y1: float
    radius: float

    def bounds(self) -> tuple[float, float, float, float]:
        r = self.radius
        return (min(self.x0, self.x1) - r, min(self.y0, self.y1) - r,
                max(self.x0, self.x1) + r, max(self.y0, self.y1) + r)

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ex, ey = self.x1 - self.x0, self.y1 - self.y0
        px, py = x - self.x0, y - self.y0
        t = np.clip((px * ex + py * ey) / max(ex * ex + ey * ey, 1e-12), 0.0, 1.0)
        return np.sqrt((px - t * ex) ** 2 + (py - t * ey) ** 2) - self.radius


@dataclasses.dataclass
class _Wire(_Shape):
    """A thin cable between x0 and x1: y(x) = y_mid + slope (x - x_mid) + sag (1 - t^2), t = (x - x_mid) / half
    (image y grows downwards: the middle hangs `sag` px below the chord through the ends)."""

    x0: float
    x1: float
    y_mid: float
    slope: float
    sag: float
    radius: float

    def _curve(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xm, half = 0.5 * (self.x0 + self.x1), 0.5 * (self.x1 - self.x0)
        t = (x - xm) / half
        y = self.y_mid + self.slope * (x - xm) + self.sag * (1.0 - t * t)
        dy = self.slope - 2.0 * self.sag * t / half
        return y, dy

    def bounds(self) -> tuple[float, float, float, float]:
        xs = np.linspace(self.x0, self.x1, 33)
        ys, _ = self._curve(xs)
        r = self.radius + 1.0
        return self.x0, float(ys.min()) - r, self.x1, float(ys.max()) + r

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        yc, dy = self._curve(x)
        # Vertical offset projected onto the curve normal: distance for a gently curved cable.
        d = np.abs(y - yc) / np.sqrt(1.0 + dy * dy) - self.radius
        return np.maximum(d, np.maximum(self.x0 - x, x - self.x1))


@dataclasses.dataclass
class _Lattice(_Shape):
    """A rotated rectangle of bars with see-through gaps: fence pickets (no rails), grids, window frames.

    Local coordinates (u, v) = rotation by `theta` about the centre; bars run along v every `pitch_u`
    (half-width `bar_u`) and, when `pitch_v` > 0, along u every `pitch_v`; an optional frame of width
    `frame` closes the border.
    """

    cx: float
    cy: float
    hw: float
    hh: float
    theta: float
    pitch_u: float
    bar_u: float
    pitch_v: float = 0.0
    bar_v: float = 0.0
    frame: float = 0.0

    def bounds(self) -> tuple[float, float, float, float]:
        c, s = abs(math.cos(self.theta)), abs(math.sin(self.theta))
        ex, ey = self.hw * c + self.hh * s, self.hw * s + self.hh * c
        return self.cx - ex, self.cy - ey, self.cx + ex, self.cy + ey

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c, s = np.float32(math.cos(self.theta)), np.float32(math.sin(self.theta))
        dx, dy = x - np.float32(self.cx), y - np.float32(self.cy)
        u, v = c * dx + s * dy, -s * dx + c * dy
        rect = np.maximum(np.abs(u) - np.float32(self.hw), np.abs(v) - np.float32(self.hh))
        pu = np.float32(self.pitch_u)
        bars = np.abs(u - pu * np.round(u / pu)) - np.float32(self.bar_u)
        if self.pitch_v > 0:
            pv = np.float32(self.pitch_v)
            bars = np.minimum(bars, np.abs(v - pv * np.round(v / pv)) - np.float32(self.bar_v))
        if self.frame > 0:
            bars = np.minimum(bars, -rect - np.float32(self.frame))
        return np.maximum(rect, bars)


@dataclasses.dataclass
class _Perforated(_Lattice):
    """A rotated plate with a square lattice of round holes of radius `hole` every `pitch_u`."""

    hole: float = 0.0

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c, s = np.float32(math.cos(self.theta)), np.float32(math.sin(self.theta))
        dx, dy = x - np.float32(self.cx), y - np.float32(self.cy)
        u, v = c * dx + s * dy, -s * dx + c * dy
        rect = np.maximum(np.abs(u) - np.float32(self.hw), np.abs(v) - np.float32(self.hh))
        p = np.float32(self.pitch_u)
        du, dv = u - p * np.round(u / p), v - p * np.round(v / p)
        holes = np.sqrt(du * du + dv * dv) - np.float32(self.hole)
        return np.maximum(rect, -holes)


@dataclasses.dataclass
class _Wheel(_Shape):
    """A rim of width `rim` and outer radius `radius`, `spokes` straight spokes (half-width `spoke`) and a hub."""

    cx: float
    cy: float
    radius: float
    rim: float
    spokes: int
    spoke: float
    hub: float
    phase: float

    def bounds(self) -> tuple[float, float, float, float]:
        r = self.radius
        return self.cx - r, self.cy - r, self.cx + r, self.cy + r

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        dx, dy = x - np.float32(self.cx), y - np.float32(self.cy)
        r = np.sqrt(dx * dx + dy * dy)
        mid = np.float32(self.radius - 0.5 * self.rim)
        d = np.minimum(np.abs(r - mid) - np.float32(0.5 * self.rim), r - np.float32(self.hub))
        if self.spokes > 0:
            step = 2.0 * math.pi / self.spokes
            a = np.arctan2(dy, dx) - np.float32(self.phase)
            off = a - np.float32(step) * np.round(a / np.float32(step))  # angle to the nearest spoke
            # Distance to that spoke's ray (the centre side is covered by the hub).
            d = np.minimum(d, r * np.abs(np.sin(off)) - np.float32(self.spoke))
        return np.maximum(d, r - np.float32(self.radius))


# ----------------------------------------------------------------------------------------------------
# Textures
# ----------------------------------------------------------------------------------------------------


def _skimage_texture(name: str) -> np.ndarray:
    """BGR float32 (H, W, 3) 0..255 version of a scikit-image bundled image (cached)."""
    if name not in _texture_cache:
        import skimage.data

        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype != np.uint8:
            img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        # The same slight blur as procedural textures: sharp print and coin edges would only alias.
        _texture_cache[name] = cv2.GaussianBlur(img.astype(np.float32), (0, 0), _TEXTURE_BLUR)
    return _texture_cache[name]


def _skimage_grey(name: str) -> np.ndarray:
    """(H, W, 1) float32 0..1 luminance of `_skimage_texture(name)` (cached), for re-tinting."""
    key = name + ":grey"
    if key not in _texture_cache:
        grey = cv2.cvtColor(_skimage_texture(name).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        _texture_cache[key] = grey.astype(np.float32)[..., None] / 255.0
    return _texture_cache[key]


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, size=3).astype(np.float32)


def _noise_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multi-scale value noise with a random spectrum slope, coloured between two random colours."""
    h, w = max(h, 2), max(w, 2)
    beta = rng.uniform(-0.1, 0.8)  # amplitude grows with the octave size by 2**(k * beta)
    field = np.zeros((h, w), np.float32)
    k, size = 0, 1
    while size <= max(h, w):
        gh, gw = max(h // size, 2), max(w // size, 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        field += (2.0 ** (k * beta)) * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        k, size = k + 1, size * 2
    field = (field - field.mean()) / (field.std() + 1e-6)
    t = np.clip(0.5 + 0.25 * field, 0.0, 1.0)[..., None]
    c0, c1 = _random_colour(rng), _random_colour(rng)
    tex = c0 * (1.0 - t) + c1 * t
    # Fine grain keeps even smooth textures matchable.
    tex += np.float32(rng.uniform(2.0, 8.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _gradient_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear or radial colour gradient: weakly textured surfaces (walls, sky, painted objects)."""
    h, w = max(h, 2), max(w, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        ang = rng.uniform(0, 2 * math.pi)
        t = (math.cos(ang) * xx + math.sin(ang) * yy) / max(h, w)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / math.hypot(h, w)
        t = t / max(float(t.max()), 1e-6)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    tex = c0 * (1.0 - t[..., None]) + c1 * t[..., None]
    tex += np.float32(rng.uniform(0.5, 3.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _stripes_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Periodic stripes or checkers: repetitive patterns that make matching ambiguous."""
    h, w = max(h, 2), max(w, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(4.0, 24.0)
    ang = rng.uniform(0, math.pi)
    u = math.cos(ang) * xx + math.sin(ang) * yy
    if rng.random() < 0.5:
        t = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
    else:
        v = -math.sin(ang) * xx + math.cos(ang) * yy
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.7)
    c0, c1 = _random_colour(rng), _random_colour(rng)
    tex = c0 * (1.0 - t[..., None]) + c1 * t[..., None]
    tex += np.float32(2.0) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _pink_field(rng: np.random.Generator, h: int, w: int, alpha: float) -> np.ndarray:
    """(h, w) float32 zero-mean, unit-std noise with amplitude spectrum 1 / f**alpha (alpha 1: natural images)."""
    import scipy.fft

    # Synthesised on an FFT-friendly size and cropped (a prime side makes the transform several times slower).
    fh, fw = scipy.fft.next_fast_len(h, real=True), scipy.fft.next_fast_len(w, real=True)
    spec = scipy.fft.rfft2(rng.standard_normal((fh, fw), dtype=np.float32))
    fy = np.fft.fftfreq(fh).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(fw).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0 / max(fh, fw)
    spec *= f ** np.float32(-alpha)
    field = scipy.fft.irfft2(spec, s=(fh, fw))[:h, :w]
    return (field - field.mean()) / (field.std() + 1e-6)


def _lerp(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Colour c0 where t = 0 and c1 where t = 1: (h, w) weights -> (h, w, 3)."""
    return c0 + t[..., None] * (c1 - c0)


def _pink_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """1/f noise (the spectrum of natural images) in luminance, with a slower second field varying the hue."""
    h, w = max(h, 2), max(w, 2)
    lum = _pink_field(rng, h, w, rng.uniform(0.8, 1.4))
    hue = _pink_field(rng, h, w, rng.uniform(1.3, 2.0))
    t = np.clip(0.5 + rng.uniform(0.15, 0.3) * lum, 0.0, 1.0)
    tex = _lerp(_random_colour(rng), _random_colour(rng), t)
    tex = _lerp(tex, _random_colour(rng), np.clip(0.25 * hue + 0.2, 0.0, 0.5))
    tex += np.float32(rng.uniform(1.0, 4.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _wood_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(early wood, late wood) BGR: warm browns mostly, sometimes stained in any colour."""
    if rng.random() < 0.25:
        light = _random_colour(rng)
    else:
        hsv = np.array([[[rng.uniform(6, 22), rng.uniform(80, 200), rng.uniform(120, 240)]]], np.float32)
        light = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).reshape(3).astype(np.float32)
    return light, light * np.float32(rng.uniform(0.4, 0.75))


def _wood_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Growth rings (distance to a far-off pith, warped by smooth noise) plus fine grain streaks along them."""
    h, w = max(h, 2), max(w, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, math.pi) if rng.random() < 0.3 else rng.uniform(-0.3, 0.3)
    c, s = np.float32(math.cos(ang)), np.float32(math.sin(ang))
    u, v = c * xx + s * yy, -s * xx + c * yy  # u along the grain
    v0 = rng.uniform(-3.0, 3.0) * max(h, w)
    r = np.sqrt((v - v0) ** 2 + (np.float32(rng.uniform(0.02, 0.25)) * u) ** 2)
    period = rng.uniform(5.0, 30.0)
    r += np.float32(rng.uniform(0.3, 1.5) * period) * _pink_field(rng, h, w, 1.8)
    ring = (r / np.float32(period)) % 1.0
    t = ring ** np.float32(rng.uniform(1.5, 4.0))
    # Grain: noise stretched along u (sampled at u / stretch), i.e. thin streaks parallel to the rings.
    small = _pink_field(rng, max(h, w) // 4 + 8, max(h, w) + 8, 0.6)
    gu = (u / np.float32(rng.uniform(12.0, 40.0))) % np.float32(small.shape[1] - 1)
    gv = (v % np.float32(small.shape[0] * 4 - 8)) / np.float32(4.0)
    grain = cv2.remap(small, gu, gv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    t = np.clip(t + np.float32(rng.uniform(0.05, 0.2)) * grain, 0.0, 1.0)
    light, dark = _wood_colours(rng)
    tex = _lerp(light, dark, t)
    tex += np.float32(rng.uniform(1.0, 3.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _fabric_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Woven cloth: warp and weft threads in a plain or twill weave, per-thread tone and smooth folds."""
    h, w = max(h, 2), max(w, 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, math.pi)
    c, s = np.float32(math.cos(ang)), np.float32(math.sin(ang))
    p = np.float32(rng.uniform(4.0, 12.0))
    u, v = (c * xx + s * yy) / p, (-s * xx + c * yy) / p
    iu, iv = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    n = int(rng.choice([2, 3, 4]))  # 2: plain weave; 3, 4: twill
    warp_up = ((iu + iv) % n) < (1 if n == 2 else n // 2)
    # Thread profile across the thread: bright in the middle, dark at its edges.
    prof = np.where(warp_up, np.sin(np.float32(math.pi) * (u - iu)), np.sin(np.float32(math.pi) * (v - iv)))
    tone_u, tone_v = (np.float32(rng.uniform(0.02, 0.12)) * rng.standard_normal(97).astype(np.float32)
                      for _ in range(2))
    tone = np.where(warp_up, tone_u[iu % 97], tone_v[iv % 97])
    shade = 0.55 + 0.45 * prof + tone + np.float32(rng.uniform(0.05, 0.15)) * _pink_field(rng, h, w, 1.6)
    c_warp = _random_colour(rng)
    c_weft = c_warp if rng.random() < 0.5 else _random_colour(rng)
    tex = np.where(warp_up[..., None], c_warp, c_weft) * np.clip(shade, 0.2, 1.3)[..., None]
    tex += np.float32(rng.uniform(1.0, 4.0)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    return tex.astype(np.float32)


def _make_texture(
    rng: np.random.Generator, kind: str, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """(texture (th, tw, 3) float32, affine (2, 3) from layer-local pixels (origin = top-left of the region)
    to texture pixels)."""
    if kind == "image":
        name = _SKIMAGE_TEXTURES[int(rng.integers(len(_SKIMAGE_TEXTURES)))]
        tex = _skimage_texture(name)
        if tex.shape[2] == 3 and rng.random() < 0.5:
            # Re-tint, so the same photo does not always carry the same colours.
            grey = _skimage_grey(name)
            tex = _random_colour(rng) * (1.0 - grey) + _random_colour(rng) * grey
        th, tw = tex.shape[:2]
        scale = rng.uniform(0.5, 1.6)
        ang = rng.uniform(-0.4, 0.4)
        c, s = math.cos(ang) / scale, math.sin(ang) / scale
        # Start somewhere inside the photo; BORDER_REFLECT covers regions larger than it.
        tx, ty = rng.uniform(0, tw * 0.5), rng.uniform(0, th * 0.5)
        return tex, np.array([[c, -s, tx], [s, c, ty]], np.float32)
    # Procedural textures are generated at the region's size (capped; the affine stretches them).
    cap = 768
    f = max(1.0, max(h, w) / cap)
    gh, gw = max(int(h / f), 2), max(int(w / f), 2)
    maker = {"noise": _noise_texture, "gradient": _gradient_texture, "stripes": _stripes_texture,
             "pink": _pink_texture, "wood": _wood_texture, "fabric": _fabric_texture}
    if kind not in maker:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}")
    # A camera integrates light over its pixels: texture detail finer than about a pixel would only alias
    # (and make the two views differ by more than the resampling of a real lens image does).
    tex = cv2.GaussianBlur(maker[kind](rng, gh, gw), (0, 0), _TEXTURE_BLUR)
    return tex, np.array([[1.0 / f, 0.0, 0.0], [0.0, 1.0 / f, 0.0]], np.float32)


# ----------------------------------------------------------------------------------------------------
# Scene description
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Layer:
    """A planar surface patch in the left frame; `at(t)` gives its pose in frame t of a sequence."""

    ident: int
    shape: _Shape | None
    # Disparity plane around the reference point: d = disp + slope_x (x - ref_x) + slope_y (y - ref_y).
    ref: tuple[float, float]
    disp: float
    slope: tuple[float, float]
    texture: np.ndarray
    # Left-frame point (x, y) -> texture pixel: tex_affine @ (x - origin_x, y - origin_y, 1).
    tex_affine: np.ndarray
    origin: tuple[float, float]
    shading: tuple[float, float]
    # Motion (sequences): translation velocity (px / frame) and a bounded disparity oscillation.
    velocity: tuple[float, float] = (0.0, 0.0)
    disp_amp: float = 0.0
    disp_freq: float = 0.0
    disp_phase: float = 0.0


@dataclasses.dataclass
class _Posed:
    """A layer placed in one frame: plane d = a x + b y + c in absolute left coordinates."""

    layer: _Layer
    shift: tuple[float, float]
    a: float
    b: float
    c: float


def _pose(layer: _Layer, t: float) -> _Posed:
    sx, sy = layer.velocity[0] * t, layer.velocity[1] * t
    disp = layer.disp + layer.disp_amp * (math.sin(layer.disp_freq * t + layer.disp_phase) - math.sin(layer.disp_phase))
    a, b = layer.slope
    rx, ry = layer.ref[0] + sx, layer.ref[1] + sy
    return _Posed(layer, (sx, sy), a, b, disp - a * rx - b * ry)


def _fit_slopes(
    rng: np.random.Generator, centre: float, half_w: float, half_h: float, lo: float, hi: float, max_slope: float
) -> tuple[float, float]:
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
class _SceneOptions:
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


def _options(
    height: int,
    width: int,
    max_disparity: float,
    min_disparity: float | None,
    num_objects: int | None,
    num_thin: int | None,
    ground_plane: bool | None,
    textures: tuple[str, ...] | list[str] | str,
    max_slope: float,
    shapes: tuple[str, ...] | list[str] | str | None = None,
) -> _SceneOptions:
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
    kinds = (textures,) if isinstance(textures, str) else tuple(textures)
    bad = [k for k in kinds if k not in TEXTURE_KINDS]
    if not kinds or bad:
        raise ValueError(f"textures must be a non-empty subset of {TEXTURE_KINDS}, got {kinds}")
    if not 0 <= max_slope < 0.9:
        raise ValueError(f"max_slope must be in [0, 0.9), got {max_slope}")
    shape_kinds = SHAPE_KINDS if shapes is None else (shapes,) if isinstance(shapes, str) else tuple(shapes)
    bad = [k for k in shape_kinds if k not in SHAPE_KINDS]
    if not shape_kinds or bad:
        raise ValueError(f"shapes must be a non-empty subset of {SHAPE_KINDS}, got {shape_kinds}")
    return _SceneOptions(int(height), int(width), float(max_disparity), lo, num_objects, num_thin, ground_plane,
                         kinds, float(max_slope), shape_kinds)


def _background_disparity(layers: list[_Layer], x: float, y: float) -> float:
    """Disparity of the nearest background plane (wall / ground) at left pixel (x, y)."""
    return max(
        layer.disp + layer.slope[0] * (x - layer.ref[0]) + layer.slope[1] * (y - layer.ref[1])
        for layer in layers
        if layer.shape is None
    )


def _weighted_choice(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """One key of `weights`, drawn with probability proportional to its value (one uniform draw)."""
    keys = list(weights)
    cum = np.cumsum([weights[k] for k in keys])
    return keys[min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(keys) - 1)]


def _random_shape(rng: np.random.Generator, kind: str, cx: float, cy: float, H: int, W: int, hi: float) -> _Shape:
    """A random shape of `kind` (a key of SHAPE_WEIGHTS or THIN_WEIGHTS) centred near (cx, cy)."""
    unit = min(H, W)
    px = unit / 480.0  # sizes of thin parts are given at 480 px and scaled
    if kind in ("ellipse", "ring"):
        rx, ry = rng.uniform(0.04, 0.22, size=2) * unit
        hole = (rng.uniform(0.3, 0.7) if rng.random() < 0.5 else rng.uniform(0.7, 0.92)) if kind == "ring" else 0.0
        return _Ellipse(cx, cy, rx, ry, rng.uniform(0, math.pi), hole)
    if kind == "box":
        hw, hh = rng.uniform(0.04, 0.25, size=2) * unit
        ang = rng.uniform(-0.5, 0.5) if rng.random() < 0.7 else rng.uniform(0, math.pi)
        c, s = math.cos(ang), math.sin(ang)
        corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
        return _Polygon(corners @ np.array([[c, s], [-s, c]]) + [cx, cy])
    if kind == "polygon":
        n = int(rng.integers(3, 10))
        ang = np.sort(rng.uniform(0, 2 * math.pi, size=n))
        r = rng.uniform(0.05, 0.22) * unit * rng.uniform(0.45, 1.0, size=n)
        return _Polygon(np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1))
    if kind == "wheel":
        radius = rng.uniform(0.06, 0.25) * unit
        rim = max(rng.uniform(0.03, 0.15) * radius, 0.7)
        spoke = max(rng.uniform(0.6, 3.0) * px, 0.4)
        return _Wheel(cx, cy, radius, rim, int(rng.integers(3, 17)), spoke, max(rng.uniform(0.05, 0.2) * radius, 1.0),
                      rng.uniform(0, 2 * math.pi))
    if kind in ("fence", "perforated"):
        hw, hh = rng.uniform(0.08, 0.4, size=2) * unit
        ang = rng.uniform(-0.25, 0.25) if rng.random() < 0.7 else rng.uniform(0, math.pi)
        # Bars / holes counted across the object (scale-free), at least 4 px apart so that holes stay visible.
        pitch = max(2.0 * hw / math.exp(rng.uniform(math.log(3.0), math.log(20.0))), 4.0)
        if kind == "perforated":
            hole = pitch * rng.uniform(0.2, 0.42)
            return _Perforated(cx, cy, hw, hh, ang, pitch, 0.0, hole=hole)
        bar = float(np.clip(rng.uniform(0.6, 6.0) * px, 0.45, 0.35 * pitch))
        style = rng.random()  # pickets only, a grid, or pickets with rails and a frame
        pitch_v = 0.0
        if style >= 0.4:
            pitch_v = max(pitch * rng.uniform(0.6, 1.6) if style < 0.75 else hh * rng.uniform(0.5, 1.0), 4.0)
        frame = bar * rng.uniform(1.0, 3.0) if style >= 0.75 else 0.0
        return _Lattice(cx, cy, hw, hh, ang, pitch, bar, pitch_v, bar, frame)
    if kind == "pole":
        radius = rng.uniform(0.6, 5.0) * px
        top, bottom = rng.uniform(-0.2, 0.5) * H, rng.uniform(0.6, 1.2) * H
        lean = rng.uniform(-0.15, 0.15) * (bottom - top)
        return _Capsule(cx, top, cx + lean, bottom, radius)
    if kind == "wire":
        x0, x1 = rng.uniform(-0.3, 0.3) * W, rng.uniform(0.7, 1.3) * W + hi
        return _Wire(x0, x1, rng.uniform(0.05, 0.8) * H, rng.uniform(-0.15, 0.15),
                     rng.uniform(0.0, 0.12) * H, rng.uniform(0.5, 1.8) * px)
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {sorted({**SHAPE_WEIGHTS, **THIN_WEIGHTS})}")


def _build_scene(rng: np.random.Generator, opt: _SceneOptions, motion: float) -> list[_Layer]:
    H, W = opt.height, opt.width
    lo, hi = opt.min_disparity, opt.max_disparity
    span = hi - lo
    unit = min(H, W)
    layers: list[_Layer] = []

    def texture_for(h: float, w: float, kinds: tuple[str, ...] = opt.textures) -> tuple[np.ndarray, np.ndarray]:
        kind = _weighted_choice(rng, {k: TEXTURE_WEIGHTS[k] for k in kinds})
        return _make_texture(rng, kind, int(math.ceil(h)) + 4, int(math.ceil(w)) + 4)

    def shading() -> tuple[float, float]:
        g = rng.uniform(0.0, 0.6) / max(H, W)
        ang = rng.uniform(0, 2 * math.pi)
        return g * math.cos(ang), g * math.sin(ang)

    def motion_params(disp: float, spread: float) -> dict[str, Any]:
        if motion <= 0:
            return {}
        speed = motion * rng.uniform(0.3, 2.5) * unit / 480.0
        ang = rng.uniform(0, 2 * math.pi)
        room = max(min(disp - spread - lo, hi - disp - spread), 0.0)
        return {
            "velocity": (speed * math.cos(ang), 0.5 * speed * math.sin(ang)),
            "disp_amp": min(room, 0.05 * span * motion) * rng.uniform(0.2, 1.0),
            "disp_freq": rng.uniform(0.02, 0.1) * motion,
            "disp_phase": rng.uniform(0, 2 * math.pi),
        }

    # Background wall: covers the left image and everything the right view can see (x up to W + hi).
    wall_w, wall_h = W + hi + 8, H + 8
    wall_d = lo + rng.uniform(0.0, 0.3) * span
    a, b = _fit_slopes(rng, wall_d, wall_w / 2, wall_h / 2, lo, lo + 0.45 * span, opt.max_slope * 0.5)
    tex, aff = texture_for(wall_h, wall_w)
    layers.append(_Layer(0, None, (W / 2 + hi / 2, H / 2), wall_d, (a, b), tex, aff, (-4.0, -4.0), shading()))

    # Ground plane: disparity grows towards the bottom; the z-buffer cuts it at the wall.
    if opt.ground_plane if opt.ground_plane is not None else rng.random() < 0.5:
        horizon = rng.uniform(0.25, 0.7) * H
        d_bottom = wall_d + rng.uniform(0.15, 0.5) * span
        d_bottom = min(d_bottom, hi)
        gb = (d_bottom - (wall_d - 0.02 * span)) / max(H - 1 - horizon, 1.0)
        ga = rng.uniform(-0.3, 0.3) * gb
        # Keep the plane below `hi` along the bottom row for every x the views see.
        ga = float(np.clip(ga, -(hi - d_bottom) / (W + hi), (hi - d_bottom) / (W + hi)))
        tex, aff = texture_for(wall_h, wall_w, tuple(k for k in opt.textures if k != "gradient") or opt.textures)
        layers.append(_Layer(len(layers), None, (W / 2, H - 1.0), d_bottom, (ga, gb), tex, aff, (-4.0, -4.0),
                             shading()))

    n_obj = int(rng.integers(5, 15)) if opt.num_objects is None else opt.num_objects
    n_thin = int(rng.integers(1, 5)) if opt.num_thin is None else opt.num_thin
    specs = [_weighted_choice(rng, {k: SHAPE_WEIGHTS[k] for k in opt.shapes}) for _ in range(n_obj)]
    specs += [_weighted_choice(rng, THIN_WEIGHTS) for _ in range(n_thin)]
    for kind in specs:
        cx, cy = rng.uniform(-0.1 * W, 1.1 * W), rng.uniform(-0.1 * H, 1.1 * H)
        shape = _random_shape(rng, kind, cx, cy, H, W, hi)
        x0, y0, x1, y1 = shape.bounds()
        hw, hh = (x1 - x0) / 2, (y1 - y0) / 2
        # Mostly in front of the background at the object's centre; sometimes anywhere, so objects also
        # sink into the wall or the ground (intersecting planes).
        base = lo if rng.random() < 0.15 else max(_background_disparity(layers, (x0 + x1) / 2, (y0 + y1) / 2), lo)
        d = base + (hi - base) * (0.03 + 0.97 * rng.random() ** 0.8)
        d = float(np.clip(d, lo + 1e-3 * span, hi - 1e-3 * span))
        a, b = _fit_slopes(rng, d, hw, hh, lo, hi, opt.max_slope)
        spread = abs(a) * hw + abs(b) * hh
        # Photos make poor textures for a few-pixel-wide structure.
        tk = opt.textures
        if kind in _THIN_SHAPES:
            tk = tuple(k for k in opt.textures if k != "image") or opt.textures
        tex, aff = texture_for(y1 - y0, x1 - x0, tk)
        layers.append(_Layer(len(layers), shape, ((x0 + x1) / 2, (y0 + y1) / 2), d, (a, b), tex, aff,
                             (x0 - 2.0, y0 - 2.0), shading(), **motion_params(d, spread)))
    return layers


# ----------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------


def _view_region(posed: _Posed, view: str, H: int, W: int) -> tuple[int, int, int, int] | None:
    """Integer pixel box [x0, x1) x [y0, y1) of `view` that the layer can cover, or None if off-screen."""
    shape = posed.layer.shape
    if shape is None:
        return 0, 0, W, H
    bx0, by0, bx1, by1 = shape.bounds()
    sx, sy = posed.shift
    bx0, bx1, by0, by1 = bx0 + sx - 1.5, bx1 + sx + 1.5, by0 + sy - 1.5, by1 + sy + 1.5
    if view == "right":
        xs = [(1 - posed.a) * x - posed.b * y - posed.c for x in (bx0, bx1) for y in (by0, by1)]
        bx0, bx1 = min(xs), max(xs)
    x0, y0 = max(int(math.floor(bx0)), 0), max(int(math.floor(by0)), 0)
    x1, y1 = min(int(math.ceil(bx1)) + 1, W), min(int(math.ceil(by1)) + 1, H)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def _render_view(posed_layers: list[_Posed], H: int, W: int, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite the layers into one view: (colour (H, W, 3) float32, disparity (H, W) float64, ids (H, W))."""
    colour = np.zeros((H, W, 3), np.float32)
    zbuf = np.full((H, W), -np.inf)
    ids = np.full((H, W), -1, np.int32)
    for p in posed_layers:
        box = _view_region(p, view, H, W)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        xs = np.arange(x0, x1, dtype=np.float64)[None, :]
        ys = np.arange(y0, y1, dtype=np.float64)[:, None]
        # Disparity in float64 (the ground truth); appearance in float32 (1e-4 px is plenty for textures).
        if view == "left":
            d = p.a * xs + (p.b * ys + p.c)
            lx = np.broadcast_to((xs - p.shift[0]).astype(np.float32), d.shape)
        else:
            # Closed-form inverse of x_r = x - d(x, y) for a plane; d_R = x - x_r.
            X = (xs + (p.b * ys + p.c)) / (1.0 - p.a)
            d = X - xs
            lx = (X - p.shift[0]).astype(np.float32)
        ly = (ys - p.shift[1]).astype(np.float32)
        layer = p.layer
        z = zbuf[y0:y1, x0:x1]
        front = d > z
        cover: np.ndarray | None = None
        if layer.shape is None:
            hit = front
        else:
            sd = layer.shape.sdf(lx, ly)
            hit = front & (sd <= 0)
            # Box-filter coverage of a pixel by a straight edge at signed distance sd.
            cover = np.clip(np.float32(0.5) - sd, 0.0, 1.0).astype(np.float32) * front
        np.copyto(z, d, where=hit)
        np.copyto(ids[y0:y1, x0:x1], layer.ident, where=hit)
        if not (front if cover is None else cover).any():
            continue
        m = layer.tex_affine
        ox, oy = lx - np.float32(layer.origin[0]), ly - np.float32(layer.origin[1])
        map_x = m[0, 0] * ox + m[0, 1] * oy + m[0, 2]
        map_y = m[1, 0] * ox + m[1, 1] * oy + m[1, 2]
        tex = cv2.remap(layer.texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        gx, gy = (np.float32(g) for g in layer.shading)
        shade = np.float32(1.0) + gx * (lx - np.float32(layer.ref[0])) + gy * (ly - np.float32(layer.ref[1]))
        tex *= np.clip(shade, 0.5, 1.5)[..., None]
        c = colour[y0:y1, x0:x1]
        if cover is None:
            np.copyto(c, tex, where=front[..., None])
        else:
            c += cover[..., None] * (tex - c)
    return colour, zbuf, ids


def _occlusion(disp_l: np.ndarray, ids_l: np.ndarray, disp_r: np.ndarray, ids_r: np.ndarray) -> np.ndarray:
    """Left pixels whose surface point is hidden (or off-image) in the right view."""
    H, W = disp_l.shape
    xr = np.arange(W)[None, :] - disp_l
    inside = (xr > -0.5) & (xr < W - 0.5)
    xn = np.clip(np.rint(xr), 0, W - 1).astype(np.intp)
    rows = np.arange(H)[:, None]
    same = ids_r[rows, xn] == ids_l
    # A different surface there that is not nearer (within half a pixel of slant) does not hide it.
    not_nearer = disp_r[rows, xn] < disp_l + 0.5
    return ~(inside & (same | not_nearer))


@dataclasses.dataclass
class _Photometric:
    gain: np.ndarray  # (2, 3) per view, per channel
    gamma: np.ndarray  # (2,)
    blur: np.ndarray  # (2,) Gaussian sigma, 0 = none
    noise: np.ndarray  # (2,) sensor noise std (0..255 units)


def _photometric(rng: np.random.Generator) -> _Photometric:
    gain = rng.uniform(0.85, 1.15, size=(2, 1)) * rng.uniform(0.95, 1.05, size=(2, 3))
    gain[0] = 1.0 + 0.3 * (gain[0] - 1.0)  # the left view stays closer to the rendered colours
    gamma = np.array([rng.uniform(0.95, 1.05), rng.uniform(0.85, 1.15)])
    blur = np.where(rng.random(2) < 0.3, rng.uniform(0.3, 1.0, size=2), 0.0)
    noise = rng.uniform(0.0, 3.5, size=2)
    return _Photometric(gain, gamma, blur, noise)


def _finish(img: np.ndarray, ph: _Photometric | None, view: int, rng: np.random.Generator) -> np.ndarray:
    if ph is not None:
        img = cv2.pow(np.clip(img, 0.0, 255.0) * np.float32(1.0 / 255.0), float(ph.gamma[view]))
        img *= (255.0 * ph.gain[view]).astype(np.float32)
        if ph.blur[view] > 0:
            img = cv2.GaussianBlur(img, (0, 0), float(ph.blur[view]))
        if ph.noise[view] > 0:
            img += np.float32(ph.noise[view]) * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _render(layers: list[_Layer], t: float, opt: _SceneOptions, ph: _Photometric | None,
            rng: np.random.Generator) -> SyntheticFrame:
    H, W = opt.height, opt.width
    posed = [_pose(layer, t) for layer in layers]
    # Back to front by disparity at the layer's reference point (the z-buffer settles the rest).
    order = sorted(range(len(posed)), key=lambda i: (posed[i].layer.shape is not None,
                                                      posed[i].a * posed[i].layer.ref[0]
                                                      + posed[i].b * posed[i].layer.ref[1] + posed[i].c))
    posed = [posed[i] for i in order]
    col_l, disp_l, ids_l = _render_view(posed, H, W, "left")
    col_r, disp_r, ids_r = _render_view(posed, H, W, "right")
    occ = _occlusion(disp_l, ids_l, disp_r, ids_r)
    return SyntheticFrame(
        left=_finish(col_l, ph, 0, rng),
        right=_finish(col_r, ph, 1, rng),
        disp_left=disp_l.astype(np.float32),
        disp_right=disp_r.astype(np.float32),
        occlusion_left=occ,
        instance_left=ids_l,
        instance_right=ids_r,
    )


def _generator(seed: int | np.random.SeedSequence | tuple[int, ...] | list[int]) -> np.random.Generator:
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (tuple, list)):
        return np.random.default_rng(np.random.SeedSequence([int(s) for s in seed]))
    return np.random.default_rng(np.random.SeedSequence(int(seed)))


def render_scene(
    seed: int | tuple[int, ...] | list[int],
    *,
    height: int = 480,
    width: int = 640,
    max_disparity: float = 64.0,
    min_disparity: float | None = None,
    num_objects: int | None = None,
    num_thin: int | None = None,
    ground_plane: bool | None = None,
    textures: tuple[str, ...] | list[str] | str = TEXTURE_KINDS,
    max_slope: float = 0.15,
    photometric: bool = True,
    shapes: tuple[str, ...] | list[str] | str | None = None,
) -> SyntheticFrame:
    """Render one random stereo pair; the same `seed` always gives the same arrays.

    Args:
        seed: int or sequence of ints (e.g. (base_seed, index)), fed to `numpy.random.SeedSequence`.
        height, width: image size in pixels.
        max_disparity, min_disparity: every disparity (both views) lies in [min, max];
            min defaults to 5 % of max.
        num_objects: foreground shapes (drawn from `shapes` with SHAPE_WEIGHTS); default random 5..14.
        num_thin: thin structures (poles, wires); default random 1..4.
        ground_plane: add a ground plane slanting towards the camera; default random (p = 0.5).
        textures: subset of TEXTURE_KINDS to draw from.
        max_slope: largest |d disparity / d x| (and / d y) of object planes.
        photometric: apply gain / gamma / blur / noise differences between the views.
        shapes: subset of SHAPE_KINDS for the foreground objects; None: all of them.
    """
    opt = _options(height, width, max_disparity, min_disparity, num_objects, num_thin, ground_plane, textures,
                   max_slope, shapes)
    rng = _generator(seed)
    layers = _build_scene(rng, opt, motion=0.0)
    ph = _photometric(rng) if photometric else None
    return _render(layers, 0.0, opt, ph, rng)


def render_sequence(
    seed: int | tuple[int, ...] | list[int],
    num_frames: int,
    *,
    height: int = 480,
    width: int = 640,
    max_disparity: float = 64.0,
    speed: float = 1.0,
    **options: Any,
) -> Iterator[SyntheticFrame]:
    """Frames of one scene whose objects move smoothly (constant velocity, disparity oscillating slowly).

    `speed` scales the motion (objects move about 0.3..2.5 px per frame at 480 px height when 1);
    the background stays still and the camera's photometric settings are fixed for the sequence.
    Other keyword options are those of `render_scene`.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    photometric = bool(options.pop("photometric", True))
    opt = _options(height, width, max_disparity, options.pop("min_disparity", None), options.pop("num_objects", None),
                   options.pop("num_thin", None), options.pop("ground_plane", None),
                   options.pop("textures", TEXTURE_KINDS), options.pop("max_slope", 0.15), options.pop("shapes", None))
    if options:
        raise ValueError(f"unknown options {sorted(options)}")
    rng = _generator(seed)
    layers = _build_scene(rng, opt, motion=float(speed))
    ph = _photometric(rng) if photometric else None
    for t in range(num_frames):
        yield _render(layers, float(t), opt, ph, rng)


# ----------------------------------------------------------------------------------------------------
# Dataset, writer, CLI
# ----------------------------------------------------------------------------------------------------


class SyntheticDataset(Dataset):
    """`num_samples` procedural scenes rendered on the fly; scene i is `render_scene((seed, i), ...)`.

    With `sample_config` None, item i is a full frame dict {"left", "right" (H, W, 3) uint8,
    "disp_left", "disp_right" (H, W) float32, "occlusion_left" (H, W) bool, "name"}. Otherwise it is a training sample
    (see `smd_core.data.sampling.make_training_sample`) drawn from that frame: the scene is fixed per
    index, the crop / points / augmentation are random (NumPy generator seeded from torch's RNG, so
    DataLoader workers and `torch.manual_seed` control them).
    """

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        height: int = 480,
        width: int = 640,
        max_disparity: float = 64.0,
        render_options: Mapping[str, Any] | None = None,
        sample_config: Any = None,
        augment_config: Any = None,
    ) -> None:
        if num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.render_kwargs: dict[str, Any] = dict(render_options or {})
        self.render_kwargs.update(height=int(height), width=int(width), max_disparity=float(max_disparity))
        # Fail early on bad options rather than inside a DataLoader worker.
        _options(height, width, max_disparity, self.render_kwargs.get("min_disparity"),
                 self.render_kwargs.get("num_objects"), self.render_kwargs.get("num_thin"),
                 self.render_kwargs.get("ground_plane"), self.render_kwargs.get("textures", TEXTURE_KINDS),
                 self.render_kwargs.get("max_slope", 0.15), self.render_kwargs.get("shapes"))
        self.sample_config = sample_config
        self.augment_config = augment_config

    def __len__(self) -> int:
        return self.num_samples

    def frame(self, index: int, *, lazy: bool = False) -> dict[str, Any]:
        """Full frame `index` (rendered; `lazy` is accepted for interface parity and ignored)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        f = render_scene((self.seed, index), **self.render_kwargs)
        return {"left": f.left, "right": f.right, "disp_left": f.disp_left, "disp_right": f.disp_right,
                "occlusion_left": f.occlusion_left, "name": f"synthetic_{self.seed}_{index:06d}"}

    def __getitem__(self, index: int) -> dict[str, Any]:
        frame = self.frame(index)
        if self.sample_config is None:
            return frame
        from smd_core.data.sampling import make_training_sample, torch_seeded_generator

        return make_training_sample(frame, self.sample_config, self.augment_config, torch_seeded_generator())


def write_dataset(
    out_dir: str | Path,
    num: int,
    *,
    seed: int = 0,
    height: int = 480,
    width: int = 640,
    max_disparity: float = 64.0,
    list_name: str = "train.txt",
    progress: bool = True,
    preview: int = 4,
    **render_options: Any,
) -> Path:
    """Write `num` scenes as left/, right/ PNG, disp_left/, disp_right/ NPY (float32 px) and a list file.

    List lines are `left/000000.png right/000000.png disp_left/000000.npy disp_right/000000.npy`
    (relative to `out_dir`), the format `kind: list` datasets read. Scene i equals
    `render_scene((seed, i), ...)`. With `preview` > 0 a contact sheet of the first frames is written
    to `preview.png`. Returns the list file's path.
    """
    from tqdm import tqdm

    if num <= 0:
        raise ValueError(f"num must be > 0, got {num}")
    out = Path(out_dir)
    for sub in ("left", "right", "disp_left", "disp_right"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    dataset = SyntheticDataset(num, seed=seed, height=height, width=width, max_disparity=max_disparity,
                               render_options=render_options)
    lines: list[str] = []
    sheet: list[np.ndarray] = []
    for i in tqdm(range(num), desc="synth", unit="pair", disable=not progress):
        f = dataset.frame(i)
        name = f"{i:06d}"
        for key, ext in (("left", "png"), ("right", "png")):
            if not cv2.imwrite(str(out / key / f"{name}.{ext}"), f[key]):
                raise OSError(f"could not write {out / key / f'{name}.{ext}'}")
        np.save(out / "disp_left" / f"{name}.npy", f["disp_left"])
        np.save(out / "disp_right" / f"{name}.npy", f["disp_right"])
        lines.append(f"left/{name}.png right/{name}.png disp_left/{name}.npy disp_right/{name}.npy")
        if i < preview:
            sheet.extend(_preview_tiles(f, max_disparity))
    list_path = out / list_name
    list_path.write_text("\n".join(lines) + "\n")
    if sheet:
        from smd_core import viz

        cv2.imwrite(str(out / "preview.png"), viz.contact_sheet(sheet, cols=4))
    return list_path


def _preview_tiles(frame: Mapping[str, Any], max_disparity: float) -> list[np.ndarray]:
    from smd_core import viz

    return [
        viz.label(frame["left"], "left"),
        viz.label(frame["right"], "right"),
        viz.label(viz.colorize_disparity(frame["disp_left"], vmin=0.0, vmax=max_disparity), "disp left"),
        viz.label(viz.colorize_disparity(frame["disp_right"], vmin=0.0, vmax=max_disparity), "disp right"),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=int, required=True, help="number of stereo pairs")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-disparity", type=float, default=64.0, help="largest disparity in pixels")
    parser.add_argument("--min-disparity", type=float, default=None, help="smallest disparity (default 5%% of max)")
    parser.add_argument("--textures", nargs="+", default=list(TEXTURE_KINDS), choices=TEXTURE_KINDS)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPE_KINDS), choices=SHAPE_KINDS,
                        help="foreground object kinds")
    parser.add_argument("--no-photometric", action="store_true", help="identical camera responses in both views")
    parser.add_argument("--list-name", default="train.txt", help="name of the list file written in --out")
    parser.add_argument("--preview", type=int, default=4, help="frames in preview.png (0: none)")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    path = write_dataset(
        args.out, args.num, seed=args.seed, height=args.height, width=args.width,
        max_disparity=args.max_disparity, min_disparity=args.min_disparity, textures=tuple(args.textures),
        shapes=tuple(args.shapes),
        photometric=not args.no_photometric, list_name=args.list_name, preview=args.preview,
    )
    print(f"wrote {args.num} pairs; list file: {path}")
    return 0
