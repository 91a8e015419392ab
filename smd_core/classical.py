"""The classical matchers: OpenCV semi-global matching (the guided backbone's input), its hole filling,
OpenCV block matching as `stereo_image_proc` runs it by default, and the guided backbone's guide channels
(NumPy, so that a runtime without torch computes the same inputs).

One implementation of each serves the guided backbone, `smd eval --baseline bm|sgbm|sgbm_fill` and the
demo's comparison panels, so every comparison uses the same matcher with the same parameters.
Disparity is in input pixels, float32 (H, W); holes (pixels a matcher rejects) are NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np

from smd_core.threads import pool

T = TypeVar("T")

MODES = {"sgbm": cv2.STEREO_SGBM_MODE_SGBM, "hh": cv2.STEREO_SGBM_MODE_HH,
         "3way": cv2.STEREO_SGBM_MODE_SGBM_3WAY, "hh4": cv2.STEREO_SGBM_MODE_HH4}


def _check_odd(name: str, value: int, least: int) -> None:
    if value < least or value % 2 == 0:
        raise ValueError(f"{name} must be odd and >= {least}, got {value}")


def _check_num_disparities(matcher: str, value: int) -> None:
    if value < 0 or value % 16:
        raise ValueError(f"{matcher} num_disparities must be 0 (from max_disp) or a multiple of 16, got {value}")


@dataclasses.dataclass
class SGBMConfig:
    """Parameters of `cv2.StereoSGBM` (names as in OpenCV and stereo_image_proc).

    `num_disparities` 0 means "from the model's max_disp" (rounded up to a multiple of 16); P1/P2 0 mean
    OpenCV's recommended 8 * cn * block^2 and 32 * cn * block^2 for a 1-channel (gray) input.
    `pad_left`: pad both images on the left by num_disparities columns so SGBM also matches the leftmost
    columns (OpenCV leaves them invalid); what it finds there is as good as the image allows.
    """

    mode: str = "3way"
    block_size: int = 5
    num_disparities: int = 0
    min_disparity: int = 0
    p1: int = 0
    p2: int = 0
    uniqueness_ratio: int = 10
    disp12_max_diff: int = 1
    pre_filter_cap: int = 31
    speckle_window_size: int = 100
    speckle_range: int = 2
    pad_left: bool = True

    def __post_init__(self) -> None:
        self.mode = str(self.mode).lower()
        if self.mode not in MODES:
            raise ValueError(f"sgbm mode must be one of {sorted(MODES)}, got {self.mode!r}")
        _check_odd("sgbm block_size", self.block_size, 1)
        _check_num_disparities("sgbm", self.num_disparities)
        for name in ("p1", "p2", "uniqueness_ratio", "disp12_max_diff", "pre_filter_cap",
                     "speckle_window_size", "speckle_range", "min_disparity"):
            if getattr(self, name) < 0:
                raise ValueError(f"sgbm {name} must be >= 0, got {getattr(self, name)}")
        if self.p2 and self.p1 and self.p2 <= self.p1:
            raise ValueError(f"sgbm needs p2 > p1, got p1={self.p1}, p2={self.p2}")

    def disparities_for(self, max_disp: int) -> int:
        """numDisparities used for a model whose range is [0, max_disp]."""
        return self.num_disparities or int(-(-int(max_disp) // 16) * 16)


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")


def _pixels(raw: np.ndarray, min_disparity: int) -> np.ndarray:
    """OpenCV's fixed-point disparity (16 per px) as float32 px; its rejected pixels, (min - 1) * 16, NaN."""
    out = raw.astype(np.float32) / 16.0
    out[raw < min_disparity * 16] = np.nan
    return out


def _gray_pair(left: np.ndarray, right: np.ndarray, matcher: str) -> tuple[np.ndarray, np.ndarray]:
    """A matcher's gray inputs: left and right (H, W, 3) BGR or (H, W) gray uint8 of the same size."""
    if left.shape != right.shape:
        raise ValueError(f"left and right differ in size: {left.shape} vs {right.shape}")
    if left.dtype != np.uint8 or right.dtype != np.uint8:
        raise ValueError(f"{matcher} needs uint8 images, got {left.dtype} and {right.dtype}")
    return _to_gray(left), _to_gray(right)


