"""Data for SMD-Nets: datasets, training samples, augmentation and a procedural stereo generator.

The contract the training and evaluation code build on:

    cfg = DataConfig(kind="kitti2015", root="/data/kitti2015", crop_size=(256, 512), num_points=10000)
    train_set = build_dataset(cfg, train=True)    # training samples
    eval_set = build_dataset(cfg, train=False)    # full frames

`build_dataset(cfg, train=True)` items (all tensors, `default_collate` stacks them):
    "left", "right": float32 (3, h, w) BGR 0..255 network input, (h, w) = crop_size / aspect_ratio;
    "points": float32 (2, N) query points (x, y) in the GT crop grid (pixel centres at integers,
        0 <= x <= crop_w - 1, 0 <= y <= crop_h - 1), N = num_points exactly;
    "labels": float32 (N,) disparity at the nearest GT pixel in NETWORK-INPUT pixels (GT /
        aspect_ratio), > 0 (all 0 only if the crop held no valid pixel; the loss ignores 0);
    "output_size": int64 (2,) [crop_h, crop_w] (the grid `points` live in);
    "disp": float32 (crop_h, crop_w) the whole label grid (0 = invalid), only with dense_labels;
    "name": str.
  Randomness (crop, points, augmentation) comes from torch's global RNG (per-worker seeded by
  DataLoader; fixed by `torch.manual_seed`), so each call draws a new sample. Synthetic scenes are
  fixed per index (`render_scene((seed, index))`).

`build_dataset(cfg, train=False)` items are full frames at the dataset's native resolution:
    "left", "right": uint8 numpy (H, W, 3) BGR;
    "disp_left": float32 numpy (H, W) GT disparity in pixels of these images, 0 = invalid;
    "disp_right": same for the right view, when the dataset has it for every frame;
    "occlusion_left": bool (H, W), synthetic only;
    "name": str.
  To evaluate at the SMD-Nets operating point, feed the images downscaled by `aspect_ratio` and
  compare against the full-resolution GT with predicted disparities multiplied by `aspect_ratio`.

Kinds (`DataConfig.kind`) and what `root` / `split` mean:
    "synthetic": procedural scenes (`synthetic.render_scene`); no files; `num_samples` frames of
        `height` x `width`, disparities in [min_disparity, max_disparity], seeded by `seed`;
        `synthetic_options` passes further `render_scene` keywords.
    "list": `split` = list file `left right disp_left [disp_right]` (paths relative to the list
        file's folder, or to `root` if set); written by `smd synth` and `smd bag2dataset`.
    "kitti2015": `root` holds `training/` (or is it); `split` = "training" (default); `kitti_disparity`
        "occ" | "noc".
    "middlebury": `root` holds scene folders (im0.png, im1.png, disp0.pfm).
    "sceneflow": `root` holds frames_cleanpass/ + disparity/ trees; `split` = "TRAIN" / "TEST" / ""
        (a path component filter); `sceneflow_pass` "clean" | "final".
    "unreal4k": `root` holds 0000S/Image0|Image1|Disp0|Disp1; `split` = optional official split file
        (4 columns relative to `root`); images PNG or `.raw` (`raw_shape` if not 16:9).
    "unreal4k_quarter": same layout at 960x540; `disparity_scale` overrides the detected NPY scale.
`limit` > 0 keeps only the first `limit` frames (kinds other than synthetic).

Modules: `io` (PFM / KITTI PNG / raw / images), `datasets` (frame sources), `sampling` (crops, query
points, random / DDA strategies), `augment` (colour, flips), `synthetic` (generator, `smd synth`).
`smd bag2dataset`, which writes "list" datasets from rosbag2 recordings, is ROS-side: `smd_ros.bags`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from smd_core.data.augment import AugmentConfig
from smd_core.data.datasets import (
    FrameDataset,
    KITTI2015Dataset,
    ListDataset,
    MiddleburyDataset,
    SceneFlowDataset,
    UnrealStereo4KDataset,
    UnrealStereo4KQuarterDataset,
)
from smd_core.data.sampling import SAMPLING_STRATEGIES, SampleConfig, TrainingDataset
from smd_core.data.synthetic import SyntheticDataset, SyntheticFrame, render_scene, render_sequence

__all__ = [
    "DATASET_KINDS",
    "DataConfig",
    "build_dataset",
    "build_frames",
    "SyntheticFrame",
    "SyntheticDataset",
    "render_scene",
    "render_sequence",
    "TrainingDataset",
    "SampleConfig",
    "AugmentConfig",
]

DATASET_KINDS = ("synthetic", "list", "kitti2015", "middlebury", "sceneflow", "unreal4k", "unreal4k_quarter")


@dataclasses.dataclass
class DataConfig:
    """Which data, and how training samples are cut from it (see the module docstring)."""

    kind: str = "synthetic"
    root: str = ""
    # List file ("list"), official split file ("unreal4k*", optional), "training" ("kitti2015"),
    # a path component such as "TRAIN" ("sceneflow", optional).
    split: str = ""
    # Training crop (height, width) at ground-truth resolution.
    crop_size: tuple[int, int] = (256, 512)
    # GT resolution / network-input resolution (SMD-Nets trains on UnrealStereo4K with 4: 4K GT, 960 px input).
    aspect_ratio: float = 1.0
    num_points: int = 10000
    sampling: str = "dda"
    # DDA: depth edges are disparity jumps > edge_threshold (network px), dilated by a dilation x dilation square.
    edge_threshold: float = 1.0
    dilation: int = 10
    # Training samples also carry the dense label grid "disp" (crop_h, crop_w).
    dense_labels: bool = False
    # Augmentation (master switch, then each part); ranges as SMD-Nets.
    augment: bool = True
    color_augment: bool = True
    color_prob: float = 0.5
    gamma_range: tuple[float, float] = (0.8, 1.1)
    brightness_range: tuple[float, float] = (0.5, 1.5)
    channel_range: tuple[float, float] = (0.8, 1.2)
    asymmetric_color: float = 0.0
    flip_lr: bool = True
    flip_ud: bool = True
    # Synthetic data.
    height: int = 480
    width: int = 640
    max_disparity: float = 64.0
    min_disparity: float | None = None
    num_samples: int = 1000
    seed: int = 0
    photometric: bool = True
    synthetic_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Dataset specifics.
    sceneflow_pass: str = "clean"
    kitti_disparity: str = "occ"
    disparity_scale: float | None = None
    raw_shape: tuple[int, ...] = ()
    limit: int = 0

    def __post_init__(self) -> None:
        self.kind = str(self.kind).lower()
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"data kind must be one of {DATASET_KINDS}, got {self.kind!r}")
        self.sampling = str(self.sampling).lower()
        if self.sampling not in SAMPLING_STRATEGIES:
            raise ValueError(f"data sampling must be one of {SAMPLING_STRATEGIES}, got {self.sampling!r}")
        self.crop_size = tuple(int(v) for v in self.crop_size)  # type: ignore[assignment]
        if self.raw_shape and len(self.raw_shape) != 2:
            raise ValueError(f"raw_shape must be (height, width) or empty, got {self.raw_shape}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.kind != "synthetic" and self.kind != "list" and not self.root:
            raise ValueError(f"data kind {self.kind!r} needs root (the dataset folder)")
        if self.kind == "list" and not self.split:
            raise ValueError("data kind 'list' needs split (the list file)")
        if self.kind == "synthetic" and self.num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {self.num_samples}")
        # Validate the sampling and augmentation settings now rather than in a DataLoader worker.
        self.sample_config()
        self.augment_config()

    def sample_config(self) -> SampleConfig:
        return SampleConfig(crop_size=self.crop_size, aspect_ratio=self.aspect_ratio, num_points=self.num_points,
                            strategy=self.sampling, edge_threshold=self.edge_threshold, dilation=self.dilation,
                            dense_labels=self.dense_labels)

    def augment_config(self) -> AugmentConfig | None:
        cfg = AugmentConfig(color=self.color_augment, color_prob=self.color_prob, gamma=self.gamma_range,
                            brightness=self.brightness_range, channel=self.channel_range,
                            asymmetric=self.asymmetric_color, flip_lr=self.flip_lr, flip_ud=self.flip_ud)
        return cfg if self.augment else None


def build_frames(cfg: DataConfig) -> FrameDataset | SyntheticDataset:
    """The frame source of `cfg` (items are full frames, as `build_dataset(cfg, train=False)`)."""
    root = Path(cfg.root) if cfg.root else None
    raw_shape = (int(cfg.raw_shape[0]), int(cfg.raw_shape[1])) if cfg.raw_shape else None
    if cfg.kind == "synthetic":
        options = dict(cfg.synthetic_options)
        options.setdefault("min_disparity", cfg.min_disparity)
        options.setdefault("photometric", cfg.photometric)
        return SyntheticDataset(cfg.num_samples, seed=cfg.seed, height=cfg.height, width=cfg.width,
                                max_disparity=cfg.max_disparity, render_options=options)
    assert root is not None or cfg.kind == "list"
    if cfg.kind == "list":
        split = Path(cfg.split)
        # A relative list file is looked up in `root` first, so `data.root=DIR` alone selects DIR/train.txt
        # of a dataset folder (as `smd bag2dataset` writes them).
        if root is not None and not split.is_absolute() and (root / split).is_file():
            split = root / split
        return ListDataset(split, root=root, limit=cfg.limit, raw_shape=raw_shape)
    assert root is not None
    if cfg.kind == "kitti2015":
        return KITTI2015Dataset(root, split=cfg.split or "training", disparity=cfg.kitti_disparity, limit=cfg.limit)
    if cfg.kind == "middlebury":
        return MiddleburyDataset(root, limit=cfg.limit)
    if cfg.kind == "sceneflow":
        return SceneFlowDataset(root, pass_name=cfg.sceneflow_pass, split=cfg.split, limit=cfg.limit)
    if cfg.kind == "unreal4k":
        return UnrealStereo4KDataset(root, split_file=cfg.split or None, limit=cfg.limit, raw_shape=raw_shape)
    return UnrealStereo4KQuarterDataset(root, split_file=cfg.split or None, limit=cfg.limit,
                                        disparity_scale=cfg.disparity_scale)


def build_dataset(cfg: DataConfig, *, train: bool) -> Dataset:
    """Training samples (`train=True`) or full frames for evaluation (`train=False`); see the module docstring."""
    frames = build_frames(cfg)
    if not train:
        return frames
    if isinstance(frames, SyntheticDataset):
        frames.sample_config = cfg.sample_config()
        frames.augment_config = cfg.augment_config()
        return frames
    return TrainingDataset(frames, cfg.sample_config(), cfg.augment_config())
