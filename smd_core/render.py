"""Render a point cloud to a picture from a side viewpoint (pure NumPy, z-buffered splats).

Seen from the camera, a cloud looks like the image it came from; flying pixels (points interpolated between
foreground and background) only show when the view turns. `render_cloud` orbits a virtual pinhole camera
around the scene so they appear as streaks behind object edges.
"""

from __future__ import annotations

import math

import numpy as np


def orbit_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) rotation of an optical frame (x right, y down, z forward): yaw about y, then pitch about x."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rx @ ry


def render_cloud(
    points: np.ndarray,
    colors: np.ndarray,
    *,
    size: tuple[int, int] = (480, 640),
    yaw_deg: float = 35.0,
    pitch_deg: float = -10.0,
    fov_deg: float = 60.0,
    splat: int = 2,
    background: tuple[int, int, int] = (40, 40, 40),
    center: np.ndarray | None = None,
) -> np.ndarray:
    """Points (N, 3) metres in an optical frame, colors (N, 3) BGR uint8 -> (H, W, 3) BGR picture.

    The virtual camera looks at `center` (default: the median point) from the original camera's distance,
    orbited by `yaw_deg` / `pitch_deg`. Non-finite points are skipped; nearer points win (z-buffer).
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colors):
        raise ValueError(f"points ({len(points)}) and colors ({len(colors)}) differ in length")
    h, w = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = background
    ok = np.isfinite(points).all(axis=1)
    points, colors = points[ok], colors[ok]
    if len(points) == 0:
        return img
    if center is None:
        center = np.median(points, axis=0)
    dist = float(np.linalg.norm(center))
    rot = orbit_rotation(yaw_deg, pitch_deg)
    # Camera at the orbit position looking at `center`: p_cam = R^T (p - center) + (0, 0, dist).
    cam = (points - center) @ rot + np.array([0.0, 0.0, dist])
    z = cam[:, 2]
    front = z > 1e-3
    cam, z, colors = cam[front], z[front], colors[front]
    f = (w / 2) / math.tan(math.radians(fov_deg) / 2)
    u = np.round(f * cam[:, 0] / z + (w - 1) / 2).astype(np.int64)
    v = np.round(f * cam[:, 1] / z + (h - 1) / 2).astype(np.int64)
    zbuf = np.full(h * w, np.inf)
    flat = img.reshape(-1, 3)
    offsets = [(dy, dx) for dy in range(splat) for dx in range(splat)]
    for dy, dx in offsets:
        uu, vv = u + dx, v + dy
        inside = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
        np.minimum.at(zbuf, (vv * w + uu)[inside], z[inside])
    for dy, dx in offsets:
        uu, vv = u + dx, v + dy
        inside = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
        lin = (vv * w + uu)[inside]
        win = z[inside] <= zbuf[lin]
        flat[lin[win]] = colors[inside][win]
    return img


def boundary_windows(score: np.ndarray, size: tuple[int, int], count: int = 3) -> list[tuple[int, int, int, int]]:
    """Up to `count` non-overlapping windows (y0, x0, h, w) of `size` = (h, w) inside `score` (H, W) with the
    highest sums of `score`, chosen greedily; windows whose sum is 0 are not returned.

    The demo picks the object boundaries to zoom into with `score` = flying points of all methods.
    """
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"score must be (H, W), got shape {s.shape}")
    h, w = int(size[0]), int(size[1])
    if not (0 < h <= s.shape[0] and 0 < w <= s.shape[1]):
        raise ValueError(f"window size {size} must be positive and fit in the score map {s.shape}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    # sums[y, x] = score[y:y+h, x:x+w].sum(), from the integral image.
    ii = np.pad(s.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = ii[h:, w:] - ii[:-h, w:] - ii[h:, :-w] + ii[:-h, :-w]
    windows: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if not sums[y, x] > 0:
            break
        windows.append((int(y), int(x), h, w))
        # No later window may overlap this one: its top-left corner must be a full window away.
        sums[max(0, y - h + 1) : y + h, max(0, x - w + 1) : x + w] = -np.inf
    return windows


def window_fov(window_width: float, fx: float, margin: float = 1.6) -> float:
    """Horizontal field of view (degrees) that frames `window_width` image pixels of a camera with focal
    length `fx` (pixels), widened by `margin` so the side view's depth spread stays in the picture."""
    if not (window_width > 0 and fx > 0 and margin > 0):
        raise ValueError(f"window_width, fx and margin must be positive, got {window_width}, {fx}, {margin}")
    return min(170.0, margin * math.degrees(2.0 * math.atan(window_width / (2.0 * fx))))
