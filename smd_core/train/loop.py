"""The training loop: `train(cfg, resume=...)` runs `cfg.steps` optimizer steps and returns a `TrainResult`.

One `_Run` holds a run's state (model, optimizer, data, outputs); it is built in the order that keeps a
resumed run bit-exact (seed, model, restored state, then data), steps through the batches and checkpoints.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from smd_core.config import save_yaml, to_dict
from smd_core.data import build_dataset
from smd_core.model.mixture import loss as mixture_loss
from smd_core.model.network import SMDNet, build_model, load_state_dict_checked, save_checkpoint
from smd_core.train import checkpoints as ckpt
from smd_core.train.config import AMP_DTYPES, TrainConfig
from smd_core.train.data import ResumableSampler, make_loader
from smd_core.train.logger import Logger
from smd_core.train.runtime import Runtime, global_mean, setup_runtime
from smd_core.train.schedule import build_optimizer
from smd_core.train.validation import validate


@dataclasses.dataclass
class TrainResult:
    """What a finished `train` call reports (on every rank; paths only on rank 0)."""

    step: int
    last_loss: float
    losses: list[float]
    checkpoint: Path | None
    validation: dict[str, float]
    model: SMDNet


def train(cfg: TrainConfig, *, resume: str | Path | None = None,
          on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train `cfg.steps` optimizer steps (from scratch, `cfg.init`, or the checkpoint `resume`). Launch under `torchrun`
    for several processes. Returns the final step and losses; rank 0 also returns the last checkpoint's path."""
    rt = setup_runtime(cfg)
    saved_threads = torch.get_num_threads()
    saved_deterministic = torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    try:
        return _Run(cfg, rt, resume, on_step).run()
    finally:
        # Process-wide settings: give them back (train may be called from a larger program or a test run).
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_deterministic)
        # A process group left alive at interpreter exit can abort the process ("terminate called
        # without an active exception") while gloo's threads are torn down: end the one we started.
        if rt.owns_group and dist.is_initialized():
            dist.destroy_process_group()


