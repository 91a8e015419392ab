"""Edge figures of `smd eval`: the flying / bad-2 against density curve, the breakdown against SGBM + fill,
and their picture, on constructed frames whose answers are known and through `evaluate` with a real model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_evaluate import frames_small, tiny_model  # noqa: F401  (fixture)

from smd_core import metrics as M
from smd_core.eval.curve import curve_counts, flying_breakdown, format_edges, pool_breakdown, pool_curve


def step_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 10 px disparity step at x = 20; a prediction smeared over x = 19, 20 (flying) and wrong by 3 px on
    x = 30..31 far from the edge."""
    gt = np.full((40, 40), 10.0, np.float32)
    gt[:, 20:] = 20.0
    pred = gt.copy()
    pred[:, 19:21] = 15.0
    pred[:, 30:32] += 3.0
    return gt, pred, np.ones_like(gt, bool)


def test_an_uncertainty_that_knows_the_edge_drops_flying_points_first() -> None:
    gt, pred, scored = step_scene()
    edge_aware = np.where(np.abs(pred - 15.0) < 1e-3, 5.0, 1.0).astype(np.float32)
    blind = np.where(np.arange(40)[None, :] < 10, 5.0, 1.0).repeat(40, 0).astype(np.float32)
    good = pool_curve([curve_counts(pred, edge_aware, gt, scored=scored, densities=(100.0, 95.0))],
                      densities=(100.0, 95.0))
    bad = pool_curve([curve_counts(pred, blind, gt, scored=scored, densities=(100.0, 95.0))], densities=(100.0, 95.0))
    assert good["density"] == pytest.approx([100.0, 95.0]) and good["target"] == [100.0, 95.0]
    assert good["flying"][0] == bad["flying"][0] > 0 and good["flying"][1] == 0.0 < bad["flying"][1]
    # bad-2 counts only kept pixels: the 3 px error far from the edge stays in both.
    assert good["bad2"][1] == pytest.approx(100.0 * 80 / 1520)
    with pytest.raises(ValueError, match="densities must be in"):
        curve_counts(pred, edge_aware, gt, scored=scored, densities=(0.0,))
    with pytest.raises(ValueError, match="at least one frame"):
        pool_curve([])


def test_breakdown_separates_kept_repaired_and_introduced_flying_points() -> None:
    gt, model, scored = step_scene()
    fill = gt.copy()
    fill[:, 19] = 15.0   # SGBM + fill flies at x = 19 only; the model there too (kept) and at x = 20 (introduced)
    fill[:, 22] = 14.0   # ... and at x = 22, where the model is right (repaired)
    row = flying_breakdown(model, fill, gt, scored=scored)
    assert row == {"model": 80, "fill": 80, "kept": 40, "introduced": 40, "repaired": 40, "near_anchor": 40}
    pooled = pool_breakdown([row, row])
    assert pooled["n_model"] == 160 and pooled["kept_pct"] == 50.0 and pooled["repaired_pct"] == 50.0
    assert "50.0 % where SGBM + fill flies too" in format_edges({"flying_breakdown": pooled})
    assert M.flying_map(model, gt)[1].sum() == 80


def test_evaluate_reports_the_curve_breakdown_and_draws_them(tiny_model, tmp_path: Path) -> None:  # noqa: F811
    from smd_core.eval.loop import evaluate

    frames = frames_small(2)
    report = evaluate(tiny_model, frames, baselines="bm,sgbm,sgbm_fill", out_dir=tmp_path, images=0, progress=False,
                      max_uncertainty=1.0)
    curve = report["density_curve"]
    assert curve["density"][0] == pytest.approx(100.0) and curve["density"][-1] == pytest.approx(75.0, abs=0.5)
    assert all(len(r["curve"]) == len(curve["target"]) for r in report["per_frame"])
    assert report["flying_breakdown"]["n_fill"] == sum(r["breakdown"]["fill"] for r in report["per_frame"])
    assert "summary_at_bm_density" in report and "summary_at_sgbm_density" in report
    assert (tmp_path / "flying_vs_density.png").stat().st_size > 10_000
    assert "by density" in format_edges(report)
