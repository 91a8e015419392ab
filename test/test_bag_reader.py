"""Reading and writing real rosbag2 recordings (smd_ros.bags.reader / bag_fixtures), damaged ones too."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from bag_fixtures import DEFAULT_TOPICS, write_stereo_bag
from rosbags.highlevel import AnyReader

from smd_ros import sensors
from smd_ros.bags.reader import (
    CAMERA_INFO,
    DISPARITY_IMAGE,
    IMAGE,
    BagError,
    BagReadError,
    BagSource,
    describe_topics,
    deserialize,
    header_stamp_ns,
)

H, W = 24, 32


def tiny_frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, 256, (H, W, 3), dtype=np.uint8), rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
         np.full((H, W), 4.0 + i, np.float32))
        for i in range(n)
    ]


def storage_file(bag: Path) -> Path:
    (only,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return only


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("split_every", [None, 3])
def test_written_bags_read_back_with_rosbags_and_bagsource(tmp_path, storage, split_every):
    bag = tmp_path / "rec"
    summary = write_stereo_bag(bag, tiny_frames(7), storage=storage, depth="32FC1", disparity=True,
                               split_every=split_every, fps=20.0)
    assert summary["frames"] == 7 and summary["stamps"][1] - summary["stamps"][0] == 50_000_000
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert len(meta["relative_file_paths"]) == (3 if split_every else 1)
    assert meta["message_count"] == 7 * 6
    # The independent reference reader agrees on topics, types and content.
    with AnyReader([bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types == {
            DEFAULT_TOPICS["left_image"]: IMAGE, DEFAULT_TOPICS["right_image"]: IMAGE,
            DEFAULT_TOPICS["left_info"]: CAMERA_INFO, DEFAULT_TOPICS["right_info"]: CAMERA_INFO,
            DEFAULT_TOPICS["depth"]: IMAGE, DEFAULT_TOPICS["disparity"]: DISPARITY_IMAGE,
        }
        conns = [c for c in reader.connections if c.topic == "/left/depth"]
        depths = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]
    assert len(depths) == 7
    camera = summary["camera"]
    np.testing.assert_allclose(sensors.decode_image(depths[2]), camera.fx * camera.baseline / 6.0, rtol=1e-6)

    source = BagSource(bag)
    assert source.damaged_reason is None and source.storage == storage
    assert len(source.files) == (3 if split_every else 1)
    topics = source.topics()
    assert topics["/left/image_rect"].count == 7 and topics["/disparity"].msgtype == DISPARITY_IMAGE
    stamps = [header_stamp_ns(m.data, m.msgtype) for m in source.messages({"/right/image_rect"})]
    assert stamps == summary["stamps"]
    assert re.search(r"/left/camera_info +sensor_msgs/msg/CameraInfo  \(7 msgs\)", describe_topics(topics))


def test_single_storage_file_and_folder_without_metadata(tmp_path):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, tiny_frames(4), storage="mcap")
    direct = BagSource(storage_file(bag))
    assert direct.files == [storage_file(bag)] and direct.topics()["/left/image_rect"].count == 4
    # A recording killed before metadata.yaml was written: read the storage files directly.
    (bag / "metadata.yaml").unlink()
    source = BagSource(bag)
    assert source.damaged_reason
    assert sum(1 for _ in source.messages({"/left/image_rect"})) == 4


def test_not_a_bag(tmp_path):
    with pytest.raises(FileNotFoundError, match="bag not found"):
        BagSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="no rosbag2 storage files"):
        BagSource(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BagError, match="not a rosbag2 storage file"):
        BagSource(tmp_path / "notes.txt")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a_0.mcap").write_bytes(b"")
    (mixed / "a_1.db3").write_bytes(b"")
    with pytest.raises(BagError, match="mixes storage formats"):
        BagSource(mixed)
    bag = tmp_path / "rec"
    write_stereo_bag(bag, tiny_frames(2))
    storage_file(bag).unlink()
    with pytest.raises(BagError, match="listed in metadata.yaml are missing"):
        BagSource(bag)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_recording_yields_everything_before_the_cut(tmp_path, storage):
    bag = tmp_path / "rec"
    summary = write_stereo_bag(bag, tiny_frames(30), storage=storage)
    data = storage_file(bag)
    os.truncate(data, int(data.stat().st_size * 0.6))
    source = BagSource(bag)
    assert source.damaged_reason
    assert 0 < source.topics()["/left/image_rect"].count < 30
    got = []
    with pytest.raises(BagReadError) as info:
        for msg in source.messages({"/left/image_rect"}):
            got.append(header_stamp_ns(msg.data, msg.msgtype))
    err = info.value
    # Every message before the cut arrives intact and in order; the error says how far it got.
    assert len(got) >= 10 and got == summary["stamps"][: len(got)]
    assert err.messages_read == len(got) and err.last_time_ns == got[-1]
    assert f"read {len(got)} messages" in str(err) and "recording is damaged" in str(err)
    first = next(iter(BagSource(bag).messages({"/left/image_rect"})))
    decoded = sensors.decode_image(deserialize(first.data, first.msgtype))
    np.testing.assert_array_equal(decoded, tiny_frames(30)[0][0])


def test_corruption_inside_a_healthy_looking_sqlite_file(tmp_path):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, tiny_frames(40), storage="sqlite3")
    data = storage_file(bag)
    with open(data, "r+b") as fh:
        fh.seek(int(data.stat().st_size * 0.7))
        fh.write(b"\xff" * 2000)
    source = BagSource(bag)
    count = 0
    with pytest.raises(BagReadError, match="recording is damaged") as info:
        for _ in source.messages():
            count += 1
    assert 0 < count < 40 * 4 and info.value.messages_read == count


def test_readers_own_imports_are_declared_in_setup_py():
    """apsw, lz4 and (before Python 3.14) backports.zstd are imported by reader.py itself, not only through
    rosbags, so a pip install must bring them whatever rosbags' requirements become."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    tree = ast.parse((repo / "smd_ros" / "bags" / "reader.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    third_party = imported - set(sys.stdlib_module_names) - {"smd_ros", "smd_core", "compression"}
    setup_py = (repo / "setup.py").read_text()
    pip_names = {"backports": "backports.zstd", "yaml": "pyyaml"}
    assert third_party >= {"apsw", "lz4", "rosbags", "yaml"}
    for module in third_party:
        name = pip_names.get(module, module)
        assert f'"{name}' in setup_py or f"'{name}" in setup_py, module