def make_matcher(config: SGBMConfig, num_disparities: int) -> cv2.StereoSGBM:
    """The cv2 matcher for `config` (gray input)."""
    area = config.block_size * config.block_size
    return cv2.StereoSGBM_create(minDisparity=config.min_disparity, numDisparities=num_disparities,
                                 blockSize=config.block_size, P1=config.p1 or 8 * area, P2=config.p2 or 32 * area,
                                 disp12MaxDiff=config.disp12_max_diff, preFilterCap=config.pre_filter_cap,
                                 uniquenessRatio=config.uniqueness_ratio, speckleWindowSize=config.speckle_window_size,
                                 speckleRange=config.speckle_range, mode=MODES[config.mode])


@dataclasses.dataclass
class BMConfig:
    """Parameters of `cv2.StereoBM` as `stereo_image_proc`'s disparity node sets them by default (`stereo_algorithm`
    0; texture threshold and pre-filter type stay OpenCV's, as that node never changes them). `num_disparities` 0
    means "from the scored range" (the node's 64 is a per-camera setting), rounded up to a multiple of 16. No left
    padding: the node leaves the leftmost num_disparities columns empty."""

    block_size: int = 15
    num_disparities: int = 0
    min_disparity: int = 0
    pre_filter_size: int = 9
    pre_filter_cap: int = 31
    texture_threshold: int = 10
    uniqueness_ratio: int = 15
    speckle_window_size: int = 100
    speckle_range: int = 4

    def __post_init__(self) -> None:
        _check_odd("bm block_size", self.block_size, 5)
        _check_odd("bm pre_filter_size", self.pre_filter_size, 5)
        _check_num_disparities("bm", self.num_disparities)
        if not 1 <= self.pre_filter_cap <= 63:
            raise ValueError(f"bm pre_filter_cap must be in 1..63, got {self.pre_filter_cap}")

    disparities_for = SGBMConfig.disparities_for


def bm_disparity(left: np.ndarray, right: np.ndarray, max_disp: float, config: BMConfig | None = None) -> np.ndarray:
    """Block-matching disparity (H, W) float32 px, NaN where StereoBM rejects a pixel (`stereo_image_proc`'s
    default algorithm)."""
    config = config or BMConfig()
    gl, gr = _gray_pair(left, right, "bm")
    d = config.disparities_for(int(np.ceil(max_disp)))
    if d + config.min_disparity >= gl.shape[1]:
        # No column has its whole search range inside the image (StereoBM does not pad): no match anywhere.
        # OpenCV returns uninitialised memory here rather than its invalid value.
        return np.full(gl.shape, np.nan, np.float32)
    matcher = cv2.StereoBM_create(numDisparities=d, blockSize=config.block_size)
    matcher.setMinDisparity(config.min_disparity)
    matcher.setPreFilterSize(config.pre_filter_size)
    matcher.setPreFilterCap(config.pre_filter_cap)
    matcher.setTextureThreshold(config.texture_threshold)
    matcher.setUniquenessRatio(config.uniqueness_ratio)
    matcher.setSpeckleWindowSize(config.speckle_window_size)
    matcher.setSpeckleRange(config.speckle_range)
    return _pixels(matcher.compute(gl, gr), config.min_disparity)


