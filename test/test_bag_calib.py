"""Stereo calibration of a recording (smd_ros.bags.calib over smd_ros.sensors.stereo_camera): checks, rectification."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bag_fixtures import StereoRig

from smd_core.data.synthetic.render import render_scene
from smd_core.geometry import depth_to_disparity
from smd_ros.bags.calib import CameraModel, Roi, StereoCalibration, stereo_matches, vertical_misalignment


def models(camera: StereoRig) -> tuple[CameraModel, CameraModel]:
    return (CameraModel.from_msg(camera.camera_info("left", 0)), CameraModel.from_msg(camera.camera_info("right", 0)))


def test_baseline_focal_and_yaml():
    cam = StereoRig(640, 480, 500.0, 501.0, 320.5, 240.5, baseline=0.2)
    calib = StereoCalibration.from_models(*models(cam))
    c = calib.camera
    assert (c.fx, c.fy, c.cx, c.cy, c.width, c.height) == (500.0, 501.0, 320.5, 240.5, 640, 480)
    assert c.baseline == pytest.approx(0.2)
    assert c.doffs == 0.0 and not calib.warnings and not calib.rectification_notes()
    data = calib.to_yaml_dict()
    assert data["K"] == [[500.0, 0.0, 320.5], [0.0, 501.0, 240.5], [0.0, 0.0, 1.0]]
    assert (data["width"], data["height"], data["baseline"]) == (640, 480, pytest.approx(0.2))


def test_doffs_enters_disparity():
    left, right = models(StereoRig(8, 2, 400.0, 400.0, 3.5, 0.5, baseline=0.1))
    right.p[0, 2] += 2.0  # right principal point 2 px further right -> disparity 2 px smaller
    calib = StereoCalibration.from_models(left, right)
    assert calib.camera.doffs == 2.0 and any("doffs" in w for w in calib.warnings)
    assert depth_to_disparity(np.full((2, 8), 1.0, np.float32), calib.camera)[0, 0] == pytest.approx(38.0)


def test_binning_and_roi_are_applied_and_rectify_refuses_them():
    left, right = models(StereoRig(16, 8, 400.0, 400.0, 7.5, 3.5, baseline=0.1))
    for model in (left, right):
        model.binning_x = model.binning_y = 2
    calib = StereoCalibration.from_models(left, right)
    assert calib.size == (8, 4) and (calib.camera.fx, calib.camera.cx) == (200.0, 3.75)
    assert not left.full_frame
    left.roi = right.roi = Roi(x_offset=2, y_offset=0, width=8, height=8)
    assert StereoCalibration.from_models(left, right).size == (4, 4)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda left, right: right.p.__setitem__((0, 3), 40.0), "topics swapped"),
        (lambda left, right: right.p.__setitem__((1, 3), 5.0), "vertical stereo is not supported"),
        (lambda left, right: right.p.__setitem__((0, 0), 450.0), "focal lengths differ"),
        (lambda left, right: right.p.__setitem__((1, 1), 400.01), "focal lengths differ"),
        (lambda left, right: right.p.__setitem__((1, 2), 7.0), "differ vertically"),
        (lambda left, right: (left.p.__setitem__(slice(None), 0.0)), "all-zero P means an uncalibrated"),
        (lambda left, right: right.p.__setitem__((0, 3), 1e39), "not finite as float32"),
        (lambda left, right: setattr(right, "width", 16), "right camera_info describes 16x4 images but the images "
                                                           "are 8x4"),
    ],
)
def test_inconsistent_pairs_are_rejected(edit, message):
    left, right = models(StereoRig(8, 4, 400.0, 400.0, 3.5, 1.5, baseline=0.1))
    edit(left, right)
    with pytest.raises(ValueError, match=message):
        StereoCalibration.from_models(left, right)


def test_raw_camera_infos_are_noted():
    cam = StereoRig.default(64, 48)
    cam.r_left = cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0]
    cam.d_left = np.array([-0.1, 0.0, 0.0, 0.0, 0.0])
    calib = StereoCalibration.from_models(*models(cam))
    notes = calib.rectification_notes()
    assert len(notes) == 1 and "left camera_info has R rotating 1.15 deg" in notes[0] and "--rectify" in notes[0]


def test_unsupported_distortion_model_for_rectify():
    left, _ = models(StereoRig.default(64, 48))
    left.distortion_model = "kannala_brandt_x"
    with pytest.raises(ValueError, match="distortion_model 'kannala_brandt_x' is not supported"):
        left.rectify_maps()
    left.distortion_model = "equidistant"
    left.d = np.array([0.05, -0.01, 0.0, 0.0])
    map_x, map_y = left.rectify_maps()
    # The map sends a rectified pixel to the raw fisheye pixel that fisheye.undistortPoints sends back.
    raw = np.stack([map_x[::8, ::8].ravel(), map_y[::8, ::8].ravel()], -1).reshape(-1, 1, 2).astype(np.float64)
    back = cv2.fisheye.undistortPoints(raw, left.k, left.d, R=left.r, P=left.p[:, :3]).reshape(-1, 2)
    xs, ys = np.meshgrid(np.arange(64)[::8], np.arange(48)[::8])
    np.testing.assert_allclose(back, np.stack([xs.ravel(), ys.ravel()], -1), atol=0.05)


def test_rectified_depth_reexpresses_z_in_the_rotated_frame():
    # A fronto-parallel wall at Z_raw = 2 m in front of a rotated raw camera is a slanted plane in the
    # rectified frame; each rectified pixel's depth must equal the geometric intersection.
    cam = StereoRig.default(64, 48)
    rot = cv2.Rodrigues(np.array([0.0, 0.05, 0.0]))[0]
    cam.r_left = rot
    left, right = models(cam)
    calib = StereoCalibration.from_models(left, right)
    map_x, map_y = left.rectify_maps()
    z_rect = calib.rectify_depth(np.full((48, 64), 2.0, np.float32), map_x, map_y)
    xs, ys = np.meshgrid(np.arange(64), np.arange(48))
    c = calib.camera
    ray_rect = np.stack([(xs - c.cx) / c.fx, (ys - c.cy) / c.fy, np.ones_like(xs, float)], -1)
    ray_raw = ray_rect @ rot  # R^T r, row-wise
    expected = 2.0 / ray_raw[..., 2]  # point on the wall along this ray, its rectified z (r_z = 1)
    inside = np.isfinite(z_rect)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(z_rect[inside], expected[inside], rtol=1e-6)


def test_vertical_misalignment_tells_rectified_from_shifted():
    frame = render_scene(1, height=240, width=320, max_disparity=32.0)
    shifted = np.roll(frame.right, 3, axis=0)
    ok, _ = vertical_misalignment(stereo_matches(frame.left, frame.right), (320, 240))
    bad, inliers = vertical_misalignment(stereo_matches(frame.left, shifted), (320, 240))
    # Corners on oblique stripes slide along them a little, so offsets are not exact; the check only
    # needs to separate sub-pixel from several-pixel misalignment (the warning threshold is 1 px).
    assert ok < 0.6
    assert 2.0 < bad < 3.5 and inliers >= 20
    # Too few matches: no verdict rather than a wrong one.
    offset, _ = vertical_misalignment(np.zeros((5, 4), np.float32), (320, 240))
    assert np.isnan(offset)
    flat = np.full((64, 64), 128, np.uint8)
    assert stereo_matches(flat, flat).shape == (0, 4)
