"""The one import seam for the ROS Python libraries that pip-only machines lack.

A ROS 2 distribution ships `message_filters`, `cv_bridge` and `sensor_msgs_py.point_cloud2`; the PyPI
wheels of rclpy and the message packages do not. This module exports

- `message_filters`: a module-like object with `Subscriber`, `TimeSynchronizer`, `ApproximateTimeSynchronizer`;
- `CvBridge`, `CvBridgeError`;
- `point_cloud2`: a module-like object with `create_cloud`, `read_points`, `dtype_from_fields`;

taken from the real packages when they import, else from the small equivalents below (`own_message_filters`,
`own_cv_bridge`, `own_point_cloud2`), which implement only the subset this package uses and behave as the
originals' code does (message_filters 6.x, sensor_msgs_py of common_interfaces up to rolling 2024-11), quirks
included: each function's docstring names the ones kept. The rest of `smd_ros` imports these names from here
and, by not relying on those quirks, never knows which one it got; `BACKENDS` says which (for logs).
Set `SMD_ROS_OWN_LIBS=1` to force the equivalents, e.g. to test
them on a machine that has the real packages.
"""

from __future__ import annotations

import array
import importlib
import itertools
import os
import sys
import threading
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from sensor_msgs.msg import Image, PointCloud2, PointField

from smd_ros.sensors import stamp_ns  # the one stamp helper (re-exported: the stand-ins use it)

__all__ = [
    "BACKENDS",
    "CvBridge",
    "CvBridgeError",
    "message_filters",
    "own_cv_bridge",
    "own_message_filters",
    "own_point_cloud2",
    "point_cloud2",
    "stamp_ns",
]


# --------------------------------------------------------------------------------------------------------------
# message_filters subset
# --------------------------------------------------------------------------------------------------------------


