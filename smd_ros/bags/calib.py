"""A recording's stereo calibration from its CameraInfo pair. The rectified camera is the node's own
(`sensors.stereo_camera`); this module adds the raw cameras (K, D, R) to rectify raw images and depth, hints
that the infos describe raw cameras, calib.yaml, and the check that a pair's feature matches share rows.
REP 104: `image_rect` topics come with the raw CameraInfo, so their intrinsics are P[:, :3], not K."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import cv2
import numpy as np

from smd_core.geometry import StereoCamera
from smd_ros import sensors

PLUMB_BOB_MODELS = ("plumb_bob", "rational_polynomial", "")
FISHEYE_MODELS = ("equidistant", "fisheye")


@dataclasses.dataclass(frozen=True)
class Roi:
    """sensor_msgs/RegionOfInterest's offsets and size (0 = the whole image)."""

    x_offset: int = 0
    y_offset: int = 0
    width: int = 0
    height: int = 0


@dataclasses.dataclass
class CameraModel:
    """One camera's CameraInfo as arrays: K (3,3), D (n,), R (3,3), P (3,4), raw image size."""

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray
    r: np.ndarray
    p: np.ndarray
    distortion_model: str = "plumb_bob"
    frame_id: str = ""
    binning_x: int = 0
    binning_y: int = 0
    roi: Roi = Roi()

    @classmethod
    def from_msg(cls, msg: Any) -> CameraModel:
        roi = msg.roi
        return cls(int(msg.width), int(msg.height), np.asarray(msg.k, np.float64).reshape(3, 3),
                   np.asarray(msg.d, np.float64).reshape(-1), np.asarray(msg.r, np.float64).reshape(3, 3),
                   np.asarray(msg.p, np.float64).reshape(3, 4), str(msg.distortion_model), str(msg.header.frame_id),
                   int(msg.binning_x), int(msg.binning_y),
                   Roi(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)))

    @property
    def full_frame(self) -> bool:
        """True when the images are the whole sensor (no binning, no ROI): raw K, D, R apply to them."""
        return max(1, self.binning_x, self.binning_y) == 1 and not (self.roi.width or self.roi.height)

    def same_as(self, other: CameraModel, tol: float = 1e-9) -> bool:
        """True when both describe the same calibration (size, binning, ROI, model and all matrices)."""
        return (
            (self.width, self.height, self.distortion_model, self.binning_x, self.binning_y, self.roi)
            == (other.width, other.height, other.distortion_model, other.binning_x, other.binning_y, other.roi)
            and self.d.shape == other.d.shape
            and all(np.allclose(a, b, rtol=0, atol=tol) for a, b in
                    ((self.k, other.k), (self.d, other.d), (self.r, other.r), (self.p, other.p)))
        )

    def rotation_deg(self) -> float:
        """Angle (degrees) of R; 0 when the rectification rotation is the identity."""
        return math.degrees(math.acos(float(np.clip((np.trace(self.r) - 1.0) / 2.0, -1.0, 1.0))))

    def rectify_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap maps (H, W) float32 taking raw images to the rectified grid of P (same size)."""
        size = (self.width, self.height)
        model = self.distortion_model.lower()
        if model in FISHEYE_MODELS:
            d = np.zeros(4) if self.d.size == 0 else self.d[:4]
            return cv2.fisheye.initUndistortRectifyMap(self.k, d, self.r, self.p[:, :3], size, cv2.CV_32FC1)
        if model not in PLUMB_BOB_MODELS:
            raise ValueError(f"camera_info distortion_model {self.distortion_model!r} is not supported for --rectify; "
                             "supported: plumb_bob, rational_polynomial, equidistant")
        return cv2.initUndistortRectifyMap(self.k, self.d, self.r, self.p, size, cv2.CV_32FC1)


@dataclasses.dataclass
class StereoCalibration:
    """A rectified horizontal stereo pair: its `camera` (doffs = cx_right - cx_left: disparity = f B / Z - doffs)
    and the raw models."""

    left: CameraModel
    right: CameraModel
    camera: StereoCamera
    warnings: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_models(cls, left: CameraModel, right: CameraModel) -> StereoCalibration:
        """The pair for the images the left CameraInfo describes; InputError (a ValueError) if not rectified."""
        width, height = sensors.info_image_size(left)
        camera = sensors.stereo_camera(left, right, width, height)
        warnings: list[str] = []
        if left.p[0, 3] != 0:
            warnings.append(f"P_left[0,3]={left.p[0, 3]:.6g}: the left camera is not the reference of P")
        if abs(camera.doffs) > 1e-6:
            warnings.append(f"rectified principal points differ by doffs={camera.doffs:.4g} px; "
                            "disparity = f*B/Z - doffs")
        return cls(left, right, camera, warnings)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the images (binning and ROI applied)."""
        return self.camera.width, self.camera.height

    def rectification_notes(self) -> list[str]:
        """Hints that the infos describe raw cameras (R not the identity, or distortion)."""
        notes = []
        for side, cam in (("left", self.left), ("right", self.right)):
            angle = cam.rotation_deg()
            if angle > 0.05 or np.any(np.abs(cam.d) > 1e-12):
                notes.append(f"{side} camera_info has R rotating {angle:.2f} deg and D={np.round(cam.d, 4).tolist()}: "
                             "it describes the raw camera. The images are taken to be rectified already (intrinsics "
                             "from P); pass --rectify if the image topics carry raw images")
        return notes

    def rectify_depth(self, depth_m: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        """Depth registered to the RAW left image -> depth along the rectified left optical axis, (H, W).

        Depth is resampled with nearest neighbour (interpolating across an object edge invents depth), and
        Z is re-expressed in the rotated frame: a rectified pixel's ray r = ((x-cx)/fx, (y-cy)/fy, 1) is
        R^T r in the raw frame, so Z_rect = Z_raw / (R^T r)_z.
        """
        sampled = cv2.remap(depth_m.astype(np.float32), map_x, map_y, cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
        cam, r = self.camera, self.left.r  # r: raw -> rectified
        xs = (np.arange(sampled.shape[1], dtype=np.float64) - cam.cx) / cam.fx
        ys = (np.arange(sampled.shape[0], dtype=np.float64) - cam.cy) / cam.fy
        raw_z = r[0, 2] * xs[None, :] + r[1, 2] * ys[:, None] + r[2, 2]  # (R^T r)_z: column 2 of R dotted with r
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sampled / raw_z).astype(np.float32)

    def to_yaml_dict(self) -> dict[str, Any]:
        """What calib.yaml stores: rectified intrinsics K, baseline, size, and the source CameraInfos."""
        cam = self.camera
        return {
            "width": cam.width, "height": cam.height,
            "K": [[cam.fx, 0.0, cam.cx], [0.0, cam.fy, cam.cy], [0.0, 0.0, 1.0]],
            "fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "baseline": cam.baseline, "doffs": cam.doffs,
            "disparity_to_depth": "Z = fx * baseline / (disparity + doffs)",
            "P_left": self.left.p.tolist(), "P_right": self.right.p.tolist(),
            "raw": {side: {"frame_id": raw.frame_id, "distortion_model": raw.distortion_model, "K": raw.k.tolist(),
                           "D": raw.d.tolist(), "R": raw.r.tolist()}
                    for side, raw in (("left", self.left), ("right", self.right))},
        }


def stereo_matches(left: np.ndarray, right: np.ndarray, max_corners: int = 400) -> np.ndarray:
    """(N, 4) float32 rows (x_left, y_left, x_right, y_right) of reliable point matches.

    Corners tracked left -> right with pyramidal Lucas-Kanade (sub-pixel, handles large disparities) and
    kept only when tracking back lands within 0.5 px of the start and the disparity is not negative.
    """
    gl, gr = (img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) for img in (left, right))
    p0 = cv2.goodFeaturesToTrack(gl, maxCorners=max_corners, qualityLevel=0.01, minDistance=4, blockSize=5)
    if p0 is None:
        return np.zeros((0, 4), np.float32)
    lk = {"winSize": (15, 15), "maxLevel": 4}
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(gl, gr, p0, None, **lk)
    pb, st2, _ = cv2.calcOpticalFlowPyrLK(gr, gl, p1, None, **lk)
    p0, p1, pb = (a.reshape(-1, 2) for a in (p0, p1, pb))
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(pb - p0, axis=1) < 0.5)
    ok &= p0[:, 0] - p1[:, 0] > -1.0
    return np.hstack([p0[ok], p1[ok]]).astype(np.float32)


