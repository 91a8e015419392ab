"""Camera data in: the one decoder of images and calibration, for the stereo node and the bag tools alike.

rclpy and rosbags messages have the same field names, so nothing here imports a ROS package. Bad input raises
`InputError`, whose `kind` ("encoding", "empty", "layout", "size_mismatch", "calibration", "info_size") keys the
node's counters and throttled logs.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import cv2
import numpy as np

from smd_core.data.io import uint16_to_uint8
from smd_core.geometry import StereoCamera


class InputError(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class EncodingError(InputError):
    def __init__(self, message: str) -> None:
        super().__init__("encoding", message)


# encoding -> (dtype of Image.data per channel, channels, cv2 conversion to BGR or None).
# ROS names a Bayer pattern by its first row, OpenCV by the second: rggb -> BayerBG (as cv_bridge does).
ENCODINGS: dict[str, tuple[type, int, int | None]] = {
    "mono8": (np.uint8, 1, None), "8UC1": (np.uint8, 1, None),
    "bgr8": (np.uint8, 3, None), "8UC3": (np.uint8, 3, None), "rgb8": (np.uint8, 3, cv2.COLOR_RGB2BGR),
    "bgra8": (np.uint8, 4, cv2.COLOR_BGRA2BGR), "8UC4": (np.uint8, 4, cv2.COLOR_BGRA2BGR),
    "rgba8": (np.uint8, 4, cv2.COLOR_RGBA2BGR),
    "mono16": (np.uint16, 1, None), "16UC1": (np.uint16, 1, None),
    "32FC1": (np.float32, 1, None),
    "bayer_rggb8": (np.uint8, 1, cv2.COLOR_BayerBG2BGR), "bayer_bggr8": (np.uint8, 1, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": (np.uint8, 1, cv2.COLOR_BayerGR2BGR), "bayer_grbg8": (np.uint8, 1, cv2.COLOR_BayerGB2BGR),
    "yuv422": (np.uint8, 2, cv2.COLOR_YUV2BGR_UYVY), "uyvy": (np.uint8, 2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (np.uint8, 2, cv2.COLOR_YUV2BGR_YUY2), "yuyv": (np.uint8, 2, cv2.COLOR_YUV2BGR_YUY2),
}
# 16UC1 and 32FC1 are depth encodings (REP 118): never taken for a camera image.
DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")
CAMERA_ENCODINGS = tuple(e for e in ENCODINGS if e not in ("16UC1", "32FC1"))
COMPRESSED_FORMATS = ("jpeg", "jpg", "png", "tiff", "tif", "webp", "bmp", "jp2")


def stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _is_compressed(msg: Any) -> bool:
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def _bytes_of(data: Any) -> np.ndarray:
    """uint8 view of a message's `data` (rclpy: array.array / bytes; rosbags: numpy), no copy when possible."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain list, as a test or a hand-made message may hold
        return np.asarray(data, dtype=np.uint8)


def _raw_pixels(msg: Any, name: str, supported: tuple[str, ...]) -> np.ndarray:
    """Image.data -> (H, W[, C]) array in the message's dtype, honouring `step` padding and endianness."""
    encoding = str(msg.encoding)
    if encoding not in supported:
        raise EncodingError(f"{name}: unsupported encoding {encoding!r}; supported: {', '.join(supported)}")
    dtype, channels, _ = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 2 or width < 2:
        raise InputError("empty", f"{name}: empty image ({width}x{height})")
    size = np.dtype(dtype).itemsize
    row_bytes = width * channels * size
    if step < row_bytes:
        raise InputError("layout", f"{name}: step {step} < width {width} x {row_bytes // width} bytes ({encoding})")
    if step % size:
        # cv_bridge would read such rows shifted by a byte (garbage), so it is bad input, not a picture.
        raise InputError("layout", f"{name}: step {step} is not a multiple of the {size}-byte channel ({encoding})")
    data = _bytes_of(msg.data)
    # Some drivers omit the padding after the last row: only the last row's pixels must be there.
    need = step * (height - 1) + row_bytes
    if data.size < need:
        raise InputError("layout", f"{name}: {data.size} data bytes, too short for {width}x{height} {encoding} "
                         f"with step {step} (need {need})")
    if data.size < step * height:
        data = np.concatenate([data, np.zeros(step * height - data.size, np.uint8)])
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    order = ">" if bool(msg.is_bigendian) else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order)).astype(dtype, copy=False)
    return pixels.reshape((height, width) if channels == 1 else (height, width, channels))


