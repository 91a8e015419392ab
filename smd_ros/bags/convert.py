"""`smd bag2dataset BAG [BAG...] --out DIR`: turn rosbag2 stereo recordings into a training set.

Reads sqlite3 and mcap recordings (split or not, also cut-off ones) with `rosbags`, no ROS install needed.
Left/right images (`sensor_msgs/Image` or `CompressedImage`) are paired by header stamp; ground truth comes
from a depth image registered to the left camera (`--depth`, 32FC1 metres / 16UC1 mm, d = fx * B / Z with
fx and B from the rectified P matrices), a `stereo_msgs/DisparityImage` (`--disparity`), or confident
model predictions (`--pseudo-labels CKPT`).

Output folder:
    left/000000.png right/000000.png   images (8-bit PNG, as recorded or rectified with --rectify)
    disp/000000.npy                    float32 disparity in pixels, 0 = invalid
    conf/000000.png                    pseudo-labels only: 255 where the label was kept
    train.txt val.txt                  `left/000000.png right/000000.png disp/000000.npy`, relative paths
    calib.yaml                         rectified K, baseline, size, source CameraInfos
    manifest.json                      source bags, topics, per-frame stamps, counts, options, tool version
    preview.png                        a few frames: left, right, disparity (, kept pixels)

Every file is written to a temporary name and renamed, and the manifest fixes the frame plan up front, so
a rerun with the same arguments resumes an interrupted conversion without rewriting finished frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import logging
import math
import os
import shutil
import struct
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from rosbags.serde import SerdeError
from tqdm import tqdm

from smd_core.geometry import depth_to_disparity
from smd_ros import sensors
from smd_ros.bags import messages as bm
from smd_ros.bags.calib import CameraModel, StereoCalibration, stereo_matches, vertical_misalignment
from smd_ros.bags.pairing import PairedFrame, apply_stride, assign_splits, pair_stamps, select_window
from smd_ros.bags.reader import BagError, BagReadError, BagSource, describe_topics

LOG = logging.getLogger("smd_ros.bags")

TOOL_VERSION = "1.0"
MANIFEST_FORMAT = "smd_ros.bag2dataset"
MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
OWN_ENTRIES = ("left", "right", "disp", "conf", "train.txt", "val.txt", "calib.yaml", MANIFEST, "preview.png")
# Options that change nothing in the output, so a resume may change them.
NOT_FINGERPRINTED = ("overwrite", "progress", "allow_truncated", "device", "check_rectification")
# Largest median vertical offset (px) of feature matches tolerated in a "rectified" pair.
MAX_VERTICAL_OFFSET_PX = 1.0
RECTIFICATION_CHECK_FRAMES = 3  # pairs whose feature matches feed the rectification check
MANIFEST_EVERY = 25  # frames between manifest updates (resume bookkeeping survives a kill)
# A message whose bytes are garbage (bit rot, a bad disk block inside an otherwise readable file).
CORRUPT_MESSAGE_ERRORS = (SerdeError, struct.error, IndexError, ValueError, UnicodeDecodeError)


class DatasetExistsError(BagError):
    """The output folder holds something this run must not overwrite or mix with."""


class DamagedBagError(BagError):
    """One or more recordings were damaged; the frames before the damage were written. `report` tells more."""

    def __init__(self, message: str, report: ConversionReport) -> None:
        super().__init__(message)
        self.report = report


@dataclasses.dataclass
class Bag2DatasetOptions:
    """Conversion settings; defaults match the stereo node's topic names."""

    left_image: str = "/left/image_rect"
    right_image: str = "/right/image_rect"
    left_info: str = "/left/camera_info"
    right_info: str = "/right/camera_info"
    # Ground truth, at most one: depth registered to the left camera, or a stereo_msgs/DisparityImage.
    depth: str | None = None
    disparity: str | None = None
    # Checkpoint for pseudo-labels when the recording has no ground truth.
    pseudo_labels: str | None = None
    pseudo_max_uncertainty: float = 1.0  # px, std of the selected mode
    pseudo_lr_tolerance: float = 1.0  # px, left-right consistency
    device: str = "cpu"
    tolerance: float = 0.01  # seconds between paired stamps
    stamp: str = "header"  # "header" (message header stamps) or "log" (recording receive time)
    stride: int = 1
    max_frames: int | None = None
    start: float | None = None  # seconds after the first paired frame of each bag
    end: float | None = None
    val_fraction: float = 0.1
    val_blocks: int = 10
    rectify: bool = False
    # Significant bits of 16-bit images (smd_core.data.io.uint16_to_uint8): 0 = auto, as the node's image_bits.
    image_bits: int = 0
    min_depth: float = 0.0  # metres; depth outside [min_depth, max_depth] is invalid
    max_depth: float | None = None
    check_rectification: bool = True
    allow_truncated: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        sources = [n for n, v in (("--depth", self.depth), ("--disparity", self.disparity),
                                  ("--pseudo-labels", self.pseudo_labels)) if v]
        if len(sources) > 1:
            raise ValueError(f"choose one ground-truth source, got {' and '.join(sources)}")
        if self.stamp not in ("header", "log"):
            raise ValueError(f"stamp must be 'header' or 'log', got {self.stamp!r}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be >= 0 seconds, got {self.tolerance}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if (self.start is not None and self.start < 0) or (self.end is not None and self.end <= 0):
            raise ValueError(f"time window must be start >= 0 and end > 0 seconds, got start={self.start}, "
                             f"end={self.end}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"time window is empty: start={self.start} s >= end={self.end} s")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_blocks < 2:
            raise ValueError(f"val_blocks must be >= 2, got {self.val_blocks}")
        if self.min_depth < 0 or (self.max_depth is not None and self.max_depth <= self.min_depth):
            raise ValueError(f"depth range must satisfy 0 <= min_depth < max_depth, got {self.min_depth}, "
                             f"{self.max_depth}")
        if self.image_bits != 0 and not 9 <= self.image_bits <= 16:
            raise ValueError(f"image_bits must be 0 (auto) or 9..16, got {self.image_bits}")
        if self.pseudo_max_uncertainty <= 0 or self.pseudo_lr_tolerance <= 0:
            raise ValueError("pseudo_max_uncertainty and pseudo_lr_tolerance must be positive, got "
                             f"{self.pseudo_max_uncertainty} and {self.pseudo_lr_tolerance}")
        topics = [self.left_image, self.right_image, self.left_info, self.right_info, self.gt_topic]
        named = [t for t in topics if t]
        if len(set(named)) != len(named):
            raise ValueError(f"topics must be distinct, got {named}")

    @property
    def gt_topic(self) -> str | None:
        return self.depth or self.disparity

    @property
    def has_labels(self) -> bool:
        return bool(self.gt_topic or self.pseudo_labels)


@dataclasses.dataclass
class BagScan:
    """Pass 1 over one recording: stamps per role, the CameraInfos, damage."""

    index: int
    source: BagSource
    stamps: dict[str, list[int]]
    counts: dict[str, int]
    left_info: CameraModel
    right_info: CameraModel
    info_changes: dict[str, int]
    first_log_ns: int | None
    damage: BagReadError | None = None


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did; `summary()` is what the command prints."""

    out: Path
    frames: int = 0
    train: int = 0
    val: int = 0
    written: int = 0
    reused: int = 0
    incomplete: int = 0
    corrupt: dict[str, str] = dataclasses.field(default_factory=dict)  # frame id -> why it was skipped
    dropped: Counter = dataclasses.field(default_factory=Counter)
    bags: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    status: str = "complete"

    def summary(self) -> str:
        lines = []
        for bag in self.bags:
            counts = ", ".join(f"{k} {v}" for k, v in bag["messages"].items())
            lines.append(f"{bag['path']} ({bag['storage']}, {len(bag['files'])} file(s)): {counts} "
                         f"-> {bag['paired']} pairs, {bag['frames']} frames")
            for reason, n in sorted(bag["dropped"].items(), key=lambda kv: -kv[1]):
                lines.append(f"    dropped {n:>6}  {reason}")
            if bag.get("damaged"):
                lines.append(f"    DAMAGED: {bag['damaged']['message']}")
        lines.append(f"dataset {self.out}: {self.frames} frames (train {self.train}, val {self.val}); "
                     f"written now {self.written}, already there {self.reused}"
                     + (f", incomplete {self.incomplete}" if self.incomplete else "")
                     + (f", skipped as corrupt {len(self.corrupt)}" if self.corrupt else ""))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- files


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _png_bytes(image: np.ndarray) -> bytes:
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


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _write_json(path: Path, data: Any) -> None:
    _atomic_write(path, (json.dumps(data, indent=1, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _remove_temporaries(out: Path) -> None:
    """Drop temporaries an interrupted run left behind (they are never part of a finished frame)."""
    for folder in [out, *(out / d for d in ("left", "right", "disp", "conf"))]:
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp*"):
                tmp.unlink()


# ------------------------------------------------------------------------------------------ fingerprint


def _bag_identity(source: BagSource) -> dict[str, Any]:
    return {
        "path": str(source.path.resolve()),
        "storage": source.storage,
        "files": [{"name": f.name, "bytes": f.stat().st_size} for f in source.files],
    }


def _fingerprint(options: Bag2DatasetOptions, sources: Sequence[BagSource]) -> tuple[str, dict[str, Any]]:
    content = {k: v for k, v in dataclasses.asdict(options).items() if k not in NOT_FINGERPRINTED}
    if options.pseudo_labels:
        ckpt = Path(options.pseudo_labels)
        content["pseudo_labels"] = {"path": str(ckpt.resolve()), "bytes": ckpt.stat().st_size}
    data = {"options": content, "bags": [_bag_identity(s) for s in sources], "manifest_version": MANIFEST_VERSION}
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return digest, data


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Human-readable differences between two fingerprint inputs."""
    diffs = []
    old_opts, new_opts = old.get("options", {}), new.get("options", {})
    for key in sorted(set(old_opts) | set(new_opts)):
        if old_opts.get(key) != new_opts.get(key):
            diffs.append(f"{key}: {old_opts.get(key)!r} -> {new_opts.get(key)!r}")
    old_bags = [(b["path"], b["files"]) for b in old.get("bags", [])]
    new_bags = [(b["path"], b["files"]) for b in new.get("bags", [])]
    if old_bags != new_bags:
        diffs.append(f"bags: {[b[0] for b in old_bags]} -> {[b[0] for b in new_bags]}"
                     + (" (same paths, different file sizes)" if [b[0] for b in old_bags] ==
                        [b[0] for b in new_bags] else ""))
    return "; ".join(diffs) or "(format version)"


def inspect_output(out: Path, fingerprint: str, identity: dict[str, Any], overwrite: bool) -> tuple[str, dict | None]:
    """What to do with `out`, without touching it: ("new", None), ("resume", manifest) for the same
    conversion, or ("replace", manifest) for another bag2dataset dataset when `overwrite`.

    Raises DatasetExistsError when `out` holds a different dataset (ours, without `overwrite`) or anything
    that is not ours (never deleted, whatever the flags).
    """
    if out.exists() and not out.is_dir():
        raise DatasetExistsError(f"--out {out} is a file, not a folder")
    if not out.exists():
        return "new", None
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetExistsError(f"{manifest_path} is not valid JSON ({err}); refusing to touch {out}") from err
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise DatasetExistsError(f"{out} holds a manifest.json that bag2dataset did not write; choose "
                                     "another --out")
        if manifest.get("fingerprint") == fingerprint:
            return "resume", manifest
        difference = _describe_difference(manifest.get("fingerprint_input", {}), identity)
        if not overwrite:
            raise DatasetExistsError(
                f"{out} holds another bag2dataset dataset (made from different bags or options: {difference}). "
                "Pass --overwrite to replace it, or choose another --out"
            )
        return "replace", manifest
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:8]) + (f", ... ({len(foreign)} entries)" if len(foreign) > 8 else "")
        raise DatasetExistsError(
            f"{out} is not empty and is not a bag2dataset output (it holds {shown}); refusing to mix datasets "
            "(--overwrite only replaces bag2dataset outputs). Choose an empty or new folder"
        )
    return "new", None


