"""Point-cloud rendering used by the demo pictures."""

from __future__ import annotations

import numpy as np
import pytest

from smd_core.render import orbit_rotation, render_cloud


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