class SimpleFilter:
    """Base of every filter: a list of (callback, extra args) called with each output."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802 (message_filters API)
        """Call `cb(*outputs, *args)` for every output of this filter; returns a connection id."""
        conn = len(self.callbacks)
        self.callbacks[conn] = (cb, args)
        return conn

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802 (message_filters API)
        for cb, args in list(self.callbacks.values()):
            cb(*(msg + args))


class Subscriber(SimpleFilter):
    """A source filter wrapping one subscription: `Subscriber(node, msg_type, topic, qos_profile=...)`.

    Like the original, the QoS defaults to depth 10 reliable when `qos_profile` is not given, which never
    matches a best-effort camera driver: pass the profile explicitly.
    """

    def __init__(self, node: Any, msg_type: type, topic: str, qos_profile: Any = 10, **kwargs: Any) -> None:
        super().__init__()
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile, **kwargs)

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 (message_filters API)
        return self.topic

    def __getattr__(self, key: str) -> Any:
        # The original forwards unknown attributes to the wrapped subscription (topic_name, destroy, ...).
        if key == "sub":
            raise AttributeError(key)
        return getattr(self.sub, key)


class TimeSynchronizer(SimpleFilter):
    """Emit one message per input when all inputs hold a message with the same header stamp.

    Each input keeps at most `queue_size` messages (the oldest stamps are dropped first); complete sets are
    emitted in stamp order and removed. As the original, arguments are not checked: queue_size < 1 keeps
    nothing, so no set is ever emitted.
    """

    def __init__(self, fs: Sequence[SimpleFilter], queue_size: int) -> None:
        super().__init__()
        self.queue_size = queue_size
        self.lock = threading.Lock()
        self.connectInput(fs)

    def connectInput(self, fs: Sequence[SimpleFilter]) -> None:  # noqa: N802 (message_filters API)
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.input_connections = [
            f.registerCallback(self.add, q, i) for i, (f, q) in enumerate(zip(fs, self.queues, strict=True))
        ]

    def _store(self, stamp: int, msg: Any, queue: dict[int, Any]) -> None:
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]

    def add(self, msg: Any, queue: dict[int, Any], index: int | None = None) -> None:
        with self.lock:
            self._store(stamp_ns(msg), msg, queue)
            common = set(self.queues[0]).intersection(*self.queues[1:])
            for stamp in sorted(common):
                msgs = [q.pop(stamp) for q in self.queues]
                self.signalMessage(*msgs)


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Like `TimeSynchronizer`, but stamps only need to lie within `slop` seconds of each other.

    The original's policy (message_filters 6.x, `ApproximateTimeSynchronizer.add`): on each arrival, every other
    input lists its messages within `slop` of the new stamp, nearest first; the combinations of those lists are
    tried in order (`itertools.product`) and the first one whose stamps span strictly less than `slop` is emitted
    together with the new message and removed from the queues. Headerless messages are dropped unless
    `allow_headerless`, which stamps them with the ROS clock's now.
    """

    def __init__(
        self, fs: Sequence[SimpleFilter], queue_size: int, slop: float, allow_headerless: bool = False
    ) -> None:
        super().__init__(fs, queue_size)
        # Unchecked, as the original: a negative slop matches nothing.
        self.slop_ns = round(float(slop) * 1e9)
        self.allow_headerless = allow_headerless

    def add(self, msg: Any, queue: dict[int, Any], index: int | None = None) -> None:
        if not hasattr(msg, "header") or not hasattr(msg.header, "stamp"):
            if not self.allow_headerless:
                return
            from rclpy.clock import ROSClock

            stamp = ROSClock().now().nanoseconds
        else:
            stamp = stamp_ns(msg)
        with self.lock:
            self._store(stamp, msg, queue)
            others = self.queues if index is None else self.queues[:index] + self.queues[index + 1:]
            candidates: list[list[int]] = []
            for q in others:
                near = [s for s in q if abs(s - stamp) <= self.slop_ns]
                if not near:
                    return
                candidates.append(sorted(near, key=lambda s: abs(s - stamp)))  # stable: ties keep arrival order
            for combo in itertools.product(*candidates):
                chosen = list(combo)
                if index is not None:
                    chosen.insert(index, stamp)
                if max(chosen) - min(chosen) < self.slop_ns and all(
                        s in q for q, s in zip(self.queues, chosen, strict=True)):
                    msgs = [q[s] for q, s in zip(self.queues, chosen, strict=True)]
                    self.signalMessage(*msgs)
                    for q, s in zip(self.queues, chosen, strict=True):
                        del q[s]
                    break


own_message_filters = types.SimpleNamespace(
    SimpleFilter=SimpleFilter,
    Subscriber=Subscriber,
    TimeSynchronizer=TimeSynchronizer,
    ApproximateTimeSynchronizer=ApproximateTimeSynchronizer,
)

# --------------------------------------------------------------------------------------------------------------
# cv_bridge subset
# --------------------------------------------------------------------------------------------------------------


class _OwnCvBridgeError(TypeError):
    """Raised for encodings or conversions the bridge cannot handle (like cv_bridge.CvBridgeError)."""


# encoding -> (numpy dtype, channels). The named encodings of sensor_msgs/image_encodings plus the generic
# `<depth>C<n>` names that `cv2_to_imgmsg(..., "passthrough")` produces.
_NAMED_ENCODINGS: dict[str, tuple[str, int]] = {
    "mono8": ("uint8", 1), "8UC1": ("uint8", 1),
    "mono16": ("uint16", 1), "16UC1": ("uint16", 1),
    "bgr8": ("uint8", 3), "rgb8": ("uint8", 3), "8UC3": ("uint8", 3),
    "bgra8": ("uint8", 4), "rgba8": ("uint8", 4), "8UC4": ("uint8", 4),
    "bgr16": ("uint16", 3), "rgb16": ("uint16", 3), "bgra16": ("uint16", 4), "rgba16": ("uint16", 4),
    "32FC1": ("float32", 1), "64FC1": ("float64", 1), "16SC1": ("int16", 1), "32SC1": ("int32", 1),
}
_CV_DEPTH = {"uint8": "8U", "int8": "8S", "uint16": "16U", "int16": "16S", "int32": "32S",
             "float32": "32F", "float64": "64F"}
