"""Shapes of the scene layers: signed distance (px, negative inside) in the LEFT image frame.

Anti-aliasing takes a pixel's coverage from the signed distance at its centre, so every `sdf` is
1-Lipschitz (never steeper than a true distance) and exact or nearly so within a pixel of the edge.
`random_shape` draws one of the kinds in SHAPE_WEIGHTS (objects) or THIN_WEIGHTS (thin structures).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Foreground shapes and their relative frequency; the see-through ones (ring, wheel, fence, perforated)
# show the background through holes, where matchers produce flying pixels.
SHAPE_WEIGHTS = {"ellipse": 2.0, "box": 2.0, "polygon": 2.0, "ring": 1.2, "wheel": 0.8, "fence": 1.2, "perforated": 0.6}
SHAPE_KINDS = tuple(SHAPE_WEIGHTS)
THIN_WEIGHTS = {"pole": 0.6, "wire": 0.4}  # thin structures (a few pixels wide at 480 px height)
THIN_SHAPES = ("pole", "wire", "wheel", "fence")  # shapes too thin for a photo crop to read as texture


class Shape:
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in left pixels, enclosing the shape."""
        raise NotImplementedError

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclasses.dataclass
class Ellipse(Shape):
    cx: float
    cy: float
    rx: float
    ry: float
    theta: float
    hole: float = 0.0  # > 0: a ring whose hole is the same ellipse scaled by `hole`

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
class Polygon(Shape):
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
class Capsule(Shape):
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
class Wire(Shape):
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
class Lattice(Shape):
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

    def _local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v) and the rectangle's signed distance, all float32 like x and y."""
        c, s = np.float32(math.cos(self.theta)), np.float32(math.sin(self.theta))
        dx, dy = x - np.float32(self.cx), y - np.float32(self.cy)
        u, v = c * dx + s * dy, -s * dx + c * dy
        return u, v, np.maximum(np.abs(u) - np.float32(self.hw), np.abs(v) - np.float32(self.hh))

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v, rect = self._local(x, y)
        pu = np.float32(self.pitch_u)
        bars = np.abs(u - pu * np.round(u / pu)) - np.float32(self.bar_u)
        if self.pitch_v > 0:
            pv = np.float32(self.pitch_v)
            bars = np.minimum(bars, np.abs(v - pv * np.round(v / pv)) - np.float32(self.bar_v))
        if self.frame > 0:
            bars = np.minimum(bars, -rect - np.float32(self.frame))
        return np.maximum(rect, bars)


@dataclasses.dataclass
class Perforated(Lattice):
    """A rotated plate with a square lattice of round holes of radius `hole` every `pitch_u`."""

    hole: float = 0.0

    def sdf(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        u, v, rect = self._local(x, y)
        p = np.float32(self.pitch_u)
        du, dv = u - p * np.round(u / p), v - p * np.round(v / p)
        holes = np.sqrt(du * du + dv * dv) - np.float32(self.hole)
        return np.maximum(rect, -holes)


@dataclasses.dataclass
class Wheel(Shape):
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


def random_shape(rng: np.random.Generator, kind: str, cx: float, cy: float, H: int, W: int, hi: float) -> Shape:
    """A random shape of `kind` (a key of SHAPE_WEIGHTS or THIN_WEIGHTS) centred near (cx, cy)."""
    unit = min(H, W)
    px = unit / 480.0  # sizes of thin parts are given at 480 px and scaled
    if kind in ("ellipse", "ring"):
        rx, ry = rng.uniform(0.04, 0.22, size=2) * unit
        hole = (rng.uniform(0.3, 0.7) if rng.random() < 0.5 else rng.uniform(0.7, 0.92)) if kind == "ring" else 0.0
        return Ellipse(cx, cy, rx, ry, rng.uniform(0, math.pi), hole)
    if kind == "box":
        hw, hh = rng.uniform(0.04, 0.25, size=2) * unit
        ang = rng.uniform(-0.5, 0.5) if rng.random() < 0.7 else rng.uniform(0, math.pi)
        c, s = math.cos(ang), math.sin(ang)
        corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
        return Polygon(corners @ np.array([[c, s], [-s, c]]) + [cx, cy])
    if kind == "polygon":
        n = int(rng.integers(3, 10))
        ang = np.sort(rng.uniform(0, 2 * math.pi, size=n))
        r = rng.uniform(0.05, 0.22) * unit * rng.uniform(0.45, 1.0, size=n)
        return Polygon(np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1))
    if kind == "wheel":
        radius = rng.uniform(0.06, 0.25) * unit
        rim = max(rng.uniform(0.03, 0.15) * radius, 0.7)
        spoke = max(rng.uniform(0.6, 3.0) * px, 0.4)
        return Wheel(cx, cy, radius, rim, int(rng.integers(3, 17)), spoke, max(rng.uniform(0.05, 0.2) * radius, 1.0),
                      rng.uniform(0, 2 * math.pi))
    if kind in ("fence", "perforated"):
        hw, hh = rng.uniform(0.08, 0.4, size=2) * unit
        ang = rng.uniform(-0.25, 0.25) if rng.random() < 0.7 else rng.uniform(0, math.pi)
        # Bars / holes counted across the object (scale-free), at least 4 px apart so that holes stay visible.
        pitch = max(2.0 * hw / math.exp(rng.uniform(math.log(3.0), math.log(20.0))), 4.0)
        if kind == "perforated":
            hole = pitch * rng.uniform(0.2, 0.42)
            return Perforated(cx, cy, hw, hh, ang, pitch, 0.0, hole=hole)
        bar = float(np.clip(rng.uniform(0.6, 6.0) * px, 0.45, 0.35 * pitch))
        style = rng.random()  # pickets only, a grid, or pickets with rails and a frame
        pitch_v = 0.0
        if style >= 0.4:
            pitch_v = max(pitch * rng.uniform(0.6, 1.6) if style < 0.75 else hh * rng.uniform(0.5, 1.0), 4.0)
        frame = bar * rng.uniform(1.0, 3.0) if style >= 0.75 else 0.0
        return Lattice(cx, cy, hw, hh, ang, pitch, bar, pitch_v, bar, frame)
    if kind == "pole":
        radius = rng.uniform(0.6, 5.0) * px
        top, bottom = rng.uniform(-0.2, 0.5) * H, rng.uniform(0.6, 1.2) * H
        lean = rng.uniform(-0.15, 0.15) * (bottom - top)
        return Capsule(cx, top, cx + lean, bottom, radius)
    if kind == "wire":
        x0, x1 = rng.uniform(-0.3, 0.3) * W, rng.uniform(0.7, 1.3) * W + hi
        return Wire(x0, x1, rng.uniform(0.05, 0.8) * H, rng.uniform(-0.15, 0.15),
                     rng.uniform(0.0, 0.12) * H, rng.uniform(0.5, 1.8) * px)
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {sorted({**SHAPE_WEIGHTS, **THIN_WEIGHTS})}")