def vertical_misalignment(matches: np.ndarray, size: tuple[int, int], *, threshold: float = 0.5, min_inliers: int = 20,
                          iterations: int = 300) -> tuple[float, int]:
    """Typical vertical offset (px) between matched points of a stereo pair, and the inlier count.

    In a rectified pair matches share a row. An unrectified pair shows a smooth vertical offset field (shift,
    rotation, scale), so dy = a + b x + c y is fitted with RANSAC (deterministic) and the median |dy| of
    the model over the inliers is returned. Returns (nan, inliers) when fewer than `min_inliers` matches, or
    under half of them, agree on a model: weak texture then says nothing either way.
    matches: (N, 4) rows (x_left, y_left, x_right, y_right); size: (width, height).
    """
    n = len(matches)
    if n < max(3, min_inliers):
        return float("nan"), 0
    m = matches.astype(np.float64)
    dy = m[:, 3] - m[:, 1]
    design = np.stack([np.ones(n), m[:, 0] / size[0], m[:, 1] / size[1]], axis=1)
    rng = np.random.default_rng(0)
    best = np.zeros(n, bool)
    for _ in range(iterations):
        idx = rng.choice(n, 3, replace=False)
        try:
            coef = np.linalg.solve(design[idx], dy[idx])
        except np.linalg.LinAlgError:
            continue
        inliers = np.abs(design @ coef - dy) < threshold
        if inliers.sum() > best.sum():
            best = inliers
    count = int(best.sum())
    if count < min_inliers or count < 0.5 * n:
        return float("nan"), count
    coef, *_ = np.linalg.lstsq(design[best], dy[best], rcond=None)
    return float(np.median(np.abs(design[best] @ coef))), count