_GENERIC = {f"{depth}C{n}": (dt, n) for dt, depth in _CV_DEPTH.items() for n in (1, 2, 3, 4)}

# Channel orders of the colour encodings the 8-bit conversions understand.
_COLOR_ORDER = {"mono8": "mono", "bgr8": "bgr", "rgb8": "rgb", "bgra8": "bgra", "rgba8": "rgba"}


def _encoding_info(encoding: str) -> tuple[np.dtype, int]:
    info = _NAMED_ENCODINGS.get(encoding) or _GENERIC.get(encoding)
    if info is None:
        raise _OwnCvBridgeError(f"unsupported image encoding [{encoding}]")
    return np.dtype(info[0]), info[1]


def _convert_color(image: np.ndarray, src: str, dst: str) -> np.ndarray:
    import cv2

    if src == dst:
        return image
    if src not in _COLOR_ORDER or dst not in _COLOR_ORDER:
        raise _OwnCvBridgeError(f"conversion from {src} to {dst} is not supported")
    code_name = f"COLOR_{_COLOR_ORDER[src].upper()}2{_COLOR_ORDER[dst].upper()}".replace("MONO", "GRAY")
    code = getattr(cv2, code_name, None)
    if code is None:
        raise _OwnCvBridgeError(f"conversion from {src} to {dst} is not supported")
    return cv2.cvtColor(image, code)


class _OwnCvBridge:
    """`imgmsg_to_cv2` / `cv2_to_imgmsg` with cv_bridge's semantics for the encodings this package uses."""

    def imgmsg_to_cv2(self, img_msg: Image, desired_encoding: str = "passthrough") -> np.ndarray:
        """The image as numpy, (H, W) for one channel, else (H, W, C); row padding (`step`) is cut."""
        dtype, channels = _encoding_info(img_msg.encoding)
        dtype = dtype.newbyteorder(">" if img_msg.is_bigendian else "<")
        h, w, step = int(img_msg.height), int(img_msg.width), int(img_msg.step)
        row_items = step // dtype.itemsize
        if row_items < w * channels:
            raise _OwnCvBridgeError(f"step {step} is smaller than width {w} x {channels} x {dtype.itemsize} bytes")
        buf = np.frombuffer(img_msg.data, dtype=np.uint8)
        if buf.size < h * step:
            raise _OwnCvBridgeError(f"image data has {buf.size} bytes, expected height {h} x step {step}")
        rows = buf[: h * step].view(dtype).reshape(h, row_items)
        im = rows[:, : w * channels].reshape((h, w) if channels == 1 else (h, w, channels))
        # Contiguous and in native byte order; like cv_bridge's, it may share memory with the message.
        im = im.astype(im.dtype.newbyteorder("=")) if not im.dtype.isnative else np.ascontiguousarray(im)
        if desired_encoding == "passthrough":
            return im
        return _convert_color(im, img_msg.encoding, desired_encoding)

    def cv2_to_imgmsg(self, cvim: np.ndarray, encoding: str = "passthrough", header: Any = None) -> Image:
        """An Image holding a copy of `cvim`; `encoding` must agree with its dtype and channel count."""
        if not isinstance(cvim, np.ndarray):
            raise TypeError("Your input type is not a numpy array")
        if cvim.ndim not in (2, 3) or cvim.dtype.name not in _CV_DEPTH:
            raise _OwnCvBridgeError(f"unsupported array: shape {cvim.shape}, dtype {cvim.dtype}")
        channels = 1 if cvim.ndim == 2 else cvim.shape[2]
        cv_type = f"{_CV_DEPTH[cvim.dtype.name]}C{channels}"
        msg = Image()
        if header is not None:
            msg.header = header
        msg.height, msg.width = int(cvim.shape[0]), int(cvim.shape[1])
        if encoding == "passthrough":
            msg.encoding = cv_type
        else:
            dtype, n = _encoding_info(encoding)
            if f"{_CV_DEPTH[dtype.name]}C{n}" != cv_type:
                raise _OwnCvBridgeError(f"encoding specified as {encoding}, but image has incompatible type {cv_type}")
            msg.encoding = encoding
        msg.is_bigendian = cvim.dtype.byteorder == ">" or (cvim.dtype.byteorder == "=" and sys.byteorder == "big")
        data = array.array("B")
        data.frombytes(np.ascontiguousarray(cvim).data.cast("B"))
        msg.data = data
        msg.step = len(data) // msg.height if msg.height else 0
        return msg