def _clear_dataset(out: Path) -> None:
    """Remove a previous bag2dataset dataset's own files (only those) from `out`."""
    for name in OWN_ENTRIES:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    _remove_temporaries(out)


# ------------------------------------------------------------------------------------------------ scan


_EXPECTED = {
    "left": bm.IMAGE_TYPES, "right": bm.IMAGE_TYPES, "left_info": (bm.CAMERA_INFO,),
    "right_info": (bm.CAMERA_INFO,), "depth": bm.IMAGE_TYPES, "disparity": (bm.DISPARITY_IMAGE,),
}
_OPTION_OF = {
    "left": "--left-image", "right": "--right-image", "left_info": "--left-info",
    "right_info": "--right-info", "depth": "--depth", "disparity": "--disparity",
}


def _roles(options: Bag2DatasetOptions) -> dict[str, str]:
    """role -> topic for everything this conversion reads."""
    roles = {"left": options.left_image, "right": options.right_image,
             "left_info": options.left_info, "right_info": options.right_info}
    if options.depth:
        roles["depth"] = options.depth
    if options.disparity:
        roles["disparity"] = options.disparity
    return roles


def check_topics(source: BagSource, roles: dict[str, str]) -> None:
    """BagError naming the missing topic / wrong type and listing what the bag has."""
    topics = source.topics()
    for role, topic in roles.items():
        info = topics.get(topic)
        if info is None:
            raise BagError(
                f"{source.path}: topic {topic!r} ({_OPTION_OF[role]}) is not in this recording. It has:\n"
                f"{describe_topics(topics)}\nChoose the topic with {_OPTION_OF[role]} TOPIC"
            )
        if info.msgtype not in _EXPECTED[role]:
            raise BagError(
                f"{source.path}: topic {topic!r} ({_OPTION_OF[role]}) has type {info.msgtype}; expected "
                f"{' or '.join(_EXPECTED[role])}. The recording has:\n{describe_topics(topics)}"
            )


