"""PSMNet backbone building blocks, shapes and input checks (parity: test_parity.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from smd_core.model.backbones import build_backbone
from smd_core.model.backbones.psmnet import BlockAvgPool, PSMNet, build_cost_volume


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
