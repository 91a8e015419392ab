"""Rendering: both views of a layer stack by forward geometry, with exact disparity and occlusion.

Left pixel (x, y) shows the layer point at (x, y), of disparity d(x, y) = a x + b y + c. That point lands
at x_r = x - d in the right view, so right pixel (x_r, y) shows the point at x = (x_r + b y + c) / (1 - a),
of right-view disparity (a x_r + b y + c) / (1 - a), again a plane. Shape, texture (`cv2.remap`, bilinear)
and shading are evaluated at that left-frame point, so a surface looks the same in both views.

Occlusion is a per-pixel z-buffer in each view: the layer with the larger disparity wins. Layers are
composited back to front with anti-aliased edges (coverage from the signed distance); the ground truth
at a pixel is the front-most layer whose shape contains the pixel centre. Photometric differences
between the views (gain, per-channel gain, gamma, blur, sensor noise) are applied last.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from smd_core.data.synthetic.scene import Layer, Posed, SceneOptions, build_scene, options_from, pose, scene_options
from smd_core.data.synthetic.textures import TEXTURE_KINDS


@dataclasses.dataclass
class SyntheticFrame:
    """One rendered stereo pair: BGR uint8 views; exact disparities (> 0 everywhere: left x matches right
    x - disp_left); the left pixels hidden in the right view; the visible layer's id (0 = background wall)."""

    left: np.ndarray
    right: np.ndarray
    disp_left: np.ndarray
    disp_right: np.ndarray
    occlusion_left: np.ndarray
    instance_left: np.ndarray
    instance_right: np.ndarray


def _view_region(posed: Posed, view: str, H: int, W: int) -> tuple[int, int, int, int] | None:
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
    return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def _render_view(posed_layers: list[Posed], H: int, W: int, view: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        visible = front if cover is None else cover > 0
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        if rows.size == 0:
            continue
        # Appearance only where the layer shows: thin, leaning and see-through shapes leave most of
        # their box uncovered (pixel-wise identical to working on the whole box).
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        y0, x0, y1, x1 = y0 + r0, x0 + c0, y0 + r1, x0 + c1
        lx, ly, front = lx[r0:r1, c0:c1], ly[r0:r1], front[r0:r1, c0:c1]
        if cover is not None:
            cover = cover[r0:r1, c0:c1]
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


def _render(layers: list[Layer], t: float, opt: SceneOptions, ph: _Photometric | None,
            rng: np.random.Generator) -> SyntheticFrame:
    """Frame `t` of the scene `layers`: both views, both disparities, occlusion and instance maps."""
    H, W = opt.height, opt.width
    # Back to front by disparity at the layer's reference point (the z-buffer settles the rest).
    posed = sorted((pose(layer, t) for layer in layers),
                   key=lambda p: (p.layer.shape is not None, p.a * p.layer.ref[0] + p.b * p.layer.ref[1] + p.c))
    col_l, disp_l, ids_l = _render_view(posed, H, W, "left")
    col_r, disp_r, ids_r = _render_view(posed, H, W, "right")
    occ = _occlusion(disp_l, ids_l, disp_r, ids_r)
    return SyntheticFrame(left=_finish(col_l, ph, 0, rng), right=_finish(col_r, ph, 1, rng),
                          disp_left=disp_l.astype(np.float32), disp_right=disp_r.astype(np.float32), occlusion_left=occ,
                          instance_left=ids_l, instance_right=ids_r)


def generator(seed: int | np.random.SeedSequence | tuple[int, ...] | list[int]) -> np.random.Generator:
    """The scene's random generator: ints and int sequences (e.g. (base_seed, index)) via SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    entropy = [int(s) for s in seed] if isinstance(seed, (tuple, list)) else int(seed)
    return np.random.default_rng(np.random.SeedSequence(entropy))


def render_scene(seed: int | tuple[int, ...] | list[int], *, height: int = 480, width: int = 640,
                 max_disparity: float = 64.0, min_disparity: float | None = None, num_objects: int | None = None,
                 num_thin: int | None = None, ground_plane: bool | None = None,
                 textures: tuple[str, ...] | list[str] | str = TEXTURE_KINDS, max_slope: float = 0.15,
                 photometric: bool = True, shapes: tuple[str, ...] | list[str] | str | None = None) -> SyntheticFrame:
    """Render one random stereo pair; the same `seed` (an int or ints, e.g. (base_seed, index)) always gives
    the same arrays. Every disparity lies in [min_disparity (default 5 % of max), max_disparity]; num_objects
    (default 5..14, of `shapes`) and num_thin (poles, wires; default 1..4) are drawn when None, as is
    ground_plane (p = 0.5); max_slope bounds |d disparity / dx| and / dy of object planes; photometric adds
    gain / gamma / blur / noise differences between the views."""
    opt = scene_options(height, width, max_disparity, min_disparity, num_objects, num_thin, ground_plane, textures,
                        max_slope, shapes)
    rng = generator(seed)
    layers = build_scene(rng, opt, motion=0.0)
    ph = _photometric(rng) if photometric else None
    return _render(layers, 0.0, opt, ph, rng)


def render_sequence(seed: int | tuple[int, ...] | list[int], num_frames: int, *, height: int = 480, width: int = 640,
                    max_disparity: float = 64.0, speed: float = 1.0, **options: Any) -> Iterator[SyntheticFrame]:
    """Frames of one scene whose objects move smoothly (constant velocity, disparity oscillating slowly).

    `speed` scales the motion (objects move about 0.3..2.5 px per frame at 480 px height when 1);
    the background stays still and the camera's photometric settings are fixed for the sequence.
    Other keyword options are those of `render_scene`.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if speed < 0:
        raise ValueError(f"speed must be >= 0, got {speed}")
    opt, photometric = options_from(height, width, max_disparity, options)
    rng = generator(seed)
    layers = build_scene(rng, opt, motion=float(speed))
    ph = _photometric(rng) if photometric else None
    for t in range(num_frames):
        yield _render(layers, float(t), opt, ph, rng)