def scan_bag(index: int, source: BagSource, options: Bag2DatasetOptions) -> BagScan:
    """Pass 1: stamps of every image / ground-truth message (header bytes only) and the CameraInfos."""
    roles = _roles(options)
    check_topics(source, roles)
    topic_role = {t: r for r, t in roles.items()}
    stamps: dict[str, list[int]] = {r: [] for r in roles if not r.endswith("_info")}
    counts = {r: 0 for r in roles}
    infos: dict[str, CameraModel] = {}
    changes = {"left_info": 0, "right_info": 0}
    damage = None
    first_log = None
    total = sum(source.topics()[t].count or 0 for t in roles.values()) or None
    bar = tqdm(total=total, desc=f"scan {source.path.name}", unit="msg", disable=not options.progress,
               leave=False)
    try:
        for msg in source.messages(set(roles.values())):
            bar.update()
            first_log = msg.log_time_ns if first_log is None else min(first_log, msg.log_time_ns)
            role = topic_role[msg.topic]
            counts[role] += 1
            if role.endswith("_info"):
                model = CameraModel.from_msg(bm.deserialize(msg.data, msg.msgtype))
                if role not in infos:
                    infos[role] = model
                elif not infos[role].same_as(model):
                    changes[role] += 1
                continue
            stamp = msg.log_time_ns if options.stamp == "log" else bm.header_stamp_ns(msg.data, msg.msgtype)
            stamps[role].append(stamp)
    except BagReadError as err:
        damage = err
    finally:
        bar.close()
    for role in ("left_info", "right_info"):
        if role not in infos:
            raise BagError(f"{source.path}: no CameraInfo message on {roles[role]} ({_OPTION_OF[role]})"
                           + (f" before the damage: {damage.reason}" if damage else ""))
    if options.stamp == "header" and stamps["left"] and len(set(stamps["left"])) == 1 and len(stamps["left"]) > 1:
        raise BagError(f"{source.path}: all {len(stamps['left'])} messages on {roles['left']} carry the same header "
                       f"stamp {stamps['left'][0]} ns; the driver does not stamp images. Use --stamp log")
    return BagScan(index, source, stamps, counts, infos["left_info"], infos["right_info"], changes, first_log,
                   damage)


