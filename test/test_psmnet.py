"""PSMNet backbone building blocks, shapes and input checks (parity: test_parity.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from smd_core.model.backbones import build_backbone, check_input_size
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
        ((1, 3, 64, 72), (1, 3, 64, 72), r"multiple of 4 .*W=72 -> 61\.\.64 or 77\.\.80"),
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


def halvings_round_trip(side: int, *, stride: int, levels: int) -> bool:
    """Whether a map of ceil(side / stride) (each stride-2 layer rounds up) halves `levels` times and doubles
    back to the same sizes, as an encoder-decoder with skip additions/concatenations needs."""
    sizes = [-(-side // stride)]
    for _ in range(levels):
        sizes.append(-(-sizes[-1] // 2))
    return sizes[-1] >= 1 and all(2 * small == big for small, big in zip(sizes[1:], sizes[:-1], strict=True))


def test_accepted_sizes_are_those_whose_hourglass_round_trips():
    for side in range(1, 300):
        ok = halvings_round_trip(side, stride=4, levels=2)
        try:
            check_input_size("PSMNet", side, 64, stride=4, multiple=4)
        except ValueError:
            assert not ok, side
        else:
            assert ok, side
    # Sides 16k-3 .. 16k. (The reference also needs ceil(side / 4) >= 64 for its 64 x 64 pooling branch;
    # BlockAvgPool lifts that, so 237..240 run here.)
    expected = [*range(237, 241), *range(253, 257), *range(269, 273)]
    assert [s for s in range(230, 275) if halvings_round_trip(s, stride=4, levels=2)] == expected


def test_uneven_size_runs_with_ceil_shapes():
    """29 x 45: ceil(side / 4) = 8 x 12, the hourglasses round-trip although no side is a multiple of 16."""
    torch.manual_seed(0)
    net = PSMNet(max_disp=16).eval()
    left, right = torch.rand(1, 3, 29, 45) * 255, torch.rand(1, 3, 29, 45) * 255
    with torch.inference_mode():
        cost, feat = net(left, right)
    assert cost.shape == (1, 4, 8, 12) and feat.shape == (1, 32, 8, 12)
    assert torch.isfinite(cost).all()
