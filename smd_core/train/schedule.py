"""Adam and its learning-rate schedule (warm-up, then multistep / cosine / constant), per optimizer step."""

from __future__ import annotations

import math

import torch
from torch import nn

from smd_core.train.config import OptimConfig, TrainConfig


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


def build_optimizer(model: nn.Module,
                    cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
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
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, o, cfg.steps))
