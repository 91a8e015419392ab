"""Stereo geometry in pure NumPy: disparity <-> depth <-> 3-D points for a rectified pinhole pair.

Conventions (those of ROS `image_geometry` / `stereo_image_proc`):
- disparity d = u_left - u_right in pixels of the grid the intrinsics describe;
- depth Z = fx * B / (d + doffs) with B the baseline (metres) and doffs = cx_right - cx_left (0 for the
  usual rectification with identical principal points);
- X = (u - cx) * Z / fx, Y = (v - cy) * Z / fy in the left optical frame (x right, y down, z forward),
  with (u, v) the integer pixel coordinates of the grid.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np


def scale_principal_point(c: float, scale: float) -> float:
    """Principal point on a grid resized by `scale`: pixel centres at integers, the outer edges (-0.5, N - 0.5)
    mapped onto each other as `cv2.resize` does."""
    return (c + 0.5) * scale - 0.5


@dataclasses.dataclass(frozen=True)
class StereoCamera:
    """Intrinsics of the left rectified camera on a pixel grid of `width` x `height`, and the stereo baseline. fx, fy,
    cx, cy: pixels. baseline: metres (> 0). doffs: cx_right - cx_left in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float
    width: int
    height: int
    doffs: float = 0.0

    def __post_init__(self) -> None:
        values = {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "baseline": self.baseline,
                  "doffs": self.doffs}
        if bad := {k: v for k, v in values.items() if not math.isfinite(float(v))}:
            raise ValueError(f"camera parameters must be finite, got {bad}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.baseline <= 0:
            raise ValueError(f"baseline must be positive (metres), got {self.baseline}")
        if int(self.width) < 1 or int(self.height) < 1:
            raise ValueError(f"grid size must be positive, got {self.width}x{self.height}")

    @property
    def focal_baseline(self) -> float:
        """fx * B (pixel metres): depth = focal_baseline / (d + doffs)."""
        return self.fx * self.baseline

    def scaled(self, width: int, height: int) -> StereoCamera:
        """The same cameras on a `width` x `height` grid covering the same field of view (an output at another
        resolution than the input): a disparity measured on that grid pairs with these intrinsics."""
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"grid size must be positive, got {width}x{height}")
        sx, sy = width / self.width, height / self.height
        # doffs is a difference of principal points: the -0.5 offsets cancel.
        return StereoCamera(fx=self.fx * sx, fy=self.fy * sy, cx=scale_principal_point(self.cx, sx),
                            cy=scale_principal_point(self.cy, sy), baseline=self.baseline, width=width,
                            height=height, doffs=self.doffs * sx)


def _check_map(name: str, arr: np.ndarray, camera: StereoCamera | None = None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) map, got shape {arr.shape}")
    if camera is not None and arr.shape != (camera.height, camera.width):
        raise ValueError(f"{name} is {arr.shape[1]}x{arr.shape[0]} but the camera grid is "
                         f"{camera.width}x{camera.height}")
    return arr


def disparity_to_depth(disparity: np.ndarray, camera: StereoCamera, *, valid: np.ndarray | None = None,
                       invalid: float = np.nan) -> np.ndarray:
    """Depth (metres) float32 (H, W) from disparity (H, W) px; `invalid` where d + doffs <= 0, non-finite,
    or `valid` (bool (H, W)) is False."""
    d = _check_map("disparity", disparity, camera).astype(np.float32, copy=False)
    denom = d + np.float32(camera.doffs)
    ok = np.isfinite(denom) & (denom > 0)
    if valid is not None:
        ok &= _check_map("valid", valid, camera).astype(bool, copy=False)
    depth = np.full(d.shape, invalid, dtype=np.float32)
    np.divide(np.float32(camera.focal_baseline), denom, out=depth, where=ok)
    return depth


def depth_to_disparity(depth: np.ndarray, camera: StereoCamera, *, invalid: float = 0.0) -> np.ndarray:
    """Inverse of `disparity_to_depth`: d = fx * B / Z - doffs, float32 (H, W); `invalid` where Z <= 0,
    non-finite, or so small that fx * B / Z exceeds float32."""
    z = _check_map("depth", depth, camera).astype(np.float32, copy=False)
    fb = np.float32(camera.focal_baseline)
    # A depth below fx * B / float32-max (e.g. 1e-39 m) has no float32 disparity: it is invalid, not an overflow.
    ok = np.isfinite(z) & (z > fb / np.finfo(np.float32).max)
    disp = np.full(z.shape, invalid, dtype=np.float32)
    np.divide(fb, z, out=disp, where=ok)
    disp[ok] -= np.float32(camera.doffs)
    return disp


