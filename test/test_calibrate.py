"""The cloud threshold calibrated when a model is shipped (`smd_core.eval.calibrate`): densities of the node's
cloud rule on constructed frames, the choice of the smallest threshold reaching a density, and a calibration
of the bundled default on rendered scenes beside SGBM."""

from __future__ import annotations

import numpy as np
import pytest

from smd_core import metrics as M
from smd_core.eval.calibrate import FACTORS, calibrate_cloud_threshold, cloud_densities, threshold_for_density
from smd_core.eval.data import load_frames
from smd_core.geometry import cloud_mask
from smd_core.infer.confidence import uncertainty_floor
from smd_core.weights import WEIGHTS_DIR


def test_cloud_densities_follow_the_threshold_and_drop_speckles() -> None:
    disparity = np.full((40, 40), 10.0, np.float32)
    uncertainty = np.tile(np.arange(40, dtype=np.float32), (40, 1))  # column x has uncertainty x px
    disparity[5:8, 5:8] = 30.0  # a 9 px island unlike all around it: a speckle, never in the cloud
    scored = np.ones_like(disparity, bool)
    scored[:, 30:] = False  # no ground truth there: neither kept nor counted
    dens = cloud_densities(disparity, uncertainty, scored, [9.5, 19.5, 100.0])
    assert dens == pytest.approx([100.0 * (400 - 9) / 1200, 100.0 * (800 - 9) / 1200, 100.0 * (1200 - 9) / 1200])
    with pytest.raises(ValueError, match="differ in size"):
        cloud_densities(disparity, uncertainty[:, :10], scored, [1.0])
    with pytest.raises(ValueError, match="no scored pixels"):
        cloud_densities(disparity, uncertainty, np.zeros_like(scored), [1.0])


def test_the_smallest_threshold_reaching_the_density_in_the_frame_mean() -> None:
    thresholds = [1.0, 2.0, 3.0]
    frames = [[70.0, 80.0, 90.0], [80.0, 86.0, 95.0]]  # means 75, 83, 92.5
    assert threshold_for_density(frames, thresholds, 83.0) == (2.0, 83.0)
    assert threshold_for_density(frames, thresholds, 83.1) == (3.0, 92.5)
    assert threshold_for_density(frames, thresholds, 10.0) == (1.0, 75.0)
    with pytest.raises(ValueError, match="keeps 93.00 %"):
        threshold_for_density(frames, thresholds, 93.0)
    with pytest.raises(ValueError, match="must increase"):
        threshold_for_density(frames, [1.0, 1.0, 3.0], 80.0)
    with pytest.raises(ValueError, match="at least one frame"):
        threshold_for_density([], thresholds, 80.0)


@pytest.mark.skipif(not (WEIGHTS_DIR / "guided_bimodal.pt").is_file(), reason="no bundled default model")
def test_the_bundled_default_is_calibrated_to_sgbms_density_and_no_further() -> None:
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model

    model = load_model(WEIGHTS_DIR / "guided_bimodal.pt")
    frames = load_frames("synthetic:9000:2", ["height=120", "width=200"])
    frames = [frames.frame(i) for i in range(len(frames))]
    cal = calibrate_cloud_threshold(model, frames, progress=False)
    floor = uncertainty_floor(model.config.max_disp)
    assert cal.frames == 2 and cal.factor in FACTORS and cal.max_uncertainty == pytest.approx(cal.factor * floor)
    assert 0 < cal.sgbm_density <= cal.density <= 100
    # The node's cloud rule at the chosen threshold, and one step below it, recomputed here.
    predictor = Predictor(model)
    preds = [predictor.predict(f["left"], f["right"]) for f in frames]

    def density(threshold: float) -> float:
        out = []
        for f, p in zip(frames, preds, strict=True):
            scored = M.valid_mask(np.asarray(f["disp_left"], np.float32), max_disp=model.config.max_disp)
            keep = cloud_mask(p.disparity, p.uncertainty, np.isfinite(p.disparity), max_uncertainty=threshold)
            out.append(100.0 * (keep & scored).sum() / scored.sum())
        return float(np.mean(out))

    assert density(cal.max_uncertainty) == pytest.approx(cal.density)
    if cal.factor > FACTORS[0]:
        below = FACTORS[FACTORS.index(cal.factor) - 1] * floor
        assert density(below) < cal.sgbm_density
    with pytest.raises(ValueError, match="no uncertainty"):
        calibrate_cloud_threshold(load_model(WEIGHTS_DIR / "guided_standard.pt"), frames, progress=False)
