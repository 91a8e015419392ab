"""HSMNet backbone building blocks, shapes and input checks (parity: test_parity.py)."""

from __future__ import annotations

import pytest
import torch

from smd_core.model.backbones import build_backbone, check_input_size
from smd_core.model.backbones.hsmnet import (
    DecoderBlock,
    DisparityRegression,
    HSMNet,
    difference_volume,
    pyramid_pool_sizes,
)


def feature_shapes(b: int, h: int, w: int, max_disp: int) -> list[tuple[int, ...]]:
    return [
        (b, max_disp // 16, h // 8, w // 8),
        (b, 32, h // 2, w // 2),
        (b, 64, h // 8, w // 8),
        (b, 128, h // 16, w // 16),
        (b, 128, h // 32, w // 32),
    ]


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
        ((1, 3, 64, 96), (1, 3, 64, 96), r"multiple of 8 .*W=96 -> 57\.\.64 or 121\.\.128"),
        ((1, 3, 32, 64), (1, 3, 32, 64), r"multiple of 8 .*H=32 -> 57\.\.64"),
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


def test_accepted_sizes_are_those_whose_decoder_round_trips():
    """The U-Net concatenates levels 1/8 .. 1/32 with the 2x-upsampled next coarser one (three halvings)."""
    from test_psmnet import halvings_round_trip

    accepted = []
    for side in range(1, 400):
        try:
            check_input_size("HSMNet", 64, side, stride=8, multiple=8)
        except ValueError:
            assert not halvings_round_trip(side, stride=8, levels=3), side
        else:
            assert halvings_round_trip(side, stride=8, levels=3), side
            accepted.append(side)
    assert accepted[:9] == [*range(57, 65), 121]


def test_uneven_size_runs_with_ceil_shapes():
    """121 x 185: no side a multiple of 64; maps at 1/s are ceil(side / s)."""
    torch.manual_seed(0)
    net = HSMNet(max_disp=32).eval()
    x = torch.rand(1, 3, 121, 185) * 255
    with torch.inference_mode():
        maps = net(x, x.flip(-1))
    cells = [(-(-121 // s), -(-185 // s)) for s in (8, 2, 8, 16, 32)]
    assert [tuple(m.shape) for m in maps] == [(1, c, *hw) for c, hw in zip((2, 32, 64, 128, 128), cells, strict=True)]
    assert all(torch.isfinite(m).all() for m in maps)
