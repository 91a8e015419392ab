"""rosbag2 recordings for tests, benches and the bundled sample bag (not part of the installed package).

Message builders (the messages a stereo camera driver plus `image_proc` publishes, as rosbags objects),
`StereoRig` (a calibrated pair as its CameraInfos describe it), `StereoBagWriter` (topics registered on first
use, split files, raw bytes for corrupt messages) and `write_stereo_bag` (frames -> a whole recording).
Users outside test/ (scripts/make_sample_bag.py, bench/bench_bag2dataset.py) put this folder on sys.path.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from smd_ros import sensors
from smd_ros.bags.reader import CAMERA_INFO, COMPRESSED_IMAGE, DISPARITY_IMAGE, IMAGE, TYPESTORE

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


# ----------------------------------------------------------------------------------------------- recordings


DEFAULT_TOPICS = {
    "left_image": "/left/image_rect",
    "right_image": "/right/image_rect",
    "left_info": "/left/camera_info",
    "right_info": "/right/camera_info",
    "depth": "/left/depth",
    "disparity": "/disparity",
}
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
DEFAULT_START_NS = 1_700_000_000_000_000_000


@dataclasses.dataclass
class StereoRig:
    """A calibrated stereo pair as CameraInfo describes it.

    Rectified intrinsics (fx, fy, cx, cy) and baseline (metres) define P_left / P_right. The raw cameras
    default to already-rectified (K = P[:, :3], D = 0, R = I); set k_*/d_*/r_* to describe raw cameras.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float = 0.12
    distortion_model: str = "plumb_bob"
    k_left: np.ndarray | None = None
    k_right: np.ndarray | None = None
    d_left: np.ndarray | None = None
    d_right: np.ndarray | None = None
    r_left: np.ndarray | None = None
    r_right: np.ndarray | None = None
    left_frame_id: str = "left_camera_optical_frame"
    right_frame_id: str = "right_camera_optical_frame"

    @classmethod
    def default(cls, width: int, height: int, *, hfov_deg: float = 70.0, baseline: float = 0.12) -> StereoRig:
        """Square pixels, principal point at the image centre, horizontal field of view `hfov_deg`."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        focal = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, baseline)

    def p(self, side: str) -> np.ndarray:
        """(3, 4) rectified projection; the right one carries -fx * baseline in [0, 3]."""
        tx = 0.0 if side == "left" else -self.fx * self.baseline
        return np.array([[self.fx, 0.0, self.cx, tx], [0.0, self.fy, self.cy, 0.0], [0.0, 0.0, 1.0, 0.0]])

    def camera_info(self, side: str, stamp_ns: int) -> Any:
        """sensor_msgs/CameraInfo for `side` ("left" / "right") at `stamp_ns`."""
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        p = self.p(side)
        k = getattr(self, f"k_{side}")
        d = getattr(self, f"d_{side}")
        r = getattr(self, f"r_{side}")
        return camera_info_message(
            stamp_ns=stamp_ns, frame_id=getattr(self, f"{side}_frame_id"), width=self.width, height=self.height,
            k=p[:, :3] if k is None else k, d=np.zeros(5) if d is None else d, r=np.eye(3) if r is None else r,
            p=p, distortion_model=self.distortion_model,
        )

    def depth_from_disparity(self, disparity: np.ndarray) -> np.ndarray:
        """(H, W) disparity px -> float64 depth metres Z = fx * B / d, NaN where d <= 0."""
        disparity = np.asarray(disparity, np.float64)
        depth = np.full(disparity.shape, np.nan)
        valid = disparity > 0
        depth[valid] = self.fx * self.baseline / disparity[valid]
        return depth


class StereoBagWriter:
    """A rosbag2 writer that serializes messages, registers topics on first use and can split files.

    Use as a context manager. `split()` starts a new storage file (`<name>_<k>.<ext>`), as
    `ros2 bag record --max-bag-size` does; the folder then holds one metadata.yaml listing all files.
    """

    def __init__(self, path: str | Path, *, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already; rosbag2 writers never overwrite")
        self.storage = storage
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}
        self._topic_types: dict[str, str] = {}
        self._parts: list[Path] = []  # finished split folders, each a complete one-file bag
        self._split = False

    def __enter__(self) -> StereoBagWriter:
        self._open_part()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def _part_path(self, index: int) -> Path:
        return self.path.parent / f".{self.path.name}.part{index}"

    def _open_part(self) -> None:
        index = len(self._parts)
        target = self._part_path(index)
        if target.exists():
            shutil.rmtree(target)
        self._writer = Writer(target, version=9, storage_plugin=STORAGES[self.storage])
        self._writer.open()
        self._connections = {}
        for topic, msgtype in self._topic_types.items():
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)

    def write(self, topic: str, msg: Any, log_time_ns: int | None = None) -> None:
        """Serialize and write `msg`; the log (receive) time defaults to its header stamp."""
        if log_time_ns is None:
            log_time_ns = sensors.stamp_ns(msg)
        self.write_raw(topic, msg.__msgtype__, serialize(msg), log_time_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes, log_time_ns: int) -> None:
        """Write already-serialized CDR bytes of type `msgtype` (e.g. to reproduce a corrupt message)."""
        if self._writer is None:
            raise RuntimeError("StereoBagWriter is not open (use it as a context manager)")
        known = self._topic_types.get(topic)
        if known is not None and known != msgtype:
            raise ValueError(f"topic {topic} already carries {known}, cannot also write {msgtype}")
        if topic not in self._connections:
            self._topic_types[topic] = msgtype
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
        self._writer.write(self._connections[topic], int(log_time_ns), data)

    def split(self) -> None:
        """Close the current storage file and continue in a new one."""
        if self._writer is None:
            raise RuntimeError("StereoBagWriter is not open")
        self._writer.close()
        self._parts.append(self._part_path(len(self._parts)))
        self._split = True
        self._open_part()

    def close(self) -> None:
        """Finish the last file and assemble the bag folder (a no-op when already closed)."""
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        self._parts.append(self._part_path(len(self._parts)))
        if not self._split:
            self._parts[0].rename(self.path)
            (self.path / f"{self._parts[0].name}.{_ext(self.storage)}").rename(
                self.path / f"{self.path.name}.{_ext(self.storage)}"
            )
            _rewrite_file_names(self.path, [f"{self.path.name}.{_ext(self.storage)}"])
            return
        _merge_parts(self.path, self._parts, self.storage)


def _ext(storage: str) -> str:
    return "mcap" if storage == "mcap" else "db3"


def _rewrite_file_names(path: Path, names: list[str]) -> None:
    meta_path = path / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    info = meta["rosbag2_bagfile_information"]
    info["relative_file_paths"] = names
    for entry, name in zip(info["files"], names, strict=True):
        entry["path"] = name
    meta_path.write_text(yaml.safe_dump(meta, sort_keys=False))


def _merge_parts(path: Path, parts: list[Path], storage: str) -> None:
    """Move each part's storage file into `path` as <name>_<k>.<ext> and write one metadata.yaml."""
    path.mkdir(parents=True)
    infos = []
    names = []
    for index, part in enumerate(parts):
        info = yaml.safe_load((part / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        name = f"{path.name}_{index}.{_ext(storage)}"
        (part / f"{part.name}.{_ext(storage)}").rename(path / name)
        shutil.rmtree(part)
        infos.append(info)
        names.append(name)
    merged = dict(infos[0])
    counts: dict[str, int] = {}
    topic_meta: dict[str, Any] = {}
    for info in infos:
        for entry in info["topics_with_message_count"]:
            name = entry["topic_metadata"]["name"]
            counts[name] = counts.get(name, 0) + int(entry["message_count"])
            topic_meta.setdefault(name, entry["topic_metadata"])
    nonempty = [i for i in infos if i["message_count"]] or infos
    start = min(i["starting_time"]["nanoseconds_since_epoch"] for i in nonempty)
    end = max(i["starting_time"]["nanoseconds_since_epoch"] + i["duration"]["nanoseconds"] for i in nonempty)
    merged.update(
        relative_file_paths=names,
        message_count=sum(i["message_count"] for i in infos),
        starting_time={"nanoseconds_since_epoch": start},
        duration={"nanoseconds": end - start},
        topics_with_message_count=[
            {"topic_metadata": topic_meta[t], "message_count": c} for t, c in counts.items()
        ],
        files=[dict(info["files"][0], path=name) for info, name in zip(infos, names, strict=True)],
    )
    (path / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": merged}, sort_keys=False))


def _frame_parts(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(left, right, disparity or None) from a SyntheticFrame-like object, a mapping or a tuple."""
    if isinstance(frame, Mapping):
        return frame["left"], frame["right"], frame.get("disp_left")
    if isinstance(frame, tuple | list):
        return frame[0], frame[1], (frame[2] if len(frame) > 2 else None)
    return frame.left, frame.right, getattr(frame, "disp_left", None)


def _depth_message(camera: StereoRig, disp: np.ndarray, stamp: int, encoding: str, compressed: bool) -> Any:
    """Depth registered to the left camera from its disparity: 32FC1 metres or 16UC1 millimetres."""
    z = camera.depth_from_disparity(disp)
    if encoding == "32FC1":
        return image_message(z.astype(np.float32), stamp, camera.left_frame_id, "32FC1")
    mm = np.where(np.isfinite(z), np.round(z * 1000.0), 0)
    mm = np.clip(mm, 0, 65535).astype(np.uint16)  # beyond 65.5 m does not fit: saturate
    return (compressed_depth_message(mm, stamp, camera.left_frame_id) if compressed
            else image_message(mm, stamp, camera.left_frame_id, "16UC1"))


def write_stereo_bag(
    path: str | Path,
    frames: Iterable[Any],
    *,
    storage: str = "mcap",
    compressed: bool | str = False,
    jpeg_quality: int = 90,
    fps: float = 10.0,
    start_ns: int = DEFAULT_START_NS,
    camera: StereoRig | None = None,
    depth: str | None = None,
    depth_compressed: bool = False,
    disparity: bool = False,
    topics: Mapping[str, str] | None = None,
    split_every: int | None = None,
    image_encoding: str | None = None,
) -> dict[str, Any]:
    """Write a stereo recording of `frames` to the new bag folder `path`; returns a summary dict.

    frames: objects with `left`, `right` ((H, W, 3) uint8 BGR or (H, W) mono) and optional `disp_left`
        ((H, W) float32 px, 0 = invalid) such as `smd_core.data.synthetic.render.SyntheticFrame`, or
        (left, right[, disp]) tuples / mappings with those keys.
    storage: "mcap" or "sqlite3". compressed: False (sensor_msgs/Image), True or "jpeg" (CompressedImage
        JPEG, what image_transport publishes), "png" (lossless CompressedImage).
    camera: calibration; defaults to `StereoRig.default(width, height)`.
    depth: None, "32FC1" (metres, NaN invalid) or "16UC1" (millimetres, 0 invalid): a depth topic registered
        to the left camera computed from `disp_left` (Z = fx * B / d); `depth_compressed` sends 16UC1 as
        compressedDepth. disparity: also write a stereo_msgs/DisparityImage from `disp_left`.
    topics: overrides of DEFAULT_TOPICS keys. split_every: start a new storage file every N frames.
    Stamps: frame i has header stamp start_ns + i / fps (both cameras and all topics share it).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if depth not in (None, "32FC1", "16UC1"):
        raise ValueError(f"depth must be None, '32FC1' or '16UC1', got {depth!r}")
    fmt = "jpeg" if compressed is True else (compressed or None)
    if fmt not in (None, "jpeg", "png"):
        raise ValueError(f"compressed must be False, True, 'jpeg' or 'png', got {compressed!r}")
    if split_every is not None and split_every <= 0:
        raise ValueError(f"split_every must be positive, got {split_every}")
    names = dict(DEFAULT_TOPICS, **(topics or {}))
    unknown = set(topics or {}) - set(DEFAULT_TOPICS)
    if unknown:
        raise ValueError(f"unknown topic keys {sorted(unknown)}; known: {sorted(DEFAULT_TOPICS)}")
    stamps: list[int] = []
    with StereoBagWriter(path, storage=storage) as writer:
        for index, frame in enumerate(frames):
            left, right, disp = _frame_parts(frame)
            if left.shape[:2] != right.shape[:2]:
                raise ValueError(f"frame {index}: left {left.shape} and right {right.shape} sizes differ")
            height, width = left.shape[:2]
            if camera is None:
                camera = StereoRig.default(width, height)
            if (width, height) != (camera.width, camera.height):
                raise ValueError(f"frame {index}: size {width}x{height} != camera {camera.width}x{camera.height}")
            if split_every and index and index % split_every == 0:
                writer.split()
            stamp = start_ns + round(index * 1e9 / fps)
            stamps.append(stamp)
            for side, image in (("left", left), ("right", right)):
                frame_id = getattr(camera, f"{side}_frame_id")
                msg = (image_message(image, stamp, frame_id, image_encoding) if fmt is None
                       else compressed_image_message(image, stamp, frame_id, fmt, jpeg_quality))
                writer.write(names[f"{side}_image"], msg)
                writer.write(names[f"{side}_info"], camera.camera_info(side, stamp))
            if (depth or disparity) and disp is None:
                raise ValueError(f"frame {index}: depth/disparity topics need frames with disp_left")
            if depth:
                writer.write(names["depth"], _depth_message(camera, disp, stamp, depth, depth_compressed))
            if disparity:
                d = np.where(np.asarray(disp) > 0, disp, -1.0).astype(np.float32)
                msg = disparity_image_message(
                    d, stamp_ns=stamp, frame_id=camera.left_frame_id, focal=camera.fx, baseline=camera.baseline,
                    min_disparity=0.0, max_disparity=float(max(1.0, np.max(d) + 1)),
                )
                writer.write(names["disparity"], msg)
    return {"path": Path(path), "frames": len(stamps), "stamps": stamps, "camera": camera, "topics": names}