def disparity_to_xyz(disparity: np.ndarray, camera: StereoCamera, *,
                     valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, Y, Z) as three float32 (H, W) maps in metres, left optical frame (module docstring); NaN where
    invalid. Planar maps are cheap to compute; interleave them only once, where a message needs it."""
    z = disparity_to_depth(disparity, camera, valid=valid, invalid=np.nan)
    h, w = z.shape
    # One row of (u - cx)/fx and one column of (v - cy)/fy, broadcast, instead of full coordinate grids.
    xs = ((np.arange(w, dtype=np.float32) - np.float32(camera.cx)) / np.float32(camera.fx))[None, :]
    ys = ((np.arange(h, dtype=np.float32) - np.float32(camera.cy)) / np.float32(camera.fy))[:, None]
    return z * xs, z * ys, z


def disparity_to_points(disparity: np.ndarray, camera: StereoCamera, *, valid: np.ndarray | None = None) -> np.ndarray:
    """`disparity_to_xyz` as float32 (H, W, 3) points."""
    return np.stack(disparity_to_xyz(disparity, camera, valid=valid), axis=-1)


def disparity_bounds(camera: StereoCamera, *, min_depth: float = 0.0, max_depth: float = math.inf,
                     max_disparity: float = math.inf) -> tuple[float, float]:
    """(lowest, highest) disparity whose depth lies in [min_depth, max_depth] and that is <= max_disparity;
    the lowest is never below the disparity at infinity (-doffs)."""
    if not (min_depth >= 0 and max_depth > 0 and max_depth >= min_depth):
        raise ValueError(f"need 0 <= min_depth <= max_depth and max_depth > 0, got {min_depth}, {max_depth}")
    low = -camera.doffs if math.isinf(max_depth) else camera.focal_baseline / max_depth - camera.doffs
    high = math.inf if min_depth == 0 else camera.focal_baseline / min_depth - camera.doffs
    return low, min(high, float(max_disparity))


def validity_mask(disparity: np.ndarray, camera: StereoCamera, *, uncertainty: np.ndarray | None = None,
                  max_uncertainty: float = 0.0, min_depth: float = 0.0, max_depth: float = math.inf) -> np.ndarray:
    """bool (H, W): finite disparity with positive depth inside [min_depth, max_depth] and, when
    `max_uncertainty` > 0, a finite `uncertainty` (H, W, px) <= max_uncertainty."""
    d = _check_map("disparity", disparity, camera)
    low, high = disparity_bounds(camera, min_depth=min_depth, max_depth=max_depth)
    denom = d + np.float32(camera.doffs)
    with np.errstate(invalid="ignore"):
        # d + doffs > 0 keeps points in front of the camera even when max_depth is infinite.
        ok = np.isfinite(d) & (denom > 0) & (d >= low) & (d <= high)
    if max_uncertainty > 0:
        if uncertainty is None:
            raise ValueError("max_uncertainty > 0 needs an uncertainty map")
        ok &= confident(_check_map("uncertainty", uncertainty, camera), max_uncertainty)
    return ok


def confident(uncertainty: np.ndarray, max_uncertainty: float) -> np.ndarray:
    """bool, the shape of `uncertainty` (px): finite and at most `max_uncertainty` (the cloud's threshold rule)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(uncertainty) & (uncertainty <= max_uncertainty)


# The cloud's speckle filter (`remove_speckles`): stereo_image_proc's default region size; a range tighter than
# its 4 px, chosen on the held-out synthetic set (flying and bad-2 at equal density).
SPECKLE_SIZE = 100
SPECKLE_RANGE_PX = 2.0


def remove_speckles(disparity: np.ndarray, valid: np.ndarray, *, max_size: int = SPECKLE_SIZE,
                    max_diff: float = SPECKLE_RANGE_PX) -> np.ndarray:
    """`valid` (H, W) bool without the speckles of `disparity` (H, W) px among its pixels: connected regions of
    at most `max_size` pixels, neighbours within `max_diff` px of each other (OpenCV `filterSpeckles`, the filter
    stereo_image_proc runs on its matches). At a depth edge such an island, unlike the surfaces on either side,
    is mostly a piece of neither. max_size 0 returns `valid` unchanged."""
    d = _check_map("disparity", disparity)
    if valid.shape != d.shape:
        raise ValueError(f"valid {valid.shape} and disparity {d.shape} differ in shape")
    if max_size < 0 or not max_diff >= 0:
        raise ValueError(f"need max_size >= 0 and max_diff >= 0, got {max_size} and {max_diff}")
    if max_size == 0 or not valid.any():
        return valid
    # filterSpeckles takes 16-bit disparities: 1/16 px as SGBM's, coarser only past 2000 px.
    unit = min(16.0, 32000.0 / max(1.0, float(np.nanmax(np.abs(d[valid])))))
    fixed = np.where(valid, np.round(np.nan_to_num(d) * unit), -1).astype(np.int16)
    cv2.filterSpeckles(fixed, -1, int(max_size), int(round(max_diff * unit)))
    return valid & (fixed >= 0)


def cloud_mask(disparity: np.ndarray, uncertainty: np.ndarray, valid: np.ndarray, *, max_uncertainty: float,
               speckle_size: int = SPECKLE_SIZE, speckle_range: float = SPECKLE_RANGE_PX) -> np.ndarray:
    """The node's cloud rule, (H, W) bool: the `valid` pixels whose `uncertainty` (px) is finite and at most
    `max_uncertainty` (0: every valid pixel), less the speckles among them (`remove_speckles`)."""
    keep = valid & confident(uncertainty, max_uncertainty) if max_uncertainty > 0 else valid
    return remove_speckles(disparity, keep, max_size=speckle_size, max_diff=speckle_range)