def _decode_compressed(msg: Any, name: str) -> np.ndarray:
    """CompressedImage -> array; `format` like "jpeg", "bgr8; jpeg compressed bgr8" or "16UC1; compressedDepth"."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        return _compressed_depth(msg, name, fmt)
    tokens = fmt.lower().replace(";", " ").split()
    if tokens and not any(t in COMPRESSED_FORMATS for t in tokens):
        raise EncodingError(f"{name}: unsupported CompressedImage format {fmt!r}; supported: "
                            f"{', '.join(COMPRESSED_FORMATS)} and compressedDepth")
    data = _bytes_of(msg.data)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError("layout", f"{name}: could not decode CompressedImage (format {fmt!r}, {data.size} bytes)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    # "rgb8; jpeg compressed bgr8": image_transport swapped to BGR before compressing and imdecode returns
    # BGR, so every documented variant is BGR here.
    return image


def _compressed_depth(msg: Any, name: str, fmt: str) -> np.ndarray:
    """image_transport `compressedDepth`: 12-byte header (int32 format, float32 quant A, B) + PNG.

    16UC1 stores millimetres as they are; 32FC1 stores quantized inverse depth, depth = A / (v - B), v = 0
    invalid (NaN).
    """
    data = _bytes_of(msg.data)
    if data.size <= 12:
        raise InputError("layout", f"{name}: compressedDepth message too short ({data.size} bytes)")
    _, quant_a, quant_b = struct.unpack_from("<iff", data.tobytes()[:12])
    image = cv2.imdecode(data[12:], cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16:
        raise InputError("layout", f"{name}: could not decode compressedDepth PNG (format {fmt!r}, {data.size} bytes)")
    if fmt.split(";")[0].strip() != "32FC1":
        return image
    depth = np.full(image.shape, np.nan, np.float32)
    valid = image > 0
    depth[valid] = quant_a / (image[valid].astype(np.float32) - quant_b)
    return depth


def decode_image(msg: Any, name: str = "image", *, supported: tuple[str, ...] = tuple(ENCODINGS)) -> np.ndarray:
    """Image or CompressedImage -> (H, W, 3) uint8 BGR, (H, W) uint8 / uint16 mono, or (H, W) float32; the bit depth
    is kept. `supported`: the raw encodings accepted."""
    if _is_compressed(msg):
        return _decode_compressed(msg, name)
    pixels = _raw_pixels(msg, name, supported)
    if pixels.ndim == 3 and pixels.shape[2] == 2 and pixels.shape[1] % 2:
        raise InputError("layout", f"{name}: YUV 4:2:2 ({msg.encoding}) needs an even width, got {pixels.shape[1]}")
    code = ENCODINGS[str(msg.encoding)][2]
    return pixels if code is None else cv2.cvtColor(pixels, code)


def _camera_image(msg: Any, name: str) -> np.ndarray:
    image = decode_image(msg, name, supported=CAMERA_ENCODINGS)
    if image.dtype not in (np.uint8, np.uint16) or not (image.ndim == 2 or image.shape[2] == 3):
        raise EncodingError(f"{name}: a {image.dtype} image with shape {image.shape} is not a camera image (is "
                            "this a depth topic?)")
    if min(image.shape[:2]) < 2:
        raise InputError("empty", f"{name}: empty image ({image.shape[1]}x{image.shape[0]})")
    return image


def stereo_images(left: Any, right: Any, *, image_bits: int = 0,
                  names: tuple[str, str] = ("left image", "right image")) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) camera messages as (H, W, 3) BGR uint8 arrays, validated; `names` label errors.

    16-bit images (mono16, 16-bit PNG) get one shift for both (`uint16_to_uint8(image_bits)`, the one 16-bit
    policy), so left and right stay photometrically consistent.
    """
    lim, rim = _camera_image(left, names[0]), _camera_image(right, names[1])
    if lim.shape[:2] != rim.shape[:2]:
        raise InputError("size_mismatch", f"{names[0]} is {lim.shape[1]}x{lim.shape[0]} but {names[1]} is "
                         f"{rim.shape[1]}x{rim.shape[0]}")
    if deep := [im for im in (lim, rim) if im.dtype == np.uint16]:
        converted = iter(uint16_to_uint8(deep, image_bits))
        lim, rim = (next(converted) if im.dtype == np.uint16 else im for im in (lim, rim))
    return tuple(cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else np.ascontiguousarray(im)
                 for im in (lim, rim))  # type: ignore[return-value]


