"""PSMNet backbone: strict loading of the published layout, and parity with the SMD-Nets reference outputs.

The parity fixture (../shared/parity/psm_bimodal_s1) holds the reference implementation's outputs for a
256 x 512 Middlebury crop at 4096 sub-pixel points and over the dense grid. One encode of that pair
(~10 s on 2 CPU cores) is shared by the point and the dense comparisons.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_parity_case
from torch import nn

import smd_core
from smd_core.model.backbones import build_backbone
from smd_core.model.backbones.psmnet import BlockAvgPool, PSMNet, build_cost_volume

CASE = "psm_bimodal_s1"
FIELDS = ("disparity", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1")  # = pred0 .. pred6
DISP_TOL_PX = 0.01
PROB_TOL = 1e-3  # sigma (units of max_disp) and pi
SELECTED_AGREEMENT = 0.995  # the selected mode may flip where pi0/sigma0 ~ pi1/sigma1


def as_input(image_bgr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float32 0..255, the reference's network input."""
    return torch.from_numpy(image_bgr).permute(2, 0, 1).unsqueeze(0).float()


@pytest.fixture(scope="module")
def parity_run():
    """Load the checkpoint, run the dense Predictor once and keep the features its encode produced."""
    ckpt, case = load_parity_case(CASE)
    model = smd_core.load_model(ckpt)
    seen: list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]] = []
    encode = model.encode

    def recording_encode(left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        features = encode(left, right)
        seen.append((left.clone(), right.clone(), features))
        return features

    model.encode = recording_encode  # instance attribute: shadows the method for this model only
    s = int(case["superres_factor"])
    dense = smd_core.Predictor(model).predict(case["left_bgr"], case["right_bgr"], scale=float(s))
    del model.encode
    assert len(seen) == 1
    return model, case, seen[0], dense


def test_psmnet_checkpoint_keys_match_strictly():
    ckpt, _ = load_parity_case(CASE)
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    backbone_sd = {k.removeprefix("stereo_network."): v for k, v in sd.items() if k.startswith("stereo_network.")}
    net = PSMNet(max_disp=256)
    own = net.state_dict()
    assert set(own) == set(backbone_sd)
    assert all(own[k].shape == v.shape for k, v in backbone_sd.items())
    net.load_state_dict(backbone_sd, strict=True)
    assert net.feature_channels == 96 == sd["mlp.conv0.weight"].shape[1]


@pytest.mark.parametrize("name", ["PSMNet", "psmnet", "PSMNET"])
def test_load_model_with_explicit_backbone_name(name):
    ckpt, _ = load_parity_case(CASE)
    model = smd_core.load_model(ckpt, backbone=name, output="bimodal", max_disp=256)
    assert isinstance(model.stereo_network, PSMNet) and model.config.backbone == "psmnet"
    assert not model.training
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    assert set(own) == set(sd)
    assert all(torch.equal(own[k], sd[k]) for k in sd)


def test_load_model_rejects_contradicting_backbone():
    ckpt, _ = load_parity_case(CASE)
    with pytest.raises(ValueError, match="hsmnet"):
        smd_core.load_model(ckpt, backbone="HSMNet")


def test_point_queries_match_reference(parity_run):
    model, case, (left, right, features), _ = parity_run
    # The Predictor fed the network exactly the reference input (256 x 512 needs no padding).
    assert torch.equal(left, as_input(case["left_bgr"])) and torch.equal(right, as_input(case["right_bgr"]))
    h, w = case["left_bgr"].shape[:2]
    assert [tuple(f.shape) for f in features] == [(1, 64, h // 4, w // 4), (1, 32, h // 4, w // 4)]

    s = int(case["superres_factor"])
    with torch.inference_mode():
        pred = model.query(features, torch.from_numpy(case["points"]), (h * s, w * s))
    for i, name in enumerate(FIELDS):
        ours = getattr(pred, name)[0].numpy()
        ref = case[f"pred{i}"][0, 0]
        err = np.abs(ours - ref)
        if name == "disparity":
            agree = float((err <= DISP_TOL_PX).mean())
            assert agree >= SELECTED_AGREEMENT, f"selected disparity agrees on {agree:.2%} of points"
        else:
            tol = DISP_TOL_PX if name.startswith("mu") else PROB_TOL
            assert err.max() <= tol, f"{name}: max abs error {err.max():.3g} > {tol}"


def test_dense_prediction_matches_reference(parity_run):
    _, case, _, dense = parity_run
    ref = case["full_disp"][0]
    assert dense.disparity.shape == ref.shape and dense.disparity.dtype == np.float32
    # Our disparity is in output-grid pixels; the reference's stays in input pixels.
    ours = dense.disparity / dense.disparity_scale
    agree = float((np.abs(ours - ref) <= DISP_TOL_PX).mean())
    assert agree >= SELECTED_AGREEMENT, f"dense disparity agrees on {agree:.2%} of pixels"
    assert np.isfinite(dense.uncertainty).all() and (dense.uncertainty > 0).all()


def test_odd_size_and_superresolution(parity_run):
    """Not a multiple of 64 (padded by the Predictor) and 2x output; small enough for the pyramid fallback."""
    model, case, _, _ = parity_run
    left, right = case["left_bgr"][:100, :150], case["right_bgr"][:100, :150]
    dense = smd_core.Predictor(model, chunk_points=20_000).predict(left, right, scale=2.0)
    assert dense.disparity.shape == (200, 300) and dense.disparity_scale == 2.0
    for field in ("disparity", "uncertainty", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1"):
        value = getattr(dense, field)
        assert value.shape == (200, 300) and np.isfinite(value).all(), field
    assert (dense.disparity >= 0).all() and (dense.disparity <= 2 * model.config.max_disp).all()
    assert np.allclose(dense.pi0 + dense.pi1, 1.0, atol=1e-6)


def test_cost_volume_equals_per_disparity_fill():
    torch.manual_seed(0)
    left, right = torch.randn(2, 5, 3, 20), torch.randn(2, 5, 3, 20)
    num_disp = 8
    expected = torch.zeros(2, 10, num_disp, 3, 20)
    for d in range(num_disp):
        expected[:, :5, d, :, d:] = left[..., d:]
        expected[:, 5:, d, :, d:] = right[..., : 20 - d]
    assert torch.equal(build_cost_volume(left, right, num_disp), expected)
    # More hypotheses than columns: the extra disparities are all zero.
    assert torch.equal(build_cost_volume(left[..., :4], right[..., :4], 6)[:, :, 4:], torch.zeros(2, 10, 2, 3, 4))


def test_block_pool_matches_avgpool_and_degrades_gracefully():
    x = torch.randn(1, 4, 80, 130)
    assert torch.equal(BlockAvgPool(64)(x), nn.AvgPool2d(64, stride=64)(x))
    small = torch.randn(1, 4, 16, 40)
    assert torch.allclose(BlockAvgPool(64)(small), small.mean(dim=(2, 3), keepdim=True), atol=1e-6)
    assert BlockAvgPool(32)(small).shape == (1, 4, 1, 1)


def test_small_model_shapes_eval_and_training():
    torch.manual_seed(0)
    net = build_backbone("psmnet", max_disp=32)
    assert isinstance(net, PSMNet) and net.feature_channels == 32 + 8
    # Batch 2: in training, BatchNorm needs more than one value per channel after the 1x1 global pooling.
    left, right = torch.rand(2, 3, 32, 64) * 255, torch.rand(2, 3, 32, 64) * 255
    net.eval()
    with torch.inference_mode():
        cost, feat = net(left, right)
        # Eval batches both images through the feature extractor; it must equal two separate passes.
        assert torch.allclose(feat, net.feature_extraction(left), atol=1e-4)
    assert cost.shape == (2, 8, 8, 16) and feat.shape == (2, 32, 8, 16)
    net.train()
    cost, feat = net(left, right)
    (cost.mean() + feat.mean()).backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(
    ("left_shape", "right_shape", "match"),
    [
        ((1, 3, 64, 72), (1, 3, 64, 72), "multiples of 16"),
        ((1, 3, 64, 64), (1, 3, 64, 128), r"\(B, 3, H, W\)"),
        ((1, 1, 64, 64), (1, 1, 64, 64), r"\(B, 3, H, W\)"),
        ((3, 64, 64), (3, 64, 64), r"\(B, 3, H, W\)"),
    ],
)
def test_forward_rejects_bad_inputs(left_shape, right_shape, match):
    net = PSMNet(max_disp=16).eval()
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(left_shape), torch.zeros(right_shape))


@pytest.mark.parametrize("max_disp", [0, -16, 40, 12.5])
def test_rejects_bad_max_disp(max_disp):
    with pytest.raises(ValueError, match="max_disp"):
        PSMNet(max_disp=max_disp)
