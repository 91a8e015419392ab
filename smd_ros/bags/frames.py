"""One frame of `smd bag2dataset` to files: decode (the node's decoder), rectify, label, check, write atomically."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smd_core.files import atomic_write
from smd_core.geometry import depth_to_disparity
from smd_ros import sensors
from smd_ros.bags.calib import StereoCalibration, stereo_matches
from smd_ros.bags.options import Bag2DatasetOptions
from smd_ros.bags.pairing import Frame
from smd_ros.bags.pseudo import pseudo_label
from smd_ros.bags.reader import BagError

LOG = logging.getLogger("smd_ros.bags")
RECTIFICATION_CHECK_FRAMES = 3  # pairs whose feature matches feed the rectification check


def png_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"OpenCV could not PNG-encode a {image.dtype} image of shape {image.shape}")
    return buf.tobytes()


def _grey_if_grey(bgr: np.ndarray) -> np.ndarray:
    """(H, W) when the three channels of a BGR image are equal (a mono camera): a third of the PNG size, and
    readers (`smd_core.data.io.read_image`) give back the same BGR image."""
    if np.array_equal(bgr[..., 0], bgr[..., 1]) and np.array_equal(bgr[..., 1], bgr[..., 2]):
        return np.ascontiguousarray(bgr[..., 0])
    return bgr


def check_labels(disparity: np.ndarray, max_disparity: float) -> tuple[np.ndarray, dict[str, int]]:
    """Labels (H, W) px with implausible values set to 0 (invalid), and how many of each kind were:
    "impossible" (non-finite or >= the image width: no stereo pair shows them) and "beyond_range" (above
    `max_disparity` > 0, the model's range). Invalid labels (0) stay as they are."""
    d = np.asarray(disparity, np.float32)
    with np.errstate(invalid="ignore"):
        impossible = ~np.isfinite(d) | (d >= d.shape[1]) | (d < 0)
        beyond = ~impossible & (d > max_disparity) if max_disparity > 0 else np.zeros(d.shape, bool)
    counts = {"impossible": int(np.count_nonzero(impossible)), "beyond_range": int(np.count_nonzero(beyond))}
    if counts["impossible"] or counts["beyond_range"]:
        d = np.where(impossible | beyond, np.float32(0.0), d)
    return d, counts


class FrameWriter:
    """Decodes one frame's messages, rectifies, labels and range-checks, writes its files atomically.
    `corrupt`: frame index -> why its messages did not deserialize (filled by `scan.collect`)."""

    def __init__(self, out: Path, options: Bag2DatasetOptions, calib: StereoCalibration, predictor: Any) -> None:
        self.out, self.options, self.calib, self.predictor = out, options, calib, predictor
        self.pseudo_max_uncertainty = options.pseudo_max_uncertainty
        # 0: auto, the model's own threshold (no predictor when every frame is already on disk).
        if options.pseudo_labels and not self.pseudo_max_uncertainty and predictor is not None:
            self.pseudo_max_uncertainty = predictor.model.deployment.pseudo_max_uncertainty
            if not self.pseudo_max_uncertainty:
                raise ValueError(f"--pseudo-labels {options.pseudo_labels}: the model has no pseudo-label threshold "
                                 "(Deployment.pseudo_max_uncertainty 0); pass --pseudo-max-uncertainty PX")
        self.maps = None
        if options.rectify:
            if not (calib.left.full_frame and calib.right.full_frame):
                raise BagError("--rectify needs camera_info of whole sensor images: these use binning or a ROI "
                               "(record image_rect topics, or the raw full-size images)")
            self.maps = {"left": calib.left.rectify_maps(), "right": calib.right.rectify_maps()}
        self.warnings: list[str] = []
        self.fb_warned = False
        self.matches: list[np.ndarray] = []  # (N, 4) point matches of the first pairs (rectification check)
        self.corrupt: dict[int, str] = {}

    def _images(self, parts: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
        """The pair as (H, W, 3) BGR uint8, decoded as the node decodes it (`sensors.stereo_images`), rectified."""
        options = self.options
        try:
            images = sensors.stereo_images(parts["left"], parts["right"], image_bits=options.image_bits,
                                           names=(f"left image {options.left_image}",
                                                  f"right image {options.right_image}"))
        except sensors.InputError as err:
            if err.kind in ("encoding", "empty"):
                raise
            raise BagError(f"{where}: {err}") from None
        width, height = self.calib.size
        if images[0].shape[:2] != (height, width):
            raise BagError(f"{where}: {options.left_image} image is {images[0].shape[1]}x{images[0].shape[0]} but "
                           f"its camera_info says {width}x{height}")
        if self.maps is None:
            return images
        return tuple(cv2.remap(image, *self.maps[role], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                     for role, image in zip(("left", "right"), images, strict=True))  # type: ignore[return-value]

    def _ground_truth(self, msg: Any, shape: tuple[int, int], where: str) -> np.ndarray:
        """Disparity labels (H, W) px of the left image from the ground-truth message (0 = invalid)."""
        options, camera = self.options, self.calib.camera
        if options.disparity:
            data, what = sensors.disparity_pixels(msg, options.disparity), "disparity image"
            if not self.fb_warned and (abs(msg.f - camera.fx) > 1e-3 * camera.fx
                                       or abs(msg.t - camera.baseline) > 1e-3 * camera.baseline):
                self.fb_warned = True  # once per conversion: every message of a recording says the same
                self.warnings.append(
                    f"{options.disparity}: DisparityImage f={msg.f:.6g}, T={msg.t:.6g} differ from camera_info "
                    f"(fx={camera.fx:.6g}, B={camera.baseline:.6g}); its disparities are used as they are")
                LOG.warning(self.warnings[-1])
        else:
            data, what = sensors.depth_metres(msg, options.depth or ""), "depth image"
        if data.shape != shape:
            raise BagError(f"{where}: {what} on {options.gt_topic} is {data.shape[1]}x{data.shape[0]} but the left "
                           f"image is {shape[1]}x{shape[0]}; ground truth must be registered to the left camera at its "
                           "resolution")
        if options.disparity:
            return data
        if self.maps is not None:
            data = self.calib.rectify_depth(data, *self.maps["left"])
        with np.errstate(invalid="ignore"):
            data[(data < options.min_depth) | (data > (options.max_depth or math.inf))] = np.nan
            disparity = depth_to_disparity(data, camera)
            disparity[disparity <= 0] = 0.0  # invalid depth, or behind doffs
        return disparity

    def write(self, frame: Frame, parts: dict[str, Any], where: str) -> None:
        """Writes `frame` from its decoded messages `parts` ("left", "right"[, "gt"]); `where` names it in errors."""
        options = self.options
        left, right = self._images(parts, where)
        if options.check_rectification and not options.rectify and len(self.matches) < RECTIFICATION_CHECK_FRAMES:
            self.matches.append(stereo_matches(left, right))
        files = frame.files(options)
        outputs = {files["left"]: png_bytes(_grey_if_grey(left)), files["right"]: png_bytes(_grey_if_grey(right))}
        disparity = None
        if options.gt_topic:
            disparity = self._ground_truth(parts["gt"], left.shape[:2], where)
        elif options.pseudo_labels:
            label = pseudo_label(self.predictor, left, right, max_uncertainty=self.pseudo_max_uncertainty,
                                 lr_tolerance=options.pseudo_lr_tolerance)
            disparity = label.disparity
            outputs[files["conf"]] = png_bytes(label.confident.astype(np.uint8) * 255)
        if disparity is not None:
            disparity, frame.masked = check_labels(disparity, options.max_disparity)
            if frame.masked["impossible"] > options.max_bad_labels * disparity.size:
                frame.rejected = (
                    f"{frame.masked['impossible']} labels are non-finite or >= the image width (more than "
                    f"--max-bad-labels {options.max_bad_labels:g} of {disparity.size} pixels): corrupt ground truth "
                    "or a wrong calibration")
                LOG.warning("%s: %s; frame left out of the lists", where, frame.rejected)
            buf = io.BytesIO()
            np.save(buf, disparity, allow_pickle=False)
            outputs[files["disp"]] = buf.getvalue()
            frame.measure(disparity)
        # Disparity (and confidence) last: a frame counts as done when all its files exist.
        for rel, data in outputs.items():
            atomic_write(self.out / rel, data)


def load_predictor(options: Bag2DatasetOptions) -> Any:
    """The torch Predictor of the --pseudo-labels checkpoint (imported here: other conversions need no torch)."""
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model

    return Predictor(load_model(options.pseudo_labels or "", device=options.device), device=options.device)
