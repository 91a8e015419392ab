"""ROS 2 image messages <-> numpy arrays, without a ROS install (rosbags' pure-Python typestore).

Covers what stereo recordings carry: `sensor_msgs/Image` (8-bit colour and mono, Bayer, YUV 4:2:2, 16-bit,
32-bit float), `sensor_msgs/CompressedImage` (JPEG/PNG and `compressedDepth`), `sensor_msgs/CameraInfo` and
`stereo_msgs/DisparityImage`. Decoding is strict: an encoding we do not understand raises `EncodingError`
naming it and the supported ones, rather than producing a silently wrong array.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

# Message layouts of the four types we touch are identical in every ROS 2 distribution, so one store reads
# and writes bags from any of them.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DISPARITY_IMAGE = "stereo_msgs/msg/DisparityImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

_T = TYPESTORE.types
_Header = _T["std_msgs/msg/Header"]
_Time = _T["builtin_interfaces/msg/Time"]

# encoding -> (numpy dtype, channels); what `Image.data` holds per pixel.
_RAW_LAYOUTS: dict[str, tuple[type, int]] = {
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1),
    "bgr8": (np.uint8, 3), "rgb8": (np.uint8, 3), "8UC3": (np.uint8, 3),
    "bgra8": (np.uint8, 4), "rgba8": (np.uint8, 4), "8UC4": (np.uint8, 4),
    "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
    "bayer_rggb8": (np.uint8, 1), "bayer_bggr8": (np.uint8, 1),
    "bayer_gbrg8": (np.uint8, 1), "bayer_grbg8": (np.uint8, 1),
    "yuv422": (np.uint8, 2), "uyvy": (np.uint8, 2), "yuv422_yuy2": (np.uint8, 2), "yuyv": (np.uint8, 2),
}
# ROS names the Bayer pattern by its first row, OpenCV by the second: rggb -> BayerBG (as cv_bridge does).
_BAYER = {
    "bayer_rggb8": cv2.COLOR_BayerBG2BGR, "bayer_bggr8": cv2.COLOR_BayerRG2BGR,
    "bayer_gbrg8": cv2.COLOR_BayerGR2BGR, "bayer_grbg8": cv2.COLOR_BayerGB2BGR,
}
_YUV = {
    "yuv422": cv2.COLOR_YUV2BGR_UYVY, "uyvy": cv2.COLOR_YUV2BGR_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2BGR_YUY2, "yuyv": cv2.COLOR_YUV2BGR_YUY2,
}
SUPPORTED_IMAGE_ENCODINGS = tuple(_RAW_LAYOUTS)
SUPPORTED_DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")
_COMPRESSED_FORMATS = ("jpeg", "jpg", "png", "tiff", "tif", "webp", "bmp", "jp2")


class EncodingError(ValueError):
    """An image encoding or compressed format this tool cannot decode."""


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(stamp_ns: int, frame_id: str) -> Any:
    """A std_msgs/Header for `stamp_ns` (non-negative nanoseconds)."""
    if stamp_ns < 0:
        raise ValueError(f"stamp must be non-negative, got {stamp_ns} ns")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return _Header(stamp=_Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def serialize(msg: Any) -> bytes:
    """Message -> CDR bytes as stored in rosbag2."""
    return bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    """CDR bytes -> message object (numpy arrays for uint8[] fields, no copies)."""
    return TYPESTORE.deserialize_cdr(raw, msgtype)


def header_stamp_ns(raw: bytes | memoryview, msgtype: str) -> int:
    """Header stamp of a serialized message whose first field is a std_msgs/Header, in nanoseconds.

    Reads the 8 stamp bytes straight after the 4-byte CDR encapsulation header, so pairing a long
    recording never decodes its images; falls back to full deserialization for unusual encapsulations.
    """
    if len(raw) >= 12 and raw[0] == 0 and raw[1] in (0, 1):
        endian = "<" if raw[1] == 1 else ">"
        sec, nanosec = struct.unpack_from(f"{endian}iI", raw, 4)
        return sec * 1_000_000_000 + nanosec
    return stamp_to_ns(deserialize(raw, msgtype).header.stamp)


# ----------------------------------------------------------------------------------------------- decoding


def _raw_pixels(msg: Any, topic: str) -> np.ndarray:
    """Image.data -> (H, W[, C]) array in the message's dtype, honouring `step` padding and endianness."""
    encoding = str(msg.encoding)
    if encoding not in _RAW_LAYOUTS:
        raise EncodingError(
            f"{topic}: unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_IMAGE_ENCODINGS)}"
        )
    dtype, channels = _RAW_LAYOUTS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if height == 0 or width == 0:
        raise ValueError(f"{topic}: empty image ({width}x{height})")
    if step < row_bytes or data.size < step * (height - 1) + row_bytes:
        raise ValueError(
            f"{topic}: Image data too short for {width}x{height} {encoding}: step={step}, {data.size} bytes "
            f"(need step >= {row_bytes} and {step * height} bytes)"
        )
    if data.size < step * height:  # some drivers omit the padding after the last row
        data = np.concatenate([data, np.zeros(step * height - data.size, np.uint8)])
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    big = bool(msg.is_bigendian)
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(">" if big else "<"))
    pixels = pixels.astype(dtype, copy=False)  # native byte order
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def decode_image(msg: Any, topic: str = "<image>") -> np.ndarray:
    """Image or CompressedImage -> array: (H, W, 3) uint8 BGR, (H, W) uint8 mono, (H, W) uint16, or
    (H, W) float32 (depth). Colour conversions (RGB, BGRA, Bayer, YUV) happen here; bit depth is kept."""
    msgtype = msg.__msgtype__
    if msgtype == COMPRESSED_IMAGE:
        return decode_compressed(msg, topic)
    if msgtype != IMAGE:
        raise EncodingError(f"{topic}: expected {IMAGE} or {COMPRESSED_IMAGE}, got {msgtype}")
    encoding = str(msg.encoding)
    pixels = _raw_pixels(msg, topic)
    if encoding == "rgb8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if encoding in ("bgra8", "8UC4"):
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    if encoding == "rgba8":
        return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)
    if encoding in _BAYER:
        return cv2.cvtColor(pixels, _BAYER[encoding])
    if encoding in _YUV:
        return cv2.cvtColor(pixels, _YUV[encoding])
    return pixels


