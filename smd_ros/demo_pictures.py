"""`smd demo`'s cloud comparison: side views of one frame's point clouds (the node's bimodal head, the standard
L1 head, SGBM and BM as `stereo_image_proc` runs them, the ground truth) from one viewpoint, and zoomed views of
the object boundaries with the most flying points.

Every panel states its cloud's point count, density (points per image pixel) and flying points, and draws
the flying points magenta. A flying point is `metrics.flying_map`'s (the project's one definition): within 3 px of
a ground-truth jump over 2 px, more than 1 px from the ground truth and from both the largest and smallest
ground truth of the 9x9 window. Pixels without a point (holes, the node's filtered pixels) are never flying.

The zoomed windows never touch the image border's band (`border_margins`): left of the max disparity the
right camera does not see the scene, so every matcher's points there are occlusion noise, not boundaries.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smd_core import viz
from smd_core.geometry import StereoCamera, disparity_to_points
from smd_core.metrics import flying_map

CLOUD_VIEW = {"yaw_deg": 40.0, "pitch_deg": -12.0}
PANEL = (300, 400)  # (h, w) of each full side view
WINDOW = (80, 160)  # (h, w) image window of each zoomed boundary
CROP_TILE = (200, 400)  # (h, w) of each zoomed view
CROPS = 3
BORDER_PX = 8  # margin kept from the top, right and bottom borders (the left one: the max disparity)
# Magenta: neither a colour of the recording nor of the real scene (whose motorcycle is red).
FLYING_BGR = np.array([255, 0, 255], np.uint8)
BOX_BGR = (0, 255, 255)



# Side views of a cloud (pure NumPy, z-buffered splats): seen from the camera a cloud looks like its image;
# flying pixels only show as streaks behind object edges when the view turns.

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


@dataclasses.dataclass
class Cloud:
    """One method's cloud of the frame, organized like the image: points (H, W, 3) m (NaN = no point),
    colors (H, W, 3) BGR, flying (H, W) bool (None without ground truth)."""

    name: str
    points: np.ndarray
    colors: np.ndarray
    flying: np.ndarray | None

    @property
    def has_point(self) -> np.ndarray:
        return np.isfinite(self.points).all(axis=2)

    @property
    def n_points(self) -> int:
        return int(np.count_nonzero(self.has_point))

    @property
    def n_flying(self) -> int | None:
        return None if self.flying is None else int(np.count_nonzero(self.flying))

    def figures(self, window: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        """points, density (% of the pixels with a point) and flying points, of the frame or of `window`."""
        y, x, h, w = window or (0, 0, *self.points.shape[:2])
        n = int(np.count_nonzero(self.has_point[y : y + h, x : x + w]))
        flying = None if self.flying is None else int(np.count_nonzero(self.flying[y : y + h, x : x + w]))
        return {"points": n, "density": 100.0 * n / max(1, h * w), "flying": flying}


def flying_points(disparity: np.ndarray, gt: np.ndarray | None) -> np.ndarray | None:
    """(H, W) bool flying points (`metrics.flying_map`) of the cloud made from `disparity` (px, NaN or <= 0 =
    no point), or None without ground truth."""
    if gt is None or disparity.shape != gt.shape:
        return None
    d = np.where(disparity > 0, disparity, np.nan).astype(np.float32)
    return flying_map(d, gt)[1]


def cloud_from_disparity(name: str, disparity: np.ndarray, left: np.ndarray, camera: StereoCamera,
                         gt: np.ndarray | None) -> Cloud:
    """A method's cloud through the node's geometry (`disparity_to_points`); non-positive or NaN disparity
    gives no point."""
    d = np.where(disparity > 0, disparity, np.nan).astype(np.float32)
    return Cloud(name, disparity_to_points(d, camera), left, flying_points(d, gt))


def border_margins(max_disp: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) px where no zoom window may reach: the left one as wide as the max
    disparity (the band only the left camera sees), BORDER_PX elsewhere."""
    return BORDER_PX, BORDER_PX, max(BORDER_PX, int(np.ceil(max_disp))), BORDER_PX


def zoom_windows(score: np.ndarray, margins: tuple[int, int, int, int], size: tuple[int, int] = WINDOW,
                 count: int = CROPS) -> list[tuple[int, int, int, int]]:
    """Up to `count` windows (y, x, h, w) of `size` with the most `score` (flying points), all inside the image
    less `margins` (top, bottom, left, right); none where the interior is smaller than a window."""
    top, bottom, left, right = margins
    inner = score[top : score.shape[0] - bottom, left : score.shape[1] - right]
    if inner.shape[0] < size[0] or inner.shape[1] < size[1]:
        return []
    return [(y + top, x + left, h, w) for y, x, h, w in boundary_windows(inner, size, count)]


