"""`smd demo`'s cloud comparison: side views of one frame's point clouds (the node's bimodal head, the standard
L1 head, SGBM and BM as `stereo_image_proc` runs them, the ground truth) from one viewpoint, and zoomed views of
the object boundaries with the most flying points (`metrics.flying_map`'s, on pixels with a point; magenta).

Seen from the camera a cloud looks like its image; flying points only show as streaks behind edges when the view
turns. The zoomed windows keep out of the image border's band (`border_margins`): left of the max disparity the
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
Window = tuple[int, int, int, int]  # (y, x, h, w) in image pixels


def orbit_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) rotation of an optical frame (x right, y down, z forward): yaw about y, then pitch about x."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rx @ ry


def render_cloud(points: np.ndarray, colors: np.ndarray, *, size: tuple[int, int] = (480, 640),
                 yaw_deg: float = 35.0, pitch_deg: float = -10.0, fov_deg: float = 60.0, splat: int = 2,
                 background: tuple[int, int, int] = (40, 40, 40), center: np.ndarray | None = None) -> np.ndarray:
    """Points (N, 3) metres in an optical frame, colors (N, 3) BGR uint8 -> (H, W, 3) BGR picture from a camera
    looking at `center` (default: the median point) from the original camera's distance, orbited by yaw and
    pitch. Each point covers splat x splat pixels; nearer points win; non-finite points are skipped."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colors):
        raise ValueError(f"points ({len(points)}) and colors ({len(colors)}) differ in length")
    h, w = size
    img = np.full((h, w, 3), background, np.uint8)
    ok = np.isfinite(points).all(axis=1)
    if not ok.any():
        return img
    points, colors = points[ok], colors[ok]
    center = np.median(points, axis=0) if center is None else center
    cam = (points - center) @ orbit_rotation(yaw_deg, pitch_deg) + np.array([0.0, 0.0, np.linalg.norm(center)])
    front = cam[:, 2] > 1e-3
    cam, colors = cam[front], colors[front]
    f = (w / 2) / math.tan(math.radians(fov_deg) / 2)
    order = np.argsort(cam[:, 2], kind="stable")  # nearest first: the first point on a pixel wins
    dy, dx = np.divmod(np.arange(splat * splat), splat)
    u = (np.round(f * cam[order, 0] / cam[order, 2] + (w - 1) / 2).astype(np.int64)[:, None] + dx).ravel()
    v = (np.round(f * cam[order, 1] / cam[order, 2] + (h - 1) / 2).astype(np.int64)[:, None] + dy).ravel()
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    pixels, first = np.unique((v * w + u)[inside], return_index=True)
    img.reshape(-1, 3)[pixels] = np.repeat(colors[order], splat * splat, axis=0)[inside][first]
    return img


