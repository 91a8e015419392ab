"""Pseudo-labels for recordings without ground truth: confident, left-right consistent model predictions.

A pixel keeps the model's disparity only if (1) the model is sure of it (uncertainty below `max_uncertainty` px;
`smd bag2dataset` passes the model's own `Deployment.pseudo_max_uncertainty` unless told otherwise) and (2) the
right view, predicted by the same model on the mirrored pair, maps it back to itself within `lr_tolerance` px.
Occlusions and mismatches fail (2); blurry depth edges and textureless regions fail (1)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class PseudoLabel:
    """disparity: (H, W) float32 px, 0 where rejected; confident: (H, W) bool mask of kept pixels;
    uncertainty: (H, W) selected-mode std (px); lr_error: (H, W) |d_L - d_R(x - d_L)| (px, inf outside)."""

    disparity: np.ndarray
    confident: np.ndarray
    uncertainty: np.ndarray
    lr_error: np.ndarray


def left_right_error(disp_left: np.ndarray, disp_right: np.ndarray) -> np.ndarray:
    """|d_L(x) - d_R(x - d_L(x))| per left pixel, (H, W) float32; inf where x - d_L leaves the image.

    disp_right(x) is the disparity of right-image pixel x (its match in the left image is x + d_R), read
    with linear interpolation between the two neighbouring right pixels.
    """
    if disp_left.shape != disp_right.shape or disp_left.ndim != 2:
        raise ValueError(f"disparity maps must be (H, W) of equal size, got {disp_left.shape} and {disp_right.shape}")
    height, width = disp_left.shape
    xs = np.arange(width, dtype=np.float32)[None, :] - disp_left
    inside = (xs >= 0) & (xs <= width - 1) & np.isfinite(xs)
    xs = np.where(inside, xs, 0.0)
    x0 = np.floor(xs).astype(np.int64)
    w1, rows = xs - x0, np.arange(height)[:, None]
    sampled = (1.0 - w1) * disp_right[rows, x0] + w1 * disp_right[rows, np.minimum(x0 + 1, width - 1)]
    error = np.abs(disp_left - sampled).astype(np.float32)
    error[~inside] = np.inf
    return error


def pseudo_label(predictor: Any, left_bgr: np.ndarray, right_bgr: np.ndarray, *, max_uncertainty: float,
                 lr_tolerance: float) -> PseudoLabel:
    """Run `predictor` (`predict(left, right)` -> (H, W) float32 `disparity` and `uncertainty`, px) on the
    (H, W, 3) BGR pair and on the mirrored pair, and keep confident, consistent pixels."""
    if max_uncertainty <= 0 or lr_tolerance <= 0:
        raise ValueError(f"max_uncertainty and lr_tolerance must be positive, got {max_uncertainty} and {lr_tolerance}")
    pred = predictor.predict(left_bgr, right_bgr)
    disp_left, unc = np.asarray(pred.disparity, np.float32), np.asarray(pred.uncertainty, np.float32)
    # The right view: a left-reference network sees the mirrored world, where the right image is the left one.
    mirrored = predictor.predict(np.ascontiguousarray(right_bgr[:, ::-1]), np.ascontiguousarray(left_bgr[:, ::-1]))
    disp_right = np.ascontiguousarray(mirrored.disparity[:, ::-1])
    lr_error = left_right_error(disp_left, disp_right)
    confident = (disp_left > 0) & (unc < max_uncertainty) & (lr_error <= lr_tolerance)
    return PseudoLabel(np.where(confident, disp_left, 0.0).astype(np.float32), confident, unc, lr_error)
