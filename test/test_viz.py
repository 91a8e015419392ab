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


def _text_rows(image: np.ndarray) -> int:
    """Rows holding light (text) pixels."""
    return int(np.count_nonzero((image.min(axis=2) > 150).any(axis=1)))


def test_clipped_scales_mark_their_top_tick_and_text_is_legible():
    plain = viz.colorbar(240, 0.0, 3.0, unit="px")
    marked = viz.colorbar(240, 0.0, 3.0, unit="px", over=True)
    assert marked.shape == plain.shape and not np.array_equal(marked[:60], plain[:60])  # the "≥" at the top tick
    assert np.array_equal(marked[60:], plain[60:])
    # The error scale is clipped by definition; other maps are marked when a value lies above vmax.
    e = np.tile(np.linspace(0, 6, 64, dtype=np.float32), (240, 1))
    jet = viz.colorbar(240, 0.0, 3.0, unit="px", over=True, colormap=cv2.COLORMAP_JET)
    assert np.array_equal(viz.colorize_error(e, 3.0, unit="px")[:, 64:], jet)
    assert np.array_equal(viz.colorize(e, vmin=0, vmax=3.0, unit="px")[:, 64:], marked)
    assert np.array_equal(viz.colorize(e, vmin=0, vmax=6.0, unit="px")[:, 64:],
                          viz.colorbar(240, 0.0, 6.0, unit="px"))
    # Tick labels: digits at least ~12 px tall even on a short bar (the unit "px" has no ascender: use "0").
    digits = viz.colorbar(240, 0.0, 0.0, unit="0")
    x0 = 4 + max(6, 240 // 40) + 4
    assert _text_rows(digits[:40, :x0]) >= 11


def test_uncertainty_scale_starts_at_the_floor():
    u = np.full((50, 80), 1.81, np.float32)
    u[:, 40:] = 7.0
    img = viz.colorize_uncertainty(u, 7.0, vmin=1.81)
    assert (img[:, :40] == img[0, 0]).all() and img[0, 0].max() < 10  # the floor is the darkest colour
    assert img[0, 60].max() > 200


def test_labels_take_several_lines_and_placeholders_say_why():
    img = np.zeros((120, 320, 3), np.uint8)
    one, two = viz.label(img, "model"), viz.label(img, "model\n120 points")
    assert _text_rows(one) >= 11 and _text_rows(two) >= 2 * _text_rows(one)
    tile = viz.text_tile(100, 200, "frame #3\ndropped")
    assert tile.shape == (100, 200, 3) and _text_rows(tile) >= 22 and (tile[0, 0] == (60, 60, 60)).all()


def test_contact_sheet_keeps_sizes_without_width():
    a, b = np.full((30, 50, 3), 10, np.uint8), np.full((20, 70, 3), 200, np.uint8)
    sheet = viz.contact_sheet([a, b, b, a], cols=2, width=None)
    # Columns as wide as their widest tile (70, 70), rows as tall as their tallest (30, 30).
    assert sheet.shape == (60, 140, 3)
    assert (sheet[:30, :50] == 10).all() and (sheet[:20, 70:140] == 200).all() and (sheet[30:50, :70] == 200).all()
    with pytest.raises(ValueError, match="width"):
        viz.contact_sheet([a], width=0)
