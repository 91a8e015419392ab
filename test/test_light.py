"""LightStereo backbone: shapes, parameter budget, training step, state-dict round trip, SMDNet integration."""

from __future__ import annotations

import pytest
import torch

from smd_core import ModelConfig, build_model
from smd_core.model.backbones import build_backbone
from smd_core.model.backbones.light import LightStereo, groupwise_correlation

pytestmark = pytest.mark.usefixtures("one_thread")


def images(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    left = torch.rand(b, 3, h, w, generator=g) * 255
    return left, torch.roll(left, shifts=-4, dims=3)


@pytest.mark.parametrize(("h", "w", "max_disp"), [(64, 64, 64), (64, 128, 192), (128, 64, 128), (64, 192, 32)])
def test_shapes_for_several_sizes(h: int, w: int, max_disp: int) -> None:
    net = LightStereo(max_disp=max_disp).eval()
    with torch.no_grad():
        out = net(*images(2, h, w))
    assert [tuple(o.shape) for o in out] == [(2, 16 + 1 + 8, h // 4, w // 4), (2, 8, h // 2, w // 2)]
    assert net.feature_channels == sum(o.shape[1] for o in out)
    # The whole distribution when not compressed: it sums to one; the soft-argmin channel follows it.
    net = LightStereo(max_disp=max_disp, cost_channels=0).eval()
    with torch.no_grad():
        out = net(*images(2, h, w))
    d4 = max_disp // 4
    assert out[0].shape[1] == net.feature_channels - 8 == d4 + 1 + 8
    prob, disp = out[0][:, :d4], out[0][:, d4]
    torch.testing.assert_close(prob.sum(1), torch.ones(2, h // 4, w // 4))
    assert float(disp.min()) >= 0 and float(disp.max()) <= 1  # soft-argmin / max_disp


def test_without_half_map_and_options() -> None:
    net = LightStereo(max_disp=64, widths=(8, 16), groups=4, agg_widths=(16, 16, 16), image_features=(4, 0),
                      cost_channels=0)
    out = net(*images(1, 64, 64))
    assert len(out) == 1 and out[0].shape[1] == net.feature_channels == 16 + 1 + 4
    net = LightStereo(max_disp=64, image_features=(0, 0), cost_channels=5)
    assert net.feature_channels == 6 and len(net(*images(1, 64, 64))) == 1


def test_parameter_budget_and_registry() -> None:
    net = build_backbone("light", max_disp=192)
    assert isinstance(net, LightStereo)
    assert sum(p.numel() for p in net.parameters()) <= 3_000_000
    model = build_model(ModelConfig(backbone="light", max_disp=128, head_widths=(48, 24, 12)))
    assert sum(p.numel() for p in model.parameters()) <= 3_000_000
    assert model.mlp.in_channels == model.stereo_network.feature_channels


def test_forward_backward_through_smdnet() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="light", output="bimodal", max_disp=64, head_widths=(16, 8)))
    model.train()
    left, right = images(2, 64, 128)
    points = torch.rand(2, 2, 50) * torch.tensor([127.0, 63.0]).view(1, 2, 1)
    pred = model(left, right, points, (64, 128))
    assert pred.disparity.shape == (2, 50)
    loss = pred.mu0.mean() + pred.sigma1.mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or not torch.isfinite(g).all()]
    assert not missing, f"no or non-finite gradient for {missing}"
    assert float(model.stereo_network.correlation_mix.grad.abs().sum()) > 0


def test_state_dict_round_trip(tmp_path) -> None:
    from smd_core import load_model, save_checkpoint

    torch.manual_seed(1)
    cfg = ModelConfig(backbone="light", output="bimodal", max_disp=64, head_widths=(16, 8),
                      backbone_options={"widths": [8, 16], "agg_widths": [16, 16, 24], "image_features": [4, 4]})
    model = build_model(cfg).eval()
    # Non-default BatchNorm statistics must survive too.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    assert not any(k.endswith(("mean", "std", "hypotheses")) and "bn" not in k and "running" not in k
                   for k in model.state_dict()), "input constants must not be stored"
    path = save_checkpoint(tmp_path / "light.pth", model)
    loaded = load_model(path)
    left, right = images(1, 64, 64)
    pts = torch.tensor([[[0.0, 10.5, 63.0], [0.0, 20.25, 63.0]]])
    with torch.no_grad():
        a = model(left, right, pts, (64, 64))
        b = loaded(left, right, pts, (64, 64))
    torch.testing.assert_close(a.disparity, b.disparity)
    assert loaded.config.backbone_options == cfg.backbone_options


def test_groupwise_correlation_by_hand() -> None:
    left = torch.arange(2 * 1 * 5, dtype=torch.float32).view(1, 2, 1, 5)
    right = torch.ones(1, 2, 1, 5) * 2
    vol = groupwise_correlation(left, right, num_disp=3, groups=2).view(1, 2, 3, 1, 5)
    # group 0 = channel 0 (values 0..4), times 2; hypothesis d is 0 for x < d.
    torch.testing.assert_close(vol[0, 0, 0, 0], torch.tensor([0.0, 2, 4, 6, 8]))
    torch.testing.assert_close(vol[0, 1, 2, 0], torch.tensor([0.0, 0, 14, 16, 18]))
    with pytest.raises(ValueError, match="divisible"):
        groupwise_correlation(left, right, num_disp=3, groups=3)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_disp"):
        LightStereo(max_disp=30)
    with pytest.raises(ValueError, match="groups"):
        LightStereo(groups=5)
    with pytest.raises(ValueError, match="widths must have 2"):
        LightStereo(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="positive"):
        LightStereo(agg_widths=(0, 8, 8))
    with pytest.raises(ValueError, match="image_features"):
        LightStereo(image_features=(-1, 0))
    with pytest.raises(ValueError, match="cost_channels"):
        LightStereo(cost_channels=-1)
    net = LightStereo(max_disp=32)
    with pytest.raises(ValueError, match="multiple of 16"):
        net(*images(1, 40, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 32))


def test_training_prediction_carries_the_backbone_disparity_only_in_training():
    import smd_core
    from smd_core.config import ModelConfig

    model = smd_core.build_model(ModelConfig(backbone="light", output="bimodal", max_disp=64, head_widths=(16, 8)))
    left = torch.rand(2, 3, 64, 96) * 255
    points = torch.rand(2, 2, 50) * torch.tensor([[[95.0], [63.0]]])
    model.train()
    pred = model(left, left.flip(-1), points, (64, 96))
    assert pred.coarse is not None and pred.coarse.shape == (2, 50)
    loss = smd_core.model.mixture.loss(pred, torch.full((2, 50), 10.0), output="bimodal", max_disp=64)
    loss.backward()
    assert model.stereo_network.correlation_mix.grad is not None
    model.eval()
    with torch.no_grad():
        assert model(left, left, points, (64, 96)).coarse is None
