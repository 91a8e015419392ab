"""From full-resolution stereo frames to SMD-Nets training samples (lib/data/Loader.py semantics).

`make_training_sample(frame, cfg, augment, rng)`:
1. a random crop of `cfg.crop_size` at GROUND-TRUTH resolution (the same box in both views; frames smaller
   than the crop are padded with black and invalid disparity);
2. images resized to the network input (crop / aspect_ratio, cv2.INTER_AREA); the labels stay at full
   resolution (SMD-Nets supervises a continuous function at GT resolution from a smaller input) but in
   network-input pixels (GT / aspect_ratio);
3. augmentation (`augment.augment_pair`);
4. exactly `num_points` query points (so batches stack) at sub-pixel positions of the crop grid, each its
   pixel centre plus a uniform offset in [-0.5, 0.5) (clipped to the grid) and labelled with that pixel's
   disparity; invalid pixels are never drawn. "random": uniform over valid pixels; "dda"
   (depth-discontinuity aware): half of the points (or all edge pixels, if fewer) on `dilated_depth_edges`.

A sample (all tensors, so `torch.utils.data.default_collate` works): "left", "right" float32 (3, h, w) BGR
0..255 (crop / aspect_ratio); "points" float32 (2, N) (x, y) in the crop grid; "labels" float32 (N,) (all 0,
which the loss ignores, when the crop held no valid pixel); "output_size" int64 [crop_h, crop_w]; "disp"
(with `dense_labels`) float32 (crop_h, crop_w) labels, 0 = invalid; "name".

Randomness comes from the NumPy Generator passed in; `TrainingDataset` derives it from torch's global RNG,
which DataLoader seeds per worker (NumPy's global RNG is not reseeded in workers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from smd_core.data.augment import AugmentConfig, augment_pair
from smd_core.data.io import as_bgr_u8, resize_image, sanitize_disparity
from smd_core.data.sample_config import SAMPLING_STRATEGIES, SampleConfig
from smd_core.metrics import depth_edges


def random_crop_box(height: int, width: int, crop_h: int, crop_w: int, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left (y, x) of a uniformly random crop; 0 along an axis where the frame is not larger."""
    y = int(rng.integers(0, height - crop_h + 1)) if height > crop_h else 0
    x = int(rng.integers(0, width - crop_w + 1)) if width > crop_w else 0
    return y, x


def crop(array: np.ndarray, y: int, x: int, h: int, w: int, fill: float = 0) -> np.ndarray:
    """array[y:y+h, x:x+w] as a new contiguous array, padded with `fill` where the box leaves the array. Works on memory
    maps without reading outside the box."""
    H, W = array.shape[:2]
    out = np.full((h, w) + array.shape[2:], fill, dtype=array.dtype)
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + h, H), min(x + w, W)
    if y1 > y0 and x1 > x0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = array[y0:y1, x0:x1]
    return out


def dilated_depth_edges(disp: np.ndarray, threshold: float = 1.0, dilation: int = 10) -> np.ndarray:
    """bool (H, W): `metrics.depth_edges` of a label grid (0 = invalid), dilated by a `dilation` x `dilation`
    square as the reference's `get_boundaries` (0: no dilation). Unlike the reference, a jump into an invalid
    pixel is no edge: the rim of every hole in sparse labels would be one."""
    d = np.asarray(disp, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"disparity must be (H, W), got {d.shape}")
    edges = depth_edges(d, threshold=threshold)
    if dilation > 0 and edges.any():
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((dilation, dilation), np.uint8)) > 0
    return edges


