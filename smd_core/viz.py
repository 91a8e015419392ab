"""Pictures: colorized disparity, uncertainty and error maps, contact sheets (BGR uint8, for cv2.imwrite)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def write_png(path: str | Path, image: np.ndarray) -> None:
    """cv2.imwrite that raises OSError when the file was not written."""
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def colorize(values: np.ndarray, *, vmin: float | None = None, vmax: float | None = None,
             colormap: int = cv2.COLORMAP_TURBO, invalid: tuple[int, int, int] = (0, 0, 0),
             unit: str | None = None, over: bool | None = None) -> np.ndarray:
    """(H, W) float -> (H, W, 3) BGR uint8; NaN/inf pixels get `invalid`.

    With `unit` (e.g. "px"), a colour bar with the value range and that unit is appended on the right:
    (H, W + bar width, 3). `over`: its top tick reads "≥ vmax" (values above vmax share the top colour);
    None: when any value is above vmax.
    """
    v = np.asarray(values, dtype=np.float32)
    valid = np.isfinite(v)
    if vmin is None:  # missing bounds: the 1st / 99th percentiles of the finite values
        vmin = float(np.percentile(v[valid], 1)) if valid.any() else 0.0
    if vmax is None:
        vmax = float(np.percentile(v[valid], 99)) if valid.any() else 1.0
    lo, hi = float(vmin), float(vmax)
    norm = np.clip((np.where(valid, v, lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    img = cv2.applyColorMap((norm * 255).astype(np.uint8), colormap)
    img[~valid] = invalid
    if unit is None:
        return img
    if over is None:
        with np.errstate(invalid="ignore"):
            over = bool(np.any(v[valid] > hi))
    return np.concatenate([img, colorbar(img.shape[0], lo, hi, colormap=colormap, unit=unit, over=over)], axis=1)


# Text at least this scale of FONT_HERSHEY_SIMPLEX: digits about 12 px tall, legible in a picture at 100 %.
MIN_TEXT_SCALE = 0.55
FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)


def _text_scale(height: int) -> float:
    return min(0.7, max(MIN_TEXT_SCALE, height / 800))


def text_size(text: str, scale: float) -> tuple[int, int]:
    """(width, height) of `text` as `put_text` draws it ("≥" as wide as ">")."""
    (w, h), _ = cv2.getTextSize(text.replace("≥", ">"), FONT, scale, 1)
    return w, h


def put_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float,
             color: tuple[int, int, int] = WHITE) -> None:
    """cv2.putText (anti-aliased, FONT) that also draws "≥", which the Hershey fonts lack: a ">" underlined."""
    x, y = origin
    for i, part in enumerate(text.split("≥")):
        if i:  # a "≥" before this part
            w, h = text_size(">", scale)
            cv2.putText(image, ">", (x, y - max(1, h // 5)), FONT, scale, color, 1, cv2.LINE_AA)
            cv2.line(image, (x + 1, y + 1), (x + w - 2, y + 1), color, 1, cv2.LINE_AA)
            x += w
        if part:
            cv2.putText(image, part, (x, y), FONT, scale, color, 1, cv2.LINE_AA)
            x += text_size(part, scale)[0]


def colorbar(height: int, vmin: float, vmax: float, *, colormap: int = cv2.COLORMAP_TURBO,
             unit: str = "px", over: bool = False) -> np.ndarray:
    """(height, width, 3) BGR strip: the colormap from vmax (top) to vmin (bottom), ticks at both ends and
    the middle, `unit` at the top. Its width fits the labels; `over` marks the top tick "≥" (a clipped
    scale: larger values have its colour)."""
    if height < 1:
        raise ValueError(f"colorbar height must be >= 1, got {height}")
    scale = _text_scale(height)
    ticks = [vmax, (vmin + vmax) / 2, vmin]
    texts = [("≥" if over else "") + f"{ticks[0]:.3g}"] + [f"{v:.3g}" for v in ticks[1:]] + [unit]
    text_w = max(text_size(t, scale)[0] for t in texts)
    th = text_size("0", scale)[1]
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
    put_text(out, unit, (margin, th + margin), scale)
    for value, text in zip(ticks, texts[:3], strict=True):
        frac = 0.0 if vmax == vmin else (vmax - value) / (vmax - vmin)
        y = int(round(top + frac * (bottom - top - 1)))
        put_text(out, text, (x, min(height - 2, max(th, y + th // 2))), scale)
    return out


def legend(height: int, entries: Sequence[tuple[tuple[int, int, int], str]]) -> np.ndarray:
    """(height, width, 3) BGR strip of colour swatches with their meaning, to sit where a colour bar would."""
    if height < 1:
        raise ValueError(f"legend height must be >= 1, got {height}")
    scale = _text_scale(height)
    th = text_size("0", scale)[1]
    text_w = max([text_size(t, scale)[0] for _, t in entries] or [0])
    box = th + 2
    out = np.full((height, 4 + box + 4 + text_w + 4, 3), 30, np.uint8)
    for i, (color, text) in enumerate(entries):
        y = 4 + i * (box + 6)
        cv2.rectangle(out, (4, y), (4 + box, y + box), tuple(int(c) for c in color), -1)
        put_text(out, text, (8 + box, y + box - 1), scale)
    return out


def colorize_disparity(disparity: np.ndarray, vmin: float | None = None, vmax: float | None = None, *,
                       unit: str | None = None) -> np.ndarray:
    """Disparity (H, W) px -> BGR; near (large disparity) is red/warm. Non-positive or NaN pixels are black. unit:
    append a colour bar labelled with it (e.g. "px"), see `colorize`."""
    d = np.where(np.asarray(disparity) > 0, disparity, np.nan)
    return colorize(d, vmin=0.0 if vmin is None else vmin, vmax=vmax, unit=unit)


def colorize_uncertainty(uncertainty: np.ndarray, vmax: float | None = None, *, vmin: float = 0.0,
                         unit: str | None = None) -> np.ndarray:
    """Uncertainty (H, W) px -> BGR (dark = confident, bright = uncertain); `unit` adds a colour bar.

    vmin: the darkest value; a mixture model's floor (`confidence.uncertainty_floor`, its smallest possible
    uncertainty) so that its most confident pixels are black, not mid-scale.
    """
    return colorize(uncertainty, vmin=vmin, vmax=vmax, colormap=cv2.COLORMAP_INFERNO, unit=unit)


def colorize_error(error: np.ndarray, vmax: float = 3.0, valid: np.ndarray | None = None, *,
                   unit: str | None = None) -> np.ndarray:
    """Absolute error (H, W) px -> BGR, blue (0) to red (>= vmax, "≥" on the colour bar `unit` adds); pixels
    outside `valid` are black."""
    e = np.abs(np.asarray(error, dtype=np.float32))
    if valid is not None:
        e = np.where(valid, e, np.nan)
    return colorize(e, vmin=0.0, vmax=vmax, colormap=cv2.COLORMAP_JET, unit=unit, over=True)


def _lines(text: str, width: int) -> tuple[list[str], float, int, int]:
    """(lines, scale, text height, line step) of `text` on a picture `width` px wide: at least MIN_TEXT_SCALE
    (legible), larger on wide pictures."""
    scale = max(MIN_TEXT_SCALE, width / 1200)
    th = text_size("Ag", scale)[1]
    return text.split("\n"), scale, th, th + max(4, th // 3)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Copy of `image` with `text` (lines split at "\n") in a dark band at the top-left."""
    out = image.copy()
    lines, scale, th, step = _lines(text, out.shape[1])
    tw = max(text_size(line, scale)[0] for line in lines)
    cv2.rectangle(out, (0, 0), (tw + 8, step * len(lines) + 6), (0, 0, 0), -1)
    for i, line in enumerate(lines):
        put_text(out, line, (4, th + 4 + i * step), scale)
    return out


