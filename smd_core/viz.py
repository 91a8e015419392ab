"""Pictures: colorized disparity, uncertainty and error maps, contact sheets (BGR uint8, for cv2.imwrite)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def _normalize(values: np.ndarray, vmin: float | None,
               vmax: float | None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(values scaled to 0..1, finite mask, vmin, vmax used); missing bounds are the 1st / 99th percentiles."""
    v = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(v)
    if vmin is None:
        vmin = float(np.percentile(v[valid], 1)) if valid.any() else 0.0
    if vmax is None:
        vmax = float(np.percentile(v[valid], 99)) if valid.any() else 1.0
    span = max(vmax - vmin, 1e-6)
    return np.clip((np.where(valid, v, vmin) - vmin) / span, 0, 1), valid, float(vmin), float(vmax)


def colorize(values: np.ndarray, *, vmin: float | None = None, vmax: float | None = None,
             colormap: int = cv2.COLORMAP_TURBO, invalid: tuple[int, int, int] = (0, 0, 0),
             unit: str | None = None) -> np.ndarray:
    """(H, W) float -> (H, W, 3) BGR uint8; NaN/inf pixels get `invalid`.

    With `unit` (e.g. "px"), a colour bar with the value range and that unit is appended on the right:
    (H, W + bar width, 3).
    """
    norm, valid, lo, hi = _normalize(values, vmin, vmax)
    img = cv2.applyColorMap((norm * 255).astype(np.uint8), colormap)
    img[~valid] = invalid
    if unit is None:
        return img
    return np.concatenate([img, colorbar(img.shape[0], lo, hi, colormap=colormap, unit=unit)], axis=1)


def _text_scale(height: int) -> float:
    return min(0.6, max(0.3, height / 800))


def colorbar(height: int, vmin: float, vmax: float, *, colormap: int = cv2.COLORMAP_TURBO,
             unit: str = "px") -> np.ndarray:
    """(height, width, 3) BGR strip: the colormap from vmax (top) to vmin (bottom), ticks at both ends and
    the middle, `unit` at the top. Its width fits the labels."""
    if height < 1:
        raise ValueError(f"colorbar height must be >= 1, got {height}")
    scale = _text_scale(height)
    ticks = [vmax, (vmin + vmax) / 2, vmin]
    texts = [f"{v:.3g}" for v in ticks] + [unit]
    text_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in texts)
    (_, th), _ = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    strip_w = max(6, height // 40)
    margin = 4
    out = np.full((height, margin + strip_w + margin + text_w + margin, 3), 30, np.uint8)
    # Leave room for the unit above the strip and half a tick label below it.
    top = min(height - 1, 2 * th + 2 * margin) if height > 6 * th else 0
    bottom = max(top + 1, height - (th // 2 + margin if height > 6 * th else 0))
    ramp = np.linspace(255, 0, bottom - top).astype(np.uint8)[:, None]
    strip = cv2.applyColorMap(np.repeat(ramp, strip_w, axis=1), colormap)
    out[top:bottom, margin:margin + strip_w] = strip
    x = 2 * margin + strip_w
    white = (255, 255, 255)
    cv2.putText(out, unit, (margin, th + margin), cv2.FONT_HERSHEY_SIMPLEX, scale, white, 1, cv2.LINE_AA)
    for value, text in zip(ticks, texts[:3], strict=True):
        frac = 0.0 if vmax == vmin else (vmax - value) / (vmax - vmin)
        y = int(round(top + frac * (bottom - top - 1)))
        cv2.putText(out, text, (x, min(height - 2, y + th // 2)), cv2.FONT_HERSHEY_SIMPLEX, scale, white, 1,
                    cv2.LINE_AA)
    return out


def legend(height: int, entries: Sequence[tuple[tuple[int, int, int], str]]) -> np.ndarray:
    """(height, width, 3) BGR strip of colour swatches with their meaning, to sit where a colour bar would."""
    if height < 1:
        raise ValueError(f"legend height must be >= 1, got {height}")
    scale = _text_scale(height)
    (_, th), _ = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    text_w = max([cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for _, t in entries] or [0])
    box = th + 2
    out = np.full((height, 4 + box + 4 + text_w + 4, 3), 30, np.uint8)
    for i, (color, text) in enumerate(entries):
        y = 4 + i * (box + 6)
        cv2.rectangle(out, (4, y), (4 + box, y + box), tuple(int(c) for c in color), -1)
        cv2.putText(out, text, (8 + box, y + box - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def colorize_disparity(disparity: np.ndarray, vmin: float | None = None, vmax: float | None = None, *,
                       unit: str | None = None) -> np.ndarray:
    """Disparity (H, W) px -> BGR; near (large disparity) is red/warm. Non-positive or NaN pixels are black.

    unit: append a colour bar labelled with it (e.g. "px"), see `colorize`.
    """
    d = np.where(np.asarray(disparity) > 0, disparity, np.nan)
    return colorize(d, vmin=0.0 if vmin is None else vmin, vmax=vmax, unit=unit)


def colorize_uncertainty(uncertainty: np.ndarray, vmax: float | None = None, *,
                         unit: str | None = None) -> np.ndarray:
    """Uncertainty (H, W) px -> BGR (dark = confident, bright = uncertain); `unit` adds a colour bar."""
    return colorize(uncertainty, vmin=0.0, vmax=vmax, colormap=cv2.COLORMAP_INFERNO, unit=unit)


def colorize_error(error: np.ndarray, vmax: float = 3.0, valid: np.ndarray | None = None, *,
                   unit: str | None = None) -> np.ndarray:
    """Absolute error (H, W) px -> BGR, blue (0) to red (>= vmax); pixels outside `valid` are black.

    `unit` adds a colour bar (its top value means "vmax or more").
    """
    e = np.abs(np.asarray(error, dtype=np.float32))
    if valid is not None:
        e = np.where(valid, e, np.nan)
    return colorize(e, vmin=0.0, vmax=vmax, colormap=cv2.COLORMAP_JET, unit=unit)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Copy of `image` with `text` in a dark band at the top-left."""
    out = image.copy()
    scale = max(0.4, out.shape[1] / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(images: Sequence[np.ndarray], cols: int = 4, *, width: int = 320,
                  labels: Sequence[str] | None = None) -> np.ndarray:
    """Tile BGR (or gray) images into one picture, each resized to `width` px wide."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    tiles = []
    for i, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim == 2:
            img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2BGR)
        h = max(1, round(img.shape[0] * width / img.shape[1]))
        tile = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
        if labels is not None and i < len(labels):
            tile = label(tile, labels[i])
        tiles.append(tile)
    th = max(t.shape[0] for t in tiles)
    rows = math.ceil(len(tiles) / cols)
    sheet = np.zeros((rows * th, cols * width, 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * th : r * th + t.shape[0], c * width : (c + 1) * width] = t
    return sheet
