"""Point-cloud rendering used by the demo pictures."""

from __future__ import annotations

import numpy as np
import pytest

from smd_ros.demo_pictures import orbit_rotation, render_cloud


def test_orbit_rotation_is_a_rotation():
    r = orbit_rotation(30, -10)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(orbit_rotation(0, 0), np.eye(3))


def test_front_view_puts_the_centre_point_in_the_middle_and_nearer_points_win():
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 2.5], [np.nan, 0, 1]])
    cols = np.array([[0, 0, 255], [255, 0, 0], [0, 255, 0]], np.uint8)
    img = render_cloud(pts, cols, size=(21, 21), yaw_deg=0, pitch_deg=0, splat=1, center=np.array([0, 0, 2.0]))
    assert tuple(img[10, 10]) == (0, 0, 255)  # the nearer red point hides the blue one behind it
    assert (img.reshape(-1, 3) == (0, 255, 0)).all(axis=1).sum() == 0  # NaN point skipped


def test_side_view_separates_depth_layers_and_validates():
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]])
    cols = np.full((2, 3), 255, np.uint8)
    img = render_cloud(pts, cols, size=(41, 41), yaw_deg=60, pitch_deg=0, splat=1, center=np.array([0, 0, 3.0]))
    ys, xs = np.nonzero((img == 255).all(axis=2))
    assert len(set(xs)) == 2  # two depths land in two columns once the view turns
    with pytest.raises(ValueError, match="differ in length"):
        render_cloud(pts, cols[:1])
    empty = render_cloud(np.full((3, 3), np.nan), np.zeros((3, 3), np.uint8), size=(4, 4))
    assert (empty == 40).all()


def test_zoom_windows_pick_the_densest_non_overlapping_regions():
    from smd_ros.demo_pictures import zoom_windows

    score = np.zeros((40, 60))
    score[5:9, 10:14] = 1.0  # 16
    score[30:32, 40:50] = 2.0  # 40: densest
    score[20, 0] = 0.5
    wins = zoom_windows(score, size=(10, 12), count=3)
    assert len(wins) == 3 and all(w[2:] == (10, 12) for w in wins)
    (y0, x0, _, _), (y1, x1, _, _) = wins[:2]
    assert score[y0:y0 + 10, x0:x0 + 12].sum() == 40 and score[y1:y1 + 10, x1:x1 + 12].sum() == 16
    for a in range(3):
        for b in range(a + 1, 3):
            ya, xa, yb, xb = wins[a][0], wins[a][1], wins[b][0], wins[b][1]
            assert abs(ya - yb) >= 10 or abs(xa - xb) >= 12  # no overlap
    assert zoom_windows(np.zeros((40, 60)), size=(10, 12)) == []  # nothing flies: nothing to zoom into
    assert zoom_windows(score, size=(50, 12)) == []  # no room for a window
