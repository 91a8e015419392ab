"""smd_core.viz: colorized maps carry a colour bar with their unit; legends; contact sheets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from smd_core import viz


def _ramp(h: int = 120, w: int = 160) -> np.ndarray:
    return np.tile(np.linspace(0, 64, w, dtype=np.float32), (h, 1))


def test_colour_bar_is_appended_with_the_map_unchanged():
    d = _ramp()
    plain = viz.colorize_disparity(d, 0, 64)
    barred = viz.colorize_disparity(d, 0, 64, unit="px")
    assert plain.shape == (120, 160, 3) and barred.shape[0] == 120 and barred.shape[1] > 160
    assert np.array_equal(barred[:, :160], plain)
    bar = barred[:, 160:]
    # The strip runs through the colormap: top (vmax) and bottom (vmin) colours are the map's extremes.
    strip = bar[:, 4 + 1].astype(int)
    rows = np.nonzero(strip.max(axis=1) - strip.min(axis=1) > 40)[0]  # coloured, not grey text or background
    assert np.abs(strip[rows[0]] - plain[0, -1].astype(int)).max() <= 12
    assert np.abs(strip[rows[-1]] - plain[0, 1].astype(int)).max() <= 12  # (column 0 is 0 px: invalid, black)
    # Text (tick values and the unit) is drawn in white beside the strip: labelled columns differ from blank.
    text = bar[:, 4 + max(6, 120 // 40) + 4:]
    assert (text.min(axis=2) > 120).sum() > 10


def test_colour_bar_labels_follow_the_range_and_unit():
    a = viz.colorbar(200, 0.0, 64.0, unit="px")
    b = viz.colorbar(200, 0.0, 3.0, unit="px")
    c = viz.colorbar(200, 0.0, 64.0, unit="m")
    assert a.shape[0] == 200 and not np.array_equal(a[:, -20:], b[:, -20:])
    assert not np.array_equal(a[:30], c[:30])  # the unit is written at the top
    for fn, kwargs in ((viz.colorize_uncertainty, {"vmax": 4.0}), (viz.colorize_error, {"vmax": 3.0})):
        img = fn(_ramp() / 16, unit="px", **kwargs)
        assert img.shape[1] > 160
    with pytest.raises(ValueError, match="height"):
        viz.colorbar(0, 0, 1)


def test_legend_draws_its_swatches():
    leg = viz.legend(60, [((0, 0, 255), "flying"), ((0, 200, 255), "edge band")])
    assert leg.shape[0] == 60
    assert (leg == (0, 0, 255)).all(axis=2).any() and (leg == (0, 200, 255)).all(axis=2).any()


def test_contact_sheet_tiles_images():
    sheet = viz.contact_sheet([np.zeros((10, 20, 3), np.uint8), np.full((10, 20), 255, np.uint8)], cols=2,
                              width=40, labels=["a"])
    assert sheet.shape == (20, 80, 3) and (sheet[:, 40:] == 255).any()
    assert cv2.imencode(".png", sheet)[0]
