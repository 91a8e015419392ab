"""Training configuration: `TrainConfig` (stored in every checkpoint) and the optimizer's `OptimConfig`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from smd_core.config import ModelConfig, apply_overrides, from_dict, load_yaml
from smd_core.data import DataConfig
from smd_core.model.mixture import SELECTION_TARGETS
from smd_core.resolve import device_setting

SCHEDULES = ("multistep", "cosine", "constant")
AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclasses.dataclass
class OptimConfig:
    """Adam and its learning-rate schedule; step counts are optimizer steps (SMD-Nets' epoch milestones are
    converted in configs/unreal4k_psmnet.yaml)."""

    lr: float = 1e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled (AdamW-style) when > 0; SMD-Nets used none
    schedule: str = "multistep"
    milestones: tuple[int, ...] = ()  # multistep: lr *= gamma at each of these steps
    gamma: float = 0.1
    min_lr: float = 0.0  # cosine: decays from lr to min_lr over the steps after warm-up
    warmup_steps: int = 0  # linear warm-up from 0 over this many steps (any schedule)
    grad_clip: float = 0.0  # clip the global gradient norm to this value; 0 disables clipping

    def __post_init__(self) -> None:
        self.schedule = str(self.schedule).lower()
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas must be two values in [0, 1), got {self.betas}")
        if self.weight_decay < 0 or self.min_lr < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ValueError("optim.weight_decay, min_lr, grad_clip and warmup_steps must be >= 0, got "
                             f"{self.weight_decay}, {self.min_lr}, {self.grad_clip}, {self.warmup_steps}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"optim.gamma must be in (0, 1], got {self.gamma}")
        if any(m <= 0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"optim.milestones must be positive and increasing, got {self.milestones}")


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; `to_dict(cfg)` is stored in every checkpoint it writes."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    val_data: DataConfig | None = None  # validation set (deterministic samples); None disables validation
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    steps: int = 1000
    # Bimodal heads: weight of `mixture.selection_loss` (trains the highest-density rule to pick the better
    # mode, as `selection_target` defines it) added to the mixture NLL; 0 = the reference's loss.
    selection_weight: float = 0.0
    # Which mode the selection loss teaches the rule to pick: "closer" or "right" (`mixture.selection_loss`).
    selection_target: str = "closer"
    batch_size: int = 4  # per process: the global batch is batch_size * world_size
    num_workers: int = 2
    # torch intra-op threads of each training process (0: torch's default); on a small shared CPU 1 thread plus
    # the DataLoader workers avoids oversubscribing the cores.
    threads: int = 0
    amp: bool = False  # mixed precision; CUDA only (ignored with a warning on the CPU)
    amp_dtype: str = "float16"
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1" (`smd_core.resolve.resolve_device`)
    log_dir: str = "runs/smd"
    ckpt_dir: str = ""  # default: <log_dir>/checkpoints
    ckpt_every: int = 1000
    keep_last: int = 3
    val_every: int = 0  # validation every this many steps (0: never) on at most val_samples samples
    val_samples: int = 8
    val_images: int = 2  # dense images of this many validation samples go to TensorBoard
    log_every: int = 20
    seed: int = 0
    init: str = ""  # weights to start from: a published SMD-Nets checkpoint or one of ours
    init_strict: bool = True  # False: load the matching tensors of `init` and report the rest (e.g. a new output head)
    # Parameter-name prefixes not copied from `init` (they keep their fresh initialisation), e.g. a head's
    # last layer ("mlp.conv2") when its outputs change meaning.
    init_skip: tuple[str, ...] = ()
    find_unused_parameters: bool = False  # DDP option for backbones with parameters that do not reach the loss
    # torch.use_deterministic_algorithms (needed for bit-exact resume on CUDA, not on the CPU).
    deterministic: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        positive = {"steps": self.steps, "batch_size": self.batch_size, "keep_last": self.keep_last,
                    "ckpt_every": self.ckpt_every, "log_every": self.log_every}
        bad = {k: v for k, v in positive.items() if int(v) < (0 if k == "steps" else 1)}
        if bad:
            raise ValueError(f"these settings must be positive (steps >= 0): {bad}")
        nonneg = {"num_workers": self.num_workers, "threads": self.threads, "val_every": self.val_every,
                  "val_samples": self.val_samples, "val_images": self.val_images, "seed": self.seed}
        if bad := {k: v for k, v in nonneg.items() if int(v) < 0}:
            raise ValueError(f"these settings must be >= 0: {bad}")
        if not self.selection_weight >= 0:
            raise ValueError(f"selection_weight must be >= 0, got {self.selection_weight}")
        if self.selection_target not in SELECTION_TARGETS:
            raise ValueError(f"selection_target must be one of {SELECTION_TARGETS}, got {self.selection_target!r}")
        self.init_skip = tuple(str(v) for v in self.init_skip)
        self.amp_dtype = str(self.amp_dtype).lower()
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {sorted(AMP_DTYPES)}, got {self.amp_dtype!r}")
        self.device = device_setting(self.device)

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(self.log_dir) / "checkpoints"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """TrainConfig from a YAML file (optional) and `a.b=value` overrides; errors name the bad keys."""
    return load_yaml(TrainConfig, path, overrides)


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """TrainConfig from a (checkpoint's) dict, with overrides applied to a copy."""
    return from_dict(TrainConfig, apply_overrides(json.loads(json.dumps(dict(data))), overrides))