def depth_metres(msg: Any, name: str = "depth") -> np.ndarray:
    """Depth Image / CompressedImage -> float32 (H, W) metres, NaN where invalid; 16-bit ones are mm (REP 118)."""
    encoding = str(msg.format).split(";")[0].strip() if _is_compressed(msg) else str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise EncodingError(f"{name}: depth encoding {encoding!r} is not supported; use 32FC1 (metres) or 16UC1 "
                            "(millimetres)")
    depth = decode_image(msg, name, supported=DEPTH_ENCODINGS)
    if depth.ndim != 2 or depth.dtype not in (np.float32, np.uint16):
        raise EncodingError(f"{name}: depth must be one channel of 32FC1 (metres) or 16UC1 (millimetres), got a "
                            f"{depth.dtype} {'x'.join(map(str, depth.shape))} image")
    metres = depth.astype(np.float32) * np.float32(1e-3) if depth.dtype == np.uint16 else depth.astype(np.float32)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def disparity_pixels(msg: Any, name: str = "disparity") -> np.ndarray:
    """stereo_msgs/DisparityImage -> float32 (H, W) px, 0 where invalid (outside [min, max], non-finite, <= 0)."""
    if str(msg.image.encoding) != "32FC1":
        raise EncodingError(f"{name}: DisparityImage.image must be 32FC1, got {msg.image.encoding!r}")
    disparity = _raw_pixels(msg.image, name, ("32FC1",)).astype(np.float32, copy=True)
    low, high = float(msg.min_disparity), float(msg.max_disparity)
    with np.errstate(invalid="ignore"):
        invalid = ~np.isfinite(disparity) | (disparity <= 0) | (disparity < low)
        if high > low:
            invalid |= disparity > high
    disparity[invalid] = 0.0
    return disparity


# Relative difference tolerated between the left and right rectified focal lengths (and absolute px between
# their rectified cy): a rectified pair shares P[:3, :3] by construction, so only rounding (float32 of a
# shared value: ~6e-8) may differ.
RECTIFIED_RTOL = 1e-6


def info_image_size(info: Any) -> tuple[int, int]:
    """(width, height) of the images a CameraInfo describes, taking binning and ROI into account."""
    bx, by = max(1, int(info.binning_x)), max(1, int(info.binning_y))
    w = int(info.roi.width) if int(info.roi.width) else int(info.width)
    h = int(info.roi.height) if int(info.roi.height) else int(info.height)
    return w // bx, h // by


def _projection(info: Any, name: str) -> np.ndarray:
    p = np.asarray(info.p, dtype=np.float64).reshape(-1)
    if p.size != 12:
        raise InputError("calibration", f"{name} camera_info P must hold 12 values, got {p.size}: {p.tolist()}")
    with np.errstate(over="ignore"):  # outputs carry float32 (DisparityImage.f, clouds)
        finite32 = np.isfinite(p.astype(np.float32))
    if not finite32.all():
        raise InputError("calibration", f"{name} camera_info P holds values that are not finite as float32: "
                         f"{p.tolist()}")
    return p.reshape(3, 4)


