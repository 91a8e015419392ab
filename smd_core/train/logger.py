"""Rank-0 training log: TensorBoard scalars and images when installed, always `metrics.jsonl`."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


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
