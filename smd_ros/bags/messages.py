"""rosbag2 messages without a ROS install (rosbags' pure-Python typestore): CDR (de)serialization, header
stamps read from the raw bytes, and builders of the messages a stereo recording carries (`image_message`,
`compressed_image_message`, `compressed_depth_message`, `camera_info_message`, `disparity_image_message`),
used by `writer`. Decoding images and calibration is `smd_ros.sensors`' job (the node's decoder too).
"""

from __future__ import annotations

import struct
import sys
from typing import Any

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

from smd_ros import sensors

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

_ENCODABLE_BGR = {
    "bgr8": None, "8UC3": None, "rgb8": cv2.COLOR_BGR2RGB, "bgra8": cv2.COLOR_BGR2BGRA, "rgba8": cv2.COLOR_BGR2RGBA,
}
BAYER_ENCODINGS = ("bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8")


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
    return sensors.stamp_ns(deserialize(raw, msgtype))


# ----------------------------------------------------------------------------------------------- encoding


def image_message(array: np.ndarray, stamp_ns: int, frame_id: str, encoding: str | None = None) -> Any:
    """Array -> sensor_msgs/Image. Default encodings: (H,W,3) uint8 bgr8, (H,W) uint8 mono8, uint16 16UC1,
    float32 32FC1. `encoding` may be rgb8/bgra8/rgba8/bayer_*8 for uint8 BGR input (converted here)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8:
        encoding = encoding or "bgr8"
        if encoding in _ENCODABLE_BGR:
            code = _ENCODABLE_BGR[encoding]
            array = array if code is None else cv2.cvtColor(array, code)
        elif encoding in BAYER_ENCODINGS:
            array = mosaic_bayer(array, encoding)
        else:
            raise sensors.EncodingError(f"cannot encode a (H, W, 3) uint8 image as {encoding!r}")
    elif array.ndim == 2 and array.dtype == np.uint8:
        encoding = encoding or "mono8"
    elif array.ndim == 2 and array.dtype == np.uint16:
        encoding = encoding or "16UC1"
    elif array.ndim == 2 and array.dtype == np.float32:
        encoding = encoding or "32FC1"
    elif encoding is None:
        raise sensors.EncodingError(f"no default encoding for a {array.dtype} array of shape {array.shape}")
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