# ---------------------------------------------------------------------------------------------- convert


@dataclasses.dataclass
class _Frame:
    """A planned frame: its pairing, name and (after processing) the fraction of labelled pixels."""

    index: int
    pair: PairedFrame
    valid_fraction: float | None = None

    @property
    def name(self) -> str:
        return f"{self.index:06d}"

    def files(self, options: Bag2DatasetOptions) -> dict[str, str]:
        files = {"left": f"left/{self.name}.png", "right": f"right/{self.name}.png"}
        if options.has_labels:
            files["disp"] = f"disp/{self.name}.npy"
        if options.pseudo_labels:
            files["conf"] = f"conf/{self.name}.png"
        return files

    def done(self, out: Path, options: Bag2DatasetOptions) -> bool:
        return all((out / f).is_file() for f in self.files(options).values())

    def to_json(self, options: Bag2DatasetOptions) -> dict[str, Any]:
        return {
            "id": self.name, "bag": self.pair.bag, "split": self.pair.split,
            "stamps": {"left": self.pair.left_ns, "right": self.pair.right_ns, "gt": self.pair.gt_ns},
            "files": self.files(options), "valid_fraction": self.valid_fraction,
        }


class _FrameWriter:
    """Decodes one frame's messages, applies rectification / labels, writes its files atomically."""

    def __init__(self, out: Path, options: Bag2DatasetOptions, calib: StereoCalibration, predictor: Any) -> None:
        self.out = out
        self.options = options
        self.calib = calib
        self.predictor = predictor
        self.maps = None
        if options.rectify:
            if not (calib.left.full_frame and calib.right.full_frame):
                raise BagError("--rectify needs camera_info of whole sensor images: these use binning or a ROI "
                               "(record image_rect topics, or the raw full-size images)")
            self.maps = {"left": calib.left.rectify_maps(), "right": calib.right.rectify_maps()}
        self.warned: set[str] = set()
        self.warnings: list[str] = []
        self.matches: list[np.ndarray] = []  # point matches of the first few pairs (rectification check)
        self.image_size = calib.size

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.warnings.append(text)
            LOG.warning(text)

    def _images(self, parts: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
        """The pair as BGR uint8, decoded as the node decodes it (`sensors.stereo_images`), then rectified."""
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
        options = self.options
        camera = self.calib.camera
        if options.disparity:
            disparity = sensors.disparity_pixels(msg, options.disparity)
            if abs(msg.f - camera.fx) > 1e-3 * camera.fx or abs(msg.t - camera.baseline) > 1e-3 * camera.baseline:
                self._warn_once("disparity_fb", (
                    f"{options.disparity}: DisparityImage f={msg.f:.6g}, T={msg.t:.6g} differ from camera_info "
                    f"(fx={camera.fx:.6g}, B={camera.baseline:.6g}); its disparities are used as they are"
                ))
            what = "disparity image"
        else:
            depth = sensors.depth_metres(msg, options.depth or "")
            if depth.shape != shape:
                raise BagError(
                    f"{where}: depth image on {options.gt_topic} is {depth.shape[1]}x{depth.shape[0]} but the left "
                    f"image is {shape[1]}x{shape[0]}; ground truth must be registered to the left camera at its "
                    "resolution"
                )
            if self.maps is not None:
                depth = self.calib.rectify_depth(depth, *self.maps["left"])
            max_depth = options.max_depth or math.inf
            with np.errstate(invalid="ignore"):
                depth[(depth < options.min_depth) | (depth > max_depth)] = np.nan
            disparity = depth_to_disparity(depth, camera)
            disparity[~(disparity > 0)] = 0.0  # behind the camera (doffs) or invalid depth
            what = "depth image"
        if disparity.shape != shape:
            raise BagError(
                f"{where}: {what} on {options.gt_topic} is {disparity.shape[1]}x{disparity.shape[0]} but the left "
                f"image is {shape[1]}x{shape[0]}; ground truth must be registered to the left camera at its "
                "resolution"
            )
        return disparity

    def write(self, frame: _Frame, parts: dict[str, Any], where: str) -> None:
        options = self.options
        left, right = self._images(parts, where)
        if options.check_rectification and not options.rectify and len(self.matches) < RECTIFICATION_CHECK_FRAMES:
            self.matches.append(stereo_matches(left, right))
            self.image_size = (left.shape[1], left.shape[0])
        outputs: dict[str, bytes] = {}
        files = frame.files(options)
        outputs[files["left"]] = _png_bytes(_grey_if_grey(left))
        outputs[files["right"]] = _png_bytes(_grey_if_grey(right))
        if options.gt_topic:
            disparity = self._ground_truth(parts["gt"], left.shape[:2], where)
        elif options.pseudo_labels:
            from smd_ros.bags.pseudo import pseudo_label

            label = pseudo_label(self.predictor, left, right, max_uncertainty=options.pseudo_max_uncertainty,
                                 lr_tolerance=options.pseudo_lr_tolerance)
            disparity = label.disparity
            outputs[files["conf"]] = _png_bytes(label.confident.astype(np.uint8) * 255)
        else:
            disparity = None
        if disparity is not None:
            outputs[files["disp"]] = _npy_bytes(disparity.astype(np.float32))
            frame.valid_fraction = float(np.count_nonzero(disparity > 0) / disparity.size)
        # Disparity (and confidence) last: a frame counts as done when all its files exist.
        for rel, data in outputs.items():
            _atomic_write(self.out / rel, data)


def _load_predictor(options: Bag2DatasetOptions) -> Any:
    import torch  # deferred: conversion without pseudo-labels needs no torch

    from smd_core import Predictor, load_model

    ckpt = Path(options.pseudo_labels or "")
    if not ckpt.is_file():
        raise FileNotFoundError(f"--pseudo-labels checkpoint not found: {ckpt}")
    device = torch.device(options.device)
    return Predictor(load_model(ckpt, device=device), device=device)


def _where(scan: BagScan, frame: _Frame) -> str:
    return f"{scan.source.path} frame {frame.name} (left stamp {frame.pair.left_ns} ns)"


def convert(
    bags: Sequence[str | Path],
    out: str | Path,
    options: Bag2DatasetOptions | None = None,
    *,
    predictor: Any = None,
    on_frame: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Convert recordings `bags` into the dataset folder `out`; returns a ConversionReport.

    predictor: for pseudo-labels, anything with `predict(left, right)` returning `disparity` and
        `uncertainty` maps (default: `smd_core.Predictor` on `options.pseudo_labels`).
    on_frame: called with the frame index after each frame is written (progress hooks, tests).
    Raises BagError (missing topic, wrong type, mismatched sizes, foreign output folder...),
    bag_messages.EncodingError (unsupported encodings), FileNotFoundError, and DamagedBagError after
    writing everything readable when a recording is damaged (unless options.allow_truncated).
    """
    options = options or Bag2DatasetOptions()
    if not bags:
        raise ValueError("no bags given")
    out = Path(out)
    sources = [BagSource(b) for b in bags]
    if len({s.path.resolve() for s in sources}) != len(sources):
        raise ValueError(f"the same bag is given twice: {[str(s.path) for s in sources]}")
    if options.pseudo_labels and not Path(options.pseudo_labels).is_file():
        raise FileNotFoundError(f"--pseudo-labels checkpoint not found: {options.pseudo_labels}")
    fingerprint, identity = _fingerprint(options, sources)
    # Refuse a foreign / different output folder before the (long) scan; change nothing on disk yet.
    action, existing = inspect_output(out, fingerprint, identity, options.overwrite)
    report = ConversionReport(out=out)

    # Pass 1: stamps and calibration.
    scans = [scan_bag(i, s, options) for i, s in enumerate(sources)]
    try:
        calib = StereoCalibration.from_models(scans[0].left_info, scans[0].right_info)
    except ValueError as err:
        raise BagError(f"{scans[0].source.path}: {options.left_info} / {options.right_info}: {err}") from err
    report.warnings.extend(calib.warnings)
    if not options.rectify:
        report.warnings.extend(calib.rectification_notes())
    for scan in scans:
        if not (scan.left_info.same_as(calib.left) and scan.right_info.same_as(calib.right)):
            raise BagError(f"{scan.source.path}: its camera_info differs from {scans[0].source.path}'s; bags from "
                           "differently calibrated cameras need separate datasets")
        for role, n in scan.info_changes.items():
            if n:
                report.warnings.append(f"{scan.source.path}: camera_info on {getattr(options, role)} changes {n} "
                                       "times during the recording; the first one is used for every frame")

    # Plan: pairing, window, stride, frame cap, split.
    tol_ns = round(options.tolerance * 1e9)
    planned: list[PairedFrame] = []
    bag_info: list[dict[str, Any]] = []
    for scan in scans:
        gt_role = "depth" if options.depth else "disparity" if options.disparity else None
        result = pair_stamps(
            scan.index, scan.stamps["left"], scan.stamps["right"], scan.stamps[gt_role] if gt_role else None,
            tolerance_ns=tol_ns, topics=(options.left_image, options.right_image, options.gt_topic),
        )
        paired = len(result.frames)
        frames = select_window(result.frames, options.start, options.end, result.dropped)
        frames = apply_stride(frames, options.stride, result.dropped)
        if options.max_frames is not None:
            room = max(0, options.max_frames - len(planned))
            if len(frames) > room:
                result.dropped[f"beyond --max-frames {options.max_frames}"] += len(frames) - room
                frames = frames[:room]
        planned.extend(frames)
        info = dict(_bag_identity(scan.source), messages={
            k: v for k, v in scan.counts.items() if not k.endswith("_info")}, paired=paired, frames=len(frames),
            dropped=dict(result.dropped), topics={t: {"type": i.msgtype, "count": i.count}
                                                  for t, i in scan.source.topics().items()})
        if scan.damage:
            first = scan.first_log_ns
            last = scan.damage.last_time_ns
            seconds = (last - first) / 1e9 if (first is not None and last is not None) else 0.0
            info["damaged"] = {
                "reason": scan.damage.reason, "messages_read": scan.damage.messages_read,
                "last_log_time_ns": last, "seconds_read": seconds,
                "message": (f"recording is damaged ({scan.damage.reason}); readable up to {seconds:.2f} s into the "
                            f"recording ({scan.damage.messages_read} messages on the converted topics)"),
            }
        bag_info.append(info)
        report.dropped.update(result.dropped)
    assign_splits(planned, options.val_fraction, options.val_blocks)
    frames = [_Frame(i, p) for i, p in enumerate(planned)]
    report.bags = bag_info
    report.frames = len(frames)
    report.train = sum(f.pair.split == "train" for f in frames)
    report.val = report.frames - report.train
    if not frames:
        damage = "".join(f"; {b['path']}: {b['damaged']['message']}" for b in bag_info if b.get("damaged"))
        raise BagError("no frames to convert: " + ("; ".join(f"{n} {r}" for r, n in report.dropped.items())
                                                   or "no stereo pairs at all") + damage)
    if not options.has_labels:
        report.warnings.append("no ground truth (--depth, --disparity or --pseudo-labels): the lists have no "
                               "disparity column and are not usable for supervised training")

    if action == "resume":
        _check_same_plan(existing or {}, frames, options, out)
        previous = {f["id"]: f.get("valid_fraction") for f in (existing or {}).get("frames", [])}
        for f in frames:
            f.valid_fraction = previous.get(f.name)
    elif action == "replace":
        LOG.warning("--overwrite: replacing the dataset in %s", out)
        _clear_dataset(out)
        existing = None
    out.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(out)

    for sub in ("left", "right", "disp", "conf"):
        if sub in ("left", "right") or (sub == "disp" and options.has_labels) or (sub == "conf" and
                                                                                 options.pseudo_labels):
            (out / sub).mkdir(exist_ok=True)
    _atomic_write(out / "calib.yaml", yaml.safe_dump(calib.to_yaml_dict(), sort_keys=False).encode())
    created = (existing or {}).get("created") or _now()
    manifest = _manifest(options, fingerprint, identity, report, calib, frames, created, "in_progress")
    _write_json(out / MANIFEST, manifest)

    # Pass 2: decode and write the frames not already on disk.
    todo = [f for f in frames if not f.done(out, options)]
    report.reused = len(frames) - len(todo)
    for f in frames:
        if f.valid_fraction is None and options.has_labels and f.done(out, options):
            disp = np.load(out / f.files(options)["disp"], mmap_mode="r")
            f.valid_fraction = float(np.count_nonzero(disp > 0) / disp.size)
    if todo and options.pseudo_labels and predictor is None:
        predictor = _load_predictor(options)
    writer = _FrameWriter(out, options, calib, predictor)
    bar = tqdm(total=len(frames), initial=report.reused, desc="convert", unit="frame",
               disable=not options.progress)
    since_manifest = 0
    corrupt: dict[int, str] = {}

    def save_manifest(status: str) -> None:
        _write_json(out / MANIFEST, _manifest(options, fingerprint, identity, report, calib, frames, created, status))

    try:
        for scan in scans:
            bag_todo = [f for f in todo if f.pair.bag == scan.index]
            if not bag_todo:
                continue
            for frame, parts in _collect(scan, bag_todo, options, corrupt):
                if parts is None:
                    continue  # cut off by damage; counted below
                writer.write(frame, parts, _where(scan, frame))
                report.written += 1
                bar.update()
                since_manifest += 1
                if on_frame is not None:
                    on_frame(frame.index)
                if since_manifest >= MANIFEST_EVERY:
                    since_manifest = 0
                    save_manifest("in_progress")
    except BaseException:
        # Interrupted or failed: keep the per-frame bookkeeping of what was written, then re-raise.
        if report.written:
            save_manifest("in_progress")
        raise
    finally:
        bar.close()

    report.warnings.extend(writer.warnings)
    if writer.matches:
        offset, inliers = vertical_misalignment(np.concatenate(writer.matches), writer.image_size)
        if offset > MAX_VERTICAL_OFFSET_PX:
            report.warnings.append(
                f"the images do not look rectified: matched points differ by {offset:.1f} px vertically "
                f"(median of a fit to {inliers} matches in {len(writer.matches)} pairs). Pass --rectify if the "
                "topics carry raw images, or check that left and right are a rectified pair"
            )
    for index, why in sorted(corrupt.items()):
        report.corrupt[frames[index].name] = why
        report.warnings.append(f"skipped frame {frames[index].name}: {why}")
    done = [f for f in frames if f.done(out, options)]
    report.incomplete = len(frames) - len(done) - len(corrupt)
    _write_lists(out, done, options)
    _write_preview(out, done, options)
    damaged = [b for b in bag_info if b.get("damaged")]
    report.status = "partial" if (damaged and not options.allow_truncated) or report.incomplete else "complete"
    save_manifest(report.status)
    if damaged and not options.allow_truncated:
        details = "; ".join(f"{b['path']}: {b['damaged']['message']}" for b in damaged)
        raise DamagedBagError(
            f"{details}. Kept the {len(done)} frames converted from the readable part in {out} (lists and "
            "manifest written, status 'partial'). Rerun with --allow-truncated to accept them as the dataset, "
            "or repair the recording (ros2 bag reindex) first", report)
    for bag in damaged:
        report.warnings.append(f"{bag['path']}: {bag['damaged']['message']}; converted the readable part")
    return report


def _collect(scan: BagScan, frames: list[_Frame], options: Bag2DatasetOptions, corrupt: dict[int, str]):  # noqa: ANN202
    """Pass 2 over one bag: yields (frame, {"left": msg, "right": msg[, "gt": msg]}) as frames complete,
    in recording order, and (frame, None) for frames the damaged end of the recording cut off or whose
    message does not deserialize (those are added to `corrupt`: frame index -> why)."""
    roles = {"left": options.left_image, "right": options.right_image}
    if options.gt_topic:
        roles["gt"] = options.gt_topic
    topic_role = {t: r for r, t in roles.items()}
    wanted: dict[tuple[str, int], list[_Frame]] = {}
    for f in frames:
        stamps = {"left": f.pair.left_ns, "right": f.pair.right_ns, "gt": f.pair.gt_ns}
        for role in roles:
            wanted.setdefault((role, stamps[role]), []).append(f)
    pending: dict[int, dict[str, Any]] = {}
    completed: set[int] = set()
    try:
        for msg in scan.source.messages(set(roles.values())):
            role = topic_role[msg.topic]
            stamp = msg.log_time_ns if options.stamp == "log" else bm.header_stamp_ns(msg.data, msg.msgtype)
            targets = wanted.pop((role, stamp), None)
            if not targets:
                continue
            try:
                decoded = bm.deserialize(bytes(msg.data), msg.msgtype)
            except CORRUPT_MESSAGE_ERRORS as err:
                for f in targets:
                    corrupt[f.index] = f"{msg.topic} message at stamp {stamp} does not deserialize ({err})"
                    pending.pop(f.index, None)
                continue
            for f in targets:
                if f.index in corrupt:
                    continue
                parts = pending.setdefault(f.index, {})
                parts[role] = decoded
                if len(parts) == len(roles):
                    del pending[f.index]
                    completed.add(f.index)
                    yield f, parts
            if len(completed) == len(frames):
                return  # the rest of the recording holds nothing we need
    except BagReadError:
        pass  # reported from pass 1 already; the frames it cut off are yielded below
    for f in frames:
        if f.index not in completed:
            yield f, None


def _check_same_plan(existing: dict[str, Any], frames: list[_Frame], options: Bag2DatasetOptions, out: Path) -> None:
    old = {f["id"]: f for f in existing.get("frames", [])}
    for f in frames:
        prev = old.get(f.name)
        if prev is None or prev.get("stamps") != f.to_json(options)["stamps"] or prev.get("split") != f.pair.split:
            raise DatasetExistsError(
                f"{out}: frame {f.name} was planned differently by the interrupted run (tool version "
                f"{existing.get('tool_version')}); pass --overwrite to start over"
            )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _manifest(
    options: Bag2DatasetOptions, fingerprint: str, identity: dict[str, Any], report: ConversionReport,
    calib: StereoCalibration, frames: list[_Frame], created: str, status: str,
) -> dict[str, Any]:
    from smd_core import __version__ as smd_version

    labels = ("depth" if options.depth else "disparity" if options.disparity else
              "pseudo" if options.pseudo_labels else None)
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "tool": "bag2dataset",
        "tool_version": TOOL_VERSION,
        "smd_core_version": smd_version,
        "status": status,
        "created": created,
        "updated": _now(),
        "fingerprint": fingerprint,
        "fingerprint_input": identity,
        "options": dataclasses.asdict(options),
        "topics": {"left_image": options.left_image, "right_image": options.right_image,
                   "left_info": options.left_info, "right_info": options.right_info,
                   "ground_truth": options.gt_topic},
        "labels": labels,
        "bags": report.bags,
        "calibration": calib.to_yaml_dict(),
        "counts": {"frames": report.frames, "train": report.train, "val": report.val,
                   "incomplete": report.incomplete, "corrupt": report.corrupt, "dropped": dict(report.dropped)},
        "warnings": report.warnings,
        "frames": [f.to_json(options) for f in frames],
    }


def _write_lists(out: Path, frames: list[_Frame], options: Bag2DatasetOptions) -> None:
    for split in ("train", "val"):
        lines = []
        for f in frames:
            if f.pair.split == split:
                files = f.files(options)
                cols = [files["left"], files["right"]] + ([files["disp"]] if "disp" in files else [])
                lines.append(" ".join(cols))
        _atomic_write(out / f"{split}.txt", ("\n".join(lines) + ("\n" if lines else "")).encode())


def _write_preview(out: Path, frames: list[_Frame], options: Bag2DatasetOptions, count: int = 4) -> None:
    """preview.png: left | right | disparity (| kept pixels) for a few frames spread over the dataset."""
    if not frames:
        return
    try:
        from smd_core.viz import colorize_disparity, contact_sheet, label
    except ImportError:  # viz is optional for conversion
        return
    picks = sorted({frames[round(i * (len(frames) - 1) / max(1, count - 1))].index for i in range(count)})
    by_index = {f.index: f for f in frames}
    tiles = []
    for idx in picks:
        files = by_index[idx].files(options)
        left = cv2.imread(str(out / files["left"]), cv2.IMREAD_COLOR)
        right = cv2.imread(str(out / files["right"]), cv2.IMREAD_COLOR)
        tiles.append(label(left, f"{by_index[idx].name} {by_index[idx].pair.split} left"))
        tiles.append(label(right, "right"))
        if "disp" in files:
            disp = np.load(out / files["disp"])
            tiles.append(label(colorize_disparity(disp), "disparity"))
        if "conf" in files:
            conf = cv2.imread(str(out / files["conf"]), cv2.IMREAD_GRAYSCALE)
            tiles.append(label(cv2.cvtColor(conf, cv2.COLOR_GRAY2BGR), "kept"))
    cols = 2 + ("disp" in frames[0].files(options)) + ("conf" in frames[0].files(options))
    _atomic_write(out / "preview.png", _png_bytes(contact_sheet(tiles, cols=cols)))


# ----------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `smd bag2dataset` (and the `bag2dataset` console script)."""
    d = Bag2DatasetOptions()
    parser.add_argument("bags", nargs="+", type=Path, metavar="BAG",
                        help="rosbag2 folders (sqlite3/mcap, split or not) or single .mcap/.db3 files")
    parser.add_argument("--out", required=True, type=Path, help="output dataset folder (new, empty or resumable)")
    topics = parser.add_argument_group("topics")
    topics.add_argument("--left-image", default=d.left_image, help="sensor_msgs/Image or CompressedImage")
    topics.add_argument("--right-image", default=d.right_image)
    topics.add_argument("--left-info", default=d.left_info, help="sensor_msgs/CameraInfo")
    topics.add_argument("--right-info", default=d.right_info)
    gt = topics.add_mutually_exclusive_group()
    gt.add_argument("--depth", metavar="TOPIC", help="depth registered to the left camera: 32FC1 m or 16UC1 mm")
    gt.add_argument("--disparity", metavar="TOPIC", help="stereo_msgs/DisparityImage ground truth")
    gt.add_argument("--pseudo-labels", metavar="CKPT", help="label with a model's confident, consistent pixels")
    sel = parser.add_argument_group("frame selection")
    sel.add_argument("--tolerance", type=float, default=d.tolerance, metavar="SEC",
                     help=f"largest stamp difference of paired messages (default {d.tolerance} s)")
    sel.add_argument("--stamp", choices=("header", "log"), default=d.stamp,
                     help="pair by header stamps (default) or by recording time")
    sel.add_argument("--stride", type=int, default=d.stride, help="keep every N-th pair")
    sel.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    sel.add_argument("--start", type=float, default=None, metavar="SEC",
                     help="skip the first SEC of each bag (from its first stereo pair)")
    sel.add_argument("--end", type=float, default=None, metavar="SEC",
                     help="stop SEC after each bag's first stereo pair")
    sel.add_argument("--val-fraction", type=float, default=d.val_fraction,
                     help=f"fraction of frames for val.txt, in whole time blocks (default {d.val_fraction})")
    sel.add_argument("--val-blocks", type=int, default=d.val_blocks,
                     help=f"number of time blocks the recording is cut into for the split (default {d.val_blocks})")
    geo = parser.add_argument_group("geometry and labels")
    geo.add_argument("--rectify", action="store_true", help="rectify raw images with camera_info K, D, R, P")
    geo.add_argument("--no-rectification-check", dest="check_rectification", action="store_false",
                     help="skip checking that matched points of the first pairs share rows (warns otherwise)")
    geo.add_argument("--image-bits", type=int, default=d.image_bits, metavar="N",
                     help="significant bits of 16-bit images (12 for a 12-bit sensor): shifted to 8 bits by N - 8; "
                          "0 (default): the smallest shift that fits each pair, as the node's image_bits")
    geo.add_argument("--min-depth", type=float, default=d.min_depth, metavar="M",
                     help="depth below this (metres) is invalid (default: only 0 / NaN are)")
    geo.add_argument("--max-depth", type=float, default=None, metavar="M",
                     help="depth beyond this (metres) is invalid (default: no limit)")
    geo.add_argument("--pseudo-max-uncertainty", type=float, default=d.pseudo_max_uncertainty, metavar="PX",
                     help=f"keep pixels whose selected-mode std is below this (default {d.pseudo_max_uncertainty})")
    geo.add_argument("--pseudo-lr-tolerance", type=float, default=d.pseudo_lr_tolerance, metavar="PX",
                     help=f"left-right consistency tolerance (default {d.pseudo_lr_tolerance})")
    geo.add_argument("--device", default=d.device, help="torch device for --pseudo-labels (default cpu)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--allow-truncated", action="store_true",
                           help="accept damaged recordings: convert their readable part and exit 0")
    run_group.add_argument("--overwrite", action="store_true",
                           help="replace a different bag2dataset dataset in --out (never foreign files)")
    run_group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def options_from_args(args: argparse.Namespace) -> Bag2DatasetOptions:
    fields = {f.name for f in dataclasses.fields(Bag2DatasetOptions)}
    return Bag2DatasetOptions(**{k: v for k, v in vars(args).items() if k in fields})


def run(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 1 bad input (topics, encodings, sizes, output folder), 3 damaged recording
    (readable part converted and kept), 130 interrupted (rerun the same command to resume)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = convert(args.bags, args.out, options_from_args(args))
    except DamagedBagError as err:
        print(err.report.summary())
        print(f"bag2dataset: error: {err}", file=sys.stderr)
        return 3
    except (BagError, FileNotFoundError, ValueError) as err:
        print(f"bag2dataset: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bag2dataset: interrupted; rerun the same command to resume into {args.out}", file=sys.stderr)
        return 130
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script `bag2dataset` (same arguments as `smd bag2dataset`)."""
    parser = argparse.ArgumentParser(prog="bag2dataset", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
