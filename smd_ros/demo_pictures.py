"""`smd demo`'s cloud comparison: side views of one frame's point clouds (the node's bimodal head, the standard
L1 head, SGBM, the ground truth) from one viewpoint, and zoomed views of the object boundaries where flying
points show, each labelled with its count of flying points.

A flying point is a `metrics.bleeding_map` flying pixel turned into a point: in the depth-edge band, more
than `tolerance` (1 px) from the ground truth on both sides of the edge (and from its own). Pixels without a
point (SGBM's holes, the node's filtered pixels) are never flying. In the zoomed views flying points are
drawn red.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smd_core import viz
from smd_core.geometry import StereoCamera, disparity_to_points
from smd_core.metrics import bleeding_map
from smd_core.render import boundary_windows, render_cloud, window_fov

CLOUD_VIEW = {"yaw_deg": 40.0, "pitch_deg": -12.0}
PANEL = (360, 480)  # (h, w) of each full side view
WINDOW = (80, 160)  # (h, w) image window of each zoomed boundary
CROP_TILE = (240, 480)  # (h, w) of each zoomed view
CROPS = 3
FLYING_BGR = np.array([0, 0, 255], np.uint8)


@dataclasses.dataclass
class Cloud:
    """One method's cloud of the frame, organized like the image: points (H, W, 3) m (NaN = no point),
    colors (H, W, 3) BGR, flying (H, W) bool (None without ground truth)."""

    name: str
    points: np.ndarray
    colors: np.ndarray
    flying: np.ndarray | None

    @property
    def n_flying(self) -> int | None:
        return None if self.flying is None else int(np.count_nonzero(self.flying))


def flying_points(disparity: np.ndarray, gt: np.ndarray | None) -> np.ndarray | None:
    """(H, W) bool flying points of the cloud made from `disparity` (px, NaN or <= 0 = no point), or None
    without ground truth."""
    if gt is None or disparity.shape != gt.shape:
        return None
    d = np.where(disparity > 0, disparity, np.nan).astype(np.float32)
    return bleeding_map(d, gt)[1]


def cloud_from_disparity(name: str, disparity: np.ndarray, left: np.ndarray, camera: StereoCamera,
                         gt: np.ndarray | None) -> Cloud:
    """A method's cloud through the node's geometry (`disparity_to_points`); non-positive or NaN disparity
    gives no point."""
    d = np.where(disparity > 0, disparity, np.nan).astype(np.float32)
    return Cloud(name, disparity_to_points(d, camera), left, flying_points(d, gt))


def _render_window(cloud: Cloud, window: tuple[int, int, int, int], center: np.ndarray, fov: float) -> np.ndarray:
    y, x, h, w = window
    pts = cloud.points[y : y + h, x : x + w].reshape(-1, 3)
    cols = cloud.colors[y : y + h, x : x + w].reshape(-1, 3).copy()
    if cloud.flying is not None:
        cols[cloud.flying[y : y + h, x : x + w].reshape(-1)] = FLYING_BGR
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


def _label(name: str, n: int | None) -> str:
    return name if n is None else f"{name}: {n} flying"


def compare_clouds(path: Path, left: np.ndarray, clouds: list[Cloud], camera: StereoCamera,
                   ground_truth: Cloud | None = None) -> dict[str, Any]:
    """Write the comparison picture to `path`; returns its figures for summary.json.

    Top row: the left image (boxes: the zoomed boundaries), each cloud's side view, the ground truth's.
    Below, one row per boundary (up to `CROPS` windows of `WINDOW` px where the clouds have the most
    flying points): the image window and each cloud's zoomed side view.
    """
    center = _center(*clouds)
    if center is None and ground_truth is not None:
        center = _center(ground_truth)
    everyone = clouds + ([ground_truth] if ground_truth is not None else [])
    score = sum((c.flying.astype(np.float32) for c in clouds if c.flying is not None),
                start=np.zeros(left.shape[:2], np.float32))
    windows = boundary_windows(score, WINDOW, CROPS) if left.shape[0] >= WINDOW[0] and \
        left.shape[1] >= WINDOW[1] else []
    scale_y, scale_x = PANEL[0] / left.shape[0], PANEL[1] / left.shape[1]
    image = cv2.resize(left, (PANEL[1], PANEL[0]), interpolation=cv2.INTER_AREA)
    for k, (y, x, h, w) in enumerate(windows, 1):
        p0, p1 = (round(x * scale_x), round(y * scale_y)), (round((x + w) * scale_x), round((y + h) * scale_y))
        cv2.rectangle(image, p0, p1, (0, 255, 255), 2)
        cv2.putText(image, str(k), (p0[0] + 3, p1[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
    top = [viz.label(image, "left image; boxes: zoomed below")]
    for c in everyone:
        pts, cols = c.points.reshape(-1, 3), c.colors.reshape(-1, 3)
        view = render_cloud(pts, cols, size=PANEL, center=center, **CLOUD_VIEW)
        top.append(viz.label(view, _label(c.name, c.n_flying)))
    rows = [np.concatenate(top, axis=1)]
    crops: list[dict[str, Any]] = []
    fov = window_fov(WINDOW[1], camera.fx)
    for k, window in enumerate(windows, 1):
        y, x, h, w = window
        wc = _center(*([ground_truth] if ground_truth is not None else []), *clouds, window=window)
        if wc is None:
            continue
        tile = cv2.resize(left[y : y + h, x : x + w], (CROP_TILE[1], CROP_TILE[0]), interpolation=cv2.INTER_NEAREST)
        tiles = [viz.label(tile, f"#{k} (red: flying points)")]
        counts: dict[str, int] = {}
        for c in everyone:
            n = None if c.flying is None else int(np.count_nonzero(c.flying[y : y + h, x : x + w]))
            if n is not None:
                counts[c.name] = n
            tiles.append(viz.label(_render_window(c, window, wc, fov), _label(c.name, n)))
        rows.append(np.concatenate(tiles, axis=1))  # crop tiles are as wide as the panels: the rows line up
        crops.append({"window_yxhw": [int(v) for v in window], "flying_points": counts})
    cv2.imwrite(str(path), np.concatenate(rows, axis=0))
    return {"frame_flying_points": {c.name: c.n_flying for c in clouds}, "crops": crops,
            "flying_point_definition": "metrics.bleeding_map flying pixel with a point: in the 3 px depth-edge band, "
                                       "> 1 px from the ground truth of both sides and its own"}
