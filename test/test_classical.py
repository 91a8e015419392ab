"""smd_core.classical: SGBM as stereo_image_proc runs it, holes marked, and the row-wise background fill."""

import cv2
import numpy as np
import pytest

from smd_core.classical import SGBMConfig, fill_background, sgbm_disparity
from smd_core.data.synthetic.render import render_scene


@pytest.fixture(scope="module")
def frame():
    return render_scene(9000, height=96, width=160, max_disparity=24.0)


def test_sgbm_matches_textured_scene_and_marks_holes(frame):
    d = sgbm_disparity(frame.left, frame.right, SGBMConfig(), 32)
    assert d.shape == frame.disp_left.shape and d.dtype == np.float32
    valid = np.isfinite(d)
    assert 0.3 < valid.mean() < 1.0  # occlusions and rejected matches are holes, not guesses
    assert np.median(np.abs(d[valid] - frame.disp_left[valid])) < 1.0


def test_pad_left_recovers_the_left_band(frame):
    padded = sgbm_disparity(frame.left, frame.right, SGBMConfig(pad_left=True), 32)
    plain = sgbm_disparity(frame.left, frame.right, SGBMConfig(pad_left=False), 32)
    band = np.s_[:, :32]
    assert not np.isfinite(plain[band]).any()  # OpenCV leaves the first numDisparities columns invalid
    assert np.isfinite(padded[band]).mean() > 0.3


def test_fill_takes_the_background_side():
    d = np.array([[5.0, np.nan, np.nan, 2.0, np.nan], [np.nan, np.nan, 3.0, np.nan, 7.0],
                  [np.nan] * 5], np.float32)
    out = fill_background(d)
    np.testing.assert_array_equal(out, [[5, 2, 2, 2, 2], [3, 3, 3, 3, 7], [0, 0, 0, 0, 0]])


def test_sgbm_fill_is_dense(frame):
    out = fill_background(sgbm_disparity(frame.left, frame.right, SGBMConfig(), 32))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("kwargs", [{"mode": "bogus"}, {"block_size": 4}, {"num_disparities": 40},
                                    {"p1": 100, "p2": 50}, {"speckle_range": -1}])
def test_bad_config_names_the_value(kwargs):
    with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
        SGBMConfig(**kwargs)


def test_disparities_from_max_disp():
    assert SGBMConfig().disparities_for(100) == 112
    assert SGBMConfig(num_disparities=64).disparities_for(200) == 64


def test_bad_inputs():
    a = np.zeros((10, 20), np.uint8)
    with pytest.raises(ValueError, match="differ"):
        sgbm_disparity(a, np.zeros((10, 21), np.uint8), SGBMConfig(), 16)
    with pytest.raises(ValueError, match="uint8"):
        sgbm_disparity(a.astype(np.float32), a.astype(np.float32), SGBMConfig(), 16)


def test_bm_matches_a_shifted_texture_and_leaves_the_left_border_empty() -> None:
    from smd_core.classical import BMConfig, bm_disparity

    rng = np.random.default_rng(0)
    right = cv2.GaussianBlur(rng.integers(0, 255, (96, 160), dtype=np.uint8), (3, 3), 0)
    left = np.roll(right, 7, axis=1)  # left(x) = right(x - 7): disparity 7 everywhere
    d = bm_disparity(left, right, 32)
    assert d.shape == left.shape and d.dtype == np.float32
    inner = d[20:-20, 60:-20]
    assert np.isfinite(inner).mean() > 0.95 and np.nanmedian(np.abs(inner - 7)) < 0.25
    # stereo_image_proc does not pad: BM cannot match the first num_disparities columns.
    assert np.isnan(d[:, :32]).all()
    # A search range as wide as the image leaves no column to match: all holes, the same on every call.
    assert np.isnan(bm_disparity(left[:, :64], right[:, :64], 64)).all()
    with pytest.raises(ValueError, match="block_size must be odd"):
        BMConfig(block_size=8)
    with pytest.raises(ValueError, match="differ in size"):
        bm_disparity(left, right[:, :-1], 32)