class _Run:
    """One training run's state; `run()` trains it to `cfg.steps`."""

    def __init__(self, cfg: TrainConfig, rt: Runtime, resume: str | Path | None,
                 on_step: Callable[[int, float], None] | None) -> None:
        self.cfg, self.rt, self.on_step = cfg, rt, on_step
        self.device = rt.device
        self.use_amp = cfg.amp and self.device.type == "cuda"
        if cfg.amp and not self.use_amp:
            warnings.warn("amp=true is ignored on the CPU (mixed precision is used on CUDA only)", stacklevel=4)
        self.amp_dtype = AMP_DTYPES[cfg.amp_dtype]
        resume_state = self._build_model(resume)
        self._build_data(resume_state)
        self._open_outputs()
        self.start_step = self.step
        self.losses: list[float] = []
        self.window: list[float] = []
        self.last_ckpt: Path | None = None
        self.validation: dict[str, float] = {}

    def _build_model(self, resume: str | Path | None) -> dict[str, Any] | None:
        """Seed, model, optimizer, scheduler, scaler; restored from `resume` when given."""
        cfg, rt = self.cfg, self.rt
        ckpt.seed_everything(cfg.seed)
        self.model = build_model(cfg.model).to(self.device)
        resume_state: dict[str, Any] | None = None
        if resume is not None:
            resume_path, resume_state = ckpt.read_resume_state(resume)
            load_state_dict_checked(self.model, resume_state["state_dict"], path=resume_path)
        elif cfg.init:
            skipped = ckpt.load_init_weights(self.model, cfg.init, strict=cfg.init_strict, skip=cfg.init_skip)
            if skipped and rt.is_main:
                more = " ..." if len(skipped) > 8 else ""
                print(f"smd train: --init {cfg.init}: {len(skipped)} tensors kept their fresh initialisation "
                      f"(init_skip, or name or shape differ): {', '.join(skipped[:8])}{more}")

        self.optimizer, self.scheduler = build_optimizer(self.model, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.step = 0
        if resume_state is not None:
            self.optimizer.load_state_dict(resume_state["optimizer"])
            self.scheduler.load_state_dict(resume_state["scheduler"])
            if "scaler" in resume_state and self.scaler.is_enabled():
                self.scaler.load_state_dict(resume_state["scaler"])
            self.step = int(resume_state["step"])
            ckpt.set_rng_state(resume_state["rng"], self.device)

        self.net: nn.Module = self.model
        if rt.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        return resume_state

    def _build_data(self, resume_state: Mapping[str, Any] | None) -> None:
        """Training set, its resumable sampler and loader; the validation frames (rank 0)."""
        cfg, rt = self.cfg, self.rt
        dataset = build_dataset(cfg.data, train=True)
        self.sampler = ResumableSampler(dataset, num_replicas=rt.world_size, rank=rt.rank, seed=cfg.seed)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"the training set has {len(dataset)} samples: too few for "
                             f"batch_size={cfg.batch_size} on {rt.world_size} process(es)")
        self.loader = make_loader(dataset, self.sampler, cfg.batch_size, cfg.num_workers, self.device.type == "cuda")
        if resume_state is not None:
            saved = resume_state.get("data", {})
            if saved and (int(saved.get("steps_per_epoch", -1)) != self.steps_per_epoch
                          or int(saved.get("world_size", -1)) != rt.world_size):
                warnings.warn(f"resuming with a different data layout ({saved} -> steps_per_epoch="
                              f"{self.steps_per_epoch}, world_size={rt.world_size}): the data order will not "
                              "match the original run", stacklevel=4)
        self.val_frames = None
        if cfg.val_data is not None and cfg.val_every > 0 and rt.is_main:
            self.val_frames = build_dataset(cfg.val_data, train=False)

    def _open_outputs(self) -> None:
        cfg = self.cfg
        self.ckpt_dir = cfg.checkpoint_dir
        self.logger = Logger(Path(cfg.log_dir), self.rt.is_main)
        if self.rt.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_temporaries(self.ckpt_dir)
            save_yaml(cfg, Path(cfg.log_dir) / "config.yaml")

    def save(self, at: int) -> Path | None:
        """Write the resumable checkpoint of step `at` (rank 0 only) and drop the oldest ones."""
        if not self.rt.is_main:
            return None
        cfg = self.cfg
        path = save_checkpoint(
            ckpt.checkpoint_path(self.ckpt_dir, at), self.model, train_config=to_dict(cfg),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
            step=at, rng=ckpt.get_rng_state(self.device),
            data={"steps_per_epoch": self.steps_per_epoch, "world_size": self.rt.world_size,
                  "batch_size": cfg.batch_size, "seed": cfg.seed})
        ckpt.rotate_checkpoints(self.ckpt_dir, cfg.keep_last)
        return path

    def optimizer_step(self, batch: Mapping[str, Any]) -> float:
        """Forward, loss, backward and one optimizer + scheduler step on `batch`; returns the loss."""
        cfg, mc = self.cfg, self.cfg.model
        batch = {k: (v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}
        size = batch["output_size"]
        if isinstance(size, Tensor):
            size = size.reshape(-1, 2)[0].tolist()
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            pred = self.net(batch["left"], batch["right"], batch["points"], (int(size[0]), int(size[1])))
        # The loss stays in float32: the NLL's log/exp are poorly conditioned in half precision.
        loss = mixture_loss(pred, batch["labels"].float(), output=mc.output, max_disp=mc.max_disp,
                            selection_weight=cfg.selection_weight, selection_target=cfg.selection_target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {self.step + 1}; "
                                     "lower optim.lr or enable optim.grad_clip")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def after_step(self, value: float, progress: Any) -> None:
        """Bookkeeping after step `self.step`: losses, logs, progress bar, validation, checkpoint."""
        cfg, step = self.cfg, self.step
        self.losses.append(value)
        self.window.append(value)
        if self.on_step is not None:
            self.on_step(step, value)
        lr = self.scheduler.get_last_lr()[0]
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = global_mean(sum(self.window) / len(self.window), self.rt)
            self.window.clear()
            rate = (step - self.start_step) / max(time.perf_counter() - self.t_start, 1e-9)
            self.logger.scalars(step, {"train/loss": mean, "train/lr": lr, "train/steps_per_s": rate})
        progress.update(1)
        progress.set_postfix(loss=f"{value:.4f}", lr=f"{lr:.2e}")
        if self.val_frames is not None and step % cfg.val_every == 0:
            self.validation = validate(self.model, self.val_frames, cfg, self.device, self.logger, step)
            self.logger.scalars(step, {f"val/{k}": v for k, v in self.validation.items()})
            if self.validation:
                progress.write(f"step {step}: val " + ", ".join(f"{k} {v:.3f}" for k, v in self.validation.items()))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            self.last_ckpt = self.save(step) or self.last_ckpt

    def run(self) -> TrainResult:
        from tqdm import tqdm

        cfg = self.cfg
        progress = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                        disable=not (cfg.progress and self.rt.is_main), file=sys.stderr)
        self.t_start = time.perf_counter()
        self.net.train()
        try:
            while self.step < cfg.steps:
                epoch, offset = divmod(self.step, self.steps_per_epoch)
                self.sampler.set_epoch(epoch, skip=offset * cfg.batch_size)
                for batch in self.loader:
                    value = self.optimizer_step(batch)
                    self.step += 1
                    self.after_step(value, progress)
                    if self.step >= cfg.steps:
                        break
            if self.step == 0 or (self.last_ckpt is None and self.rt.is_main):
                # steps=0 (or a resume that was already complete): still leave a checkpoint behind.
                self.last_ckpt = self.save(self.step)
        finally:
            progress.close()
            self.logger.close()
        if self.rt.distributed:
            # DDP keeps parameters in step but each rank's BatchNorm statistics saw its own last batch;
            # hand every rank rank 0's buffers so all return the model the checkpoint holds.
            for buf in self.model.buffers():
                dist.broadcast(buf, src=0)
            dist.barrier()
        return TrainResult(step=self.step, last_loss=self.losses[-1] if self.losses else float("nan"),
                           losses=self.losses, checkpoint=self.last_ckpt, validation=self.validation,
                           model=self.model)

