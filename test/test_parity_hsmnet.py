"""HSMNet backbone: strict loading of the published layout, and parity with the SMD-Nets reference outputs.

The parity fixture (../shared/parity/hsm_bimodal_s1) holds the reference implementation's outputs for a
256 x 512 Middlebury crop at 4096 sub-pixel points and over the dense grid. One encode of that pair
(~10 s on 2 CPU cores) is shared by the point and the dense comparisons.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_parity_case

import smd_core
from smd_core.model.backbones import build_backbone
from smd_core.model.backbones.hsmnet import (
    DecoderBlock,
    DisparityRegression,
    HSMNet,
    difference_volume,
    pyramid_pool_sizes,
)

CASE = "hsm_bimodal_s1"
FIELDS = ("disparity", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1")  # = pred0 .. pred6
DISP_TOL_PX = 0.01
PROB_TOL = 1e-3  # sigma (units of max_disp) and pi
SELECTED_AGREEMENT = 0.995  # the selected mode may flip where pi0/sigma0 ~ pi1/sigma1


def as_input(image_bgr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float32 0..255, the reference's network input."""
    return torch.from_numpy(image_bgr).permute(2, 0, 1).unsqueeze(0).float()


def feature_shapes(b: int, h: int, w: int, max_disp: int) -> list[tuple[int, ...]]:
    return [
        (b, max_disp // 16, h // 8, w // 8),
        (b, 32, h // 2, w // 2),
        (b, 64, h // 8, w // 8),
        (b, 128, h // 16, w // 16),
        (b, 128, h // 32, w // 32),
    ]


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


def test_hsmnet_checkpoint_keys_match_strictly():
    ckpt, _ = load_parity_case(CASE)
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    backbone_sd = {k.removeprefix("stereo_network."): v for k, v in sd.items() if k.startswith("stereo_network.")}
    net = HSMNet(max_disp=256)
    own = net.state_dict()
    assert set(own) == set(backbone_sd)
    assert all(own[k].shape == v.shape for k, v in backbone_sd.items())
    net.load_state_dict(backbone_sd, strict=True)
    assert net.feature_channels == 368 == sd["mlp.conv0.weight"].shape[1]
    # The disparity-regression buffers are the bin indices 0..n-1, as in the file.
    assert torch.equal(net.disp_reg32.disp.flatten(), torch.arange(8, dtype=torch.float32))


@pytest.mark.parametrize("name", ["HSMNet", "hsmnet", "HSMNET"])
def test_load_model_with_explicit_backbone_name(name):
    ckpt, _ = load_parity_case(CASE)
    model = smd_core.load_model(ckpt, backbone=name, output="bimodal", max_disp=256)
    assert isinstance(model.stereo_network, HSMNet) and model.config.backbone == "hsmnet"
    assert not model.training
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    assert set(own) == set(sd)
    assert all(torch.equal(own[k], sd[k]) for k in sd)


def test_load_model_rejects_contradicting_backbone():
    ckpt, _ = load_parity_case(CASE)
    with pytest.raises(ValueError, match="psmnet"):
        smd_core.load_model(ckpt, backbone="PSMNet")


def test_point_queries_match_reference(parity_run):
    model, case, (left, right, features), _ = parity_run
    # The Predictor fed the network exactly the reference input (256 x 512 needs no padding).
    assert torch.equal(left, as_input(case["left_bgr"])) and torch.equal(right, as_input(case["right_bgr"]))
    h, w = case["left_bgr"].shape[:2]
    assert [tuple(f.shape) for f in features] == feature_shapes(1, h, w, 256)

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
    """Not a multiple of 64 (padded by the Predictor to 64 x 128, whose 1/64 level is 1 x 2) and a 2x grid."""
    model, case, _, _ = parity_run
    left, right = case["left_bgr"][:60, :100], case["right_bgr"][:60, :100]
    dense = smd_core.Predictor(model, chunk_points=10_000).predict(left, right, scale=2.0)
    assert dense.disparity.shape == (120, 200) and dense.disparity_scale == 2.0
    for field in ("disparity", "uncertainty", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1"):
        value = getattr(dense, field)
        assert value.shape == (120, 200) and np.isfinite(value).all(), field
    assert (dense.disparity >= 0).all() and (dense.disparity <= 2 * model.config.max_disp).all()
    assert np.allclose(dense.pi0 + dense.pi1, 1.0, atol=1e-6)


def test_difference_volume_equals_per_disparity_fill():
    torch.manual_seed(0)
    left, right = torch.randn(2, 5, 3, 20), torch.randn(2, 5, 3, 20)
    num_disp = 8
    expected = torch.zeros(2, 5, num_disp, 3, 20)
    for d in range(num_disp):
        expected[:, :, d, :, d:] = (left[..., d:] - right[..., : 20 - d]).abs()
    assert torch.equal(difference_volume(left, right, num_disp), expected)
    # More hypotheses than columns: the extra disparities are all zero.
    assert torch.equal(difference_volume(left[..., :4], right[..., :4], 6)[:, :, 4:], torch.zeros(2, 5, 2, 3, 4))


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((4, 8), [(2, 4), (4, 8), (4, 8), (4, 8)]),  # 256 x 512 input: bins 1, 1, 1, 2
        ((5, 8), [(2, 4), (5, 8), (5, 8), (5, 8)]),  # kernels truncate; the leftover row is dropped
        ((8, 16), [(2, 4), (2, 5), (4, 8), (8, 16)]),  # bins 1, 2, 3, 4 -> int(16 / 3) = 5
        ((1, 3), [(1, 3)] * 4),  # below 2 on a side: the reference divides by zero; we pool globally
        ((2, 4, 8), [(2, 4, 8)] * 4),
    ],
)
def test_pyramid_pool_sizes(size, expected):
    assert pyramid_pool_sizes(size) == expected


def test_small_model_shapes_eval_and_training():
    torch.manual_seed(0)
    net = build_backbone("hsmnet", max_disp=32)
    assert isinstance(net, HSMNet) and net.feature_channels == 352 + 2
    # 64 x 128: the coarsest level is 1 x 2, where the reference's pyramid pooling would divide by zero.
    left, right = torch.rand(1, 3, 64, 128) * 255, torch.rand(1, 3, 64, 128) * 255
    net.eval()
    with torch.inference_mode():
        features = net(left, right)
        # Eval batches both images through the feature extractor; it must equal a separate pass (up to
        # float rounding: untrained weights on 0..255 inputs give activations in the hundreds).
        _, separate = net.feature_extraction(left)
        assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-2) for a, b in zip(features[1:], separate, strict=True))
    assert [tuple(f.shape) for f in features] == feature_shapes(1, 64, 128, 32)
    assert sum(f.shape[1] for f in features) == net.feature_channels

    net.train()
    features = net(left, right)
    sum(f.mean() for f in features).backward()
    used = ("feature_extraction.", "decoder3.")
    unused_projections = ("feature_extraction.proj6", "feature_extraction.proj5", "feature_extraction.proj4")
    for name, p in net.named_parameters():
        if name.startswith(used) and not name.startswith(unused_projections):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:  # kept only for the published checkpoint layout
            assert p.grad is None, name


def test_decoder_block_with_pooling_and_regression():
    """The coarse decoders are not in SMD-Nets' forward pass but must still run on their own."""
    torch.manual_seed(0)
    block = DecoderBlock(2, 8, 8, pool=True, up=True).eval()
    with torch.inference_mode():
        cost = block(torch.randn(1, 8, 8, 6, 10))
    assert cost.shape == (1, 8, 6, 10) and torch.isfinite(cost).all()

    reg = DisparityRegression(64, 16)
    assert reg.disp.shape == (1, 4, 1, 1)
    prob = torch.zeros(1, 4, 2, 3)
    prob[:, 2] = 1.0  # all mass on bin 2 -> 2 * 16 px
    assert torch.equal(reg(prob), torch.full((1, 2, 3), 32.0))


@pytest.mark.parametrize(
    ("left_shape", "right_shape", "match"),
    [
        ((1, 3, 64, 96), (1, 3, 64, 96), "multiples of 64"),
        ((1, 3, 32, 64), (1, 3, 32, 64), "multiples of 64"),
        ((1, 3, 64, 64), (1, 3, 64, 128), r"\(B, 3, H, W\)"),
        ((1, 1, 64, 64), (1, 1, 64, 64), r"\(B, 3, H, W\)"),
        ((3, 64, 64), (3, 64, 64), r"\(B, 3, H, W\)"),
    ],
)
def test_forward_rejects_bad_inputs(left_shape, right_shape, match):
    net = HSMNet(max_disp=16).eval()
    with pytest.raises(ValueError, match=match):
        net(torch.zeros(left_shape), torch.zeros(right_shape))


@pytest.mark.parametrize("max_disp", [0, -16, 40, 12.5, True])
def test_rejects_bad_max_disp(max_disp):
    with pytest.raises(ValueError, match="max_disp"):
        HSMNet(max_disp=max_disp)
