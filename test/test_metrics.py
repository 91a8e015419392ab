"""Metrics against values worked out by hand on tiny arrays, and every error branch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smd_core import metrics as M


def step_scene() -> tuple[np.ndarray, np.ndarray]:
    """4x6 gt: foreground 10 px in columns 0-2, background 2 px in columns 3-5; one invalid pixel (0, 0)."""
    gt = np.full((4, 6), 2.0, np.float32)
    gt[:, :3] = 10.0
    gt[0, 0] = 0.0
    return gt, gt.copy()


def test_epe_and_bad_by_hand() -> None:
    gt = np.array([[1.0, 2.0], [3.0, 0.0]], np.float32)
    pred = np.array([[1.5, 4.5], [3.0, 99.0]], np.float32)  # errors 0.5, 2.5, 0 (last pixel has no gt)
    m = M.compute_metrics(pred, gt)
    assert m["epe"] == pytest.approx(1.0) and m["bad1"] == m["bad2"] == pytest.approx(100 / 3) and m["bad3"] == 0.0
    # An extra mask narrows the evaluated pixels.
    m = M.compute_metrics(pred, gt, valid=np.array([[False, True], [False, False]]))
    assert m["epe"] == pytest.approx(2.5) and m["bad2"] == 100.0 and m["n_valid"] == m["n_gt"] == 1


def test_invalid_predictions_and_density() -> None:
    gt = np.array([[1.0, 2.0], [3.0, 0.0]], np.float32)
    pred = np.array([[np.nan, 2.0], [np.inf, 5.0]], np.float32)
    m = M.compute_metrics(pred, gt)
    assert m["epe"] == 0.0 and m["n_valid"] == 1  # only (0, 1) has both
    assert m["density"] == pytest.approx(100 / 3)
    assert M.compute_metrics(pred, gt, valid=np.array([[False, True], [False, False]]))["density"] == 100.0


def test_empty_masks_give_nan() -> None:
    gt = np.zeros((3, 3), np.float32)
    pred = np.ones((3, 3), np.float32)
    m = M.compute_metrics(pred, gt)
    assert all(math.isnan(m[k]) for k in M.METRIC_KEYS)
    assert m["n_valid"] == m["n_gt"] == m["n_edges"] == m["n_band"] == 0 and m["n_pixels"] == 9
    flat = M.compute_metrics(pred, np.full((3, 3), 5.0, np.float32))  # valid but no edges
    assert math.isnan(flat["see"]) and math.isnan(flat["bleeding"]) and flat["epe"] == 4.0
    assert all(math.isnan(v) for v in M.pool([m]).values())


def test_depth_edges_both_sides_and_invalid_neighbours() -> None:
    gt, _ = step_scene()
    edges = M.depth_edges(gt)
    expected = np.zeros_like(edges)
    expected[:, 2:4] = True
    np.testing.assert_array_equal(edges, expected)
    # A jump to an invalid pixel is no edge; a jump of exactly the threshold is none either.
    assert not M.depth_edges(np.array([[0.0, 5.0]], np.float32)).any()
    assert not M.depth_edges(np.array([[1.0, 2.0]], np.float32), threshold=1.0).any()
    assert M.depth_edges(np.array([[1.0], [2.5]], np.float32), threshold=1.0).all()


def test_soft_edge_error_by_hand() -> None:
    gt, pred = step_scene()
    pred[:, 3] = 6.0  # a flying column just right of the edge: 4 px from either side
    pred[:, 2] = 9.0  # foreground side 1 px low: its best neighbour is still 10 -> 1.0
    # Edge pixels: columns 2 and 3 (8 pixels); errors 1.0 (column 2) and 4.0 (column 3).
    assert M.compute_metrics(pred, gt)["see"] == pytest.approx(2.5)
    # A boundary placed one pixel off costs nothing: column 3 predicted as foreground.
    gt2, pred2 = step_scene()
    pred2[:, 3] = 10.0
    m = M.compute_metrics(pred2, gt2)
    assert m["see"] == 0.0 and m["epe"] > 0 and m["n_edges"] == 8
    # radius 0 is the plain error on edge pixels.
    assert M.compute_metrics(pred2, gt2, see_radius=0)["see"] == pytest.approx(4.0)


def test_soft_edge_error_map_skips_invalid_and_border() -> None:
    gt = np.array([[0.0, 4.0], [4.0, 4.0]], np.float32)
    pred = np.array([[0.5, 4.0], [4.0, 4.0]], np.float32)
    see = M.soft_edge_error_map(pred, gt)
    # (0, 0): gt invalid there, neighbours 4.0 -> |0.5 - 4| = 3.5 (the reference would compare with 0).
    assert see[0, 0] == pytest.approx(3.5)
    assert see[1, 1] == 0.0
    lonely = M.soft_edge_error_map(np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32))
    assert np.isnan(lonely[0, 0])


def test_bleeding_rate_by_hand() -> None:
    gt, pred = step_scene()
    pred[:, 3] = 6.0  # 4 flying pixels
    pred[1, 4] = 9.5  # near the foreground: not flying (0.5 px from the local maximum)
    pred[2, 5] = 3.5  # 1.5 px off its own gt and the background: flying
    # radius 1: band = columns 1..4 (16 pixels, all with gt).
    band, flying = M.bleeding_map(pred, gt, radius=1)
    assert band.sum() == 16 and flying[:, 3].all() and flying.sum() == 4
    assert M.compute_metrics(pred, gt, band_radius=1)["bleeding"] == pytest.approx(25.0)
    # radius 2 reaches columns 0..5: 24 pixels less the invalid (0, 0) = 23; flying: column 3 and (2, 5).
    assert M.compute_metrics(pred, gt, band_radius=2)["bleeding"] == pytest.approx(100 * 5 / 23)
    # A generous tolerance forgives everything.
    assert M.compute_metrics(pred, gt, band_radius=2, tolerance=5.0)["bleeding"] == 0.0


def test_bleeding_three_surfaces_own_gt_counts() -> None:
    # Background 0..: 2, middle 6, foreground 12: a correct 6 is neither local max nor min.
    gt = np.array([[2.0, 2.0, 6.0, 6.0, 12.0, 12.0]], np.float32)
    assert M.compute_metrics(gt.copy(), gt, band_radius=1)["bleeding"] == 0.0
    pred = gt.copy()
    pred[0, 3] = 9.0  # 3 px from 6 and 12, 7 from 2
    assert M.compute_metrics(pred, gt, band_radius=0)["bleeding"] == pytest.approx(100 / 4)


def _random_frame(seed: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = np.where(rng.random((h, w)) < 0.1, 0.0, np.repeat(rng.uniform(1, 40, (h // 5, w)), 5, axis=0))
    pred = gt + rng.normal(0, 1.5, gt.shape)
    pred[3, 3] = np.nan
    return pred.astype(np.float32), gt.astype(np.float32)


def test_pool_weighs_every_pixel_alike() -> None:
    """Pooling two frames' rows gives the metrics of one frame holding both, kept apart by invalid rows."""
    (p1, g1), (p2, g2) = _random_frame(0, 20, 30), _random_frame(1, 35, 30)
    gap = np.zeros((10, 30), np.float32)  # wider than any window: no edge, band or neighbour spans the gap
    both = M.compute_metrics(np.concatenate([p1, gap, p2]), np.concatenate([g1, gap, g2]))
    pooled = M.pool([M.compute_metrics(p1, g1), M.compute_metrics(p2, g2)])
    assert set(pooled) == set(M.METRIC_KEYS)
    for key in M.METRIC_KEYS:
        assert pooled[key] == pytest.approx(both[key], rel=1e-6), key