def sgbm_disparity(left: np.ndarray, right: np.ndarray, config: SGBMConfig, max_disp: int) -> np.ndarray:
    """SGBM disparity (H, W) float32 in px of the inputs; NaN where SGBM found no valid match (uniqueness,
    left-right check, speckle filter, no match in range)."""
    gl, gr = _gray_pair(left, right, "sgbm")
    d = config.disparities_for(max_disp)
    pad = d + config.min_disparity if config.pad_left else 0
    if pad:
        gl = cv2.copyMakeBorder(gl, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
        gr = cv2.copyMakeBorder(gr, 0, 0, pad, 0, cv2.BORDER_REPLICATE)
    return _pixels(make_matcher(config, d).compute(gl, gr)[:, pad:], config.min_disparity)


def fill_background(disparity: np.ndarray) -> np.ndarray:
    """Row-wise background fill of NaN holes: each hole takes the smaller (farther) of the valid values
    that bound it in its row (the one bound at a row's end); rows with no valid pixel become 0.

    This is the usual hole filling for block matchers: occlusion holes sit beside foreground edges and
    belong to the background. disparity: (H, W) float32 with NaN holes -> (H, W) float32, no NaN.
    """
    if disparity.ndim != 2:
        raise ValueError(f"disparity must be (H, W), got shape {disparity.shape}")
    d = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(d)
    h, w = d.shape
    cols = np.arange(w)[None, :]
    # Index of the nearest valid pixel on the left / right of every pixel (-1 / w when there is none).
    left_idx = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right_idx = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    big = np.float32(np.inf)
    from_left = np.where(left_idx >= 0, d[rows, np.clip(left_idx, 0, w - 1)], big)
    from_right = np.where(right_idx < w, d[rows, np.clip(right_idx, 0, w - 1)], big)
    filled = np.where(valid, d, np.minimum(from_left, from_right))
    return np.where(np.isfinite(filled), filled, 0.0).astype(np.float32)


# (rows, columns) of the windows whose max / min disparity are the foreground / background candidates: a
# small one for the edges block matching fattens, a wide one for see-through structures it fills entirely.
CANDIDATE_WINDOWS = ((5, 9), (11, 41))
# Disparities among the guide channels: filled SGBM, then the foreground and background of each window.
GUIDE_DISPARITIES = 1 + 2 * len(CANDIDATE_WINDOWS)
# Local image normalisation window (px) of the matching costs: it cancels gain and offset differences
# between the two cameras (exposure), which raw intensity differences do not.
_NORM_WINDOW = 7
_COST_WINDOW = 3
_GRAY = np.array([[0.114, 0.587, 0.299]], np.float32)  # BGR -> luma weights (as OpenCV's)


def guide_channel_count(cost_offsets: int = 0) -> int:
    """Channels of `guide_channels`: the D disparities, validity, D photometric errors, and with
    `cost_offsets` k > 0 the 2 (2k + 1) matching costs around the two anchors."""
    costs = 2 * (2 * cost_offsets + 1) if cost_offsets else 0
    return 2 * GUIDE_DISPARITIES + 1 + costs


def normalised(gray: np.ndarray) -> np.ndarray:
    """(H, W) float32 gray -> (gray - local mean) / local std over _NORM_WINDOW, clipped to +-3 (a soft
    census: gain and offset differences between the cameras cancel)."""
    size = (_NORM_WINDOW, _NORM_WINDOW)
    mean = cv2.blur(gray, size)
    var = np.maximum(cv2.blur(gray * gray, size) - mean * mean, 0.0)
    return np.clip((gray - mean) / (np.sqrt(var) + 0.02), -3.0, 3.0)


def matching_costs(nl: np.ndarray, nr: np.ndarray, anchor: np.ndarray, offsets: int,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Matching cost of `anchor` + d for d in -offsets..offsets px: (2 offsets + 1, H, W) float32.

    nl, nr: (H, W) `normalised` left and right gray; anchor (H, W) px. Cost: mean over a 3x3 window of
    |nl - nr at x - anchor - d| (bilinear, border replicated), about 0..3. A window this small keeps
    evidence for either side of a depth edge where SGBM's block blends them, so the network can move a
    smeared anchor by a few pixels on the images' own evidence. Written into `out` when given.
    """
    xs = np.arange(anchor.shape[1], dtype=np.float32)[None, :] - anchor
    out = np.empty((2 * offsets + 1, *anchor.shape), np.float32) if out is None else out
    diff = np.empty_like(nl)
    for i, d in enumerate(range(-offsets, offsets + 1)):
        np.subtract(nl, _sample_rows(nr, xs - np.float32(d)), out=diff)
        cv2.blur(np.abs(diff, out=diff), (_COST_WINDOW, _COST_WINDOW), dst=out[i])
    return out


def alternative_candidate(filled: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """The second hypothesis at every pixel: whichever of the foreground / background candidate lies farther
    from SGBM's filled disparity (where SGBM fattened a foreground edge, the background; where it missed a
    thin foreground structure, the foreground). Any same-shape arrays (px)."""
    return np.where(np.abs(bg - filled) > np.abs(fg - filled), bg, fg)


def guide_channels(left: np.ndarray, right: np.ndarray, config: SGBMConfig, max_disp: int,
                   cost_offsets: int = 0) -> np.ndarray:
    """One (H, W, 3) uint8 BGR pair -> (`guide_channel_count(cost_offsets)`, H, W) float32, all in px or raw:

    the D = GUIDE_DISPARITIES disparities (filled SGBM, then the foreground and background candidate of
    each `CANDIDATE_WINDOWS` window), validity, each disparity's photometric error |left - right warped by
    it|, and with `cost_offsets` k > 0 the `matching_costs` around the filled disparity and around the
    alternative (the wide window's candidate farther from it).

    After SGBM, half of the work runs on a helper thread when OpenCV may use more than one (`cv2.setNumThreads`;
    the node sets it to its `threads`): every channel is written into its own slice, so the result is the same.
    """
    d = sgbm_disparity(left, right, config, max_disp)
    # Every channel is written into its slice of one array: no concatenation copy of the whole stack.
    n = GUIDE_DISPARITIES
    out = np.empty((guide_channel_count(cost_offsets), *d.shape), np.float32)
    grays = _start(lambda: _grays(left, right, normalise=bool(cost_offsets)))
    disparities = out[:n]
    disparities[0] = fill_background(d)
    filled = disparities[0]
    for i, window in enumerate(CANDIDATE_WINDOWS):
        kernel = np.ones(window, np.uint8)
        # Outside the image the window is ignored (OpenCV's default morphology border), like a -inf padding.
        cv2.dilate(filled, kernel, dst=disparities[1 + 2 * i])
        cv2.erode(filled, kernel, dst=disparities[2 + 2 * i])
    np.isfinite(d, out=out[n])
    gl, gr, nl, nr = grays()
    k = 2 * cost_offsets + 1
    costs = out[2 * n + 1 :]

    def photometric(indices: range) -> None:
        for i in indices:
            photometric_error(gl, gr, disparities[i], out=out[n + 1 + i])

    def helper_part() -> None:
        photometric(range(n // 2))
        if cost_offsets:
            matching_costs(nl, nr, filled, cost_offsets, out=costs[:k])

    helper = _start(helper_part)
    photometric(range(n // 2, n))
    if cost_offsets:
        alt = alternative_candidate(filled, disparities[-2], disparities[-1])
        matching_costs(nl, nr, alt, cost_offsets, out=costs[k:])
    helper()
    return out


def _grays(left: np.ndarray, right: np.ndarray, *, normalise: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gray 0..1 of a BGR pair and, with `normalise`, their `normalised` versions."""
    gl = cv2.transform(left.astype(np.float32), _GRAY) / 255.0
    gr = cv2.transform(right.astype(np.float32), _GRAY) / 255.0
    return (gl, gr, normalised(gl), normalised(gr)) if normalise else (gl, gr, None, None)


def _start(work: Callable[[], T]) -> Callable[[], T]:
    """Start `work` on the guide's helper thread and return a function that waits for its result; where OpenCV is
    held to one thread, `work` runs when its result is asked for."""
    if cv2.getNumThreads() < 2:
        return work
    return pool("guide", 1).submit(work).result


def photometric_error(left: np.ndarray, right: np.ndarray, disparity: np.ndarray,
                      out: np.ndarray | None = None) -> np.ndarray:
    """|left - right sampled at x - disparity|; all (H, W) float32 (written into `out` when given)."""
    out = np.subtract(left, _sample_rows(right, np.arange(disparity.shape[1], dtype=np.float32)[None, :] - disparity),
                      out=out)
    return np.abs(out, out=out)


def _sample_rows(image: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """`image` (H, W) sampled at columns xs (H, W) float32 of each pixel's own row (bilinear, border replicated)."""
    ys = np.broadcast_to(np.arange(xs.shape[0], dtype=np.float32)[:, None], xs.shape)
    return cv2.remap(image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