def _compressed_depth(msg: Any, topic: str, fmt: str) -> np.ndarray:
    """image_transport `compressedDepth`: 12-byte header (int32 format, float32 quant A, B) + PNG.

    16UC1 stores millimetres as-is; 32FC1 stores quantized inverse depth, depth = A / (v - B), v = 0 invalid.
    """
    data = np.asarray(msg.data, dtype=np.uint8)
    if data.size <= 12:
        raise ValueError(f"{topic}: compressedDepth message too short ({data.size} bytes)")
    _, quant_a, quant_b = struct.unpack_from("<iff", data.tobytes()[:12])
    image = cv2.imdecode(data[12:], cv2.IMREAD_UNCHANGED)
    if image is None or image.dtype != np.uint16:
        raise ValueError(f"{topic}: could not decode compressedDepth PNG (format {fmt!r}, {data.size} bytes)")
    if fmt.split(";")[0].strip() == "32FC1":
        depth = np.zeros(image.shape, np.float32)
        valid = image > 0
        depth[valid] = quant_a / (image[valid].astype(np.float32) - quant_b)
        depth[~valid] = np.nan
        return depth
    return image


def decode_compressed(msg: Any, topic: str = "<image>") -> np.ndarray:
    """CompressedImage -> array; `format` like "jpeg", "bgr8; jpeg compressed bgr8" or "16UC1; compressedDepth"."""
    fmt = str(msg.format)
    lowered = fmt.lower()
    if "compresseddepth" in lowered:
        return _compressed_depth(msg, topic, fmt)
    tokens = lowered.replace(";", " ").split()
    if tokens and not any(t in _COMPRESSED_FORMATS for t in tokens):
        raise EncodingError(
            f"{topic}: unsupported CompressedImage format {fmt!r}; supported: {', '.join(_COMPRESSED_FORMATS)} "
            "and compressedDepth"
        )
    data = np.asarray(msg.data, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"{topic}: could not decode CompressedImage (format {fmt!r}, {data.size} bytes)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    # "rgb8; jpeg compressed bgr8": image_transport already swapped to BGR before compressing; imdecode
    # returns BGR, so nothing to do for any of the documented variants.
    return image


def to_uint8_image(image: np.ndarray, topic: str) -> np.ndarray:
    """A camera image for training: uint8 (H, W) or (H, W, 3); 16-bit data is scaled by 255/65535."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    raise EncodingError(f"{topic}: a {image.dtype} image cannot be a camera image (is this a depth topic?)")


def depth_to_metres(depth: np.ndarray, topic: str) -> np.ndarray:
    """Decoded depth image -> float32 metres with NaN where invalid (0 or non-finite)."""
    if depth.dtype == np.float32 or depth.dtype == np.float64:
        metres = depth.astype(np.float32)
    elif depth.dtype == np.uint16:
        metres = depth.astype(np.float32) * 1e-3  # REP 118: 16-bit depth is millimetres
    else:
        raise EncodingError(
            f"{topic}: depth must be 32FC1 (metres) or 16UC1 (millimetres), got a {depth.dtype} "
            f"{'x'.join(map(str, depth.shape))} image"
        )
    if metres.ndim != 2:
        raise EncodingError(f"{topic}: depth must have one channel, got shape {depth.shape}")
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def depth_encoding_of(msg: Any) -> str:
    """The declared depth encoding of an Image / CompressedImage message ("32FC1", "16UC1", ...)."""
    if msg.__msgtype__ == IMAGE:
        return str(msg.encoding)
    return str(msg.format).split(";")[0].strip()


# ----------------------------------------------------------------------------------------------- encoding


def image_message(array: np.ndarray, stamp_ns: int, frame_id: str, encoding: str | None = None) -> Any:
    """Array -> sensor_msgs/Image. Default encodings: (H,W,3) uint8 bgr8, (H,W) uint8 mono8, uint16 16UC1,
    float32 32FC1. `encoding` may be rgb8/bgra8/rgba8/bayer_*8 for uint8 BGR input (converted here)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        encoding = encoding or "bgr8"
        conversions = {
            "bgr8": None, "8UC3": None, "rgb8": cv2.COLOR_BGR2RGB,
            "bgra8": cv2.COLOR_BGR2BGRA, "rgba8": cv2.COLOR_BGR2RGBA,
        }
        if encoding in conversions:
            code = conversions[encoding]
            array = array if code is None else cv2.cvtColor(array, code)
        elif encoding in _BAYER:
            array = mosaic_bayer(array, encoding)
        else:
            raise EncodingError(f"cannot encode a (H, W, 3) uint8 image as {encoding!r}")
    elif array.ndim == 2 and array.dtype == np.uint8:
        encoding = encoding or "mono8"
    elif array.ndim == 2 and array.dtype == np.uint16:
        encoding = encoding or "16UC1"
    elif array.ndim == 2 and array.dtype == np.float32:
        encoding = encoding or "32FC1"
    elif encoding is None:
        raise EncodingError(f"no default encoding for a {array.dtype} array of shape {array.shape}")
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    step = array.strides[0]
    return _T[IMAGE](
        header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"), step=step, data=array.view(np.uint8).reshape(-1),
    )


def mosaic_bayer(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) BGR -> (H, W) Bayer mosaic in the ROS pattern `encoding` (e.g. bayer_rggb8)."""
    pattern = encoding.removeprefix("bayer_").removesuffix("8")
    channel = {"b": 0, "g": 1, "r": 2}
    out = np.empty(bgr.shape[:2], np.uint8)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy::2, dx::2] = bgr[dy::2, dx::2, channel[pattern[2 * dy + dx]]]
    return out


def compressed_image_message(
    array: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = "png", jpeg_quality: int = 90
) -> Any:
    """Array -> sensor_msgs/CompressedImage as image_transport writes it ("bgr8; png compressed bgr8")."""
    fmt = fmt.lower()
    if fmt not in ("png", "jpeg"):
        raise ValueError(f"compressed format must be 'png' or 'jpeg', got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if fmt == "jpeg" else []
    ok, buffer = cv2.imencode(".png" if fmt == "png" else ".jpg", np.ascontiguousarray(array), params)
    if not ok:
        raise ValueError(f"OpenCV could not {fmt}-encode a {array.dtype} array of shape {array.shape}")
    source = "bgr8" if array.ndim == 3 else "mono8"
    return _T[COMPRESSED_IMAGE](
        header=header(stamp_ns, frame_id), format=f"{source}; {fmt} compressed {source}", data=buffer.reshape(-1)
    )


def compressed_depth_message(depth_mm: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """uint16 millimetre depth -> CompressedImage "16UC1; compressedDepth" (12-byte header + PNG)."""
    if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
        raise ValueError(f"compressedDepth needs (H, W) uint16 millimetres, got {depth_mm.dtype} {depth_mm.shape}")
    ok, buffer = cv2.imencode(".png", depth_mm)
    if not ok:
        raise ValueError("OpenCV could not PNG-encode the depth image")
    head = np.frombuffer(struct.pack("<iff", 0, 0.0, 0.0), np.uint8)
    data = np.concatenate([head, buffer.reshape(-1)])
    return _T[COMPRESSED_IMAGE](header=header(stamp_ns, frame_id), format="16UC1; compressedDepth", data=data)


def camera_info_message(
    *,
    stamp_ns: int,
    frame_id: str,
    width: int,
    height: int,
    k: np.ndarray,
    d: np.ndarray,
    r: np.ndarray,
    p: np.ndarray,
    distortion_model: str = "plumb_bob",
) -> Any:
    """sensor_msgs/CameraInfo from K (3,3), D (n,), R (3,3), P (3,4)."""
    roi = _T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _T[CAMERA_INFO](
        header=header(stamp_ns, frame_id), height=int(height), width=int(width),
        distortion_model=distortion_model, d=np.asarray(d, np.float64).reshape(-1),
        k=np.asarray(k, np.float64).reshape(9), r=np.asarray(r, np.float64).reshape(9),
        p=np.asarray(p, np.float64).reshape(12), binning_x=0, binning_y=0, roi=roi,
    )


def disparity_image_message(
    disparity: np.ndarray,
    *,
    stamp_ns: int,
    frame_id: str,
    focal: float,
    baseline: float,
    min_disparity: float = 0.0,
    max_disparity: float = 256.0,
) -> Any:
    """(H, W) float32 disparity (px) -> stereo_msgs/DisparityImage (invalid pixels should hold a value
    below `min_disparity`, e.g. -1, as stereo_image_proc does)."""
    image = image_message(np.asarray(disparity, np.float32), stamp_ns, frame_id, "32FC1")
    roi = _T["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=int(image.height), width=int(image.width), do_rectify=False
    )
    return _T[DISPARITY_IMAGE](
        header=header(stamp_ns, frame_id), image=image, f=float(focal), t=float(baseline), valid_window=roi,
        min_disparity=float(min_disparity), max_disparity=float(max_disparity), delta_d=0.0,
    )


def decode_disparity(msg: Any, topic: str) -> np.ndarray:
    """stereo_msgs/DisparityImage -> float32 (H, W) px with 0 where invalid (outside [min, max], non-finite)."""
    if str(msg.image.encoding) != "32FC1":
        raise EncodingError(f"{topic}: DisparityImage.image must be 32FC1, got {msg.image.encoding!r}")
    disparity = _raw_pixels(msg.image, topic).astype(np.float32, copy=True)
    low, high = float(msg.min_disparity), float(msg.max_disparity)
    invalid = ~np.isfinite(disparity) | (disparity <= 0) | (disparity < low)
    if high > low:
        invalid |= disparity > high
    disparity[invalid] = 0.0
    return disparity
