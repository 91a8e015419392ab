"""Reading rosbag2 recordings (sqlite3 and mcap, split or not) with `rosbags`, surviving damaged ones.

A recording cut short (robot powered off, `ros2 bag record` killed, disk full) is the normal case in the field:
the MCAP file lacks its summary and footer, the sqlite3 file may end mid-page, metadata.yaml may be missing.
`rosbags` refuses such files, so `BagSource` falls back to its own sequential readers, which return every
message up to the damage and then raise `BagReadError` saying how far they got."""

from __future__ import annotations

import binascii
import dataclasses
import sqlite3
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import yaml
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.typesys import Stores, get_typestore

try:  # rosbags' own dependencies: zstd in the stdlib from 3.14, the backport before
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[no-redef]
import lz4.frame  # type: ignore[import-untyped]

from smd_ros import sensors

# The layouts of the message types we read are the same in every ROS 2 distribution, so one store reads bags
# from any of them.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DISPARITY_IMAGE = "stereo_msgs/msg/DisparityImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)


class BagError(ValueError):
    """A recording cannot be used as asked (missing topic, wrong type, unreadable file...)."""


class BagReadError(BagError):
    """The recording is damaged: `messages_read` messages were delivered, the last at log time `last_time_ns`
    (None: none), then reading failed for `reason`."""

    def __init__(self, bag: Path, messages_read: int, last_time_ns: int | None, reason: str) -> None:
        self.messages_read, self.last_time_ns, self.reason = messages_read, last_time_ns, reason
        where = "before the first message" if last_time_ns is None else f"after log time {last_time_ns} ns"
        super().__init__(f"{bag}: recording is damaged ({reason}); read {messages_read} messages, stopped {where}")


STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
_MCAP_MAGIC = b"\x89MCAP0\r\n"
# Exceptions that mean "the file content is damaged" while iterating (as opposed to programming errors).
DAMAGE_ERRORS: tuple[type[BaseException], ...] = (
    ReaderError, sqlite3.Error, apsw.Error, struct.error, EOFError, OSError, zstd.ZstdError, RuntimeError, KeyError,
)


@dataclasses.dataclass(frozen=True)
class TopicInfo:
    msgtype: str
    count: int  # of a damaged recording: in its readable part


@dataclasses.dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes | memoryview


def deserialize(raw: bytes | memoryview, msgtype: str) -> Any:
    """CDR bytes -> rosbags message (numpy arrays for uint8[] fields, no copies)."""
    return TYPESTORE.deserialize_cdr(raw, msgtype)


def header_stamp_ns(raw: bytes | memoryview, msgtype: str) -> int:
    """Header stamp (ns) of a serialized message whose first field is a std_msgs/Header.

    Reads the 8 stamp bytes after the 4-byte CDR encapsulation header, so pairing a long recording never
    decodes its images; unusual encapsulations are deserialized.
    """
    if len(raw) >= 12 and raw[0] == 0 and raw[1] in (0, 1):
        sec, nanosec = struct.unpack_from("<iI" if raw[1] == 1 else ">iI", raw, 4)
        return sec * 1_000_000_000 + nanosec
    return sensors.stamp_ns(deserialize(raw, msgtype))


def describe_topics(topics: dict[str, TopicInfo]) -> str:
    """One line per topic: `  /left/image_rect  sensor_msgs/msg/Image  (20 msgs)`."""
    if not topics:
        return "  (no topics)"
    width = max(len(t) for t in topics)
    return "\n".join(f"  {name:<{width}}  {i.msgtype}  ({i.count} msgs)" for name, i in sorted(topics.items()))