own_cv_bridge = types.SimpleNamespace(CvBridge=_OwnCvBridge, CvBridgeError=_OwnCvBridgeError)

# --------------------------------------------------------------------------------------------------------------
# sensor_msgs_py.point_cloud2 subset
# --------------------------------------------------------------------------------------------------------------

_POINTFIELD_DTYPES = {
    PointField.INT8: np.dtype(np.int8), PointField.UINT8: np.dtype(np.uint8),
    PointField.INT16: np.dtype(np.int16), PointField.UINT16: np.dtype(np.uint16),
    PointField.INT32: np.dtype(np.int32), PointField.UINT32: np.dtype(np.uint32),
    PointField.FLOAT32: np.dtype(np.float32), PointField.FLOAT64: np.dtype(np.float64),
}


# The originals (sensor_msgs_py.point_cloud2, common_interfaces up to rolling 2024-11) check their input with
# `assert`; these raise the same AssertionError / KeyError explicitly (so they also hold under `python -O`).


def _dtype_from_fields(fields: Iterable[PointField], point_step: int | None = None) -> np.dtype:
    """Structured dtype for a list of PointFields; a field with count > 1 becomes `name_0`, `name_1`, ...

    `point_step` sets the itemsize (padding at the end of each point). As the original: an unnamed field is
    `unnamed_field_<i>`; an unknown datatype raises KeyError, count 0 and duplicate names AssertionError.
    """
    names: list[str] = []
    formats: list[str] = []
    offsets: list[int] = []
    for i, f in enumerate(fields):
        if f.datatype not in _POINTFIELD_DTYPES:
            raise KeyError(f"PointField {f.name!r} has unknown datatype {f.datatype}")
        base = _POINTFIELD_DTYPES[f.datatype]
        if not f.count > 0:
            raise AssertionError(f"Can't process fields with count = 0 (PointField {f.name!r})")
        name = f.name or f"unnamed_field_{i}"
        for k in range(f.count):
            sub = f"{name}_{k}" if f.count > 1 else name
            if sub in names:
                raise AssertionError(f"Duplicate field names are not allowed: {sub!r}")
            names.append(sub)
            formats.append(base.str)
            offsets.append(int(f.offset) + k * base.itemsize)
    spec: dict[str, Any] = {"names": names, "formats": formats, "offsets": offsets}
    if point_step is not None:
        spec["itemsize"] = int(point_step)
    return np.dtype(spec)


def _create_cloud(
    header: Any, fields: Sequence[PointField], points: Any, point_step: int | None = None
) -> PointCloud2:
    """A PointCloud2 from a structured array whose dtype matches `fields` (or an (N, F) array / point list).

    As the original, a 2-D array (a, b) gives width = a and height = b (sic: the first axis becomes the width),
    row_step = itemsize x width and is_dense False. Portable callers pass a 1-D array and set height, width and
    row_step on the result themselves (`smd_ros.messages.cloud_msg` does).
    """
    dtype = _dtype_from_fields(fields, point_step)
    if isinstance(points, np.ndarray):
        if points.dtype.names is None:
            if not all(fields[0].datatype == f.datatype for f in fields[1:]):
                raise AssertionError("All fields need to have the same datatype for an unstructured array; pass a "
                                     "structured NumPy array with multiple dtypes otherwise")
            from numpy.lib.recfunctions import unstructured_to_structured

            points = unstructured_to_structured(points, dtype=dtype)
        elif points.dtype != dtype:
            raise AssertionError(f"PointFields and structured NumPy array dtype do not match: {dtype} vs "
                                 f"{points.dtype}")
    else:
        points = np.array([tuple(p) for p in points], dtype=dtype)
    if len(points.shape) > 2:
        raise AssertionError(f"Too many dimensions for organized cloud: shape {points.shape} (at most 2)")
    width = points.shape[0]
    height = points.shape[1] if len(points.shape) == 2 else 1
    data = array.array("B")
    data.frombytes(memoryview(points).cast("B"))
    cloud = PointCloud2(
        header=header, height=int(height), width=int(width), is_dense=False, is_bigendian=sys.byteorder != "little",
        fields=fields, point_step=points.dtype.itemsize, row_step=points.dtype.itemsize * int(width),
    )
    # Through the property, not the constructor: the constructor copies the buffer once more.
    cloud.data = data
    return cloud