def test_valid_mask_range() -> None:
    gt = np.array([[0.0, 5.0, 50.0, np.inf, -1.0, np.nan]], np.float32)
    np.testing.assert_array_equal(M.valid_mask(gt), [[False, True, True, False, False, False]])
    np.testing.assert_array_equal(M.valid_mask(gt, max_disp=10), [[False, True, False, False, False, False]])


def test_resize_disparity_scales_values_nearest() -> None:
    pred = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    up = M.resize_disparity(pred, (4, 4))
    assert up.shape == (4, 4)
    np.testing.assert_allclose(up[:2, :2], 2.0)  # width x2 -> disparity x2, blocks (no blending)
    np.testing.assert_allclose(up[2:, :2], 6.0)
    assert np.isnan(up[3, 3])
    np.testing.assert_array_equal(M.resize_disparity(pred, (2, 2)), pred)
    down = M.resize_disparity(np.full((4, 8), 8.0, np.float32), (2, 4))
    np.testing.assert_allclose(down, 4.0)


def test_errors_name_the_problem() -> None:
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="differ in shape"):
        M.compute_metrics(a, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="2D"):
        M.compute_metrics(np.ones((2, 3, 1)), a)
    with pytest.raises(ValueError, match="valid mask shape"):
        M.compute_metrics(a, a, valid=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="threshold"):
        M.depth_edges(a, threshold=float("nan"))
    with pytest.raises(ValueError, match="radius"):
        M.soft_edge_error_map(a, a, radius=-1)
    with pytest.raises(ValueError, match="radius"):
        M.edge_band(a, radius=-2)
    with pytest.raises(ValueError, match="tolerance"):
        M.compute_metrics(a, a, tolerance=-1)
    with pytest.raises(ValueError, match="shape must be positive"):
        M.resize_disparity(a, (0, 3))
    with pytest.raises(ValueError, match="empty"):
        M.resize_disparity(np.zeros((0, 3), np.float32), (2, 2))


def test_flying_counts_in_between_points_at_jumps_over_two_px_only() -> None:
    gt = np.full((40, 40), 10.0, np.float32)
    gt[:, 20:] = 20.0  # a 10 px jump at x = 20
    pred = gt.copy()
    pred[:, 19:21] = 15.0  # smeared: between the two surfaces
    m = M.compute_metrics(pred, gt)
    band, flying = M.flying_map(pred, gt)
    assert band[:, 17:24].all() and not band[:, :16].any()
    assert flying.sum() == 80 and m["n_fly"] == 80
    assert m["flying"] == pytest.approx(100.0 * 80 / band.sum())
    # A 1.5 px step is an edge for the bleeding rate but not for the flying rate.
    small = np.where(gt > 15, 11.5, 10.0).astype(np.float32)
    m = M.compute_metrics(np.where(np.abs(small - 10.75) < 1, 10.75, small), small)
    assert m["n_fly_band"] == 0 and math.isnan(m["flying"]) and m["n_band"] > 0
