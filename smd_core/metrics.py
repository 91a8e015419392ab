"""Disparity metrics (NumPy, vectorised): EPE, bad-x, soft edge error, bleeding and flying rates, density.

Conventions:
- `pred` and `gt` are (H, W) disparities in the same pixel units (resize first: `resize_disparity`).
- Ground truth is valid where it is finite and > 0 (0 = no ground truth, as in the datasets); an optional
  `valid` mask (H, W) bool narrows that further (e.g. to the model's disparity range, `valid_mask`).
- A prediction is valid where it is finite; filtered-out predictions are NaN. Errors are measured on
  pixels where both are valid; `density` says how many of the ground-truth pixels that is.
- Every rate is a percentage (0..100). A metric over an empty set of pixels is NaN (never 0, which would
  read as "perfect" and bias averages); `compute_metrics` also returns the pixel counts, which `pool` sums.

Soft edge error (SEE, SMD-Nets Sec. 4): on ground-truth depth-edge pixels (both sides of a 4-neighbour jump
larger than `edge_threshold`, both with ground truth), the smallest |pred - gt(q)| over q in the
(2 radius + 1)^2 neighbourhood: a boundary misplaced by a pixel is forgiven, a disparity of neither side is
not. Unlike the reference code, neighbours without ground truth or beyond the border are skipped.

Bleeding rate: in the band within `radius` pixels of a ground-truth edge, the share of pixels whose
prediction is more than `tolerance` px from the local foreground (maximum valid gt in the (2 radius + 3)^2
window, which reaches across the edge from anywhere in the band), from the local background (minimum) and
from its own gt (a correct prediction where three surfaces meet is never counted): the points a regression
that averages the two sides leaves floating between them.

Flying rate (`flying`, the project's headline edge figure): the bleeding rate around ground-truth jumps of
more than FLYING_EDGE_PX only (slanted surfaces and 1-px steps are no edges); `flying_map` also counts the
flying points of the demo's clouds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

BAD_THRESHOLDS = (1.0, 2.0, 3.0)
# Defaults of the keyword options of `compute_metrics` (`smd eval --edge-threshold/--band-radius/--tolerance`).
EDGE_THRESHOLD_PX = 1.0
SEE_RADIUS = 1
BAND_RADIUS = 3
TOLERANCE_PX = 1.0
METRIC_OPTIONS = {"edge_threshold": EDGE_THRESHOLD_PX, "see_radius": SEE_RADIUS, "band_radius": BAND_RADIUS,
                  "tolerance": TOLERANCE_PX}
FLYING_EDGE_PX = 2.0  # a ground-truth jump larger than this (px) is a depth edge for the flying rate
# The per-frame rates of `compute_metrics`, in report order.
METRIC_KEYS = ("epe", "bad1", "bad2", "bad3", "see", "bleeding", "flying", "density")


def _as_2d(name: str, array: np.ndarray) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2D (H, W) array, got shape {a.shape}")
    return a.astype(np.float32, copy=False) if a.dtype != np.bool_ else a


def _check(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float arrays and the mask of pixels where both prediction and ground truth are valid."""
    p, g = _as_2d("pred", pred), _as_2d("gt", gt)
    if p.shape != g.shape:
        raise ValueError(f"pred and gt differ in shape: {p.shape} vs {g.shape} (resize with resize_disparity)")
    return p, g, valid_mask(g, valid=valid) & np.isfinite(p)


def valid_mask(gt: np.ndarray, *, valid: np.ndarray | None = None, max_disp: float | None = None) -> np.ndarray:
    """(H, W) bool: ground truth finite and > 0, below or at `max_disp` if given, and inside `valid` if given."""
    g = _as_2d("gt", gt)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(g) & (g > 0)
        if max_disp is not None:
            mask &= g <= max_disp
    if valid is not None:
        v = np.asarray(valid)
        if v.shape != g.shape:
            raise ValueError(f"valid mask shape {v.shape} differs from gt shape {g.shape}")
        mask &= v.astype(bool)
    return mask


