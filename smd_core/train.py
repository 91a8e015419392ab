"""Training: `smd train --config CONFIG.yaml [key=value ...] [--init CKPT] [--resume CKPT_OR_DIR]`.

SMD-Nets is trained by sampling continuous query points in ground-truth crops and minimising the
negative log-likelihood of the predicted mixture (`smd_core.model.mixture.loss`). This module is the loop
around that: a typed `TrainConfig` (saved inside every checkpoint), Adam with the SMD-Nets step schedule
or cosine decay, AMP on CUDA, validation, TensorBoard, checkpoints and multi-process training.

Exact resume. A run of N steps equals a run of k steps + `--resume` for N - k steps, bit for bit on
the CPU. Three things make that hold:
- the data order is a pure function of (seed, epoch): `ResumableSampler` draws each epoch's permutation
  from `seed + epoch` and can start mid-epoch, so a resumed run skips exactly the batches already seen;
- every sample's augmentation randomness is a pure function of (seed, epoch, index): `SeededDataset`
  seeds Python/NumPy/torch around each `__getitem__`, so neither the worker that loads it nor the RNG
  state of the main process matters;
- the checkpoint holds model, optimizer, scheduler, AMP scaler, step and the torch/NumPy/Python RNG
  states (as tensors and lists, so `torch.load(weights_only=True)` reads it).

Distributed: launched by `torchrun`, each process trains on its shard (`DistributedSampler` order) with
DistributedDataParallel (gloo on CPU, nccl on CUDA); only rank 0 writes checkpoints, logs and images.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import random
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from smd_core.config import ModelConfig, apply_overrides, from_dict, load_yaml, to_dict
from smd_core.data import DataConfig, build_dataset
from smd_core.model.mixture import loss as mixture_loss
from smd_core.model.network import (
    SMDNet,
    build_model,
    load_state_dict_checked,
    read_checkpoint,
    save_checkpoint,
)

SCHEDULES = ("multistep", "cosine", "constant")
AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.pth$")


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class OptimConfig:
    """Adam and its learning-rate schedule (all step counts are optimizer steps, not epochs).

    SMD-Nets (apps/train.py, scripts/train.sh): Adam, lr 1e-4, multiplied by `gamma` at fixed epochs
    (150 and 175 of 200, gamma 0.1). Here the milestones are steps; `configs/unreal4k_psmnet.yaml`
    converts the paper's epochs for its 7720-pair training split at batch size 4.
    """

    lr: float = 1e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    # Decoupled (AdamW-style) when > 0; SMD-Nets used none.
    weight_decay: float = 0.0
    schedule: str = "multistep"
    # multistep: lr *= gamma at each of these steps.
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    # cosine: decays from lr to min_lr over the steps after warm-up.
    min_lr: float = 0.0
    # Linear warm-up from 0 over this many steps (any schedule).
    warmup_steps: int = 0
    # Clip the global gradient norm to this value; 0 disables clipping.
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        self.schedule = str(self.schedule).lower()
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas must be two values in [0, 1), got {self.betas}")
        if self.weight_decay < 0 or self.min_lr < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ValueError(
                "optim.weight_decay, min_lr, grad_clip and warmup_steps must be >= 0, got "
                f"{self.weight_decay}, {self.min_lr}, {self.grad_clip}, {self.warmup_steps}"
            )
        if not 0 < self.gamma <= 1:
            raise ValueError(f"optim.gamma must be in (0, 1], got {self.gamma}")
        if any(m <= 0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"optim.milestones must be positive and increasing, got {self.milestones}")


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; `to_dict(cfg)` is stored in every checkpoint it writes."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    # Validation set (deterministic samples); None disables validation.
    val_data: DataConfig | None = None
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    steps: int = 1000
    # Per process: the global batch is batch_size * world_size.
    batch_size: int = 4
    num_workers: int = 2
    # torch intra-op threads of each training process (0: torch's default). On a small shared CPU, 1 thread
    # for the model plus DataLoader workers beats oversubscribing cores (measured 8x faster on 2 busy cores).
    threads: int = 0
    # Mixed precision; CUDA only (ignored with a warning on the CPU).
    amp: bool = False
    amp_dtype: str = "float16"
    # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    log_dir: str = "runs/smd"
    # Default: <log_dir>/checkpoints.
    ckpt_dir: str = ""
    ckpt_every: int = 1000
    keep_last: int = 3
    # Validation every this many steps (0: never) on at most val_samples samples.
    val_every: int = 0
    val_samples: int = 8
    # Dense images of this many validation samples go to TensorBoard.
    val_images: int = 2
    log_every: int = 20
    seed: int = 0
    # Weights to start from: a published SMD-Nets checkpoint or one of ours.
    init: str = ""
    # False: load the matching tensors of `init` and report the rest (e.g. a new output head).
    init_strict: bool = True
    # DDP option for backbones with parameters that do not reach the loss.
    find_unused_parameters: bool = False
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
        bad = {k: v for k, v in nonneg.items() if int(v) < 0}
        if bad:
            raise ValueError(f"these settings must be >= 0: {bad}")
        self.amp_dtype = str(self.amp_dtype).lower()
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {sorted(AMP_DTYPES)}, got {self.amp_dtype!r}")
        try:
            if self.device != "auto":
                torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(f"device must be 'auto' or a torch device string, got {self.device!r}") from exc

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.ckpt_dir) if self.ckpt_dir else Path(self.log_dir) / "checkpoints"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """TrainConfig from a YAML file (optional) and `a.b=value` overrides; errors name the bad keys."""
    return load_yaml(TrainConfig, path, overrides)


def config_from_dict(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """TrainConfig from a (checkpoint's) dict, with overrides applied to a copy."""
    return from_dict(TrainConfig, apply_overrides(json.loads(json.dumps(dict(data))), overrides))


# ----------------------------------------------------------------------------------------------------
# Learning-rate schedule
# ----------------------------------------------------------------------------------------------------


def lr_factor(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Multiplier of `optim.lr` for optimizer step `step` (0-based): warm-up, then the schedule."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "multistep":
        return optim.gamma ** sum(step >= m for m in optim.milestones)
    if optim.schedule == "cosine":
        span = max(total_steps - optim.warmup_steps, 1)
        t = min(max(step - optim.warmup_steps, 0) / span, 1.0)
        floor = optim.min_lr / optim.lr
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    return 1.0


def build_optimizer(
    model: nn.Module, cfg: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam (AdamW when weight_decay > 0) and a LambdaLR stepping once per optimizer step."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    betas = (float(o.betas[0]), float(o.betas[1]))
    if o.weight_decay > 0:
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=o.lr, betas=betas, eps=o.eps,
                                                       weight_decay=o.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=o.lr, betas=betas, eps=o.eps)
    # A closure over the config: the scheduler's state is just its step counter, so it resumes exactly.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, o, cfg.steps))
    return opt, sched


# ----------------------------------------------------------------------------------------------------
# Deterministic, resumable data order
# ----------------------------------------------------------------------------------------------------


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """32-bit seed for one sample's augmentation; independent of workers, ranks and RNG state."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """DistributedSampler that yields (index, sample seed) and can start in the middle of an epoch.

    The epoch's order is DistributedSampler's (permutation from `seed + epoch`, this rank's shard);
    `set_epoch(epoch, skip=k)` drops the first k indices of this rank's shard, i.e. the batches a
    resumed run has already trained on.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.skip :]
        epoch = self.epoch
        return ((i, sample_seed(self.seed, epoch, i)) for i in indices)

    def __len__(self) -> int:
        return max(super().__len__() - self.skip, 0)


class SeededDataset(Dataset):
    """Wraps a dataset so item (index, seed) is drawn with Python/NumPy/torch seeded by `seed`.

    The global RNG states are restored afterwards, so with `num_workers=0` loading never disturbs the
    training process's own random streams.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        index, seed = key if isinstance(key, tuple) else (int(key), sample_seed(0, 0, int(key)))
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        try:
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def collate(samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples; "points" (2, N_i) and "labels" (N_i,) are padded to the largest N with label 0.

    A 0 label is invalid for the loss (it keeps 0 < y <= 1), so padding never contributes.
    """
    if not samples:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    n = max(int(np.asarray(s["points"]).shape[-1]) for s in samples) if "points" in samples[0] else 0
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in ("points", "labels"):
            padded = []
            for v in values:
                t = torch.as_tensor(np.asarray(v), dtype=torch.float32)
                pad = n - t.shape[-1]
                padded.append(torch.nn.functional.pad(t, (0, pad)) if pad else t)
            out[key] = torch.stack(padded)
        elif isinstance(values[0], (Tensor, np.ndarray)):
            out[key] = torch.stack([torch.as_tensor(v) for v in values])
        elif isinstance(values[0], (int, float)):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


# ----------------------------------------------------------------------------------------------------
# RNG state <-> weights_only-safe containers
# ----------------------------------------------------------------------------------------------------


def get_rng_state(device: torch.device) -> dict[str, Any]:
    """torch / NumPy / Python (and CUDA) generator states as tensors, lists and scalars."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_state[0]), "internal": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Inverse of `get_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step_{step:08d}.pth"


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the `step_XXXXXXXX.pth` files in `ckpt_dir`, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(found)


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint file, or the newest `step_*.pth` in a folder (or in its `checkpoints/` subfolder)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        found = list_checkpoints(p) or list_checkpoints(p / "checkpoints")
        if not found:
            raise FileNotFoundError(f"no step_*.pth checkpoint in {p} (or {p / 'checkpoints'})")
        return found[-1][1]
    raise FileNotFoundError(f"resume checkpoint not found: {p}")


def rotate_checkpoints(ckpt_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` step checkpoints and stale temp files; returns deleted paths."""
    found = list_checkpoints(ckpt_dir)
    doomed = [p for _, p in found[: max(len(found) - keep_last, 0)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """Temp files of `save_checkpoint` left by a killed run (`.step_*.pth.*.tmp`)."""
    if ckpt_dir.is_dir():
        for p in ckpt_dir.glob(".step_*.pth.*.tmp"):
            p.unlink(missing_ok=True)


def load_init_weights(model: SMDNet, path: str | Path, *, strict: bool = True) -> list[str]:
    """Copy weights from a published SMD-Nets checkpoint or one of ours into `model`.

    strict: every tensor must match by name and shape, else ValueError listing the differences.
    Not strict: tensors with matching name and shape are loaded; the skipped names are returned
    (e.g. a new output head when fine-tuning a bimodal model into a standard one).
    """
    path = Path(path)
    data = read_checkpoint(path)
    sd = data.get("state_dict", data)
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"{path}: no state_dict of tensors found (top-level keys: {sorted(data)[:10]})")
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    if strict:
        load_state_dict_checked(model, sd, path=path)
        return []
    own = model.state_dict()
    usable = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path}: no tensor of the checkpoint matches the model by name and shape")
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


# ----------------------------------------------------------------------------------------------------
# Distributed setup
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # True when setup_runtime started the process group (and so train() ends it).
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when available; under torchrun each process takes the CUDA device of its local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        index = local_rank if int(os.environ.get("WORLD_SIZE", "1")) > 1 else (device.index or 0)
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    return device


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and start the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device, local_rank)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30),
                                **({"device_id": device} if device.type == "cuda" else {}))
        owns = True
    return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank, owns_group=owns)


