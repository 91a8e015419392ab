"""Dense validation during training, with metrics pooled over pixels as `smd eval` reports them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from smd_core.model.network import SMDNet
from smd_core.train.config import TrainConfig
from smd_core.train.logger import Logger


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
    `sample.aspect_ratio`, the prediction is queried on the full ground-truth grid, and compared with the GT
    in GT pixels. The first `val_images` frames also go to TensorBoard as input, disparity,
    uncertainty and error images. The model is left in training mode.
    """
    from smd_core import viz
    from smd_core.infer.torch_backend import Predictor

    assert cfg.val_data is not None
    n = min(len(frames), cfg.val_samples) if cfg.val_samples else len(frames)  # type: ignore[arg-type]
    predictor = Predictor(model, device=device)
    per_frame: list[dict[str, float]] = []
    try:
        for i in range(n):
            frame = frames[i]
            gt = np.asarray(frame["disp_left"], dtype=np.float32)
            dense = predictor.predict(frame["left"], frame["right"], output_size=gt.shape[:2],
                                      input_scale=1.0 / float(cfg.val_data.sample.aspect_ratio))
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