def _choose(candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k entries of `candidates`: without replacement while possible, then padded by resampling."""
    n = candidates.size
    if k <= 0 or n == 0:
        return candidates[:0]
    if n >= k:
        return candidates[rng.choice(n, size=k, replace=False)]
    return np.concatenate([candidates, candidates[rng.integers(0, n, size=k - n)]])


def sample_points(labels: np.ndarray, num_points: int, rng: np.random.Generator, *, strategy: str = "random",
                  edge_threshold: float = 1.0, dilation: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(points float32 (2, num_points) (x, y), labels float32 (num_points,)) on a label grid (H, W), 0 = invalid
    (module docstring). With no valid pixel the points are uniform and all labels 0."""
    grid = np.asarray(labels, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"labels must be (H, W), got {grid.shape}")
    if num_points <= 0:
        raise ValueError(f"num_points must be > 0, got {num_points}")
    strategy = strategy.lower()
    if strategy not in SAMPLING_STRATEGIES:
        raise ValueError(f"sampling strategy must be one of {SAMPLING_STRATEGIES}, got {strategy!r}")
    H, W = grid.shape
    flat = grid.reshape(-1)
    valid = flat > 0
    if not valid.any():
        pts = np.stack([rng.uniform(0, W - 1, num_points), rng.uniform(0, H - 1, num_points)]).astype(np.float32)
        return pts, np.zeros(num_points, np.float32)
    if strategy == "random":
        idx = _choose(np.flatnonzero(valid), num_points, rng)
    else:
        edges = dilated_depth_edges(grid, edge_threshold, dilation).reshape(-1)
        on_edge = np.flatnonzero(valid & edges)
        off_edge = np.flatnonzero(valid & ~edges)
        n_edge = num_points if off_edge.size == 0 else min(num_points // 2, on_edge.size)
        idx = np.concatenate([_choose(on_edge, n_edge, rng), _choose(off_edge, num_points - n_edge, rng)])
    iy, ix = np.divmod(idx, W)
    # Offsets in [-0.5, 0.5) keep the chosen pixel the nearest one; clipping keeps points on the grid.
    x = np.clip(ix + rng.random(idx.size) - 0.5, 0.0, W - 1.0)
    y = np.clip(iy + rng.random(idx.size) - 0.5, 0.0, H - 1.0)
    return np.stack([x, y]).astype(np.float32), flat[idx].astype(np.float32)


def make_training_sample(frame: Mapping[str, Any], cfg: SampleConfig, augment: AugmentConfig | None,
                         rng: np.random.Generator) -> dict[str, Any]:
    """One training sample from a frame (module docstring); memory maps and unsanitised disparities (inf / NaN /
    negative = invalid) are read and cleaned only in the crop."""
    left_full, right_full = frame["left"], frame["right"]
    disp_full = frame["disp_left"]
    disp_right_full = frame.get("disp_right")
    H, W = disp_full.shape[:2]
    for key in ("left", "right"):
        if frame[key].shape[:2] != (H, W):
            raise ValueError(f"{frame.get('name', 'frame')}: {key} image {frame[key].shape[:2]} and disparity "
                             f"{(H, W)} must have the same size")
    if disp_right_full is not None and disp_right_full.shape[:2] != (H, W):
        raise ValueError(f"disp_right {disp_right_full.shape[:2]} must match disp_left {(H, W)}")
    ch, cw = cfg.crop_size
    ar = float(cfg.aspect_ratio)
    for _ in range(cfg.crop_tries):
        y, x = random_crop_box(H, W, ch, cw, rng)
        disp = sanitize_disparity(crop(disp_full, y, x, ch, cw))
        if (disp > 0).any():
            break
    disp_right = None if disp_right_full is None else sanitize_disparity(crop(disp_right_full, y, x, ch, cw))
    net_hw = cfg.network_size
    left = resize_image(as_bgr_u8(crop(left_full, y, x, ch, cw)), net_hw).astype(np.float32)
    right = resize_image(as_bgr_u8(crop(right_full, y, x, ch, cw)), net_hw).astype(np.float32)
    # Disparity in network-input pixels: the network sees images 1 / aspect_ratio as wide.
    labels_grid = disp / np.float32(ar) if ar != 1.0 else disp
    labels_right = None if disp_right is None else (disp_right / np.float32(ar) if ar != 1.0 else disp_right)
    if augment is not None:
        left, right, labels_grid, labels_right = augment_pair(left, right, labels_grid, labels_right, rng, augment)
    points, labels = sample_points(labels_grid, int(cfg.num_points), rng, strategy=cfg.strategy,
                                   edge_threshold=cfg.edge_threshold, dilation=cfg.dilation)
    sample: dict[str, Any] = {"left": torch.from_numpy(np.ascontiguousarray(left.transpose(2, 0, 1))),
                              "right": torch.from_numpy(np.ascontiguousarray(right.transpose(2, 0, 1))),
                              "points": torch.from_numpy(points), "labels": torch.from_numpy(labels),
                              "output_size": torch.tensor([ch, cw], dtype=torch.int64),
                              "name": str(frame.get("name", ""))}
    if cfg.dense_labels:
        sample["disp"] = torch.from_numpy(np.ascontiguousarray(labels_grid, dtype=np.float32))
    return sample


class TrainingDataset(Dataset):
    """Training samples from a frame source (`__len__` and `frame(index, lazy=True)`): item i is
    `make_training_sample` of frame i with a Generator seeded from torch's RNG, deterministic under
    `torch.manual_seed` (and DataLoader's per-worker seeds), different at every call otherwise."""

    def __init__(self, frames: Any, sample_config: SampleConfig, augment_config: AugmentConfig | None = None) -> None:
        if len(frames) == 0:
            raise ValueError(f"{type(frames).__name__} holds no frames")
        self.frames = frames
        self.sample_config = sample_config
        self.augment_config = augment_config

    def __len__(self) -> int:
        return len(self.frames)

    def sample(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        return make_training_sample(self.frames.frame(index, lazy=True), self.sample_config, self.augment_config, rng)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.sample(index, np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item())))