def border_margins(max_disp: float) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) px no zoom window may reach: on the left the max disparity, else BORDER_PX."""
    return BORDER_PX, BORDER_PX, max(BORDER_PX, int(np.ceil(max_disp))), BORDER_PX


def zoom_windows(score: np.ndarray, margins: tuple[int, int, int, int] = (0, 0, 0, 0),
                 size: tuple[int, int] = WINDOW, count: int = CROPS) -> list[Window]:
    """Up to `count` non-overlapping windows of `size` (h, w) inside `score` (H, W) less `margins` (top, bottom,
    left, right), greedily those with the highest sums of `score` (flying points); none with a sum of 0."""
    top, bottom, left, right = margins
    s = np.asarray(score, np.float64)[top : score.shape[0] - bottom, left : score.shape[1] - right]
    h, w = size
    if not (0 < h <= s.shape[0] and 0 < w <= s.shape[1]):
        return []
    ii = np.pad(s.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # integral image: sums of every window at once
    sums = ii[h:, w:] - ii[:-h, w:] - ii[h:, :-w] + ii[:-h, :-w]
    windows: list[Window] = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if not sums[y, x] > 0:
            break
        windows.append((int(y) + top, int(x) + left, h, w))
        sums[max(0, y - h + 1) : y + h, max(0, x - w + 1) : x + w] = -np.inf  # later windows must not overlap
    return windows


@dataclasses.dataclass
class Cloud:
    """One method's cloud of the frame, organized like the image: points (H, W, 3) m (NaN = no point),
    colors (H, W, 3) BGR, flying (H, W) bool (None without ground truth)."""

    name: str
    points: np.ndarray
    colors: np.ndarray
    flying: np.ndarray | None

    def figures(self, window: Window | None = None) -> dict[str, Any]:
        """points, density (% of the pixels with a point) and flying points, of the frame or of `window`."""
        y, x, h, w = window or (0, 0, *self.points.shape[:2])
        n = int(np.isfinite(self.points[y : y + h, x : x + w]).all(axis=2).sum())
        flying = None if self.flying is None else int(self.flying[y : y + h, x : x + w].sum())
        return {"points": n, "density": 100.0 * n / max(1, h * w), "flying": flying}

    def view(self, size: tuple[int, int], center: np.ndarray | None, window: Window | None = None,
             **options: Any) -> np.ndarray:
        y, x, h, w = window or (0, 0, *self.points.shape[:2])
        colors = self.colors.copy()
        if self.flying is not None:
            colors[self.flying] = FLYING_BGR
        return render_cloud(self.points[y : y + h, x : x + w], colors[y : y + h, x : x + w], size=size,
                            center=center, **CLOUD_VIEW, **options)


def flying_points(disparity: np.ndarray, gt: np.ndarray | None) -> np.ndarray | None:
    """(H, W) bool flying points of the cloud of `disparity` (px, NaN or <= 0 = no point); None without gt."""
    if gt is None or disparity.shape != gt.shape:
        return None
    return flying_map(np.where(disparity > 0, disparity, np.nan).astype(np.float32), gt)[1]


def cloud_from_disparity(name: str, disparity: np.ndarray, left: np.ndarray, camera: StereoCamera,
                         gt: np.ndarray | None) -> Cloud:
    d = np.where(disparity > 0, disparity, np.nan).astype(np.float32)
    return Cloud(name, disparity_to_points(d, camera), left, flying_points(d, gt))


def _center(clouds: list[Cloud], window: Window | None = None) -> np.ndarray | None:
    """Median point of the first cloud with points (in `window` if given)."""
    y, x, h, w = window or (0, 0, *clouds[0].points.shape[:2])
    for c in clouds:
        pts = c.points[y : y + h, x : x + w].reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            return np.median(pts, axis=0)
    return None


def panel_label(name: str, figures: dict[str, Any]) -> str:
    text = f"{name}\n{figures['points']:,} points, {figures['density']:.1f} % dense"
    return text if figures["flying"] is None else text + f"\n{figures['flying']:,} flying (magenta)"


def compare_clouds(path: Path, left: np.ndarray, clouds: list[Cloud], camera: StereoCamera,
                   ground_truth: Cloud | None = None, *, max_disp: float = 0.0, title: str = "") -> dict[str, Any]:
    """Write the comparison picture to `path`; returns its figures for summary.json.

    Top row: the left image (boxes: the zoomed boundaries), each cloud's side view, the ground truth's.
    Below, one row per boundary (the windows with the most flying points of all clouds, outside
    `border_margins(max_disp)`): the image window and each cloud's zoomed side view.
    """
    everyone = clouds + ([ground_truth] if ground_truth is not None else [])
    score = sum((c.flying.astype(np.float32) for c in clouds if c.flying is not None),
                start=np.zeros(left.shape[:2], np.float32))
    windows = zoom_windows(score, border_margins(max_disp))
    sy, sx = PANEL[0] / left.shape[0], PANEL[1] / left.shape[1]
    image = cv2.resize(left, (PANEL[1], PANEL[0]), interpolation=cv2.INTER_AREA)
    for k, (y, x, h, w) in enumerate(windows, 1):
        p0, p1 = (round(x * sx), round(y * sy)), (round((x + w) * sx), round((y + h) * sy))
        cv2.rectangle(image, p0, p1, BOX_BGR, 2)
        cv2.putText(image, str(k), (p0[0] + 3, p1[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, BOX_BGR, 2)
    center = _center(everyone)  # all views look at the same place
    top = [viz.label(image, f"{title + ': ' if title else ''}left image\nboxes: zoomed below")]
    top += [viz.label(c.view(PANEL, center), panel_label(c.name, c.figures())) for c in everyone]
    rows, crops = [np.concatenate(top, axis=1)], []
    # The zoomed views frame the window's width, widened 1.6x so its depth spread stays in the picture.
    fov = min(170.0, 1.6 * math.degrees(2.0 * math.atan(WINDOW[1] / (2.0 * camera.fx))))
    for k, window in enumerate(windows, 1):
        wc = _center(([ground_truth] if ground_truth is not None else []) + clouds, window)
        if wc is None:
            continue
        y, x, h, w = window
        tile = cv2.resize(left[y : y + h, x : x + w], (CROP_TILE[1], CROP_TILE[0]), interpolation=cv2.INTER_NEAREST)
        counts = {c.name: c.figures(window) for c in everyone}
        rows.append(np.concatenate([viz.label(tile, f"#{k}: x {x}-{x + w}, y {y}-{y + h}")] + [
            viz.label(c.view(CROP_TILE, wc, window, fov_deg=fov, splat=3), panel_label(c.name, counts[c.name]))
            for c in everyone], axis=1))  # crop tiles are as wide as the panels: the rows line up
        crops.append({"window_yxhw": list(window), "clouds": counts})
    if not cv2.imwrite(str(path), np.concatenate(rows, axis=0)):
        raise OSError(f"could not write {path}")
    return {"clouds": {c.name: c.figures() for c in clouds}, "crops": crops,
            "zoom_margins_tblr_px": list(border_margins(max_disp)),
            "flying_point_definition": "metrics.flying_map with a point: within 3 px of a ground-truth jump over "
                                       "2 px, > 1 px from the ground truth and from the 9x9 window's largest and "
                                       "smallest ground truth",
            "density": "% of the image's pixels (or the window's) with a point"}
