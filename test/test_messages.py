"""smd_ros.sensors and smd_ros.messages on rclpy messages: every input check, outputs against hand-computed
geometry, clouds read back with NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smd_core.infer.dense import scaled_size

pytest.importorskip("sensor_msgs.msg")

from ros_helpers import camera_infos, header, image_msg, organized_points  # noqa: E402

from smd_core.geometry import StereoCamera, disparity_to_points  # noqa: E402
from smd_ros import messages, sensors  # noqa: E402
from smd_ros.sensors import EncodingError, InputError  # noqa: E402

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
CAM = StereoCamera(fx=100.0, fy=110.0, cx=3.0, cy=2.0, baseline=0.5, width=6, height=4)


# ------------------------------------------------------------------------------------------------ images in


@pytest.mark.parametrize(
    "encoding, make",
    [
        ("bgr8", lambda bgr: bgr),
        ("rgb8", lambda bgr: bgr[..., ::-1]),
        ("bgra8", lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 9, np.uint8)])),
        ("rgba8", lambda bgr: np.dstack([bgr[..., ::-1], np.full(bgr.shape[:2], 9, np.uint8)])),
    ],
)
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_become_bgr(encoding, make, pad):
    msg = image_msg(make(BGR), encoding, pad=pad)
    left, right = sensors.stereo_images(msg, msg)
    assert left.dtype == np.uint8 and left.shape == (4, 6, 3)
    np.testing.assert_array_equal(left, BGR)
    np.testing.assert_array_equal(right, BGR)


def test_mono8_and_mono16_become_grey_bgr():
    grey = BGR[..., 0]
    left, _ = sensors.stereo_images(image_msg(grey, "mono8"), image_msg(grey, "mono8"))
    np.testing.assert_array_equal(left, np.dstack([grey] * 3))
    # 12-bit data in mono16: one shared shift (4 bits here) keeps the contrast and the left/right relation.
    left16 = (grey.astype(np.uint16) << 4) | 5
    right16 = left16 // 2
    left, right = sensors.stereo_images(image_msg(left16, "mono16"), image_msg(right16, "mono16"))
    np.testing.assert_array_equal(left[..., 0], (left16 >> 4).astype(np.uint8))
    np.testing.assert_array_equal(right[..., 1], (right16 >> 4).astype(np.uint8))
    # 8-bit range data in mono16 is not shifted.
    small = grey.astype(np.uint16)
    left, _ = sensors.stereo_images(image_msg(small, "mono16"), image_msg(small, "mono16"))
    np.testing.assert_array_equal(left[..., 2], grey)
    # Mixed encodings are fine as long as the sizes agree.
    left, right = sensors.stereo_images(image_msg(BGR, "bgr8"), image_msg(grey, "mono8"))
    np.testing.assert_array_equal(right[..., 0], grey)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1", "nv12", ""])
def test_unsupported_encoding(encoding):
    bad = image_msg(np.full((4, 6), np.nan, np.float32) if encoding == "32FC1" else BGR[..., 0], "mono8")
    bad.encoding = encoding
    with pytest.raises(InputError, match="unsupported encoding") as err:
        sensors.stereo_images(image_msg(BGR, "bgr8"), bad)
    assert err.value.kind == "encoding"


def test_empty_and_truncated_images():
    empty = image_msg(BGR, "bgr8")
    empty.height, empty.width, empty.step = 0, 0, 0
    empty.data = []
    with pytest.raises(InputError, match="empty image") as err:
        sensors.stereo_images(empty, image_msg(BGR, "bgr8"))
    assert err.value.kind == "empty"
    short = image_msg(BGR, "bgr8")
    short.data = short.data[:-5]
    with pytest.raises(InputError, match="data bytes") as err:
        sensors.stereo_images(image_msg(BGR, "bgr8"), short)
    assert err.value.kind == "layout"
    narrow = image_msg(BGR, "bgr8")
    narrow.step = 6 * 3 - 1
    with pytest.raises(InputError, match="step") as err:
        sensors.stereo_images(narrow, image_msg(BGR, "bgr8"))
    assert err.value.kind == "layout"


def test_mono16_rows_of_half_a_pixel_are_bad_layout():
    """step = 2 * width + 1 passes the size checks but is no whole number of pixels: bad input, not a crash."""
    grey = np.arange(24, dtype=np.uint16).reshape(4, 6)
    odd = image_msg(grey, "mono16", pad=1)
    assert odd.step == 13
    with pytest.raises(InputError, match="not a multiple of the 2-byte channel") as err:
        sensors.stereo_images(odd, image_msg(grey, "mono16"))
    assert err.value.kind == "layout"


def test_left_right_size_mismatch():
    with pytest.raises(InputError, match="left image is 6x4 but right image is 5x4") as err:
        sensors.stereo_images(image_msg(BGR, "bgr8"), image_msg(BGR[:, :5].copy(), "bgr8"))
    assert err.value.kind == "size_mismatch"


# ------------------------------------------------------------------------------------------------ calibration in


def test_stereo_camera_from_camera_info():
    li, ri = camera_infos(6, 4, fx=100.0, fy=110.0, cx=3.0, cy=2.0, baseline=0.5, cx_right=4.5)
    cam = sensors.stereo_camera(li, ri, 6, 4)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (100.0, 110.0, 3.0, 2.0, 6, 4)
    assert cam.baseline == pytest.approx(0.5) and cam.doffs == pytest.approx(1.5)


def test_binning_and_roi_follow_image_geometry():
    li, ri = camera_infos(12, 8, fx=100.0, cx=6.0, cy=4.0, baseline=0.5)
    for info in (li, ri):
        info.binning_x = info.binning_y = 2
    cam = sensors.stereo_camera(li, ri, 6, 4)
    assert (cam.fx, cam.cx, cam.cy) == (50.0, 3.0, 2.0) and cam.baseline == pytest.approx(0.5)
    li, ri = camera_infos(12, 8, fx=100.0, cx=6.0, cy=4.0, baseline=0.5)
    for info in (li, ri):
        info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 2, 1, 6, 4
    cam = sensors.stereo_camera(li, ri, 6, 4)
    assert (cam.cx, cam.cy) == (4.0, 3.0)


def _bad_infos(case):
    li, ri = camera_infos(6, 4, fx=100.0, baseline=0.5)
    if case == "size":
        li.width = 8
    elif case == "no_size":
        li.width = li.height = 0
    elif case == "zero_focal":
        li.p = [0.0] * 12
        ri.p = [0.0] * 12
    elif case == "zero_baseline":
        ri.p[3] = 0.0
    elif case == "negative_baseline":
        ri.p[3] = 50.0
    elif case == "nan":
        ri.p[0] = math.nan
    elif case == "inf":
        li.p[5] = math.inf
    elif case == "focal_mismatch":
        ri.p[0] = 120.0
    elif case == "beyond_float32":
        li.p[0] = ri.p[0] = 1e39
        ri.p[3] = -1e39 * 0.5
    elif case == "baseline_below_float32":
        ri.p[3] = -1e-48
    return li, ri


@pytest.mark.parametrize(
    "case, kind, match",
    [
        ("size", "info_size", "describes 8x4 images but the images are 6x4"),
        ("no_size", "calibration", "no size"),
        ("zero_focal", "calibration", "focal length must be positive"),
        ("zero_baseline", "calibration", "baseline must be positive"),
        ("negative_baseline", "calibration", "swapped"),
        ("nan", "calibration", "not finite as float32"),
        ("inf", "calibration", "not finite as float32"),
        ("beyond_float32", "calibration", "not finite as float32"),  # finite as float64: f would be inf
        ("baseline_below_float32", "calibration", "baseline must be positive"),  # t would be 0
        ("focal_mismatch", "calibration", "not a rectified pair"),
    ],
)
def test_bad_camera_info(case, kind, match):
    li, ri = _bad_infos(case)
    with pytest.raises(InputError, match=match) as err:
        sensors.stereo_camera(li, ri, 6, 4)
    assert err.value.kind == kind


def test_output_grid():
    assert scaled_size(480, 640, 1.0) == (480, 640)
    assert scaled_size(479, 641, 1.5) == (718, 962)
    assert scaled_size(3, 3, 0.1) == (2, 2)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="positive"):
            scaled_size(480, 640, bad)


# ------------------------------------------------------------------------------------------------ outputs


def test_image_msg_round_trip():
    arr = RNG.normal(size=(4, 6)).astype(np.float32)
    msg = messages.image_msg(header(3.5), arr)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", 4, 6, 24)
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.float32).reshape(4, 6), arr)
    assert msg.header.stamp.sec == 3 and msg.header.stamp.nanosec == 500_000_000
    # What the demo publishes: BGR images, which the node's decoder reads back unchanged.
    bgr = messages.image_msg(header(1.0), BGR[:, ::-1], "bgr8")
    assert (bgr.encoding, bgr.step) == ("bgr8", 18)
    np.testing.assert_array_equal(sensors.decode_image(bgr), BGR[:, ::-1])
    with pytest.raises(ValueError, match=r"a 32FC1 image is float32 \(H, W\), got float32 \(4, 6, 2\)"):
        messages.image_msg(header(0), np.zeros((4, 6, 2), np.float32))
    with pytest.raises(ValueError, match=r"a bgr8 image is uint8 \(H, W, 3\), got float32"):
        messages.image_msg(header(0), arr, "bgr8")
    with pytest.raises(EncodingError, match="cannot write encoding 'nv12'"):
        messages.image_msg(header(0), BGR, "nv12")


def test_disparity_msg_fields():
    disp = np.full((4, 6), 10.0, np.float32)
    valid = np.zeros((4, 6), bool)
    valid[1:3, 2:5] = True
    msg = messages.disparity_msg(header(1.0), disp, valid, CAM, max_disparity=64.0)
    assert msg.f == pytest.approx(100.0) and msg.t == pytest.approx(0.5)
    assert msg.min_disparity == 0.0 and msg.max_disparity == 64.0
    assert 0 < msg.delta_d < 1e-4
    assert (msg.valid_window.x_offset, msg.valid_window.y_offset, msg.valid_window.width,
            msg.valid_window.height) == (2, 1, 3, 2)
    img = np.frombuffer(msg.image.data, np.float32).reshape(4, 6)
    assert msg.image.encoding == "32FC1" and msg.image.header.stamp == msg.header.stamp
    np.testing.assert_array_equal(img[valid], 10.0)
    assert (img[~valid] < msg.min_disparity).all()
    # A depth range narrows the disparity range: d in [fB / max_depth, fB / min_depth] = [5, 25].
    msg = messages.disparity_msg(header(1.0), disp, valid, CAM, max_disparity=64.0, min_depth=2.0, max_depth=10.0)
    assert (msg.min_disparity, msg.max_disparity) == (5.0, 25.0)
    assert (np.frombuffer(msg.image.data, np.float32)[~valid.ravel()] < 5.0).all()
    empty = messages.disparity_msg(header(1.0), disp, np.zeros((4, 6), bool), CAM, max_disparity=64.0)
    assert empty.valid_window.width == 0 and empty.valid_window.height == 0


def test_pack_rgb_is_pcl_layout_and_never_nan():
    packed = messages.pack_rgb(BGR)
    as_int = packed.view(np.uint32)
    b, g, r = (BGR[..., i].astype(np.uint32) for i in range(3))
    np.testing.assert_array_equal(as_int, (r << 16) | (g << 8) | b)
    assert np.isfinite(messages.pack_rgb(np.full((2, 2, 3), 255, np.uint8))).all()
    with pytest.raises(ValueError, match="BGR"):
        messages.pack_rgb(BGR[..., 0])


def _hand_points(disp: np.ndarray) -> np.ndarray:
    v, u = np.mgrid[0:4, 0:6].astype(np.float64)
    z = CAM.fx * CAM.baseline / disp.astype(np.float64)
    return np.dstack([(u - CAM.cx) * z / CAM.fx, (v - CAM.cy) * z / CAM.fy, z])


def test_organized_cloud_matches_hand_geometry():
    disp = RNG.uniform(5, 50, (4, 6)).astype(np.float32)
    valid = np.ones((4, 6), bool)
    valid[0, 0] = valid[3, 5] = False
    cloud = messages.cloud_msg(header(2.0, "cam"), disp, valid, CAM, colors_bgr=BGR, organized=True)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (4, 6, 16, 96)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"] and not cloud.is_dense
    assert cloud.header.frame_id == "cam" and len(cloud.data) == 4 * 96
    pts = organized_points(cloud)
    assert pts.shape == (4, 6)
    xyz = np.dstack([pts["x"], pts["y"], pts["z"]])
    want = _hand_points(disp)
    np.testing.assert_allclose(xyz[valid], want[valid], rtol=1e-5)
    assert np.isnan(xyz[~valid]).all()
    np.testing.assert_array_equal(pts["rgb"], messages.pack_rgb(BGR))
    # The bytes on the wire: x, y, z, rgb float32 interleaved per point, row after row.
    raw = np.frombuffer(cloud.data, np.float32).reshape(4, 6, 4)
    np.testing.assert_array_equal(raw[..., 2], pts["z"])
    np.testing.assert_array_equal(raw[..., 3].view(np.uint32), messages.pack_rgb(BGR).view(np.uint32))


def test_dense_cloud_has_only_valid_points():
    disp = RNG.uniform(5, 50, (4, 6)).astype(np.float32)
    valid = disp > 20
    cloud = messages.cloud_msg(header(2.0), disp, valid, CAM, organized=False)
    n = int(valid.sum())
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, n, 12, 12 * n)
    assert cloud.is_dense and [f.name for f in cloud.fields] == ["x", "y", "z"]
    pts = organized_points(cloud)[0]
    np.testing.assert_allclose(np.stack([pts["x"], pts["y"], pts["z"]], -1), _hand_points(disp)[valid], rtol=1e-5)
    with pytest.raises(ValueError, match="colors"):
        messages.cloud_msg(header(0), disp, valid, CAM, colors_bgr=BGR[:2])


def test_camera_info_for_output_grid():
    li, _ = camera_infos(6, 4, fx=100.0, cx=3.0, cy=2.0)
    cam = CAM.scaled(9, 6)
    info = messages.camera_info_msg(header(1.0), li, cam)
    assert (info.width, info.height) == (9, 6)
    assert info.k[0] == pytest.approx(150.0) and info.k[2] == pytest.approx(cam.cx)
    assert info.p[0] == info.k[0] and info.p[3] == 0.0 and list(info.d) == [0.0] * 5


def test_stereo_outputs_masks():
    disp = np.array([[5.0, 10.0, 20.0, 40.0, np.nan, 0.0]] * 4, np.float32)
    unc = np.array([[0.1, 3.0, 0.1, 0.1, 0.1, 0.1]] * 4, np.float32)
    li, _ = camera_infos(6, 4)
    kw = dict(max_disparity=64.0, max_uncertainty=1.0, min_depth=0.0, max_depth=math.inf)
    out = messages.stereo_outputs(header(1.0), disp, unc, CAM, left_bgr=BGR, publish_depth=True, **kw)
    disp_img = np.frombuffer(out.disparity.image.data, np.float32).reshape(4, 6)
    # The disparity keeps the uncertain pixel by default; the cloud and the depth do not.
    assert (disp_img[:, :4] == disp[:, :4]).all() and (disp_img[:, 4:] < 0).all()
    depth = np.frombuffer(out.depth.data, np.float32).reshape(4, 6)
    assert np.isnan(depth[:, 1]).all() and depth[0, 0] == pytest.approx(10.0)
    assert out.valid_points == 12 and out.camera_info is None
    xyz = organized_points(out.points, ["x", "y", "z"])
    assert np.isnan(xyz["z"][:, 1]).all()
    np.testing.assert_array_equal(np.frombuffer(out.uncertainty.data, np.float32).reshape(4, 6), unc)
    out = messages.stereo_outputs(header(1.0), disp, unc, CAM, mask_disparity_by_uncertainty=True, left_info=li,
                                  **kw)
    disp_img = np.frombuffer(out.disparity.image.data, np.float32).reshape(4, 6)
    assert (disp_img[:, 1] < 0).all() and out.depth is None and out.camera_info is not None
    # Speckles leave the cloud (and with mask_disparity_by_uncertainty the disparity): a 2-pixel island of 40 px
    # among 10 px.
    flat = np.full((4, 6), 10.0, np.float32)
    flat[1, 2:4] = 40.0
    low = np.full((4, 6), 0.1, np.float32)
    out = messages.stereo_outputs(header(1.0), flat, low, CAM, speckle_size=4, speckle_range=2.0, **kw)
    assert out.valid_points == 22 and np.isnan(organized_points(out.points, ["z"])["z"][1, 2:4]).all()
    disp_img = np.frombuffer(out.disparity.image.data, np.float32).reshape(4, 6)
    assert (disp_img[1, 2:4] == 40.0).all()
    out = messages.stereo_outputs(header(1.0), flat, low, CAM, speckle_size=4, speckle_range=2.0,
                                  mask_disparity_by_uncertainty=True, **kw)
    assert (np.frombuffer(out.disparity.image.data, np.float32).reshape(4, 6)[1, 2:4] < 0).all()
    # Colours are resized to the grid when the image has another size.
    big = np.repeat(np.repeat(BGR, 2, 0), 2, 1)
    out = messages.stereo_outputs(header(1.0), disp, unc, CAM, left_bgr=big, max_disparity=64.0)
    assert out.points.point_step == 16


def test_points_equal_geometry_module():
    disp = RNG.uniform(1, 60, (4, 6)).astype(np.float32)
    valid = np.ones((4, 6), bool)
    cloud = messages.cloud_msg(header(0), disp, valid, CAM, organized=True)
    pts = organized_points(cloud)
    np.testing.assert_array_equal(np.dstack([pts["x"], pts["y"], pts["z"]]), disparity_to_points(disp, CAM))
