"""smd_core.geometry against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from smd_core.geometry import (
    StereoCamera,
    depth_to_disparity,
    disparity_bounds,
    disparity_to_depth,
    disparity_to_points,
    disparity_to_xyz,
    remove_speckles,
    scale_principal_point,
    validity_mask,
)

CAM = StereoCamera(fx=100.0, fy=110.0, cx=3.0, cy=2.0, baseline=0.5, width=6, height=4)


def test_points_match_hand_computed_values():
    disp = np.zeros((4, 6), np.float32)
    disp[1, 5] = 10.0  # Z = 100 * 0.5 / 10 = 5; X = (5 - 3) * 5 / 100 = 0.1; Y = (1 - 2) * 5 / 110
    disp[3, 0] = 25.0  # Z = 2; X = (0 - 3) * 2 / 100 = -0.06; Y = (3 - 2) * 2 / 110
    pts = disparity_to_points(disp, CAM)
    assert pts.shape == (4, 6, 3) and pts.dtype == np.float32
    np.testing.assert_allclose(pts[1, 5], [0.1, -5 / 110, 5.0], rtol=1e-6)
    np.testing.assert_allclose(pts[3, 0], [-0.06, 2 / 110, 2.0], rtol=1e-6)
    # Zero disparity is at infinity: no point.
    assert np.isnan(pts[0, 0]).all()
    assert np.count_nonzero(np.isfinite(pts[..., 2])) == 2


def test_doffs_enters_depth_like_image_geometry():
    cam = StereoCamera(fx=100.0, fy=100.0, cx=3.0, cy=2.0, baseline=0.5, width=6, height=4, doffs=5.0)
    disp = np.full((4, 6), 20.0, np.float32)
    np.testing.assert_allclose(disparity_to_depth(disp, cam), 100 * 0.5 / 25.0)
    # Disparities down to -doffs (exclusive) are still in front of the camera.
    disp[0, 0], disp[0, 1] = -4.0, -5.0
    depth = disparity_to_depth(disp, cam)
    assert depth[0, 0] == pytest.approx(50.0) and np.isnan(depth[0, 1])


def test_invalid_disparities_give_nan_and_valid_mask_is_respected():
    disp = np.array([[np.nan, np.inf, -1.0, 0.0, 5.0, 5.0]] * 4, np.float32)
    valid = np.ones((4, 6), bool)
    valid[:, 5] = False
    depth = disparity_to_depth(disp, CAM, valid=valid)
    assert np.isnan(depth[:, :4]).all() and np.isnan(depth[:, 5]).all()
    np.testing.assert_allclose(depth[:, 4], 10.0)
    assert disparity_to_depth(disp, CAM, invalid=0.0)[0, 0] == 0.0
    pts = disparity_to_points(disp, CAM, valid=valid)
    assert np.isfinite(pts[:, 4]).all() and np.isnan(pts[:, 5]).all()


def test_depth_disparity_round_trip():
    cam = StereoCamera(fx=80.0, fy=80.0, cx=2.5, cy=1.5, baseline=0.12, width=6, height=4, doffs=1.5)
    rng = np.random.default_rng(0)
    disp = rng.uniform(1, 60, (4, 6)).astype(np.float32)
    back = depth_to_disparity(disparity_to_depth(disp, cam), cam)
    np.testing.assert_allclose(back, disp, rtol=1e-5)
    z = np.array([[0.0, -1.0, np.nan, 2.0, 1.0, 4.0]] * 4, np.float32)
    d = depth_to_disparity(z, cam, invalid=-7.0)
    assert (d[:, :3] == -7.0).all()
    np.testing.assert_allclose(d[:, 3], 80 * 0.12 / 2.0 - 1.5)


def test_depth_too_small_for_a_float32_disparity_is_invalid_without_overflow():
    cam = StereoCamera(fx=80.0, fy=80.0, cx=2.5, cy=1.5, baseline=0.12, width=6, height=4)
    z = np.array([[1e-38, 1e-45, 2.0, 2e-38, 1.0, np.float32(9.6) / np.finfo(np.float32).max * 2]] * 4, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in the division would raise here
        d = depth_to_disparity(z, cam, invalid=-1.0)
    assert (d[:, :2] == -1.0).all() and np.isfinite(d).all()
    np.testing.assert_allclose(d[:, 2], 80 * 0.12 / 2.0)
    assert (d[:, 3] == -1.0).all()  # 9.6 / 2e-38 > float32 max
    assert (d[:, 5] > 1e38).all()  # just inside float32: a (huge) disparity, not invalid


def test_planar_xyz_equals_points():
    disp = np.full((4, 6), 10.0, np.float32)
    disp[0, 0] = 0.0
    x, y, z = disparity_to_xyz(disp, CAM)
    assert all(a.flags.c_contiguous and a.dtype == np.float32 and a.shape == (4, 6) for a in (x, y, z))
    np.testing.assert_array_equal(np.dstack([x, y, z]), disparity_to_points(disp, CAM))


def test_scaled_intrinsics_describe_the_same_rays_and_depths():
    cam2 = CAM.scaled(12, 8)
    assert (cam2.fx, cam2.fy, cam2.width, cam2.height) == (200.0, 220.0, 12, 8)
    assert cam2.cx == pytest.approx((3.0 + 0.5) * 2 - 0.5) and cam2.cx == scale_principal_point(3.0, 2.0)
    # A fronto-parallel plane at 4 m: disparity doubles on the doubled grid, the points stay on the plane and
    # the pixel centre (u, v) of the small grid maps to (2u + 0.5, 2v + 0.5) on the large one (same ray).
    d_small = np.full((4, 6), CAM.focal_baseline / 4.0, np.float32)
    d_large = np.full((8, 12), cam2.focal_baseline / 4.0, np.float32)
    p_small, p_large = disparity_to_points(d_small, CAM), disparity_to_points(d_large, cam2)
    np.testing.assert_allclose(p_large[..., 2], 4.0, rtol=1e-6)
    # Pixel (u=1, v=1) of the small grid; its centre is between large pixels 2 and 3: average them.
    ray = (p_large[2:4, 2:4].reshape(-1, 3)).mean(axis=0)
    np.testing.assert_allclose(ray, p_small[1, 1], rtol=1e-5)
    cam_d = StereoCamera(fx=10.0, fy=10.0, cx=1.0, cy=1.0, baseline=1.0, width=4, height=4, doffs=2.0).scaled(6, 6)
    assert cam_d.doffs == pytest.approx(3.0)
    with pytest.raises(ValueError, match="grid size"):
        CAM.scaled(0, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fx": 0.0}, "focal"),
        ({"fy": -1.0}, "focal"),
        ({"baseline": 0.0}, "baseline"),
        ({"baseline": -0.1}, "baseline"),
        ({"cx": math.nan}, "finite"),
        ({"fx": math.inf}, "finite"),
        ({"width": 0}, "grid size"),
    ],
)
def test_camera_rejects_bad_values(kwargs, match):
    base = {"fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0, "baseline": 1.0, "width": 2, "height": 2}
    with pytest.raises(ValueError, match=match):
        StereoCamera(**{**base, **kwargs})


def test_shape_checks():
    with pytest.raises(ValueError, match="2-D"):
        disparity_to_depth(np.zeros((4, 6, 1), np.float32), CAM)
    with pytest.raises(ValueError, match="camera grid"):
        disparity_to_points(np.zeros((5, 6), np.float32), CAM)
    with pytest.raises(ValueError, match="camera grid"):
        disparity_to_depth(np.zeros((4, 6), np.float32), CAM, valid=np.ones((3, 6), bool))


def test_validity_by_depth_range_and_uncertainty():
    # Depths 10, 5, 2.5, 1.25, 0.625, inf (d = 0).
    disp = np.array([[5.0, 10.0, 20.0, 40.0, 80.0, 0.0]] * 4, np.float32)
    unc = np.array([[0.1, 5.0, 0.1, np.nan, 0.1, 0.1]] * 4, np.float32)
    np.testing.assert_array_equal(validity_mask(disp, CAM)[0], [1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(validity_mask(disp, CAM, min_depth=1.0, max_depth=6.0)[0], [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(validity_mask(disp, CAM, uncertainty=unc, max_uncertainty=1.0)[0],
                                  [1, 0, 1, 0, 1, 0])
    # max_uncertainty 0 disables the test (no map needed).
    assert validity_mask(disp, CAM, max_uncertainty=0.0).sum() == 20
    with pytest.raises(ValueError, match="uncertainty map"):
        validity_mask(disp, CAM, max_uncertainty=1.0)


def test_remove_speckles_drops_small_islands_unlike_their_surroundings():
    disp = np.full((40, 60), 10.0, np.float32)
    disp[5:8, 5:8] = 30.0  # a 9-pixel island: a piece of neither surface
    disp[20:35, 20:40] = 30.0  # a 300-pixel surface: kept
    disp[5:8, 40:43] = 11.5  # within the range of its surroundings: part of the wall, kept
    disp[0, 59] = np.nan
    valid = np.isfinite(disp)
    kept = remove_speckles(disp, valid, max_size=100, max_diff=2.0)
    assert not kept[5:8, 5:8].any() and kept[20:35, 20:40].all() and kept[5:8, 40:43].all()
    assert not kept[0, 59] and kept.sum() == valid.sum() - 9
    # A tighter range splits the 1.5 px step off: that island goes too; max_size 0 is off.
    assert not remove_speckles(disp, valid, max_size=100, max_diff=1.0)[5:8, 40:43].any()
    np.testing.assert_array_equal(remove_speckles(disp, valid, max_size=0), valid)
    # Pixels already invalid do not join or bridge regions; large disparities keep sub-pixel steps apart.
    holes = valid.copy()
    holes[4:9, 4:9] = False
    holes[5:8, 5:8] = True
    assert not remove_speckles(disp, holes, max_size=100)[5:8, 5:8].any()
    assert not remove_speckles(disp * 300, valid, max_size=100, max_diff=600.0)[5:8, 5:8].any()
    with pytest.raises(ValueError, match="max_size"):
        remove_speckles(disp, valid, max_size=-1)
    with pytest.raises(ValueError, match="differ in shape"):
        remove_speckles(disp, valid[1:])


def test_disparity_bounds():
    assert disparity_bounds(CAM) == (0.0, math.inf)
    low, high = disparity_bounds(CAM, min_depth=1.0, max_depth=10.0, max_disparity=40.0)
    assert (low, high) == (5.0, 40.0)
    assert disparity_bounds(CAM, min_depth=2.0)[1] == 25.0
    for bad in ({"min_depth": -1.0}, {"max_depth": 0.0}, {"min_depth": 5.0, "max_depth": 2.0}):
        with pytest.raises(ValueError, match="min_depth"):
            disparity_bounds(CAM, **bad)
