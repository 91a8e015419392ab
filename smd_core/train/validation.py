"""Dense validation during training, pooled over pixels as `smd eval` pools them (`metrics.pool`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from smd_core import viz
from smd_core.infer.torch_backend import Predictor
from smd_core.metrics import compute_metrics, pool
from smd_core.model.network import SMDNet
from smd_core.train.config import TrainConfig
from smd_core.train.logger import Logger


def validate(model: SMDNet, frames: Dataset, cfg: TrainConfig, device: torch.device,
             logger: Logger | None = None, step: int = 0) -> dict[str, float]:
    """The pooled metrics (those defined) of the first `val_samples` frames of the val set, predicted as at test
    time in SMD-Nets (images downscaled by its `sample.aspect_ratio`, queried on the full ground-truth grid); the
    first `val_images` also go to TensorBoard. The model is left in training mode."""
    assert cfg.val_data is not None
    n = min(len(frames), cfg.val_samples) if cfg.val_samples else len(frames)  # type: ignore[arg-type]
    predictor = Predictor(model, device=device)
    rows = []
    try:
        for i in range(n):
            frame = frames[i]
            gt = np.asarray(frame["disp_left"], dtype=np.float32)
            dense = predictor.predict(frame["left"], frame["right"], output_size=gt.shape[:2],
                                      input_scale=1.0 / float(cfg.val_data.sample.aspect_ratio))
            rows.append(compute_metrics(dense.disparity, gt))
            if logger is not None and logger.enabled and i < cfg.val_images:
                valid = np.isfinite(gt) & (gt > 0)
                vmax = float(gt[valid].max()) if valid.any() else None
                logger.image(step, f"val_{i}/left", np.asarray(frame["left"]))
                logger.image(step, f"val_{i}/disparity", viz.colorize_disparity(dense.disparity, vmax=vmax))
                logger.image(step, f"val_{i}/uncertainty", viz.colorize_uncertainty(dense.uncertainty))
                logger.image(step, f"val_{i}/error", viz.colorize_error(np.abs(dense.disparity - gt), valid=valid))
    finally:
        model.train()
    return {k: v for k, v in pool(rows).items() if math.isfinite(v)}
