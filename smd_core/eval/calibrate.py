"""The node's default cloud threshold of a mixture model, calibrated when the model is shipped
(`scripts/ship_models.py`, on the held-out synthetic set).

The node keeps, by default, the pixels whose uncertainty is at most the checkpoint's
`Deployment.cloud_max_uncertainty`, less the speckles among them (`geometry.cloud_mask`). Users compare that
cloud with SGBM's at equal density, so the threshold is the smallest multiple of the model's uncertainty floor
(`FACTORS`) whose cloud keeps, averaged over frames, at least as many of the scored pixels as SGBM matches
there. A fixed multiple drifts with training: a continuation that sharpens the uncertainty keeps fewer points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smd_core import metrics as M
from smd_core.classical import SGBMConfig
from smd_core.eval.baselines import run_baselines
from smd_core.geometry import cloud_mask
from smd_core.infer.confidence import uncertainty_floor

# Multiples of the floor tried: fine steps where trained heads land, coarse ones for a barely trained model.
FACTORS = tuple(round(1.5 + 0.05 * i, 2) for i in range(70)) + tuple(float(f) for f in range(5, 51))


@dataclass(frozen=True)
class Calibration:
    """A calibrated cloud threshold: `max_uncertainty` (px, network grid) = `factor` x the model's floor; the
    frame-mean densities (% of scored pixels) of its cloud and of SGBM's matches on the calibration frames."""

    max_uncertainty: float
    factor: float
    density: float
    sgbm_density: float
    frames: int


def cloud_densities(disparity: np.ndarray, uncertainty: np.ndarray, scored: np.ndarray,
                    thresholds: Sequence[float]) -> list[float]:
    """% of `scored` (bool (H, W)) pixels in the node's cloud (`geometry.cloud_mask` of the finite disparities,
    default speckle filter) at each of `thresholds` (px); disparity and uncertainty (H, W) on scored's grid."""
    if not disparity.shape == uncertainty.shape == scored.shape:
        raise ValueError(f"disparity {disparity.shape}, uncertainty {uncertainty.shape} and scored "
                         f"{scored.shape} differ in size")
    total = int(scored.sum())
    if total == 0:
        raise ValueError("no scored pixels: the frame's ground truth has no valid disparity")
    finite = np.isfinite(disparity)
    return [100.0 * int((cloud_mask(disparity, uncertainty, finite, max_uncertainty=t) & scored).sum()) / total
            for t in thresholds]


def threshold_for_density(densities: Sequence[Sequence[float]], thresholds: Sequence[float],
                          target: float) -> tuple[float, float]:
    """(the smallest of the increasing `thresholds` whose frame-mean density >= `target` %, that density);
    `densities`: per frame, `cloud_densities` at `thresholds`."""
    if not densities:
        raise ValueError("threshold_for_density needs at least one frame")
    if np.any(np.diff(np.asarray(thresholds, dtype=np.float64)) <= 0):
        raise ValueError(f"thresholds must increase, got {list(thresholds)}")
    mean = np.mean(np.asarray(densities, dtype=np.float64), axis=0)
    reached = np.flatnonzero(mean >= target)
    if reached.size == 0:
        raise ValueError(f"no threshold up to {thresholds[-1]:g} px keeps {target:.2f} % of the pixels "
                         f"(at most {mean.max():.2f} %)")
    return float(thresholds[reached[0]]), float(mean[reached[0]])


def calibrate_cloud_threshold(model: Any, frames: Iterable[Mapping[str, Any]], *, sgbm: SGBMConfig | None = None,
                              factors: Sequence[float] = FACTORS, progress: bool = True) -> Calibration:
    """Calibrate `model`'s (an SMDNet with a mixture head) cloud threshold on `frames` (full frames with
    ground truth, as `evaluate` takes), run as the node runs it (its deployment's dtype, scale 1) beside
    SGBM with `sgbm` (default: the model's own SGBM parameters)."""
    from tqdm import tqdm

    from smd_core.infer.torch_backend import Predictor

    if model.config.output == "standard":
        raise ValueError("a standard (L1) head has no uncertainty to threshold")
    sgbm = sgbm or getattr(model.stereo_network, "sgbm", SGBMConfig())
    max_disp = float(model.config.max_disp)
    floor = uncertainty_floor(max_disp)
    thresholds = [f * floor for f in factors]
    predictor = Predictor(model)
    ours, theirs = [], []
    for frame in tqdm(frames, desc="calibrate cloud", unit="frame", disable=not progress):
        gt = np.asarray(frame["disp_left"], dtype=np.float32)
        scored = M.valid_mask(gt, max_disp=max_disp)
        pred = predictor.predict(frame["left"], frame["right"])
        ours.append(cloud_densities(pred.disparity, pred.uncertainty, scored, thresholds))
        matched = run_baselines(["sgbm"], frame["left"], frame["right"], sgbm, max_disp)["sgbm"][0]
        theirs.append(100.0 * int((np.isfinite(matched) & scored).sum()) / max(int(scored.sum()), 1))
    target = float(np.mean(theirs)) if theirs else 0.0
    threshold, density = threshold_for_density(ours, thresholds, target)
    return Calibration(max_uncertainty=threshold, factor=float(factors[thresholds.index(threshold)]),
                       density=density, sgbm_density=target, frames=len(ours))