def _marked_colors(cloud: Cloud) -> np.ndarray:
    cols = cloud.colors.copy()
    if cloud.flying is not None:
        cols[cloud.flying] = FLYING_BGR
    return cols


def _render_window(cloud: Cloud, window: tuple[int, int, int, int], center: np.ndarray, fov: float) -> np.ndarray:
    y, x, h, w = window
    pts = cloud.points[y : y + h, x : x + w].reshape(-1, 3)
    cols = _marked_colors(cloud)[y : y + h, x : x + w].reshape(-1, 3)
    return render_cloud(pts, cols, size=CROP_TILE, center=center, fov_deg=fov, splat=3, **CLOUD_VIEW)


def _center(*clouds: Cloud, window: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """Median point of the first cloud with points (in `window` if given)."""
    for c in clouds:
        pts = c.points if window is None else c.points[window[0] : window[0] + window[2],
                                                       window[1] : window[1] + window[3]]
        pts = pts.reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            return np.median(pts, axis=0)
    return None


def panel_label(name: str, figures: dict[str, Any]) -> str:
    """The panel's text: its name, point count and density, flying points (drawn FLYING_BGR)."""
    text = f"{name}\n{figures['points']:,} points, {figures['density']:.1f} % dense"
    if figures["flying"] is not None:
        text += f"\n{figures['flying']:,} flying (magenta)"
    return text


def compare_clouds(path: Path, left: np.ndarray, clouds: list[Cloud], camera: StereoCamera,
                   ground_truth: Cloud | None = None, *, max_disp: float = 0.0, title: str = "") -> dict[str, Any]:
    """Write the comparison picture to `path`; returns its figures for summary.json.

    Top row: the left image (boxes: the zoomed boundaries), each cloud's side view, the ground truth's.
    Below, one row per boundary (up to `CROPS` windows of `WINDOW` px with the most flying points of all
    clouds, outside `border_margins(max_disp)`): the image window and each cloud's zoomed side view.
    """
    everyone = clouds + ([ground_truth] if ground_truth is not None else [])
    center = _center(*everyone)  # the first cloud with points; all views look at the same place
    score = sum((c.flying.astype(np.float32) for c in clouds if c.flying is not None),
                start=np.zeros(left.shape[:2], np.float32))
    windows = zoom_windows(score, border_margins(max_disp))
    scale_y, scale_x = PANEL[0] / left.shape[0], PANEL[1] / left.shape[1]
    image = cv2.resize(left, (PANEL[1], PANEL[0]), interpolation=cv2.INTER_AREA)
    for k, (y, x, h, w) in enumerate(windows, 1):
        p0, p1 = (round(x * scale_x), round(y * scale_y)), (round((x + w) * scale_x), round((y + h) * scale_y))
        cv2.rectangle(image, p0, p1, BOX_BGR, 2)
        cv2.putText(image, str(k), (p0[0] + 3, p1[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, BOX_BGR, 2)
    top = [viz.label(image, f"{title + ': ' if title else ''}left image\nboxes: zoomed below")]
    for c in everyone:
        view = render_cloud(c.points.reshape(-1, 3), _marked_colors(c).reshape(-1, 3), size=PANEL, center=center,
                            **CLOUD_VIEW)
        top.append(viz.label(view, panel_label(c.name, c.figures())))
    rows = [np.concatenate(top, axis=1)]
    crops: list[dict[str, Any]] = []
    fov = window_fov(WINDOW[1], camera.fx)
    for k, window in enumerate(windows, 1):
        y, x, h, w = window
        wc = _center(*([ground_truth] if ground_truth is not None else []), *clouds, window=window)
        if wc is None:
            continue
        tile = cv2.resize(left[y : y + h, x : x + w], (CROP_TILE[1], CROP_TILE[0]), interpolation=cv2.INTER_NEAREST)
        tiles = [viz.label(tile, f"#{k}: x {x}-{x + w}, y {y}-{y + h}")]
        counts: dict[str, dict[str, Any]] = {}
        for c in everyone:
            counts[c.name] = c.figures(window)
            tiles.append(viz.label(_render_window(c, window, wc, fov), panel_label(c.name, counts[c.name])))
        rows.append(np.concatenate(tiles, axis=1))  # crop tiles are as wide as the panels: the rows line up
        crops.append({"window_yxhw": [int(v) for v in window], "clouds": counts})
    if not cv2.imwrite(str(path), np.concatenate(rows, axis=0)):
        raise OSError(f"could not write {path}")
    return {"clouds": {c.name: c.figures() for c in clouds}, "crops": crops,
            "zoom_margins_tblr_px": list(border_margins(max_disp)),
            "flying_point_definition": "metrics.flying_map with a point: within 3 px of a ground-truth jump over "
                                       "2 px, > 1 px from the ground truth and from the 9x9 window's largest and "
                                       "smallest ground truth",
            "density": "% of the image's pixels (or the window's) with a point"}