def _mean(values: np.ndarray) -> float:
    return float(values.mean(dtype=np.float64)) if values.size else math.nan


def depth_edges(gt: np.ndarray, *, threshold: float = EDGE_THRESHOLD_PX, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour whose gt differs by more than `threshold` (both valid)."""
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    g = _as_2d("gt", gt)
    ok = valid_mask(g, valid=valid)
    edges = np.zeros(g.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        jump_x = (np.abs(g[:, 1:] - g[:, :-1]) > threshold) & ok[:, 1:] & ok[:, :-1]
        jump_y = (np.abs(g[1:, :] - g[:-1, :]) > threshold) & ok[1:, :] & ok[:-1, :]
    edges[:, 1:] |= jump_x
    edges[:, :-1] |= jump_x
    edges[1:, :] |= jump_y
    edges[:-1, :] |= jump_y
    return edges


def _shifted(a: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """out[y, x] = a[y + dy, x + dx], `fill` outside the image."""
    h, w = a.shape
    out = np.full_like(a, fill)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[yd, xd] = a[ys, xs]
    return out


def soft_edge_error_map(pred: np.ndarray, gt: np.ndarray, *, radius: int = SEE_RADIUS,
                        valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32: min |pred(p) - gt(q)| over valid q within `radius` (Chebyshev) of p; NaN where none."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    p, g, _ = _check(pred, gt, valid)
    gv = np.where(valid_mask(g, valid=valid), g, np.nan).astype(np.float32)
    best = np.full(p.shape, np.nan, dtype=np.float32)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            # fmin ignores NaN (invalid or outside neighbours) as long as one side is a number.
            best = np.fmin(best, np.abs(_shifted(gv, dy, dx, np.nan) - p))
    return best


def _window_extreme(values: np.ndarray, radius: int, op: str) -> np.ndarray:
    """Max (op="max") or min filter over a (2 radius + 1)^2 square; the border does not contribute."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    if op == "max":
        return cv2.dilate(values, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=-np.inf)
    return cv2.erode(values, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=np.inf)


def edge_band(gt: np.ndarray, *, radius: int = BAND_RADIUS, edge_threshold: float = EDGE_THRESHOLD_PX,
              valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: valid ground-truth pixels within `radius` px (Chebyshev) of a depth edge."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    edges = depth_edges(gt, threshold=edge_threshold, valid=valid).astype(np.uint8)
    band = _window_extreme(edges, radius, "max").astype(bool) if radius else edges.astype(bool)
    return band & valid_mask(gt, valid=valid)


def bleeding_map(pred: np.ndarray, gt: np.ndarray, *, radius: int = BAND_RADIUS,
                 edge_threshold: float = EDGE_THRESHOLD_PX, tolerance: float = TOLERANCE_PX,
                 valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(band, flying): the evaluated edge band (with a valid prediction) and its flying pixels, both (H, W) bool."""
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    p, g, mask = _check(pred, gt, valid)
    band = edge_band(g, radius=radius, edge_threshold=edge_threshold, valid=valid) & mask
    ok = valid_mask(g, valid=valid)
    # Invalid gt must never win the max / min: give it the neutral value of each filter.
    window = radius + 1
    foreground = _window_extreme(np.where(ok, g, -np.inf).astype(np.float32), window, "max")
    background = _window_extreme(np.where(ok, g, np.inf).astype(np.float32), window, "min")
    with np.errstate(invalid="ignore"):
        distance = np.minimum(np.minimum(np.abs(p - foreground), np.abs(p - background)), np.abs(p - g))
        flying = band & (distance > tolerance)
    return band, flying


def flying_map(pred: np.ndarray, gt: np.ndarray, *, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(band, flying) (H, W) bool of the flying rate: `bleeding_map` around jumps over FLYING_EDGE_PX."""
    return bleeding_map(pred, gt, edge_threshold=FLYING_EDGE_PX, valid=valid)


def resize_disparity(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Disparity (h, w) -> (H, W) = `shape`, values multiplied by W / w (disparity is horizontal).

    Nearest-neighbour: bilinear resampling would itself blend foreground and background at every edge and
    create the flying pixels the bleeding rate counts. NaN (invalid) stays NaN.
    """
    p = _as_2d("pred", pred)
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"shape must be positive, got {shape}")
    if p.shape == (h, w):
        return p
    if p.size == 0:
        raise ValueError("cannot resize an empty prediction")
    return cv2.resize(p, (w, h), interpolation=cv2.INTER_NEAREST_EXACT) * np.float32(w / p.shape[1])


def compute_metrics(pred: np.ndarray, gt: np.ndarray, *, valid: np.ndarray | None = None,
                    edge_threshold: float = EDGE_THRESHOLD_PX, see_radius: int = SEE_RADIUS,
                    band_radius: int = BAND_RADIUS, tolerance: float = TOLERANCE_PX) -> dict[str, float]:
    """One frame's METRIC_KEYS (rates in %) and pixel counts.

    Counts: `n_valid` (pixels with both valid), `n_gt` (valid ground truth), `n_edges` (edge pixels used by
    SEE), `n_band` (band pixels used by the bleeding rate), `n_flying`, `n_fly_band` and `n_fly` (the
    flying rate's band and flying pixels), `n_pixels`.
    """
    p, g, mask = _check(pred, gt, valid)
    err = np.abs(p[mask] - g[mask])
    n = err.size
    out: dict[str, float] = {"epe": _mean(err)}
    for t in BAD_THRESHOLDS:
        out[f"bad{t:g}"] = 100.0 * float(np.count_nonzero(err > t)) / n if n else math.nan
    edges = depth_edges(g, threshold=edge_threshold, valid=valid) & mask
    n_edges = int(np.count_nonzero(edges))
    out["see"] = _mean(soft_edge_error_map(p, g, radius=see_radius, valid=valid)[edges]) if n_edges else math.nan
    band, flying = bleeding_map(p, g, radius=band_radius, edge_threshold=edge_threshold, tolerance=tolerance,
                                valid=valid)
    n_band, n_flying = int(np.count_nonzero(band)), int(np.count_nonzero(flying))
    out["bleeding"] = 100.0 * n_flying / n_band if n_band else math.nan
    fly_band, fly = flying_map(p, g, valid=valid)
    n_fly_band, n_fly = int(np.count_nonzero(fly_band)), int(np.count_nonzero(fly))
    out["flying"] = 100.0 * n_fly / n_fly_band if n_fly_band else math.nan
    n_gt = int(np.count_nonzero(valid_mask(g, valid=valid)))
    out["density"] = 100.0 * n / n_gt if n_gt else math.nan
    out.update(n_valid=n, n_gt=n_gt, n_edges=n_edges, n_band=n_band, n_flying=n_flying, n_fly_band=n_fly_band,
               n_fly=n_fly, n_pixels=int(g.size))
    return out


def pool(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """METRIC_KEYS of `compute_metrics` rows pooled over their pixels (every pixel weighs the same, whatever its
    frame): EPE and bad-x over valid pixels, SEE over edge pixels, the rates over their bands; NaN where the
    rows hold no such pixel."""
    def ratio(num: float, den: float) -> float:
        return num / den if den else math.nan

    def total(key: str) -> float:
        return sum(r[key] for r in rows)

    def weighted(key: str, weight: str) -> float:
        return ratio(sum(r[key] * r[weight] for r in rows if r[weight]), total(weight))

    out = {k: weighted(k, "n_valid") for k in ("epe", "bad1", "bad2", "bad3")}
    out["see"] = weighted("see", "n_edges")
    out["bleeding"] = 100.0 * ratio(total("n_flying"), total("n_band"))
    out["flying"] = 100.0 * ratio(total("n_fly"), total("n_fly_band"))
    out["density"] = 100.0 * ratio(total("n_valid"), total("n_gt"))
    return out