class BagSource:
    """One recording: a rosbag2 folder (with or without metadata.yaml) or a single .mcap / .db3 file. `messages`
    yields in storage order: time order within each split file, files in recording order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: {self.path}")
        self.files = self._storage_files()
        suffixes = {f.suffix for f in self.files}
        if len(suffixes) != 1:
            raise BagError(f"{self.path}: mixes storage formats {sorted(suffixes)}")
        self.storage = STORAGE_SUFFIXES[self.files[0].suffix]
        self.damaged_reason: str | None = None  # why rosbags refused the recording: our fallbacks read it
        self._fallback_channels: dict[str, str] = {}
        self._topics: dict[str, TopicInfo] | None = None
        # Probe with rosbags: a healthy recording is read by it; a damaged one by our fallbacks.
        try:
            with Reader(self.path) as reader:
                counts: Counter = Counter()
                for c in reader.connections:
                    counts[c.topic] += int(c.msgcount)
                self._topics = {c.topic: TopicInfo(c.msgtype, counts[c.topic]) for c in reader.connections}
        except (ReaderError, FileNotFoundError) as err:
            self.damaged_reason = str(err)

    def _storage_files(self) -> list[Path]:
        if self.path.is_file():
            if self.path.suffix not in STORAGE_SUFFIXES:
                raise BagError(f"{self.path}: not a rosbag2 storage file (expected .mcap or .db3)")
            return [self.path]
        meta = self.path / "metadata.yaml"
        if meta.is_file():
            try:
                info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
                names = [Path(p).name for p in info["relative_file_paths"]]
            except (yaml.YAMLError, KeyError, TypeError) as err:
                raise BagError(f"{meta}: unreadable rosbag2 metadata ({err})") from err
            files = [self.path / n for n in names if (self.path / n).is_file()]
            if not files and names:
                raise BagError(f"{self.path}: storage files listed in metadata.yaml are missing: {names}")
            if files and all(f.suffix in STORAGE_SUFFIXES for f in files):
                return files  # otherwise (file-compressed .zstd ones): the folder's .mcap / .db3 files, if any
        files = sorted((f for f in self.path.iterdir() if f.suffix in STORAGE_SUFFIXES), key=_split_index)
        if not files:
            raise BagError(f"{self.path}: no rosbag2 storage files (.mcap, .db3) in this folder")
        return files

    def topics(self) -> dict[str, TopicInfo]:
        """topic -> TopicInfo. For a damaged recording this scans the readable part once."""
        if self._topics is None:
            counts: Counter = Counter()
            try:
                for msg in self._fallback_messages(None):
                    counts[msg.topic] += 1
            except BagReadError:
                pass  # listing what is readable is the point here
            # Every message's topic has a channel (mcap) or a topics row (sqlite3), so these are all topics.
            self._topics = {t: TopicInfo(msgtype, counts[t]) for t, msgtype in self._fallback_channels.items()}
        return self._topics

    def messages(self, topics: set[str] | None = None) -> Iterator[RawMessage]:
        """Messages on `topics` (all if None). Raises BagReadError after the last readable message."""
        if self.damaged_reason is not None:
            yield from self._fallback_messages(topics)
            return
        count, last = 0, None
        try:
            with Reader(self.path) as reader:
                conns = [c for c in reader.connections if topics is None or c.topic in topics]
                if not conns:
                    return
                for conn, log_time, data in reader.messages(connections=conns):
                    count, last = count + 1, log_time
                    yield RawMessage(conn.topic, conn.msgtype, log_time, data)
        except DAMAGE_ERRORS as err:
            raise BagReadError(self.path, count, last, f"{type(err).__name__}: {err}") from err

    def _fallback_messages(self, topics: set[str] | None) -> Iterator[RawMessage]:
        """Our own readers' messages on `topics` (all if None), for recordings rosbags refuses."""
        self._fallback_channels = {}
        count, last = 0, None
        reader = _scan_mcap if self.storage == "mcap" else _scan_sqlite
        for path in self.files:
            try:
                for msg in reader(path, self._fallback_channels):
                    if topics is None or msg.topic in topics:
                        count, last = count + 1, msg.log_time_ns
                        yield msg
            except _Truncated as err:
                raise BagReadError(self.path, count, last, f"{path.name}: {err}") from None


class _Truncated(Exception):
    """A storage file is cut off or damaged here."""


def _split_index(path: Path) -> tuple[str, int]:
    """Sort key putting `bag_2.mcap` before `bag_10.mcap`."""
    stem, _, index = path.stem.rpartition("_")
    return (stem, int(index)) if index.isdigit() else (path.stem, -1)


def _read_record(buf: bytes, pos: int, end: int, *, partial_chunk: bool = False) -> tuple[int, int, int]:
    """(opcode, content start, content end) of the MCAP record at `pos`.

    Raises _Truncated when the record runs past `end`, except a top-level chunk (`partial_chunk`), whose
    content end is then clipped to `end` so the messages that made it to disk can still be read.
    """
    if pos + 9 > end:
        raise _Truncated(f"record header cut off at byte {pos}")
    opcode = buf[pos]
    (length,) = struct.unpack_from("<Q", buf, pos + 1)
    start = pos + 9
    if start + length > end:
        if partial_chunk and opcode == 0x06:
            return opcode, start, end
        raise _Truncated(f"record 0x{opcode:02x} at byte {pos} needs {length} bytes, only {end - start} remain")
    return opcode, start, start + length


