"""Data for SMD-Nets: datasets, training samples, augmentation and a procedural stereo generator.

    cfg = DataConfig(kind="kitti2015", root="/data/kitti2015", sample=SampleConfig(crop_size=(256, 512)))
    train_set = build_dataset(cfg, train=True)    # training samples (`sampling.make_training_sample`)
    eval_set = build_dataset(cfg, train=False)    # full frames

Full frames (`train=False`) are dicts at the dataset's native resolution: "left", "right" uint8 (H, W, 3) BGR;
"disp_left" float32 (H, W) ground-truth disparity in pixels of these images, 0 = invalid; "disp_right" the
same for the right view when the dataset has it for every frame; "occlusion_left" bool (H, W), synthetic
only; "name" str. Training samples are described in `sampling`; their randomness (crop, points,
augmentation) comes from torch's global RNG, while a synthetic scene is fixed per index.

Kinds (`DataConfig.kind`): "synthetic" (`num_samples` procedural scenes of `height` x `width`, disparities in
[min_disparity, max_disparity], `seed`; `synthetic_options`: further `render_scene` keywords), "list" (`split`
= a list file `left right disp_left [disp_right]`, relative to its folder or `root`, as `smd synth` and
`smd bag2dataset` write them), "motorcycle" (`real_sample`), and dataset folders at `root` ("kitti2015",
"middlebury", "sceneflow": `datasets`; "unreal4k", "unreal4k_quarter": `unreal4k`). `limit` > 0 keeps the
first `limit` frames (kinds other than synthetic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smd_core.data.augment import AugmentConfig
from smd_core.data.sample_config import SampleConfig

DATASET_KINDS = ("synthetic", "list", "kitti2015", "middlebury", "sceneflow", "unreal4k", "unreal4k_quarter",
                 "motorcycle")
# Kinds that need no `root`: generated, a list file, or bundled with a dependency.
ROOTLESS_KINDS = ("synthetic", "list", "motorcycle")


# Flat keys of earlier configs (and of the checkpoints they wrote) -> their place in the nested sections.
LEGACY_KEYS = {
    "crop_size": "sample.crop_size", "aspect_ratio": "sample.aspect_ratio", "num_points": "sample.num_points",
    "sampling": "sample.strategy", "edge_threshold": "sample.edge_threshold", "dilation": "sample.dilation",
    "dense_labels": "sample.dense_labels", "color_augment": "augment.color", "color_prob": "augment.color_prob",
    "gamma_range": "augment.gamma", "brightness_range": "augment.brightness", "channel_range": "augment.channel",
    "asymmetric_color": "augment.asymmetric", "flip_lr": "augment.flip_lr", "flip_ud": "augment.flip_ud",
}


@dataclasses.dataclass
class DataConfig:
    """Which data (`kind`, `root`, `split`, ...), how training samples are cut from it (`sample`) and how they
    are augmented (`augment`). The flat keys of earlier configs (LEGACY_KEYS, `augment: true|false`) are still
    read into the same fields; both spellings with different values are an error naming the nested key."""

    kind: str = "synthetic"
    root: str = ""
    # List file ("list"), official split file ("unreal4k*", optional), "training" ("kitti2015"),
    # a path component such as "TRAIN" ("sceneflow", optional).
    split: str = ""
    # Crops, query points and their sampling strategy (`sampling.SampleConfig`).
    sample: SampleConfig = dataclasses.field(default_factory=SampleConfig)
    # Colour and flip augmentation of training samples (`augment.AugmentConfig`; `enabled: false` turns it off).
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
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
        if not isinstance(self.sample, SampleConfig) or not isinstance(self.augment, AugmentConfig):
            raise TypeError("DataConfig.sample / .augment must be a SampleConfig / AugmentConfig, got "
                            f"{type(self.sample).__name__} / {type(self.augment).__name__}")
        if self.raw_shape and len(self.raw_shape) != 2:
            raise ValueError(f"raw_shape must be (height, width) or empty, got {self.raw_shape}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.kind not in ROOTLESS_KINDS and not self.root:
            raise ValueError(f"data kind {self.kind!r} needs root (the dataset folder)")
        if self.kind == "list" and not self.split:
            raise ValueError("data kind 'list' needs split (the list file)")
        if self.kind == "synthetic" and self.num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {self.num_samples}")

    @staticmethod
    def upgrade_dict(data: Mapping[str, Any], where: str = "data") -> dict[str, Any]:
        """`data` with the flat keys moved into `sample` / `augment` (`from_dict` calls it, so YAML files,
        overrides and checkpoints of earlier versions load unchanged)."""
        out = dict(data)
        if isinstance(out.get("augment"), bool):
            out["augment"] = {"enabled": out["augment"]}
        if not all(isinstance(out.get(name) or {}, Mapping) for name in ("sample", "augment")):
            return out  # from_dict reports the section that is not a mapping
        sections = {name: dict(out.get(name) or {}) for name in ("sample", "augment")}
        for old, new in LEGACY_KEYS.items():
            if old not in out:
                continue
            section, key = new.split(".")
            value = out.pop(old)
            if key in sections[section] and sections[section][key] != value:
                raise ValueError(f"{where}: {old}={value!r} (the old flat key) contradicts {new}="
                                 f"{sections[section][key]!r}; set {where}.{new} only")
            sections[section][key] = value
        for name, section in sections.items():
            if section or name in out:
                out[name] = section
        return out


def build_dataset(cfg: DataConfig, *, train: bool) -> Any:
    """Training samples (`train=True`) or full frames for evaluation (`train=False`); see the module docstring."""
    frames = _frames(cfg)
    if not train:
        return frames
    from smd_core.data.sampling import TrainingDataset

    return TrainingDataset(frames, cfg.sample, cfg.augment if cfg.augment.enabled else None)


def _frames(cfg: DataConfig) -> Any:
    from smd_core.data.datasets import KITTI2015Dataset, ListDataset, MiddleburyDataset, SceneFlowDataset
    from smd_core.data.real_sample import MotorcycleDataset
    from smd_core.data.synthetic.dataset import SyntheticDataset
    from smd_core.data.unreal4k import UnrealStereo4KDataset, UnrealStereo4KQuarterDataset

    root = Path(cfg.root) if cfg.root else None
    raw_shape = (int(cfg.raw_shape[0]), int(cfg.raw_shape[1])) if cfg.raw_shape else None
    if cfg.kind == "synthetic":
        options = dict(cfg.synthetic_options)
        options.setdefault("min_disparity", cfg.min_disparity)
        options.setdefault("photometric", cfg.photometric)
        return SyntheticDataset(cfg.num_samples, seed=cfg.seed, height=cfg.height, width=cfg.width,
                                max_disparity=cfg.max_disparity, render_options=options)
    if cfg.kind == "motorcycle":
        return MotorcycleDataset()
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
