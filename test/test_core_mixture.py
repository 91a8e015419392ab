"""Mixture math: activations, mode selection, losses against hand-computed values, uncertainty."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from smd_core.model import mixture
from smd_core.model.mixture import Prediction, activate


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def bimodal(mu0, mu1, s0, s1, p0, max_disp=100.0) -> Prediction:
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    raw = torch.tensor([[[logit(mu0)], [logit(mu1)], [logit(s0)], [logit(s1)], [logit(p0)]]], dtype=torch.float64)
    pred = activate(raw, "bimodal", max_disp)
    assert torch.allclose(pred.mu0, t(mu0 * max_disp)) and torch.allclose(pred.pi1, t(1 - p0))
    return pred


def test_activate_bimodal_selects_highest_density_mode():
    # pi0/sigma0 = 0.3/0.05 = 6 > pi1/sigma1 = 0.7/0.2 = 3.5 -> mode 0 although pi0 < pi1.
    pred = bimodal(0.2, 0.6, 0.05, 0.2, 0.3)
    assert pred.disparity.item() == pytest.approx(20.0)
    pred = bimodal(0.2, 0.6, 0.05, 0.2, 0.2)  # 4 < 4 is false -> mode 1
    assert pred.disparity.item() == pytest.approx(60.0)


def test_sigma_is_clamped_like_the_reference():
    raw = torch.full((1, 5, 1), -20.0)
    pred = activate(raw, "bimodal", 256)
    assert pred.sigma0.item() == pytest.approx(0.01) and pred.sigma1.item() == pytest.approx(0.01)


@pytest.mark.parametrize("output,k", [("standard", 1), ("unimodal", 2), ("bimodal", 5)])
def test_activate_shapes_and_errors(output, k):
    pred = activate(torch.zeros(2, k, 7), output, 192)
    assert pred.disparity.shape == (2, 7) and pred.output == output
    assert torch.allclose(pred.disparity, torch.full((2, 7), 96.0))
    with pytest.raises(ValueError, match="raw outputs"):
        activate(torch.zeros(2, k + 1, 7), output, 192)
    with pytest.raises(ValueError, match="output must be"):
        activate(torch.zeros(2, k, 7), "trimodal", 192)


def test_bimodal_nll_matches_hand_computation():
    pred = bimodal(0.2, 0.6, 0.05, 0.2, 0.3, max_disp=100.0)
    y = 0.25
    lap = lambda y, mu, b: math.exp(-abs(y - mu) / b) / (2 * b)  # noqa: E731
    expected = -math.log(0.3 * lap(y, 0.2, 0.05) + 0.7 * lap(y, 0.6, 0.2))
    got = mixture.loss(pred, torch.tensor([[25.0]], dtype=torch.float64), output="bimodal", max_disp=100.0)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_unimodal_and_l1_losses_match_hand_computation():
    raw = torch.tensor([[[logit(0.4), logit(0.4)], [logit(0.1), logit(0.1)]]], dtype=torch.float64)
    pred = activate(raw, "unimodal", 50.0)
    target = torch.tensor([[25.0, 0.0]], dtype=torch.float64)  # second label invalid (0)
    expected = abs(0.4 - 0.5) / 0.1 + math.log(0.1)
    assert mixture.loss(pred, target, output="unimodal", max_disp=50.0).item() == pytest.approx(expected)
    pred = activate(raw[:, :1], "standard", 50.0)
    target = torch.tensor([[30.0, 60.0]], dtype=torch.float64)  # 60/50 > 1: invalid
    assert mixture.loss(pred, target, output="standard", max_disp=50.0).item() == pytest.approx(0.2)


def test_loss_errors_and_empty_labels():
    pred = activate(torch.zeros(1, 1, 3, requires_grad=True), "standard", 10.0)
    with pytest.raises(ValueError, match="target shape"):
        mixture.loss(pred, torch.zeros(1, 4), output="standard", max_disp=10.0)
    with pytest.raises(ValueError, match="output must be"):
        mixture.loss(pred, torch.ones(1, 3), output="other", max_disp=10.0)
    with pytest.raises(ValueError, match="sigma"):
        mixture.loss(pred, torch.ones(1, 3), output="unimodal", max_disp=10.0)
    zero = mixture.loss(pred, torch.zeros(1, 3), output="standard", max_disp=10.0)
    assert zero.item() == 0.0 and zero.requires_grad


def test_nll_stays_finite_far_from_both_modes():
    pred = bimodal(0.01, 0.02, 0.01, 0.01, 0.5)
    got = mixture.loss(pred, torch.tensor([[99.0]], dtype=torch.float64), output="bimodal", max_disp=100.0)
    assert math.isfinite(got.item()) and got.item() > 90


def reference_entropy(mu0, mu1, s0, s1, p0, p1, n=2000, a=-1.0, b=2.0):
    """NumPy port of the reference's loop (SMD-Nets lib/utils.py semantics, written here for the test)."""
    def f(x):
        return p0 * 0.5 * np.exp(-np.abs(mu0 - x) / s0) / s0 + p1 * 0.5 * np.exp(-np.abs(mu1 - x) / s1) / s1

    total = 0.0
    for k in range(1, n):
        fx = f(a + k * (b - a) / n)
        total = total + np.where(fx < 1e-6, 0.0, fx * np.log(np.maximum(fx, 1e-300)))
    return -(b - a) * (f(a) / 2 + f(b) / 2 + total) / n