def text_tile(height: int, width: int, text: str, *, color: tuple[int, int, int] = (60, 60, 60)) -> np.ndarray:
    """(height, width, 3) BGR tile of one colour with `text` (lines split at "\n") centred: a placeholder that
    says why a picture is missing (e.g. a frame the node dropped)."""
    out = np.full((height, width, 3), color, np.uint8)
    lines, scale, th, step = _lines(text, width)
    y0 = (height - step * len(lines)) // 2 + th
    for i, line in enumerate(lines):
        put_text(out, line, ((width - text_size(line, scale)[0]) // 2, y0 + i * step), scale)
    return out


def contact_sheet(images: Sequence[np.ndarray], cols: int = 4, *, width: int | None = 320,
                  labels: Sequence[str] | None = None) -> np.ndarray:
    """Tile BGR (or gray) images into one picture, row by row, `cols` per row.

    width: each image is resized to that many px wide; None keeps every image's size (draw colour bars and
    text at the size they are shown, so they stay legible), each column as wide as its widest image and
    each row as tall as its tallest.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    if width is not None and width < 1:
        raise ValueError(f"width must be >= 1 (or None), got {width}")
    tiles = []
    for i, img in enumerate(images):
        tile = np.asarray(img)
        if tile.ndim == 2:
            tile = cv2.cvtColor(tile.astype(np.uint8), cv2.COLOR_GRAY2BGR)
        if width is not None:
            h = max(1, round(tile.shape[0] * width / tile.shape[1]))
            tile = cv2.resize(tile, (width, h), interpolation=cv2.INTER_AREA)
        if labels is not None and i < len(labels):
            tile = label(tile, labels[i])
        tiles.append(tile)
    rows = math.ceil(len(tiles) / cols)
    col_w = [max(t.shape[1] for t in tiles[c::cols]) for c in range(min(cols, len(tiles)))]
    row_h = [max(t.shape[0] for t in tiles[r * cols : (r + 1) * cols]) for r in range(rows)]
    x0, y0 = np.cumsum([0, *col_w]), np.cumsum([0, *row_h])
    sheet = np.zeros((int(y0[-1]), int(x0[-1]), 3), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[y0[r] : y0[r] + t.shape[0], x0[c] : x0[c] + t.shape[1]] = t
    return sheet
