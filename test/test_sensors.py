"""One decoder for camera data: the same bytes through the node's path (rclpy messages) and the bag tool's
path (a real rosbag2 file through `convert`) give identical images, calibration and labels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")

from bag_fixtures import (  # noqa: E402
    DEFAULT_START_NS,
    StereoBagWriter,
    StereoRig,
    compressed_image_message,
    image_message,
    serialize,
)
from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from smd_core.data.io import read_image  # noqa: E402
from smd_core.geometry import depth_to_disparity  # noqa: E402
from smd_ros import sensors  # noqa: E402
from smd_ros.bags.convert import convert  # noqa: E402
from smd_ros.bags.options import Bag2DatasetOptions  # noqa: E402
from smd_ros.bags.reader import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE  # noqa: E402
from smd_ros.params import NodeConfig  # noqa: E402

H, W = 24, 32
RNG = np.random.default_rng(3)
BGR_L = cv2.GaussianBlur(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8), (3, 3), 1)
BGR_R = np.roll(BGR_L, -4, axis=1)


def _uyvy(bgr: np.ndarray) -> np.ndarray:
    """(H, W, 2) UYVY bytes of a BGR image (what a YUV 4:2:2 camera sends)."""
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
    out = np.empty((bgr.shape[0], bgr.shape[1], 2), np.uint8)
    out[..., 1] = yuv[..., 0]
    out[:, 0::2, 0] = yuv[:, 0::2, 1]
    out[:, 1::2, 0] = yuv[:, 0::2, 2]
    return out


def _messages(case: str, stamp: int) -> tuple:
    """(left, right) rosbags messages of one encoding case."""
    if case.startswith("compressed_"):
        fmt = case.removeprefix("compressed_")
        return tuple(compressed_image_message(im, stamp, "cam", fmt) for im in (BGR_L, BGR_R))
    if case in ("mono8", "mono16"):
        grey = [cv2.cvtColor(im, cv2.COLOR_BGR2GRAY) for im in (BGR_L, BGR_R)]
        if case == "mono16":  # a 12-bit sensor
            grey = [(g.astype(np.uint16) << 4) | 7 for g in grey]
        return tuple(image_message(g, stamp, "cam", case) for g in grey)
    if case == "yuv422":
        return tuple(image_message(_uyvy(im), stamp, "cam", case) for im in (BGR_L, BGR_R))
    return tuple(image_message(im, stamp, "cam", case) for im in (BGR_L, BGR_R))


def _camera_infos(binning: int, stamp: int) -> tuple:
    """CameraInfo pair for W x H images; with binning 2 the sensor is 2W x 2H and a ROI offset is set."""
    if binning == 1:
        cam = StereoRig(W, H, 40.0, 41.0, 15.5, 11.5, baseline=0.5)
        infos = [cam.camera_info(side, stamp) for side in ("left", "right")]
        infos[1].p[2] = 17.0  # doffs = 1.5 px
        return tuple(infos)
    cam = StereoRig(2 * W + 4, 2 * H, 80.0, 80.0, 33.0, 23.0, baseline=0.25)
    infos = [cam.camera_info(side, stamp) for side in ("left", "right")]
    for info in infos:
        info.binning_x = info.binning_y = 2
        info.roi.x_offset, info.roi.width, info.roi.height = 4, 2 * W, 2 * H
    return tuple(infos)


def _write_bag(path, left, right, infos, depth) -> None:
    with StereoBagWriter(path) as writer:
        writer.write("/left/image_rect", left)
        writer.write("/right/image_rect", right)
        writer.write("/left/camera_info", infos[0])
        writer.write("/right/camera_info", infos[1])
        writer.write("/left/depth", depth)


def _as_rclpy(msg):
    """The rclpy message the node would receive for the same bytes."""
    kind = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage, CAMERA_INFO: CameraInfo}[msg.__msgtype__]
    return deserialize_message(serialize(msg), kind)


@pytest.mark.parametrize("binning", [1, 2])
@pytest.mark.parametrize("case", ["bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16", "bayer_rggb8", "yuv422",
                                  "compressed_png", "compressed_jpeg"])
def test_node_and_bag_tool_decode_identically(tmp_path, case, binning):
    stamp = DEFAULT_START_NS
    left, right = _messages(case, stamp)
    infos = _camera_infos(binning, stamp)
    depth_m = np.linspace(1.0, 9.0, H * W, dtype=np.float32).reshape(H, W)
    depth = image_message(depth_m, stamp, "cam")
    _write_bag(tmp_path / "rec", left, right, infos, depth)
    convert([tmp_path / "rec"], tmp_path / "ds", Bag2DatasetOptions(depth="/left/depth", progress=False,
                                                                    check_rectification=False, val_fraction=0.0))

    # The node's path: rclpy messages of the same bytes, decoded with the node's default parameters.
    cfg = NodeConfig()
    node_left, node_right = sensors.stereo_images(_as_rclpy(left), _as_rclpy(right), image_bits=cfg.image_bits)
    node_camera = sensors.stereo_camera(*(_as_rclpy(i) for i in infos), W, H)

    # The bag tool's path: what training reads back.
    out = tmp_path / "ds"
    np.testing.assert_array_equal(read_image(out / "left" / "000000.png"), node_left)
    np.testing.assert_array_equal(read_image(out / "right" / "000000.png"), node_right)
    calib = yaml.safe_load((out / "calib.yaml").read_text())
    for name in ("fx", "fy", "cx", "cy", "baseline", "doffs", "width", "height"):
        assert calib[name] == getattr(node_camera, name), name
    labels = np.load(out / "disp" / "000000.npy")
    np.testing.assert_array_equal(labels, depth_to_disparity(sensors.depth_metres(_as_rclpy(depth)), node_camera))
    if binning == 2:
        assert (node_camera.fx, node_camera.cx) == (40.0, 14.5)


def test_rclpy_and_rosbags_messages_share_the_encoding_table():
    # A case the old node rejected (Bayer) and one both reject (a depth encoding as a camera image).
    left, right = _messages("bayer_rggb8", 0)
    a = sensors.stereo_images(left, right)
    b = sensors.stereo_images(_as_rclpy(left), _as_rclpy(right))
    np.testing.assert_array_equal(a[0], b[0])
    depth = image_message(np.ones((H, W), np.float32), 0, "cam")
    for msg in (depth, _as_rclpy(depth)):
        with pytest.raises(sensors.InputError, match="unsupported encoding '32FC1'") as err:
            sensors.stereo_images(msg, msg)
        assert err.value.kind == "encoding"