def test_differential_entropy_matches_reference_quadrature():
    rng = np.random.default_rng(0)
    n = 200
    mu0, mu1 = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    s0, s1 = rng.uniform(0.01, 1, n), rng.uniform(0.01, 1, n)
    p0 = rng.uniform(0, 1, n)
    ref = reference_entropy(mu0, mu1, s0, s1, p0, 1 - p0)
    t = [torch.from_numpy(v) for v in (mu0, mu1, s0, s1, p0, 1 - p0)]
    got = mixture.differential_entropy(*t, chunk=64).numpy()
    assert np.abs(got - ref).max() < 1e-3
    # A single Laplacian (pi0 = 1) has entropy 1 + log(2b).
    one = mixture.differential_entropy(*(torch.tensor([v]) for v in (0.5, 0.5, 0.05, 0.05, 1.0, 0.0)))
    assert one.item() == pytest.approx(1 + math.log(0.1), abs=1e-3)


def test_uncertainty_kinds():
    pred = bimodal(0.2, 0.6, 0.05, 0.2, 0.3, max_disp=100.0)
    sig = mixture.uncertainty(pred, max_disp=100.0, kind="sigma").item()
    assert sig == pytest.approx(math.sqrt(2) * 0.05 * 100)
    # "peak": the selected mode (0: 0.3 / 0.05 > 0.7 / 0.2) with its weight folded in; = sigma at pi = 1.
    assert mixture.uncertainty(pred, max_disp=100.0, kind="peak").item() == pytest.approx(sig / 0.3, rel=1e-5)
    sure = bimodal(0.2, 0.6, 0.05, 0.2, 1 - 1e-9, max_disp=100.0)
    assert mixture.uncertainty(sure, max_disp=100.0, kind="peak").item() == pytest.approx(sig, rel=1e-4)
    other = bimodal(0.2, 0.6, 0.05, 0.01, 0.5, max_disp=100.0)  # mode 1 selected: 0.5 / 0.01 > 0.5 / 0.05
    assert mixture.uncertainty(other, max_disp=100.0, kind="peak").item() == pytest.approx(
        math.sqrt(2) * 0.01 / 0.5 * 100, rel=1e-4)
    std = mixture.uncertainty(pred, max_disp=100.0, kind="std").item()
    mean = 0.3 * 0.2 + 0.7 * 0.6
    second = 0.3 * (2 * 0.05**2 + 0.04) + 0.7 * (2 * 0.2**2 + 0.36)
    assert std == pytest.approx(math.sqrt(second - mean**2) * 100)
    ent = mixture.uncertainty(pred, max_disp=100.0, kind="entropy")
    assert torch.isfinite(ent).all()
    with pytest.raises(ValueError, match="kind"):
        mixture.uncertainty(pred, max_disp=100.0, kind="variance")
    std_pred = activate(torch.zeros(1, 1, 2), "standard", 10.0)
    assert mixture.uncertainty(std_pred, max_disp=10.0).abs().sum() == 0
    with pytest.raises(ValueError, match="entropy"):
        mixture.uncertainty(std_pred, max_disp=10.0, kind="entropy")
    uni = activate(torch.zeros(1, 2, 2), "unimodal", 10.0)
    assert mixture.uncertainty(uni, max_disp=10.0).allclose(torch.full((1, 2), math.sqrt(2) * 0.5 * 10))
    assert mixture.uncertainty(uni, max_disp=10.0, kind="peak").allclose(torch.full((1, 2), math.sqrt(2) * 0.5 * 10))
    assert mixture.uncertainty(std_pred, max_disp=10.0, kind="peak").abs().sum() == 0
    assert mixture.uncertainty(uni, max_disp=10.0, kind="entropy").allclose(torch.full((1, 2), 1.0))


def test_coarse_disparity_adds_an_l1_term():
    pred = activate(torch.zeros(1, 1, 2, dtype=torch.float64), "standard", 10.0)  # disparity 5 px
    target = torch.tensor([[5.0, 8.0]], dtype=torch.float64)
    base = mixture.loss(pred, target, output="standard", max_disp=10.0).item()
    assert base == pytest.approx(0.15)
    pred.coarse = torch.tensor([[6.0, 8.0]], dtype=torch.float64)
    got = mixture.loss(pred, target, output="standard", max_disp=10.0).item()
    assert got == pytest.approx(base + mixture.COARSE_WEIGHT * 0.05)


def test_edge_uncertainty_adds_the_distance_to_the_nearer_local_surface_at_jumps() -> None:
    from smd_core.model.mixture import EDGE_GAP_WEIGHT, activate, uncertainty

    # Anchors: filled, alternative, local foreground, local background. Point 0 sits between surfaces 30 and 10
    # (a jump); point 1 on the foreground; point 2 where the surfaces differ by only 1 px (no jump).
    base = torch.tensor([[[20.0, 30.0, 10.5], [20.0, 30.0, 10.5], [30.0, 30.0, 11.0], [10.0, 10.0, 10.0]]])
    raw = torch.zeros(1, 5, 3)
    raw[:, 4] = 5.0  # mode 0 (on anchor 0) takes nearly all the weight
    pred = activate(raw, "bimodal", 64, base, anchor_range=1.0)
    torch.testing.assert_close(pred.disparity, torch.tensor([[20.0, 30.0, 10.5]]))
    torch.testing.assert_close(pred.surface_gap, torch.tensor([[10.0, 0.0, 0.0]]))
    assert "surface_gap" not in pred.maps()
    peak = uncertainty(pred, max_disp=64, kind="peak")
    torch.testing.assert_close(uncertainty(pred, max_disp=64, kind="edge"), peak + EDGE_GAP_WEIGHT * pred.surface_gap)
    # Two anchors give no local surfaces: "edge" is "peak".
    two = activate(raw, "bimodal", 64, base[:, :2], anchor_range=1.0)
    assert two.surface_gap is None
    torch.testing.assert_close(uncertainty(two, max_disp=64, kind="edge"), uncertainty(two, max_disp=64, kind="peak"))