def stereo_camera(left_info: Any, right_info: Any, width: int, height: int) -> StereoCamera:
    """The rectified stereo camera of images `width` x `height` from the two CameraInfo messages.

    Uses the projection matrices P (rectified images): fx, fy, cx, cy from the left P; baseline
    B = (P_left[0,3] - P_right[0,3]) / fx (REP 104: P[0,3] = -fx * Tx, so with the left camera the reference,
    P_left[0,3] = 0, this is image_geometry's -P_right[0,3] / fx and the DisparityImage `t`);
    doffs = cx_right - cx_left. The pair must be rectified: equal focal lengths and cy within
    `RECTIFIED_RTOL`, no vertical translation. Binning and ROI are applied as `image_geometry` does
    (subtract the ROI offset, divide by the binning).
    """
    for name, info in (("left", left_info), ("right", right_info)):
        if int(info.width) == 0 or int(info.height) == 0:
            raise InputError("calibration", f"{name} camera_info has no size ({info.width}x{info.height}): "
                             "is the camera calibrated?")
        got = info_image_size(info)
        if got != (width, height):
            raise InputError("info_size", f"{name} camera_info describes {got[0]}x{got[1]} images but the images "
                             f"are {width}x{height}")
    pl, pr = _projection(left_info, "left"), _projection(right_info, "right")
    fx, fy, fx_r, fy_r = map(float, (pl[0, 0], pl[1, 1], pr[0, 0], pr[1, 1]))
    if min(fx, fy, fx_r, fy_r) <= 0:
        raise InputError("calibration", f"focal length must be positive: left fx={fx}, fy={fy}, right fx={fx_r}, "
                         f"fy={fy_r} (an all-zero P means an uncalibrated camera)")
    if not (math.isclose(fx, fx_r, rel_tol=RECTIFIED_RTOL) and math.isclose(fy, fy_r, rel_tol=RECTIFIED_RTOL)):
        raise InputError("calibration", f"left and right focal lengths differ ((fx, fy) = ({fx}, {fy}) vs "
                         f"({fx_r}, {fy_r})): not a rectified pair")
    if abs(pr[1, 3]) > 1e-9 * fx or abs(pl[1, 3]) > 1e-9 * fx:
        raise InputError("calibration", f"P has a vertical translation (P_left[1,3]={pl[1, 3]}, "
                         f"P_right[1,3]={pr[1, 3]}): vertical stereo is not supported")
    if abs(pr[1, 2] - pl[1, 2]) > RECTIFIED_RTOL * fy:
        raise InputError("calibration", f"rectified principal points differ vertically (cy {pl[1, 2]} vs "
                         f"{pr[1, 2]}): rows would not correspond, not a rectified pair")
    baseline = float((pl[0, 3] - pr[0, 3]) / fx)
    # As float32 (what DisparityImage.t and the cloud hold): 1e-48 m would be a baseline of 0 there.
    if not (baseline > 0 and np.float32(baseline) > 0):
        raise InputError("calibration", f"baseline must be positive, got {baseline:.6g} m from P_left[0,3]="
                         f"{pl[0, 3]}, P_right[0,3]={pr[0, 3]}, fx={fx} (zero: the right P lacks the translation; "
                         "negative: are the left and right topics swapped?)")
    bx, by = max(1, int(left_info.binning_x)), max(1, int(left_info.binning_y))
    ox, oy, ox_r = int(left_info.roi.x_offset), int(left_info.roi.y_offset), int(right_info.roi.x_offset)
    cx, cy, cx_r = float(pl[0, 2]), float(pl[1, 2]), float(pr[0, 2])
    try:
        return StereoCamera(fx=fx / bx, fy=fy / by, cx=(cx - ox) / bx, cy=(cy - oy) / by,
                            baseline=baseline, width=int(width), height=int(height),
                            doffs=((cx_r - ox_r) - (cx - ox)) / bx)
    except ValueError as err:
        raise InputError("calibration", f"camera_info P gives no usable camera: {err}") from None