# ----------------------------------------------------------------------------------------------------
# Logging
# ----------------------------------------------------------------------------------------------------


class Logger:
    """Rank-0 logging: TensorBoard when installed (else a clear note, once), plus `metrics.jsonl`."""

    def __init__(self, log_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer: Any = None
        self.jsonl = None
        if not enabled:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = (log_dir / "metrics.jsonl").open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            print("smd train: tensorboard is not installed; scalars go to metrics.jsonl only "
                  "(pip install tensorboard for curves and images)", file=sys.stderr)
        else:
            self.writer = SummaryWriter(str(log_dir))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        assert self.jsonl is not None
        self.jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in values.items()}}) + "\n")
        self.jsonl.flush()

    def image(self, step: int, tag: str, bgr: np.ndarray) -> None:
        """(H, W, 3) BGR uint8 -> TensorBoard (RGB)."""
        if self.enabled and self.writer is not None:
            self.writer.add_image(tag, np.ascontiguousarray(bgr[:, :, ::-1]), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        if self.jsonl is not None:
            self.jsonl.close()


# ----------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}


def _output_size(batch: Mapping[str, Any]) -> tuple[int, int]:
    size = batch["output_size"]
    if isinstance(size, Tensor):
        size = size.reshape(-1, 2)[0].tolist()
    return int(size[0]), int(size[1])


def disparity_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-frame metrics with their pixel counts: epe, bad1/2/3 (%), and where `smd_core.metrics` is
    available also the soft edge error "see" and the "bleeding" rate (%), as `smd eval` reports them.

    Returned counts ("n_valid", "n_edges", "n_band", "n_flying") let callers pool frames by pixels.
    """
    try:
        from smd_core.metrics import compute_metrics
    except ImportError:
        compute_metrics = None  # type: ignore[assignment]
    if compute_metrics is not None:
        return {k: float(v) for k, v in compute_metrics(pred, gt).items()}
    valid = np.isfinite(gt) & (gt > 0) & np.isfinite(pred)
    err = np.abs(pred[valid] - gt[valid])
    out = {"n_valid": float(err.size), "epe": float(err.mean()) if err.size else math.nan}
    out.update({f"bad{t}": float((err > t).mean() * 100.0) if err.size else math.nan for t in (1, 2, 3)})
    return out


def pool_metrics(frames: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Pixel-weighted means over frames: epe/bad by valid pixels, see by edge pixels, bleeding by band pixels."""
    out: dict[str, float] = {}
    weights = {"epe": "n_valid", "bad1": "n_valid", "bad2": "n_valid", "bad3": "n_valid", "see": "n_edges"}
    for key, weight in weights.items():
        pairs = [(m[key], m[weight]) for m in frames if key in m and m.get(weight, 0) > 0 and math.isfinite(m[key])]
        total = sum(w for _, w in pairs)
        if total > 0:
            out[key] = sum(v * w for v, w in pairs) / total
    band = sum(m.get("n_band", 0.0) for m in frames)
    if band > 0:
        out["bleeding"] = 100.0 * sum(m.get("n_flying", 0.0) for m in frames) / band
    return out


def validate(model: SMDNet, frames: Dataset, cfg: TrainConfig, device: torch.device,
             logger: Logger | None = None, step: int = 0) -> dict[str, float]:
    """Dense validation on full frames (`build_dataset(val_data, train=False)`), pooled over pixels.

    As at test time in SMD-Nets: the network sees the images downscaled by the val set's
    `aspect_ratio`, the prediction is queried on the full ground-truth grid, and compared with the GT
    in GT pixels. The first `val_images` frames also go to TensorBoard as input, disparity,
    uncertainty and error images. The model is left in training mode.
    """
    from smd_core import viz
    from smd_core.inference import Predictor

    assert cfg.val_data is not None
    n = min(len(frames), cfg.val_samples) if cfg.val_samples else len(frames)  # type: ignore[arg-type]
    predictor = Predictor(model, device=device)
    per_frame: list[dict[str, float]] = []
    try:
        for i in range(n):
            frame = frames[i]
            gt = np.asarray(frame["disp_left"], dtype=np.float32)
            dense = predictor.predict(frame["left"], frame["right"], output_size=gt.shape[:2],
                                      input_scale=1.0 / float(cfg.val_data.aspect_ratio))
            per_frame.append(disparity_metrics(dense.disparity, gt))
            if logger is not None and logger.enabled and i < cfg.val_images:
                valid = np.isfinite(gt) & (gt > 0)
                vmax = float(gt[valid].max()) if valid.any() else None
                logger.image(step, f"val_{i}/left", np.asarray(frame["left"]))
                logger.image(step, f"val_{i}/disparity", viz.colorize_disparity(dense.disparity, vmax=vmax))
                logger.image(step, f"val_{i}/uncertainty", viz.colorize_uncertainty(dense.uncertainty))
                logger.image(step, f"val_{i}/error", viz.colorize_error(np.abs(dense.disparity - gt), valid=valid))
    finally:
        model.train()
    return pool_metrics(per_frame)


# ----------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What a finished `train` call reports (on every rank; paths only on rank 0)."""

    step: int
    last_loss: float
    losses: list[float]
    checkpoint: Path | None
    validation: dict[str, float]
    model: SMDNet


def _make_loader(dataset: Dataset, sampler: Any, batch_size: int, num_workers: int, pin: bool) -> DataLoader:
    # An explicit generator keeps the DataLoader from drawing its base seed from the global torch RNG,
    # which would differ between an uninterrupted and a resumed run.
    return DataLoader(SeededDataset(dataset), batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate, drop_last=True, pin_memory=pin,
                      generator=torch.Generator().manual_seed(0),
                      persistent_workers=False)


def _global_mean(value: float, rt: Runtime) -> float:
    if not rt.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return float(t.item()) / rt.world_size


def train(cfg: TrainConfig, *, resume: str | Path | None = None,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train `cfg.steps` optimizer steps (from scratch, `cfg.init`, or the checkpoint `resume`).

    Launch under `torchrun` for several processes. Returns the final step and losses; rank 0 also
    returns the last checkpoint's path.
    """
    rt = setup_runtime(cfg)
    saved_threads = torch.get_num_threads()
    saved_deterministic = torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _train(cfg, rt, resume, on_step)
    finally:
        # Process-wide settings: give them back (train may be called from a larger program or a test run).
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_deterministic)
        # A process group left alive at interpreter exit can abort the process ("terminate called
        # without an active exception") while gloo's threads are torn down: end the one we started.
        if rt.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg: TrainConfig, rt: Runtime, resume: str | Path | None,
           on_step: Callable[[int, float], None] | None) -> TrainResult:
    device = rt.device
    use_amp = cfg.amp and device.type == "cuda"
    if cfg.amp and not use_amp:
        warnings.warn("amp=true is ignored on the CPU (mixed precision is used on CUDA only)", stacklevel=3)

    seed_everything(cfg.seed)
    model = build_model(cfg.model).to(device)
    resume_state: dict[str, Any] | None = None
    if resume is not None:
        resume_path = resolve_resume(resume)
        resume_state = read_checkpoint(resume_path)
        missing = [k for k in ("state_dict", "optimizer", "scheduler", "step", "rng") if k not in resume_state]
        if missing:
            raise ValueError(f"{resume_path}: not a resumable training checkpoint (missing {missing}); "
                             "use --init to start from its weights instead")
        load_state_dict_checked(model, resume_state["state_dict"], path=resume_path)
    elif cfg.init:
        skipped = load_init_weights(model, cfg.init, strict=cfg.init_strict)
        if skipped and rt.is_main:
            print(f"smd train: --init {cfg.init}: {len(skipped)} tensors kept their fresh initialisation "
                  f"(name or shape differ): {', '.join(skipped[:8])}{' ...' if len(skipped) > 8 else ''}")

    optimizer, scheduler = build_optimizer(model, cfg)
    amp_dtype = AMP_DTYPES[cfg.amp_dtype]
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)

    step = 0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if "scaler" in resume_state and scaler.is_enabled():
            scaler.load_state_dict(resume_state["scaler"])
        step = int(resume_state["step"])
        set_rng_state(resume_state["rng"], device)

    net: nn.Module = model
    if rt.distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters)

    dataset = build_dataset(cfg.data, train=True)
    sampler = ResumableSampler(dataset, num_replicas=rt.world_size, rank=rt.rank, seed=cfg.seed)
    steps_per_epoch = len(sampler) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"the training set has {len(dataset)} samples: too few for batch_size={cfg.batch_size} "
                         f"on {rt.world_size} process(es)")
    loader = _make_loader(dataset, sampler, cfg.batch_size, cfg.num_workers, device.type == "cuda")
    if resume_state is not None:
        saved = resume_state.get("data", {})
        if saved and (int(saved.get("steps_per_epoch", -1)) != steps_per_epoch
                      or int(saved.get("world_size", -1)) != rt.world_size):
            warnings.warn(f"resuming with a different data layout ({saved} -> steps_per_epoch={steps_per_epoch}, "
                          f"world_size={rt.world_size}): the data order will not match the original run",
                          stacklevel=2)

    val_frames = None
    if cfg.val_data is not None and cfg.val_every > 0 and rt.is_main:
        val_frames = build_dataset(cfg.val_data, train=False)

    ckpt_dir = cfg.checkpoint_dir
    logger = Logger(Path(cfg.log_dir), rt.is_main)
    if rt.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(ckpt_dir)
        (Path(cfg.log_dir) / "config.yaml").write_text(_yaml_dump(to_dict(cfg)))

    def save(at: int) -> Path | None:
        if not rt.is_main:
            return None
        path = save_checkpoint(
            checkpoint_path(ckpt_dir, at), model, train_config=to_dict(cfg), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(), scaler=scaler.state_dict() if scaler.is_enabled() else {},
            step=at, rng=get_rng_state(device),
            data={"steps_per_epoch": steps_per_epoch, "world_size": rt.world_size, "batch_size": cfg.batch_size,
                  "seed": cfg.seed})
        rotate_checkpoints(ckpt_dir, cfg.keep_last)
        return path

    start_step = step
    progress = _progress_bar(cfg, step, rt)
    losses: list[float] = []
    last_ckpt: Path | None = None
    validation: dict[str, float] = {}
    window: list[float] = []
    t_start = time.perf_counter()
    mc = cfg.model
    net.train()
    try:
        while step < cfg.steps:
            epoch, offset = divmod(step, steps_per_epoch)
            sampler.set_epoch(epoch, skip=offset * cfg.batch_size)
            for batch in loader:
                batch = _to_device(batch, device)
                size = _output_size(batch)
                with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                    pred = net(batch["left"], batch["right"], batch["points"], size)
                # The loss stays in float32: the NLL's log/exp are poorly conditioned in half precision.
                loss = mixture_loss(pred, batch["labels"].float(), output=mc.output, max_disp=mc.max_disp)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {float(loss)} at step {step + 1}; "
                                             "lower optim.lr or enable optim.grad_clip")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.optim.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                value = float(loss.detach())
                losses.append(value)
                window.append(value)
                if on_step is not None:
                    on_step(step, value)

                if step % cfg.log_every == 0 or step == cfg.steps:
                    mean = _global_mean(sum(window) / len(window), rt)
                    window.clear()
                    rate = (step - start_step) / max(time.perf_counter() - t_start, 1e-9)
                    logger.scalars(step, {"train/loss": mean, "train/lr": scheduler.get_last_lr()[0],
                                          "train/steps_per_s": rate})
                progress.update(1)
                progress.set_postfix(loss=f"{value:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if val_frames is not None and step % cfg.val_every == 0:
                    validation = validate(model, val_frames, cfg, device, logger, step)
                    logger.scalars(step, {f"val/{k}": v for k, v in validation.items()})
                    if validation:
                        progress.write(f"step {step}: val " + ", ".join(f"{k} {v:.3f}" for k, v in validation.items()))
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    last_ckpt = save(step) or last_ckpt
                if step >= cfg.steps:
                    break
        if step == 0 or (last_ckpt is None and rt.is_main):
            # steps=0 (or a resume that was already complete): still leave a checkpoint behind.
            last_ckpt = save(step)
    finally:
        progress.close()
        logger.close()
    if rt.distributed:
        # DDP keeps parameters in step but each rank's BatchNorm statistics saw its own last batch;
        # hand every rank rank 0's buffers so all return the model the checkpoint holds.
        for buf in model.buffers():
            dist.broadcast(buf, src=0)
        dist.barrier()
    return TrainResult(step=step, last_loss=losses[-1] if losses else float("nan"), losses=losses,
                       checkpoint=last_ckpt, validation=validation, model=model)


def _progress_bar(cfg: TrainConfig, initial: int, rt: Runtime) -> Any:
    from tqdm import tqdm

    return tqdm(total=cfg.steps, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                disable=not (cfg.progress and rt.is_main), file=sys.stderr)


def _yaml_dump(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


# ----------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="training YAML (see configs/); optional with --resume (the checkpoint's config)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. steps=2000 optim.lr=5e-5 data.crop_height=256")
    parser.add_argument("--init", default=None, metavar="CKPT",
                        help="start from these weights (published SMD-Nets or smd_ros checkpoint)")
    parser.add_argument("--resume", default=None, metavar="CKPT_OR_DIR",
                        help="continue a run exactly: a step_*.pth file or a run/checkpoint folder (newest)")


def resolve_config(config: Path | None, overrides: Sequence[str], init: str | None,
                   resume: str | None) -> TrainConfig:
    """The run's TrainConfig: the YAML (or, resuming without one, the checkpoint's) plus overrides."""
    if config is None and resume is None:
        raise ValueError("--config is required (unless --resume names a checkpoint that carries its config)")
    if config is None:
        assert resume is not None
        path = resolve_resume(resume)
        saved = read_checkpoint(path).get("train_config")
        if not isinstance(saved, dict):
            raise ValueError(f"{path}: no train_config stored; pass --config")
        cfg = config_from_dict(saved, overrides)
    else:
        cfg = load_config(config, overrides)
    if init:
        if resume:
            raise ValueError("--init and --resume exclude each other (resume restores the weights)")
        cfg = dataclasses.replace(cfg, init=str(init))
    return cfg


def run(args: argparse.Namespace) -> int:
    try:
        cfg = resolve_config(args.config, args.overrides, args.init, args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"smd train: {exc}", file=sys.stderr)
        return 2
    result = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"smd train: finished at step {result.step}, last loss {result.last_loss:.4f}, "
              f"checkpoint {result.checkpoint}")
    return 0