def _chunk_payload(buf: bytes, start: int, stop: int) -> tuple[bytes, int]:
    """Decompressed records of the chunk whose content spans buf[start:stop] (maybe cut off), and the
    full uncompressed size. A cut-off chunk yields the prefix that decompresses."""
    if stop - start < 40:
        raise _Truncated(f"chunk at byte {start - 9} is cut off in its header")
    _, _, size, crc = struct.unpack_from("<QQQI", buf, start)
    compression, p = _mcap_string(buf, start + 28)
    (csize,) = struct.unpack_from("<Q", buf, p)
    compressed = buf[p + 8: min(p + 8 + csize, stop)]
    complete = len(compressed) == csize
    try:
        if compression == "zstd":
            payload = zstd.decompress(compressed) if complete else zstd.ZstdDecompressor().decompress(compressed)
        elif compression == "lz4":
            payload = (lz4.frame.decompress(compressed) if complete
                       else lz4.frame.LZ4FrameDecompressor().decompress(compressed))
        elif compression == "":
            payload = compressed
        else:
            raise _Truncated(f"unsupported chunk compression {compression!r}")
    except (zstd.ZstdError, RuntimeError) as err:
        raise _Truncated(f"chunk at byte {start - 9} does not decompress: {err}") from None
    if complete:
        if len(payload) != size:
            raise _Truncated(f"chunk at byte {start - 9} has {len(payload)} bytes, expected {size}")
        if crc and binascii.crc32(payload) != crc:
            raise _Truncated(f"chunk at byte {start - 9} fails its CRC check")
    return payload, size


def _mcap_string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    return buf[pos + 4: pos + 4 + n].decode(), pos + 4 + n


def _scan_mcap(path: Path, channels_out: dict[str, str]) -> Iterator[RawMessage]:
    """Sequential MCAP reader that needs no summary/footer: schemas, channels and messages (also inside
    uncompressed, zstd or lz4 chunks, CRC-checked) up to the first incomplete record."""
    data = path.read_bytes()
    if not data.startswith(_MCAP_MAGIC):
        raise _Truncated("not an MCAP file (bad magic)")
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}

    def records(buf: bytes, pos: int, end: int, nested: bool) -> Iterator[RawMessage]:
        while pos < end:
            opcode, start, stop = _read_record(buf, pos, end, partial_chunk=not nested)
            pos = stop
            if opcode == 0x03:  # Schema: id u16, name, encoding, data
                (sid,) = struct.unpack_from("<H", buf, start)
                schemas[sid], _ = _mcap_string(buf, start + 2)
            elif opcode == 0x04:  # Channel: id u16, schema id u16, topic, encoding, metadata
                cid, sid = struct.unpack_from("<HH", buf, start)
                topic, _ = _mcap_string(buf, start + 4)
                channels[cid] = (topic, schemas.get(sid, "?"))
                channels_out[topic] = channels[cid][1]
            elif opcode == 0x05:  # Message: channel u16, sequence u32, log time u64, publish time u64, data
                cid, _, log_time = struct.unpack_from("<HIQ", buf, start)
                if cid in channels:
                    topic, msgtype = channels[cid]
                    yield RawMessage(topic, msgtype, log_time, memoryview(buf)[start + 22: stop])
            elif opcode == 0x06 and not nested:  # Chunk
                payload, size = _chunk_payload(buf, start, stop)
                yield from records(payload, 0, len(payload), True)
                if len(payload) < size:
                    raise _Truncated(f"chunk at byte {start - 9} is cut off after {len(payload)} of {size} bytes")
            elif opcode in (0x0F, 0x02) and not nested:  # DataEnd / Footer: the summary follows
                return

    yield from records(data, len(_MCAP_MAGIC), len(data), False)


def _scan_sqlite(path: Path, channels_out: dict[str, str]) -> Iterator[RawMessage]:
    """rosbag2 sqlite3 reader going through `messages` in row (= recording) order, so the rows before a
    damaged page are still delivered; an ORDER BY timestamp would fail on the first damaged page anywhere."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        # A cut-off file is shorter than its header says; SQLite calls that corrupt unless the schema is
        # "writable", in which case it trusts the file size. Nothing is written: the connection is read-only.
        conn.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error as err:
        raise _Truncated(f"cannot open: {err}") from None
    query = "SELECT id, topic_id, timestamp, data FROM messages WHERE id > ? ORDER BY id LIMIT ?"
    try:
        try:
            topics = {tid: (name, mtype) for tid, name, mtype in conn.execute("SELECT id, name, type FROM topics")}
        except sqlite3.Error as err:
            raise _Truncated(f"topics table unreadable: {err}") from None
        for name, mtype in topics.values():
            channels_out[name] = mtype
        last_id, batch = -1, 64
        while True:
            try:
                rows = conn.execute(query, (last_id, batch)).fetchall()
            except sqlite3.Error as err:
                if batch > 1:  # one damaged row spoils a whole batch: go row by row to the damage
                    batch = 1
                    continue
                raise _Truncated(f"messages unreadable after row {last_id}: {err}") from None
            if not rows:
                return
            for row_id, topic_id, timestamp, blob in rows:
                if row_id <= last_id:  # a damaged b-tree can lead a seek backwards: stop, do not loop
                    raise _Truncated(f"message rows out of order after row {last_id} (damaged index)")
                last_id = row_id
                if topic_id in topics:
                    topic, msgtype = topics[topic_id]
                    yield RawMessage(topic, msgtype, int(timestamp), blob)
    finally:
        conn.close()
