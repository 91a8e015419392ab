"""Training augmentation for stereo pairs, as in SMD-Nets (lib/data/augmentation.py), with fixes.

- Colour (probability `color_prob`): one gamma, one brightness factor and one per-channel factor, the same
  for both views, then clipped to 0..255. Unlike the reference (which raised raw 0..255 values to the power
  gamma, saturating almost everything for gamma > 1), gamma acts on intensities in 0..1. `asymmetric` > 0
  adds independent per-view jitter of that relative size (two cameras with slightly different responses).
- Left-right flip with view swap: mirroring a rectified pair turns the right view into a valid left view
  (new_left = flip(right), new_disp_left = flip(disp_right), ...); skipped without the right view's disparity.
- Up-down flip: both views and disparities flipped vertically (rows stay epipolar).

Images are float32 (h, w, 3) BGR 0..255, disparities (H, W) float32 at any other resolution covering the same
field of view (flips act on each array as a whole).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class AugmentConfig:
    """Augmentation switches and ranges (defaults: SMD-Nets lib/options.py); `DataConfig.augment` in YAML."""

    enabled: bool = True  # False: unaugmented samples, whatever the other settings
    color: bool = True
    color_prob: float = 0.5
    gamma: tuple[float, float] = (0.8, 1.1)
    brightness: tuple[float, float] = (0.5, 1.5)
    channel: tuple[float, float] = (0.8, 1.2)
    asymmetric: float = 0.0
    flip_lr: bool = True
    flip_ud: bool = True
    flip_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("gamma", "brightness", "channel"):
            lo_hi = tuple(float(v) for v in getattr(self, name))
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"augment {name} must be (low, high) with 0 < low <= high, got {lo_hi}")
            setattr(self, name, lo_hi)
        for name in ("color_prob", "flip_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"augment {name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.asymmetric < 1.0:
            raise ValueError(f"augment asymmetric must be in [0, 1), got {self.asymmetric}")


def color_augment(left: np.ndarray, right: np.ndarray, rng: np.random.Generator,
                  cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Random gamma / brightness / per-channel gain for a pair of float32 (h, w, 3) 0..255 images."""
    if not cfg.color or rng.random() >= cfg.color_prob:
        return left, right
    gamma = rng.uniform(*cfg.gamma)
    brightness = rng.uniform(*cfg.brightness)
    channel = rng.uniform(*cfg.channel, size=3)
    out = []
    for img in (left, right):
        gain = brightness * channel
        if cfg.asymmetric > 0:
            gain = gain * (1.0 + rng.uniform(-cfg.asymmetric, cfg.asymmetric)) * (
                1.0 + rng.uniform(-cfg.asymmetric, cfg.asymmetric, size=3))
        x = np.power(np.clip(img, 0.0, 255.0) / np.float32(255.0), np.float32(gamma))
        out.append(np.clip(x * (255.0 * gain).astype(np.float32), 0.0, 255.0).astype(np.float32))
    return out[0], out[1]


def flip_lr_swap(left: np.ndarray, right: np.ndarray, disp_left: np.ndarray,
                 disp_right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mirror a rectified pair and swap the views: (flip(right), flip(left), flip(disp_right), flip(disp_left))."""
    if disp_right is None:
        raise ValueError("a left-right flip needs the right view's disparity (disp_right is None)")
    return (np.ascontiguousarray(right[:, ::-1]), np.ascontiguousarray(left[:, ::-1]),
            np.ascontiguousarray(disp_right[:, ::-1]), np.ascontiguousarray(disp_left[:, ::-1]))


def flip_ud(left: np.ndarray, right: np.ndarray, disp_left: np.ndarray,
            disp_right: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    return (np.ascontiguousarray(left[::-1]), np.ascontiguousarray(right[::-1]), np.ascontiguousarray(disp_left[::-1]),
            None if disp_right is None else np.ascontiguousarray(disp_right[::-1]))


def augment_pair(left: np.ndarray, right: np.ndarray, disp_left: np.ndarray, disp_right: np.ndarray | None,
                 rng: np.random.Generator,
                 cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Colour, then left-right flip with swap (only with `disp_right`), then up-down flip (reference order)."""
    if not cfg.enabled:
        return left, right, disp_left, disp_right
    left, right = color_augment(left, right, rng, cfg)
    if cfg.flip_lr and rng.random() < cfg.flip_prob and disp_right is not None:
        left, right, disp_left, disp_right = flip_lr_swap(left, right, disp_left, disp_right)
    if cfg.flip_ud and rng.random() < cfg.flip_prob:
        left, right, disp_left, disp_right = flip_ud(left, right, disp_left, disp_right)
    return left, right, disp_left, disp_right
