"""Reading a recording for `smd bag2dataset`: pass 1 (topic checks, stamps from header bytes, CameraInfos) and
pass 2 (the messages of the planned frames, in recording order)."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from typing import Any

from rosbags.serde import SerdeError
from tqdm import tqdm

from smd_ros.bags import reader
from smd_ros.bags.calib import CameraModel
from smd_ros.bags.options import Bag2DatasetOptions
from smd_ros.bags.pairing import Frame
from smd_ros.bags.reader import BagError, BagReadError, BagSource

# A message whose bytes are garbage (bit rot, a bad disk block inside an otherwise readable file).
CORRUPT_MESSAGE_ERRORS = (SerdeError, struct.error, IndexError, ValueError, UnicodeDecodeError)


@dataclasses.dataclass
class BagScan:
    """Pass 1 over one recording: stamps (ns) and message counts per role, the first CameraInfos and how often
    they changed, the first log time, the damage that ended the read (None: read to the end)."""

    index: int
    source: BagSource
    stamps: dict[str, list[int]]
    counts: dict[str, int]
    left_info: CameraModel
    right_info: CameraModel
    info_changes: dict[str, int]
    first_log_ns: int | None
    damage: BagReadError | None = None


# role -> (the Bag2DatasetOptions field naming its topic, the message types it may have)
_ROLES = {"left": ("left_image", reader.IMAGE_TYPES), "right": ("right_image", reader.IMAGE_TYPES),
          "left_info": ("left_info", (reader.CAMERA_INFO,)), "right_info": ("right_info", (reader.CAMERA_INFO,)),
          "depth": ("depth", reader.IMAGE_TYPES), "disparity": ("disparity", (reader.DISPARITY_IMAGE,))}


def _flag(role: str) -> str:
    return "--" + _ROLES[role][0].replace("_", "-")


def _stamp(msg: reader.RawMessage, options: Bag2DatasetOptions) -> int:
    return msg.log_time_ns if options.stamp == "log" else reader.header_stamp_ns(msg.data, msg.msgtype)


def scan_bag(index: int, source: BagSource, options: Bag2DatasetOptions) -> BagScan:
    """Pass 1: topic checks (BagError naming the topic and listing the recording's), stamps of every image and
    ground-truth message (header bytes only) and the CameraInfos."""
    roles = {role: getattr(options, field) for role, (field, _) in _ROLES.items() if getattr(options, field)}
    topics = source.topics()
    for role, topic in roles.items():
        info, expected = topics.get(topic), _ROLES[role][1]
        if info is None:
            raise BagError(f"{source.path}: topic {topic!r} ({_flag(role)}) is not in this recording. It has:\n"
                           f"{reader.describe_topics(topics)}\nChoose the topic with {_flag(role)} TOPIC")
        if info.msgtype not in expected:
            raise BagError(f"{source.path}: topic {topic!r} ({_flag(role)}) has type {info.msgtype}; expected "
                           f"{' or '.join(expected)}. The recording has:\n{reader.describe_topics(topics)}")
    topic_role = {t: r for r, t in roles.items()}
    stamps: dict[str, list[int]] = {r: [] for r in roles if not r.endswith("_info")}
    counts = {r: 0 for r in roles}
    infos: dict[str, CameraModel] = {}
    changes = {"left_info": 0, "right_info": 0}
    damage, first_log = None, None
    total = sum(topics[t].count for t in roles.values()) or None
    bar = tqdm(total=total, desc=f"scan {source.path.name}", unit="msg", disable=not options.progress, leave=False)
    try:
        for msg in source.messages(set(roles.values())):
            bar.update()
            first_log = msg.log_time_ns if first_log is None else min(first_log, msg.log_time_ns)
            role = topic_role[msg.topic]
            counts[role] += 1
            if role.endswith("_info"):
                model = CameraModel.from_msg(reader.deserialize(msg.data, msg.msgtype))
                if role not in infos:
                    infos[role] = model
                elif not infos[role].same_as(model):
                    changes[role] += 1
                continue
            stamps[role].append(_stamp(msg, options))
    except BagReadError as err:
        damage = err
    finally:
        bar.close()
    for role in ("left_info", "right_info"):
        if role not in infos:
            raise BagError(f"{source.path}: no CameraInfo message on {roles[role]} ({_flag(role)})"
                           + (f" before the damage: {damage.reason}" if damage else ""))
    if options.stamp == "header" and stamps["left"] and len(set(stamps["left"])) == 1 and len(stamps["left"]) > 1:
        raise BagError(f"{source.path}: all {len(stamps['left'])} messages on {roles['left']} carry the same header "
                       f"stamp {stamps['left'][0]} ns; the driver does not stamp images. Use --stamp log")
    return BagScan(index, source, stamps, counts, infos["left_info"], infos["right_info"], changes, first_log, damage)


def collect(scan: BagScan, frames: list[Frame], options: Bag2DatasetOptions,
            corrupt: dict[int, str]) -> Iterator[tuple[Frame, dict[str, Any] | None]]:
    """Pass 2 over one bag: yields (frame, {"left": msg, "right": msg[, "gt": msg]}) as frames complete,
    in recording order, and (frame, None) for frames the damaged end of the recording cut off or whose
    message does not deserialize (those are added to `corrupt`: frame index -> why)."""
    roles = {"left": options.left_image, "right": options.right_image}
    roles.update({"gt": options.gt_topic} if options.gt_topic else {})
    topic_role = {t: r for r, t in roles.items()}
    wanted: dict[tuple[str, int], list[Frame]] = {}
    for f in frames:
        stamps = {"left": f.left_ns, "right": f.right_ns, "gt": f.gt_ns}
        for role in roles:
            wanted.setdefault((role, stamps[role]), []).append(f)
    pending: dict[int, dict[str, Any]] = {}
    completed: set[int] = set()
    try:
        for msg in scan.source.messages(set(roles.values())):
            role = topic_role[msg.topic]
            stamp = _stamp(msg, options)
            targets = wanted.pop((role, stamp), None)
            if not targets:
                continue
            try:
                decoded = reader.deserialize(bytes(msg.data), msg.msgtype)
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
