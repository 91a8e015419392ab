"""Distributed runtime: torchrun's environment, the process group, the device of each rank."""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

from smd_core.resolve import select_device
from smd_core.train.config import TrainConfig


@dataclasses.dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when setup_runtime started the process group (and so train() ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and start the process group. On CUDA under
    torchrun each process runs on its local rank's GPU, made current (collectives default to it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30),
                                **({"device_id": device} if device.type == "cuda" else {}))
        owns = True
    return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank, owns_group=owns)


def global_mean(value: float, rt: Runtime) -> float:
    """Mean of `value` over all ranks (the value itself when not distributed)."""
    if not rt.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return float(t.item()) / rt.world_size
