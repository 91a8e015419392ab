"""Pictures: colorized disparity, uncertainty and error maps, contact sheets (BGR uint8, for cv2.imwrite)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def _normalize(values: np.ndarray, vmin: float | None, vmax: float | None) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(v)
    if vmin is None:
        vmin = float(np.percentile(v[valid], 1)) if valid.any() else 0.0
    if vmax is None:
        vmax = float(np.percentile(v[valid], 99)) if valid.any() else 1.0
    span = max(vmax - vmin, 1e-6)
    return np.clip((np.where(valid, v, vmin) - vmin) / span, 0, 1), valid


def colorize(values: np.ndarray, *, vmin: float | None = None, vmax: float | None = None,
             colormap: int = cv2.COLORMAP_TURBO, invalid: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """(H, W) float -> (H, W, 3) BGR uint8; NaN/inf pixels get `invalid`."""
    norm, valid = _normalize(values, vmin, vmax)
    img = cv2.applyColorMap((norm * 255).astype(np.uint8), colormap)
    img[~valid] = invalid
    return img


def colorize_disparity(disparity: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Disparity (H, W) px -> BGR; near (large disparity) is red/warm. Non-positive or NaN pixels are black."""
    d = np.where(np.asarray(disparity) > 0, disparity, np.nan)
    return colorize(d, vmin=0.0 if vmin is None else vmin, vmax=vmax)


def colorize_uncertainty(uncertainty: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Uncertainty (H, W) px -> BGR (dark = confident, bright = uncertain)."""
    return colorize(uncertainty, vmin=0.0, vmax=vmax, colormap=cv2.COLORMAP_INFERNO)


def colorize_error(error: np.ndarray, vmax: float = 3.0, valid: np.ndarray | None = None) -> np.ndarray:
    """Absolute error (H, W) px -> BGR, blue (0) to red (>= vmax); pixels outside `valid` are black."""
    e = np.abs(np.asarray(error, dtype=np.float32))
    if valid is not None:
        e = np.where(valid, e, np.nan)
    return colorize(e, vmin=0.0, vmax=vmax, colormap=cv2.COLORMAP_JET)


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
