"""`smd bag2dataset`: real rosbag2 recordings of synthetic scenes with exact disparity -> training sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from bag_fixtures import DEFAULT_START_NS, StereoBagWriter, StereoRig, image_message, serialize, write_stereo_bag

from smd_core.data.synthetic.render import render_scene, render_sequence
from smd_ros import sensors
from smd_ros.bags.cli import main
from smd_ros.bags.convert import DamagedBagError, convert
from smd_ros.bags.manifest import DatasetExistsError
from smd_ros.bags.options import Bag2DatasetOptions
from smd_ros.bags.reader import IMAGE, BagError

H, W, N = 64, 96, 12
MS = 1_000_000


@pytest.fixture(scope="module")
def sequence():
    """12 frames of one moving synthetic scene with exact left disparity (px)."""
    return list(render_sequence(7, N, height=H, width=W, max_disparity=16.0))


def options(**kwargs) -> Bag2DatasetOptions:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("val_fraction", 0.0)
    return Bag2DatasetOptions(**kwargs)


def read_list(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def load_frame(out: Path, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    name = f"{index:06d}"
    disp_path = out / "disp" / f"{name}.npy"
    return (cv2.imread(str(out / "left" / f"{name}.png"), cv2.IMREAD_UNCHANGED),
            cv2.imread(str(out / "right" / f"{name}.png"), cv2.IMREAD_UNCHANGED),
            np.load(disp_path) if disp_path.exists() else None)


# ------------------------------------------------------------------------------------ ground truth


@pytest.mark.parametrize(
    "storage, compressed, depth, depth_compressed",
    [
        ("mcap", False, "32FC1", False),
        ("sqlite3", "png", "32FC1", False),
        ("mcap", "png", "16UC1", True),
        ("sqlite3", False, "16UC1", False),
    ],
)
def test_depth_bags_convert_to_exact_disparity(tmp_path, sequence, storage, compressed, depth, depth_compressed):
    bag = tmp_path / "rec"
    summary = write_stereo_bag(bag, sequence, storage=storage, compressed=compressed, depth=depth,
                               depth_compressed=depth_compressed)
    camera: StereoRig = summary["camera"]
    out = tmp_path / "ds"
    report = convert([bag], out, options(depth="/left/depth"))
    assert (report.frames, report.written, report.reused, report.incomplete) == (N, N, 0, 0)
    assert report.status == "complete" and not report.dropped
    assert read_list(out / "train.txt")[3] == ["left/000003.png", "right/000003.png", "disp/000003.npy"]
    assert len(read_list(out / "train.txt")) == N and read_list(out / "val.txt") == []
    fb = camera.fx * camera.baseline
    for i, frame in enumerate(sequence):
        left, right, disp = load_frame(out, i)
        np.testing.assert_array_equal(left, frame.left)  # raw and PNG transport are lossless
        np.testing.assert_array_equal(right, frame.right)
        assert disp.dtype == np.float32 and disp.shape == (H, W)
        if depth == "32FC1":
            # The acceptance bound: depth -> disparity within 0.01 px of the truth.
            assert np.abs(disp - frame.disp_left).max() <= 0.01
        else:
            # 16UC1 stores whole millimetres: the conversion itself is exact for the stored depth, and
            # the truth is off by at most the rounding, |dd| <= d^2 / (f B) * 0.5 mm.
            mm = np.round(fb / frame.disp_left.astype(np.float64) * 1000.0)
            np.testing.assert_allclose(disp, fb / (mm / 1000.0), rtol=1e-6)
            bound = frame.disp_left.astype(np.float64) ** 2 / fb * 0.0005 + 1e-4
            assert np.all(np.abs(disp - frame.disp_left) <= bound)
    calib = yaml.safe_load((out / "calib.yaml").read_text())
    assert calib["baseline"] == pytest.approx(camera.baseline) and calib["fx"] == pytest.approx(camera.fx)
    assert (calib["width"], calib["height"]) == (W, H)
    assert (out / "preview.png").is_file()


def test_jpeg_images_and_disparity_image_ground_truth(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence, compressed=True, jpeg_quality=95, disparity=True)
    out = tmp_path / "ds"
    report = convert([bag], out, options(disparity="/disparity"))
    assert report.frames == N
    for i, frame in enumerate(sequence):
        left, _, disp = load_frame(out, i)
        np.testing.assert_array_equal(disp, frame.disp_left)  # DisparityImage carries the values as they are
        assert np.abs(left.astype(int) - frame.left).mean() < 6  # JPEG: close, not exact


def test_no_ground_truth_writes_image_pairs_and_says_so(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence[:4], storage="sqlite3")
    out = tmp_path / "ds"
    report = convert([bag], out, options())
    assert read_list(out / "train.txt")[0] == ["left/000000.png", "right/000000.png"]
    assert not (out / "disp").exists()
    assert any("no ground truth" in w for w in report.warnings)


def test_mono_images_stay_single_channel(tmp_path, sequence):
    frames = [(cv2.cvtColor(f.left, cv2.COLOR_BGR2GRAY), cv2.cvtColor(f.right, cv2.COLOR_BGR2GRAY), f.disp_left)
              for f in sequence[:3]]
    bag = tmp_path / "rec"
    write_stereo_bag(bag, frames, depth="32FC1")
    convert([bag], tmp_path / "ds", options(depth="/left/depth"))
    left, _, _ = load_frame(tmp_path / "ds", 1)
    np.testing.assert_array_equal(left, frames[1][0])


def test_label_range_check_masks_and_drops_frames(tmp_path, sequence):
    """Labels must be finite, 0 <= d < image width and within --max-disparity: a depth message with a patch nearer
    than the model's range is masked and kept; one with 4 KiB of random bytes in its middle (labels up to 1e30 and
    inf, as a damaged mcap chunk with CRC 0 gives) is left out of the lists, and both are reported."""
    camera = StereoRig.default(W, H)
    rng = np.random.default_rng(5)
    bag = tmp_path / "rec"
    with StereoBagWriter(bag) as writer:
        for i, frame in enumerate(sequence[:3]):
            stamp = DEFAULT_START_NS + i * 100 * MS
            depth = camera.depth_from_disparity(frame.disp_left).astype(np.float32)
            if i == 1:
                depth[10:13, 20:24] = camera.fx * camera.baseline / 60.0  # 60 px: inside the image, beyond 40
            msg = image_message(depth, stamp, "l")
            if i == 2:
                data = msg.data.copy()
                data[8000:8000 + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8)
                msg.data = data
            writer.write("/left/image_rect", image_message(frame.left, stamp, "l"))
            writer.write("/right/image_rect", image_message(frame.right, stamp, "r"))
            writer.write("/left/depth", msg)
            writer.write("/left/camera_info", camera.camera_info("left", stamp))
            writer.write("/right/camera_info", camera.camera_info("right", stamp))
    out = tmp_path / "ds"
    report = convert([bag], out, options(depth="/left/depth", max_disparity=40.0))
    assert report.status == "complete" and report.frames == 3 and report.train == 2
    assert [row[0] for row in read_list(out / "train.txt")] == ["left/000000.png", "left/000001.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    entries = {f["id"]: f["labels"] for f in manifest["frames"]}
    assert entries["000000"] == {"masked": {"impossible": 0, "beyond_range": 0}, "rejected": None}
    assert entries["000001"] == {"masked": {"impossible": 0, "beyond_range": 12}, "rejected": None}
    corrupt = entries["000002"]["masked"]
    assert corrupt["impossible"] > 0 and entries["000002"]["rejected"].startswith(
        f"{corrupt['impossible']} labels are non-finite")
    assert report.masked == {"impossible": corrupt["impossible"], "beyond_range": 12 + corrupt["beyond_range"]}
    assert list(report.rejected) == ["000002"]
    summary = report.summary()
    assert f"masked {12 + corrupt['beyond_range']} beyond --max-disparity" in summary
    assert "dropped frame 000002 from the lists" in summary and "non-finite or >= the image width" in summary
    _, _, disp1 = load_frame(out, 1)
    assert (disp1[10:13, 20:24] == 0).all() and disp1.max() <= 40.0
    _, _, disp2 = load_frame(out, 2)
    assert np.isfinite(disp2).all() and 0 <= disp2.min() and disp2.max() <= 40.0  # masked on disk too
    labels = manifest["counts"]["labels"]
    assert labels["masked"] == dict(report.masked) and labels["rejected"] == report.rejected
    # A resumed run keeps the verdicts without reconverting.
    again = convert([bag], out, options(depth="/left/depth", max_disparity=40.0))
    assert again.written == 0 and again.rejected == report.rejected and again.masked == report.masked
    assert again.train == 2


# ------------------------------------------------------------------------------------ pairing, selection


def write_irregular_bag(path: Path, sequence, *, storage: str = "mcap") -> StereoRig:
    """Left at 10 Hz; the right camera jitters by up to 4 ms, is 30 ms late once and drops a frame; depth
    is missing once; one left image is published twice."""
    camera = StereoRig.default(W, H)
    with StereoBagWriter(path, storage=storage) as writer:
        for i, frame in enumerate(sequence):
            stamp = DEFAULT_START_NS + i * 100 * MS
            writer.write("/left/image_rect", image_message(frame.left, stamp, "l"))
            if i == 5:
                writer.write("/left/image_rect", image_message(frame.left, stamp, "l"), stamp + MS)
            writer.write("/left/camera_info", camera.camera_info("left", stamp))
            writer.write("/right/camera_info", camera.camera_info("right", stamp))
            if i != 3:
                offset = 30 * MS if i == 7 else ((i * 37) % 9 - 4) * MS
                writer.write("/right/image_rect", image_message(frame.right, stamp + offset, "r"))
            if i != 9:
                z = camera.depth_from_disparity(frame.disp_left).astype(np.float32)
                writer.write("/left/depth", image_message(z, stamp, "l"))
    return camera


def test_pairing_reports_every_dropped_message(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_irregular_bag(bag, sequence)
    out = tmp_path / "ds"
    report = convert([bag], out, options(depth="/left/depth", tolerance=0.005))
    assert report.dropped == {
        "duplicate stamp on /left/image_rect": 1,
        "no right image within 5 ms": 2,  # frame 3 (dropped) and frame 7 (30 ms late)
        "right image without a left image": 1,  # the late one
        "no ground truth (/left/depth) within 5 ms": 1,  # frame 9
    }
    assert report.frames == N - 3
    manifest = json.loads((out / "manifest.json").read_text())
    stamps = [f["stamps"] for f in manifest["frames"]]
    assert [round((s["left"] - DEFAULT_START_NS) / (100 * MS)) for s in stamps] == [0, 1, 2, 4, 5, 6, 8, 10, 11]
    assert all(abs(s["right"] - s["left"]) <= 5 * MS and s["gt"] == s["left"] for s in stamps)
    assert manifest["bags"][0]["messages"] == {"left": N + 1, "right": N - 1, "depth": N - 1}
    text = report.summary()
    assert "-> 9 pairs, 9 frames" in text and "no right image within 5 ms" in text
    # Each written frame pairs the right images: frame 4 on disk is sequence frame 5.
    left, right, _ = load_frame(out, 4)
    np.testing.assert_array_equal(right, sequence[5].right)


def test_stride_window_and_max_frames(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence, depth="32FC1")
    report = convert([bag], tmp_path / "a", options(depth="/left/depth", start=0.2, end=1.0, stride=2))
    # Frames 2..9 (0.2 s <= t < 1.0 s), every other one: 2, 4, 6, 8.
    stamps = [f["stamps"]["left"] for f in json.loads((tmp_path / "a" / "manifest.json").read_text())["frames"]]
    assert [round((s - DEFAULT_START_NS) / (100 * MS)) for s in stamps] == [2, 4, 6, 8]
    assert report.dropped == {"outside the time window": 4, "stride 2": 4}
    report = convert([bag], tmp_path / "b", options(depth="/left/depth", max_frames=5))
    assert report.frames == 5 and report.dropped == {"beyond --max-frames 5": N - 5}
    np.testing.assert_array_equal(load_frame(tmp_path / "b", 4)[0], sequence[4].left)


def test_validation_split_takes_whole_time_blocks(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence, depth="32FC1")
    out = tmp_path / "ds"
    report = convert([bag], out, options(depth="/left/depth", val_fraction=0.25, val_blocks=4))
    assert (report.train, report.val) == (9, 3)
    val = [row[0] for row in read_list(out / "val.txt")]
    assert val == ["left/000006.png", "left/000007.png", "left/000008.png"]  # block 2 of 4: contiguous frames
    assert len(read_list(out / "train.txt")) == 9


def test_split_and_multiple_bags(tmp_path, sequence):
    first, second = tmp_path / "one", tmp_path / "two"
    write_stereo_bag(first, sequence[:6], storage="mcap", split_every=2, depth="32FC1")
    write_stereo_bag(second, sequence[6:], storage="sqlite3", depth="16UC1", start_ns=DEFAULT_START_NS + 10**10)
    assert len(list(first.glob("*.mcap"))) == 3
    out = tmp_path / "ds"
    report = convert([first, second], out, options(depth="/left/depth"))
    assert report.frames == N
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["storage"] for b in manifest["bags"]] == ["mcap", "sqlite3"]
    assert [len(b["files"]) for b in manifest["bags"]] == [3, 1]
    assert [f["bag"] for f in manifest["frames"]] == [0] * 6 + [1] * 6
    np.testing.assert_array_equal(load_frame(out, 7)[0], sequence[7].left)
    with pytest.raises(ValueError, match="the same bag is given twice"):
        convert([first, first], tmp_path / "twice", options())


def test_log_time_stamps_when_the_driver_does_not_stamp(tmp_path, sequence):
    camera = StereoRig.default(W, H)
    bag = tmp_path / "rec"
    with StereoBagWriter(bag) as writer:
        for i, frame in enumerate(sequence[:4]):
            log = DEFAULT_START_NS + i * 100 * MS
            for side, image in (("left", frame.left), ("right", frame.right)):
                delay = MS if side == "right" else 0
                writer.write(f"/{side}/image_rect", image_message(image, 0, side), log + delay)
                writer.write(f"/{side}/camera_info", camera.camera_info(side, 0), log)
    with pytest.raises(BagError, match="carry the same header stamp 0 ns.*--stamp log"):
        convert([bag], tmp_path / "a", options())
    assert convert([bag], tmp_path / "b", options(stamp="log")).frames == 4


# ------------------------------------------------------------------------------------ manifest, resume


def test_manifest_records_sources_topics_stamps_counts_options(tmp_path, sequence):
    bag = tmp_path / "rec"
    summary = write_stereo_bag(bag, sequence, depth="32FC1")
    out = tmp_path / "ds"
    convert([bag], out, options(depth="/left/depth", val_fraction=0.2))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "smd_ros.bag2dataset" and manifest["status"] == "complete"
    assert manifest["tool"] == "bag2dataset" and manifest["tool_version"] and manifest["smd_core_version"]
    assert manifest["bags"][0]["path"] == str(bag.resolve())
    assert manifest["bags"][0]["files"][0]["bytes"] == next(bag.glob("*.mcap")).stat().st_size
    assert manifest["bags"][0]["topics"]["/left/depth"] == {"type": IMAGE, "count": N}
    assert manifest["topics"] == {"left_image": "/left/image_rect", "right_image": "/right/image_rect",
                                  "left_info": "/left/camera_info", "right_info": "/right/camera_info",
                                  "ground_truth": "/left/depth"}
    assert manifest["labels"] == "depth"
    assert [f["stamps"]["left"] for f in manifest["frames"]] == summary["stamps"]
    assert manifest["counts"]["frames"] == N and manifest["counts"]["train"] + manifest["counts"]["val"] == N
    assert manifest["options"]["val_fraction"] == 0.2 and manifest["options"]["depth"] == "/left/depth"
    assert all(0.99 <= f["valid_fraction"] <= 1.0 for f in manifest["frames"])
    assert manifest["calibration"]["baseline"] == pytest.approx(summary["camera"].baseline)


def file_states(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for sub in ("left", "right", "disp") for p in sorted((out / sub).glob("*"))}


def test_interrupted_run_resumes_without_rewriting_finished_frames(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence, depth="32FC1")
    out = tmp_path / "ds"
    opts = options(depth="/left/depth", val_fraction=0.25)

    def interrupt_after_five(index: int) -> None:
        if index == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert([bag], out, opts, on_frame=interrupt_after_five)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "in_progress" and len(manifest["frames"]) == N
    assert not (out / "train.txt").exists()
    before = file_states(out)
    assert len(before) == 15  # five frames, three files each

    report = convert([bag], out, options(depth="/left/depth", val_fraction=0.25, progress=True))
    assert (report.reused, report.written, report.frames) == (5, N - 5, N)
    after = file_states(out)
    assert {k: after[k] for k in before} == before  # same inode, same mtime: not rewritten
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    for i, frame in enumerate(sequence):
        assert np.abs(load_frame(out, i)[2] - frame.disp_left).max() <= 0.01

    # A frame killed half-way (one file missing, a temporary left over) is redone, and only it.
    (out / "disp" / "000003.npy").unlink()
    (out / "disp" / ".000003.npy.tmp999").write_bytes(b"half")
    before = file_states(out)
    report = convert([bag], out, opts)
    assert (report.reused, report.written) == (N - 1, 1)
    assert not list((out / "disp").glob(".*tmp*"))
    after = file_states(out)
    assert all(after[k] == v for k, v in before.items() if "000003" not in k)


def test_output_folder_holding_something_else(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence[:3], depth="32FC1")
    foreign = tmp_path / "kitti"
    (foreign / "image_2").mkdir(parents=True)
    (foreign / "train.txt").write_text("a b c\n")
    for overwrite in (False, True):
        with pytest.raises(DatasetExistsError, match="not a bag2dataset output .*image_2, train.txt"):
            convert([bag], foreign, options(overwrite=overwrite))
    assert (foreign / "train.txt").read_text() == "a b c\n"
    not_ours = tmp_path / "other"
    not_ours.mkdir()
    (not_ours / "manifest.json").write_text('{"format": "something"}')
    with pytest.raises(DatasetExistsError, match="did not write"):
        convert([bag], not_ours, options())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DatasetExistsError, match="is a file"):
        convert([bag], tmp_path / "afile", options())

    out = tmp_path / "ds"
    convert([bag], out, options(depth="/left/depth"))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match=r"another bag2dataset dataset .*stride: 1 -> 2.*--overwrite"):
        convert([bag], out, options(depth="/left/depth", stride=2))
    report = convert([bag], out, options(depth="/left/depth", stride=2, overwrite=True))
    assert report.frames == 2 and report.written == 2
    assert sorted(p.name for p in (out / "left").iterdir()) == ["000000.png", "000001.png"]
    assert (out / "notes.txt").read_text() == "mine"  # only bag2dataset's own files are replaced


# ------------------------------------------------------------------------------------ errors


def test_missing_topic_lists_the_recording(tmp_path, sequence):
    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence[:2], topics={"left_image": "/cam0/image_raw"})
    with pytest.raises(BagError) as info:
        convert([bag], tmp_path / "ds", options())
    text = str(info.value)
    assert "topic '/left/image_rect' (--left-image) is not in this recording" in text
    assert "/cam0/image_raw" in text and "sensor_msgs/msg/Image  (2 msgs)" in text
    assert "--left-image TOPIC" in text
    with pytest.raises(BagError, match=r"'/left/camera_info' \(--right-image\) has type sensor_msgs/msg/CameraInfo; "
                                       "expected sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"):
        convert([bag], tmp_path / "ds", options(left_image="/cam0/image_raw", left_info="/right/image_rect",
                                                right_image="/left/camera_info"))
    with pytest.raises(BagError, match=r"'/left/depth' \(--depth\) is not in this recording"):
        convert([bag], tmp_path / "ds", options(left_image="/cam0/image_raw", depth="/left/depth"))


def test_unknown_encodings(tmp_path, sequence):
    frame = sequence[0]
    bag = tmp_path / "rec"
    camera = StereoRig.default(W, H)
    with StereoBagWriter(bag) as writer:
        left = image_message(frame.left, DEFAULT_START_NS, "l")
        left.encoding = "yuv420_nv12"
        writer.write("/left/image_rect", left)
        writer.write("/right/image_rect", image_message(frame.right, DEFAULT_START_NS, "r"))
        writer.write("/left/depth", image_message(cv2.cvtColor(frame.left, cv2.COLOR_BGR2GRAY),
                                                  DEFAULT_START_NS, "l"))
        writer.write("/left/camera_info", camera.camera_info("left", DEFAULT_START_NS))
        writer.write("/right/camera_info", camera.camera_info("right", DEFAULT_START_NS))
    with pytest.raises(sensors.EncodingError, match="unsupported encoding 'yuv420_nv12'"):
        convert([bag], tmp_path / "a", options())
    good = tmp_path / "rec2"
    write_stereo_bag(good, [frame], topics={"depth": "/unused"})
    with StereoBagWriter(tmp_path / "rec3") as writer:
        writer.write("/left/image_rect", image_message(frame.left, DEFAULT_START_NS, "l"))
        writer.write("/right/image_rect", image_message(frame.right, DEFAULT_START_NS, "r"))
        writer.write("/left/depth", image_message(frame.right[..., 0].copy(), DEFAULT_START_NS, "l"))
        writer.write("/left/camera_info", camera.camera_info("left", DEFAULT_START_NS))
        writer.write("/right/camera_info", camera.camera_info("right", DEFAULT_START_NS))
    with pytest.raises(sensors.EncodingError, match="depth encoding 'mono8' is not supported"):
        convert([tmp_path / "rec3"], tmp_path / "b", options(depth="/left/depth"))


def one_frame_bag(path: Path, left, right, depth=None, camera=None) -> None:
    camera = camera or StereoRig.default(left.shape[1], left.shape[0])
    with StereoBagWriter(path) as writer:
        writer.write("/left/image_rect", image_message(left, DEFAULT_START_NS, "l"))
        writer.write("/right/image_rect", image_message(right, DEFAULT_START_NS, "r"))
        writer.write("/left/camera_info", camera.camera_info("left", DEFAULT_START_NS))
        writer.write("/right/camera_info", camera.camera_info("right", DEFAULT_START_NS))
        if depth is not None:
            writer.write("/left/depth", image_message(depth, DEFAULT_START_NS, "l"))


def test_mismatched_sizes(tmp_path, sequence):
    frame = sequence[0]
    small = cv2.resize(frame.right, (W // 2, H // 2))
    one_frame_bag(tmp_path / "a", cv2.resize(frame.left, (W // 2, H // 2)), small, camera=StereoRig.default(W, H))
    with pytest.raises(BagError, match=f"image_rect image is {W // 2}x{H // 2} but its camera_info says {W}x{H}"):
        convert([tmp_path / "a"], tmp_path / "da", options())
    one_frame_bag(tmp_path / "b", frame.left, frame.right, depth=np.ones((H // 2, W // 2), np.float32))
    with pytest.raises(BagError, match=f"is {W // 2}x{H // 2} but the left image is {W}x{H}; ground truth must be "
                                       "registered to the left camera"):
        convert([tmp_path / "b"], tmp_path / "db", options(depth="/left/depth"))
    one_frame_bag(tmp_path / "c", frame.left, small)
    with pytest.raises(BagError, match=f"left image /left/image_rect is {W}x{H} but right image /right/image_rect "
                                       f"is {W // 2}x{H // 2}"):
        convert([tmp_path / "c"], tmp_path / "dc", options())
    # Camera infos that omit the size (0x0) are refused, as the node refuses them.
    camera = StereoRig.default(W, H)
    camera.width = camera.height = 0
    one_frame_bag(tmp_path / "e", frame.left, frame.right, camera=camera)
    with pytest.raises(BagError, match="left camera_info has no size"):
        convert([tmp_path / "e"], tmp_path / "de", options())


def test_uncalibrated_camera_and_nothing_to_convert(tmp_path, sequence):
    camera = StereoRig.default(W, H)
    camera.fx = camera.fy = 0.0  # an uncalibrated driver publishes zero focal lengths
    write_stereo_bag(tmp_path / "a", sequence[:2], camera=camera)
    with pytest.raises(BagError, match="/right/camera_info: focal length must be positive.*uncalibrated"):
        convert([tmp_path / "a"], tmp_path / "da", options())
    write_stereo_bag(tmp_path / "b", sequence[:2], start_ns=DEFAULT_START_NS)
    with pytest.raises(BagError, match="no frames to convert: 2 outside the time window"):
        convert([tmp_path / "b"], tmp_path / "db", options(start=5.0))


def test_differently_calibrated_bags_and_changing_camera_info(tmp_path, sequence):
    write_stereo_bag(tmp_path / "a", sequence[:2], camera=StereoRig.default(W, H, baseline=0.1))
    write_stereo_bag(tmp_path / "b", sequence[2:4], camera=StereoRig.default(W, H, baseline=0.2))
    with pytest.raises(BagError, match="camera_info differs .* need separate datasets"):
        convert([tmp_path / "a", tmp_path / "b"], tmp_path / "ds", options())
    camera = StereoRig.default(W, H)
    with StereoBagWriter(tmp_path / "c") as writer:
        for i, frame in enumerate(sequence[:3]):
            stamp = DEFAULT_START_NS + i * 100 * MS
            camera.baseline = 0.12 + 0.01 * i  # a driver re-publishing a changed calibration
            writer.write("/left/image_rect", image_message(frame.left, stamp, "l"))
            writer.write("/right/image_rect", image_message(frame.right, stamp, "r"))
            writer.write("/left/camera_info", camera.camera_info("left", stamp))
            writer.write("/right/camera_info", camera.camera_info("right", stamp))
    report = convert([tmp_path / "c"], tmp_path / "dc", options())
    assert any("/right/camera_info changes 2 times" in w for w in report.warnings)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_keeps_what_was_readable(tmp_path, sequence, storage):
    bag = tmp_path / "rec"
    frames = list(render_sequence(8, 30, height=H, width=W, max_disparity=16.0))
    write_stereo_bag(bag, frames, storage=storage, depth="32FC1")
    data = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    os.truncate(data, int(data.stat().st_size * 0.6))
    out = tmp_path / "ds"
    with pytest.raises(DamagedBagError) as info:
        convert([bag], out, options(depth="/left/depth"))
    err = info.value
    kept = err.report.frames
    assert 5 <= kept < 30 and err.report.written == kept
    assert "recording is damaged" in str(err) and "readable up to" in str(err)
    assert f"Kept the {kept} frames" in str(err) and "--allow-truncated" in str(err)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "partial"
    assert manifest["bags"][0]["damaged"]["seconds_read"] == pytest.approx((kept - 1) * 0.1, abs=0.15)
    assert len(read_list(out / "train.txt")) == kept
    for i in range(kept):
        assert np.abs(load_frame(out, i)[2] - frames[i].disp_left).max() <= 0.01
    # Accepting the damage: nothing rewritten, status complete, a warning instead of an error.
    report = convert([bag], out, options(depth="/left/depth", allow_truncated=True))
    assert (report.reused, report.written, report.status) == (kept, 0, "complete")
    assert any("converted the readable part" in w for w in report.warnings)


def test_corrupt_message_skips_its_frame(tmp_path, sequence):
    camera = StereoRig.default(W, H)
    bag = tmp_path / "rec"
    with StereoBagWriter(bag) as writer:
        for i, frame in enumerate(sequence[:4]):
            stamp = DEFAULT_START_NS + i * 100 * MS
            raw = serialize(image_message(frame.left, stamp, "l"))
            if i == 2:  # stamp intact, the rest cut short: pairs fine, does not deserialize
                writer.write_raw("/left/image_rect", IMAGE, raw[:40], stamp)
            else:
                writer.write_raw("/left/image_rect", IMAGE, raw, stamp)
            writer.write("/right/image_rect", image_message(frame.right, stamp, "r"))
            writer.write("/left/camera_info", camera.camera_info("left", stamp))
            writer.write("/right/camera_info", camera.camera_info("right", stamp))
    out = tmp_path / "ds"
    report = convert([bag], out, options())
    assert report.written == 3 and list(report.corrupt) == ["000002"]
    assert any("skipped frame 000002: /left/image_rect message" in w for w in report.warnings)
    assert [row[0] for row in read_list(out / "train.txt")] == ["left/000000.png", "left/000001.png",
                                                                 "left/000003.png"]


def test_option_validation():
    bad = [
        ({"depth": "/d", "disparity": "/x"}, "choose one ground-truth source"),
        ({"depth": "/d", "pseudo_labels": "m.pth"}, "choose one ground-truth source"),
        ({"stamp": "recv"}, "stamp must be"), ({"tolerance": -1.0}, "tolerance must be"),
        ({"stride": 0}, "stride must be"), ({"max_frames": 0}, "max_frames must be"),
        ({"start": -1.0}, "time window"), ({"start": 2.0, "end": 1.0}, "time window is empty"),
        ({"val_fraction": 1.0}, "val_fraction"), ({"val_blocks": 1}, "val_blocks"),
        ({"min_depth": 2.0, "max_depth": 1.0}, "depth range"),
        ({"pseudo_lr_tolerance": 0.0}, "pseudo_lr_tolerance positive"),
        ({"pseudo_max_uncertainty": -1.0}, r"pseudo_max_uncertainty must be >= 0 \(0: auto\)"),
        ({"right_image": "/left/image_rect"}, "topics must be distinct"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            Bag2DatasetOptions(**kwargs)
    with pytest.raises(ValueError, match="no bags given"):
        convert([], "/nonexistent")
    with pytest.raises(FileNotFoundError, match="bag not found"):
        convert(["/nonexistent/bag"], "/nonexistent/out")


# ------------------------------------------------------------------------------------ rectification


def unrectify(camera: StereoRig, side: str, image: np.ndarray, interpolation: int) -> np.ndarray:
    """What the raw camera saw: each raw pixel looks up its rectified position (cv2.undistortPoints)."""
    k, d, r = getattr(camera, f"k_{side}"), getattr(camera, f"d_{side}"), getattr(camera, f"r_{side}")
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    pts = np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2)
    rect = cv2.undistortPoints(pts, k, d, R=r, P=camera.p(side)).reshape(H, W, 2).astype(np.float32)
    return cv2.remap(image, rect[..., 0], rect[..., 1], interpolation, borderMode=cv2.BORDER_REFLECT)


def raw_camera() -> StereoRig:
    camera = StereoRig.default(W, H)
    camera.d_left = np.array([-0.05, 0.01, 0.001, -0.001, 0.0])
    camera.d_right = np.array([-0.04, 0.008, -0.001, 0.001, 0.0])
    camera.r_left = cv2.Rodrigues(np.array([0.01, -0.02, 0.015]))[0]
    camera.r_right = cv2.Rodrigues(np.array([-0.01, -0.015, -0.01]))[0]
    camera.k_left = np.array([[camera.fx * 1.02, 0, camera.cx + 2], [0, camera.fy * 1.02, camera.cy - 1.5], [0, 0, 1]])
    camera.k_right = np.array([[camera.fx * 0.98, 0, camera.cx - 1], [0, camera.fy * 0.98, camera.cy + 2], [0, 0, 1]])
    return camera


def test_rectify_raw_images_and_registered_depth(tmp_path):
    frame = render_scene(3, height=H, width=W, max_disparity=16.0, max_slope=0.0, photometric=False)
    camera = raw_camera()
    left_raw = unrectify(camera, "left", frame.left, cv2.INTER_LINEAR)
    right_raw = unrectify(camera, "right", frame.right, cv2.INTER_LINEAR)
    # Depth registered to the raw left camera: Z of the same 3-D point in the raw camera's frame.
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    pts = np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2)
    rect = cv2.undistortPoints(pts, camera.k_left, camera.d_left, R=camera.r_left, P=camera.p("left")).reshape(H, W, 2)
    disp_at = cv2.remap(frame.disp_left, rect[..., 0].astype(np.float32), rect[..., 1].astype(np.float32),
                        cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    z_rect = camera.fx * camera.baseline / disp_at
    point = np.stack([(rect[..., 0] - camera.cx) / camera.fx * z_rect, (rect[..., 1] - camera.cy) / camera.fy * z_rect,
                      z_rect], -1)
    depth_raw = (point @ camera.r_left)[..., 2].astype(np.float32)  # R^T X, row-wise
    one_frame_bag(tmp_path / "rec", left_raw, right_raw, depth=depth_raw, camera=camera)

    report = convert([tmp_path / "rec"], tmp_path / "ds", options(depth="/left/depth", rectify=True))
    assert report.frames == 1 and not any("rectif" in w for w in report.warnings)
    left, right, disp = load_frame(tmp_path / "ds", 0)
    m = 8  # borders see outside the raw image
    inner = np.s_[m:-m, m:-m]
    assert np.abs(left.astype(float) - frame.left)[inner].mean() < 4  # two bilinear resamplings apart
    assert np.abs(left_raw.astype(float) - frame.left)[inner].mean() > 10  # ... while raw differs a lot
    assert np.abs(right.astype(float) - frame.right)[inner].mean() < 4
    err = np.abs(disp - frame.disp_left)[inner]
    assert np.median(err) < 0.01 and np.percentile(err, 95) < 0.05

    # Without --rectify the same recording is flagged as raw by its camera_info.
    report = convert([tmp_path / "rec"], tmp_path / "ds2", options(depth="/left/depth"))
    assert any("describes the raw camera" in w and "--rectify" in w for w in report.warnings)


def test_unrectified_looking_pairs_are_warned_about(tmp_path):
    frames = [render_scene(1, height=240, width=320, max_disparity=32.0) for _ in range(2)]
    shifted = [(f.left, np.roll(f.right, 3, axis=0)) for f in frames]
    write_stereo_bag(tmp_path / "bad", shifted)
    report = convert([tmp_path / "bad"], tmp_path / "d1", options())
    assert any("do not look rectified" in w and "px vertically" in w for w in report.warnings)
    write_stereo_bag(tmp_path / "good", [(f.left, f.right) for f in frames])
    report = convert([tmp_path / "good"], tmp_path / "d2", options())
    assert not any("rectif" in w for w in report.warnings)
    report = convert([tmp_path / "bad"], tmp_path / "d3", options(check_rectification=False))
    assert not any("rectif" in w for w in report.warnings)


# ------------------------------------------------------------------------------------ command line


def test_command_line_exit_codes(tmp_path, sequence, capsys):
    from smd_ros.cli import main as smd_main

    bag = tmp_path / "rec"
    write_stereo_bag(bag, sequence[:4], depth="16UC1")
    out = tmp_path / "ds"
    assert smd_main(["bag2dataset", str(bag), "--out", str(out), "--depth", "/left/depth", "--no-progress",
                     "--val-fraction", "0.5", "--val-blocks", "2"]) == 0
    printed = capsys.readouterr().out
    assert "4 frames (train 2, val 2)" in printed
    assert main([str(bag), "--out", str(out), "--depth", "/left/depth", "--no-progress", "--val-fraction", "0.5",
                 "--val-blocks", "2"]) == 0
    assert "written now 0, already there 4" in capsys.readouterr().out
    assert main([str(bag), "--out", str(tmp_path / "x"), "--left-image", "/nope", "--no-progress"]) == 1
    assert "topic '/nope' (--left-image) is not in this recording" in capsys.readouterr().err
    data = next(bag.glob("*.mcap"))
    os.truncate(data, int(data.stat().st_size * 0.7))
    assert main([str(bag), "--out", str(tmp_path / "y"), "--depth", "/left/depth", "--no-progress"]) == 3
    assert "recording is damaged" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(bag), "--out", str(out), "--depth", "/a", "--disparity", "/b"])