def _read_points(
    cloud: PointCloud2,
    field_names: Sequence[str] | None = None,
    skip_nans: bool = False,
    uvs: Iterable[int] | None = None,
    reshape_organized_cloud: bool = False,
) -> np.ndarray:
    """The cloud's points as a structured array viewing the message's bytes, as the original.

    Quirks kept on purpose: the first width x height points of `data` are read (row_step padding is not
    skipped); with a byte order other than the machine's the message's buffer is byte-swapped in place; and
    `reshape_organized_cloud=True` reshapes an organized cloud to (width, height), not (height, width): read
    flat and reshape with `.reshape(cloud.height, cloud.width)` instead.
    """
    if not isinstance(cloud, PointCloud2):
        raise AssertionError("Cloud is not a sensor_msgs.msg.PointCloud2")
    points = np.ndarray(shape=(cloud.width * cloud.height,),
                        dtype=_dtype_from_fields(cloud.fields, point_step=cloud.point_step), buffer=cloud.data)
    if field_names is not None:
        if not all(name in points.dtype.names for name in field_names):
            raise AssertionError(f"Requested fields {list(field_names)} are not all in the cloud's fields "
                                 f"{points.dtype.names}")
        points = points[list(field_names)]
    if (sys.byteorder != "little") != bool(cloud.is_bigendian):
        points = points.byteswap(inplace=True)
    if skip_nans and not cloud.is_dense:
        keep = np.ones(len(points), dtype=bool)
        for name in points.dtype.names:
            keep = np.logical_and(keep, ~np.isnan(points[name]))
        points = points[keep]
    if uvs is not None:
        if not isinstance(uvs, np.ndarray):
            uvs = np.fromiter(uvs, int)
        points = points[uvs]
    if reshape_organized_cloud and cloud.height > 1:
        points = points.reshape(cloud.width, cloud.height)
    return points


own_point_cloud2 = types.SimpleNamespace(
    create_cloud=_create_cloud, read_points=_read_points, dtype_from_fields=_dtype_from_fields
)

# --------------------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------------------

_FORCE_OWN = os.environ.get("SMD_ROS_OWN_LIBS", "").lower() in ("1", "true", "yes")
BACKENDS: dict[str, str] = {}


def _select(module: str, key: str, own: Any) -> Any:
    """The original `module` unless it is missing or SMD_ROS_OWN_LIBS is set, else the stand-in `own`;
    records which in `BACKENDS[key]`."""
    if not _FORCE_OWN:
        try:
            lib = importlib.import_module(module)
        except ImportError:
            pass
        else:
            BACKENDS[key] = "ros"
            return lib
    BACKENDS[key] = "smd_ros"
    return own


message_filters: Any = _select("message_filters", "message_filters", own_message_filters)
_bridge = _select("cv_bridge", "cv_bridge", own_cv_bridge)
CvBridge: Any = _bridge.CvBridge
CvBridgeError: Any = _bridge.CvBridgeError
point_cloud2: Any = _select("sensor_msgs_py.point_cloud2", "point_cloud2", own_point_cloud2)
