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
