"""`smd train --config CONFIG.yaml [key=value ...] [--init CKPT] [--resume CKPT_OR_DIR]`.

Also `torchrun --nproc-per-node N -m smd_core.cli train ...`. torch is imported only when a run starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smd_core.train.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="training YAML (see configs/); optional with --resume (the checkpoint's config)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. steps=2000 optim.lr=5e-5 data.sample.crop_size=[256,512]")
    parser.add_argument("--init", default=None, metavar="CKPT",
                        help="start from these weights (published SMD-Nets or smd_ros checkpoint)")
    parser.add_argument("--resume", default=None, metavar="CKPT_OR_DIR",
                        help="continue a run exactly: a step_*.pth file or a run/checkpoint folder (newest)")


def resolve_config(config: Path | None, overrides: Sequence[str], init: str | None, resume: str | None) -> TrainConfig:
    """The run's TrainConfig: the YAML (or, resuming without one, the checkpoint's) plus overrides."""
    from smd_core.model.network import read_checkpoint
    from smd_core.train.checkpoints import resolve_resume
    from smd_core.train.config import config_from_dict, load_config

    if config is not None:
        cfg = load_config(config, overrides)
    elif resume is not None:
        path = resolve_resume(resume)
        saved = read_checkpoint(path).get("train_config")
        if not isinstance(saved, dict):
            raise ValueError(f"{path}: no train_config stored; pass --config")
        cfg = config_from_dict(saved, overrides)
    else:
        raise ValueError("--config is required (unless --resume names a checkpoint that carries its config)")
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
    from smd_core.train.loop import train

    result = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"smd train: finished at step {result.step}, last loss {result.last_loss:.4f}, "
              f"checkpoint {result.checkpoint}")
    return 0
