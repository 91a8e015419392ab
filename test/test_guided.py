"""The SGBM-guided backbone: shapes, holes marked, SGBM parameters stored in the checkpoint, residual
modes with a nearest-neighbour base, every output size, and a short training run that lowers its loss."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from smd_core import Predictor, classical, load_model, threads
from smd_core.classical import CANDIDATE_WINDOWS, SGBMConfig, fill_background, photometric_error, sgbm_disparity
from smd_core.config import ModelConfig, from_dict
from smd_core.data.synthetic.render import render_scene
from smd_core.model.backbones.guided import SGBMGuided
from smd_core.model.mixture import RESIDUAL_SCALE, activate, loss, selection_loss
from smd_core.model.network import build_model, save_checkpoint

TINY = {"widths": [8, 8, 8, 8], "features": [4, 4, 4]}


@pytest.fixture(scope="module")
def frame():
    return render_scene(9001, height=64, width=112, max_disparity=16.0)


def tensors(frame) -> tuple[torch.Tensor, torch.Tensor]:
    pair = torch.from_numpy(np.stack([frame.left, frame.right])).permute(0, 3, 1, 2).float()
    return pair[0:1], pair[1:2]


def tiny_model(output: str = "bimodal", anchor_range: float = 0.0, cost_offsets: int = 0,
               **sgbm: object) -> torch.nn.Module:
    options = dict(TINY, sgbm=dict(sgbm), cost_offsets=cost_offsets)
    return build_model(ModelConfig(backbone="sgbm_guided", output=output, max_disp=32, head_widths=(8,),
                                   backbone_options=options, anchor_range=anchor_range)).eval()


def test_shapes_and_channels(frame) -> None:
    model = tiny_model()
    left, right = tensors(frame)
    maps = model.encode(left, right)
    assert [tuple(m.shape) for m in maps] == [(1, 4, 64, 112), (1, 4, 32, 56), (1, 4, 16, 28), (1, 4, 64, 112)]
    assert model.stereo_network.feature_channels == 12 == model.mlp.in_channels


def test_guide_marks_holes_and_fills_from_the_background(frame) -> None:
    net = tiny_model().stereo_network
    left, right = tensors(frame)
    guide, anchors = net.guide(left, right)
    filled = anchors[:, :1]
    raw = sgbm_disparity(frame.left, frame.right, net.sgbm, 32)
    holes = ~np.isfinite(raw)
    assert holes.any() and not holes.all()
    np.testing.assert_array_equal(guide[0, 8].numpy(), (~holes).astype(np.float32))  # validity channel
    np.testing.assert_allclose(filled[0, 0].numpy(), fill_background(raw))
    np.testing.assert_allclose(guide[0, 3].numpy(), fill_background(raw) / 32, rtol=1e-6)
    fg, bg = guide[0, 4].numpy() * 32, guide[0, 5].numpy() * 32  # the window's max / min candidates
    assert (fg >= filled[0, 0].numpy()).all() and (bg <= filled[0, 0].numpy()).all() and (fg > bg).any()


def test_guide_channels_on_the_helper_thread_equal_one_thread(frame) -> None:
    """classical.guide_channels splits its work with a helper thread when OpenCV may use two: same channels."""
    opencv_threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = classical.guide_channels(frame.left, frame.right, SGBMConfig(), 32, cost_offsets=2)
        cv2.setNumThreads(2)
        two = classical.guide_channels(frame.left, frame.right, SGBMConfig(), 32, cost_offsets=2)
    finally:
        cv2.setNumThreads(opencv_threads)
    assert threads._pools["guide"][0] == os.getpid()  # the helper ran in this process
    np.testing.assert_array_equal(one, two)
    assert one.shape == (classical.guide_channel_count(2), *frame.left.shape[:2])


def test_guide_channels_in_a_forked_child(frame) -> None:
    """A child forked after the helper thread started (a data-loader worker) starts its own helper."""
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        expected = classical.guide_channels(frame.left, frame.right, SGBMConfig(), 32, cost_offsets=1)
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got, own_helper = pool.apply_async(_guide_in_child, (frame.left, frame.right)).get(timeout=60)
    finally:
        cv2.setNumThreads(opencv_threads)
    np.testing.assert_array_equal(expected, got)
    assert own_helper


def _guide_in_child(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, bool]:
    guide = classical.guide_channels(left, right, SGBMConfig(), 32, cost_offsets=1)
    return guide, threads._pools["guide"][0] == os.getpid()


def test_unet_input_is_channels_last_in_the_autocast_dtype(frame) -> None:
    net = tiny_model().stereo_network
    left, right = tensors(frame)
    plain, _ = net.guide(left, right)
    assert plain.dtype == torch.float32 and plain.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast, _ = net.guide(left, right)
    assert cast.dtype == torch.bfloat16 and cast.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cast.float(), plain.to(torch.bfloat16).float(), rtol=0, atol=0)
    sg = classical.guide_channels(frame.left, frame.right, net.sgbm, 32)
    expected = np.concatenate([(frame.left.transpose(2, 0, 1) - net.mean[0].numpy()) / net.std[0].numpy(),
                               sg * net.guide_scale[0].numpy()])
    np.testing.assert_allclose(plain[0].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_photometric_error_vanishes_at_the_true_disparity() -> None:
    rng = np.random.default_rng(0)
    right = rng.random((8, 40), dtype=np.float32)
    left = np.zeros_like(right)
    left[:, 3:] = right[:, :-3]  # left x matches right x - 3
    assert np.abs(photometric_error(left, right, np.full_like(right, 3.0))[:, 3:]).max() < 1e-6
    assert photometric_error(left, right, np.full_like(right, 5.0))[:, 5:].mean() > 0.1


def test_sgbm_parameters_round_trip_through_the_checkpoint(tmp_path: Path, frame) -> None:
    model = tiny_model(block_size=7, uniqueness_ratio=3, speckle_window_size=0, mode="sgbm", anchor_range=2.5)
    path = save_checkpoint(tmp_path / "g.pth", model)
    loaded = load_model(path)
    assert loaded.config.anchor_range == 2.5
    assert loaded.stereo_network.sgbm == SGBMConfig(block_size=7, uniqueness_ratio=3, speckle_window_size=0,
                                                    mode="sgbm")
    left, right = tensors(frame)
    with torch.inference_mode():
        for a, b in zip(model.encode(left, right), loaded.encode(left, right), strict=True):
            torch.testing.assert_close(a, b)
    # Another SGBM setting gives other inputs: the checkpoint's parameters are what is used.
    other = tiny_model().stereo_network.guide(left, right)[1]
    assert not torch.equal(other, loaded.stereo_network.guide(left, right)[1])


def test_residual_modes_start_at_the_unblended_sgbm_disparity(frame) -> None:
    model = tiny_model()
    last = model.mlp.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    pred = Predictor(model).predict(frame.left, frame.right)
    filled = fill_background(sgbm_disparity(frame.left, frame.right, model.stereo_network.sgbm, 32))
    # Zero offsets: mode 0 is exactly SGBM's pixel (nearest sampling never blends across an edge), mode 1
    # the alternative candidate, which differs from SGBM only near depth edges.
    np.testing.assert_allclose(pred.mu0, filled, atol=1e-5)
    x = torch.from_numpy(np.stack([frame.left, frame.right])).permute(0, 3, 1, 2).float()
    alt = model.stereo_network.guide(x[:1], x[1:])[1][0, 1].numpy()
    np.testing.assert_allclose(pred.mu1, alt, atol=1e-5)
    kernel = np.ones(CANDIDATE_WINDOWS[-1], np.uint8)
    fg, bg = cv2.dilate(filled, kernel), cv2.erode(filled, kernel)
    np.testing.assert_array_equal(alt, np.where(np.abs(bg - filled) > np.abs(fg - filled), bg, fg))


def test_activate_with_base_is_an_offset_clamped_to_the_range() -> None:
    raw = torch.tensor([[[0.0, 1.0, -100.0]], [[0.0, 0.0, 0.0]]]).transpose(0, 1)  # (1, 2, 3): unimodal
    base = torch.tensor([[10.0, 10.0, 10.0]])
    pred = activate(raw, "unimodal", 64, base)
    torch.testing.assert_close(pred.disparity, torch.tensor([[10.0, 10.0 + 64 * RESIDUAL_SCALE, 0.0]]))
    with pytest.raises(ValueError, match="base must be"):
        activate(raw, "unimodal", 64, base[:, :2])
    bimodal = activate(torch.zeros(1, 5, 2), "bimodal", 64, torch.tensor([[[3.0, 4.0], [7.0, 8.0]]]))
    torch.testing.assert_close(bimodal.mu0, torch.tensor([[3.0, 4.0]]))  # mode k takes anchor k
    torch.testing.assert_close(bimodal.mu1, torch.tensor([[7.0, 8.0]]))


def test_anchor_range_bounds_the_second_mode_only() -> None:
    anchors = torch.tensor([[[30.0, 30.0, 30.0], [20.0, 20.0, 1.0]]])  # (1, 2, 3)
    raw = torch.zeros(1, 5, 3)
    raw[:, 0] = torch.tensor([0.0, 2.0, -2.0])
    raw[:, 1] = torch.tensor([0.0, 100.0, -100.0])
    free = activate(raw, "bimodal", 64, anchors)
    bounded = activate(raw, "bimodal", 64, anchors, anchor_range=4.0)
    torch.testing.assert_close(bounded.mu0, free.mu0)  # mode 0 keeps its unbounded offset
    torch.testing.assert_close(free.mu1, torch.tensor([[20.0, 64.0, 0.0]]))
    torch.testing.assert_close(bounded.mu1, torch.tensor([[20.0, 24.0, 0.0]]))  # within 4 px, still >= 0
    # One anchor: nothing to bound (mode 1 shares mode 0's anchor and offset scale).
    one = activate(raw, "bimodal", 64, anchors[:, :1], anchor_range=4.0)
    torch.testing.assert_close(one.mu1, activate(raw, "bimodal", 64, anchors[:, :1]).mu1)
    with pytest.raises(ValueError, match="anchor_range"):
        activate(raw, "bimodal", 64, anchors, anchor_range=-1.0)
    with pytest.raises(ValueError, match="anchor_range"):
        ModelConfig(backbone="sgbm_guided", max_disp=64, anchor_range=float("nan"))


def test_selection_loss_trains_the_rule_to_pick_the_closer_mode() -> None:
    """Its gradient moves the highest-density choice towards the closer mode; undecided points add nothing."""
    anchors = torch.tensor([[[10.0, 10.0, 10.0], [30.0, 30.0, 30.0]]])
    # Mode 1 right; mode 0 right; errors of 10.2 and 9.8 px, which differ by less than the 1 px margin.
    y = torch.tensor([[30.0, 10.0, 20.2]])
    raw = torch.zeros(1, 5, 3, requires_grad=True)
    pred = activate(raw, "bimodal", 64, anchors, anchor_range=4.0)
    scaled = dataclasses.replace(pred, mu0=pred.mu0 / 64, mu1=pred.mu1 / 64)
    per_point = selection_loss(scaled, y / 64, max_disp=64)
    assert per_point[0, 2] == 0 and per_point[0, 0] > 0 and per_point[0, 1] > 0
    per_point.sum().backward()
    grad = raw.grad[0]
    # Descending the loss: pi0 falls where mode 1 is right and rises where mode 0 is; sigma1 shrinks there.
    assert grad[4, 0] > 0 and grad[4, 1] < 0 and grad[3, 0] > 0 and grad[4, 2] == 0
    assert grad[0].abs().max() == 0 and grad[1].abs().max() == 0  # the modes themselves do not move
    # "right": only points where exactly one mode is within the margin; both wrong says nothing.
    y2 = torch.tensor([[30.5, 13.0, 10.4]])  # mode 1 right; both wrong (mode 0 closer); mode 0 right
    right = selection_loss(scaled, y2 / 64, max_disp=64, target="right")
    closer = selection_loss(scaled, y2 / 64, max_disp=64, target="closer")
    assert right[0, 0] > 0 and right[0, 1] == 0 and right[0, 2] > 0 and closer[0, 1] > 0
    torch.testing.assert_close(right[0, [0, 2]], closer[0, [0, 2]])
    with pytest.raises(ValueError, match="selection target"):
        selection_loss(scaled, y2 / 64, max_disp=64, target="nearest")
    # Weight 0 is the reference's loss exactly; a weight adds the mean selection loss.
    base = loss(pred, y, output="bimodal", max_disp=64)
    weighted = loss(pred, y, output="bimodal", max_disp=64, selection_weight=0.5)
    torch.testing.assert_close(weighted - base, 0.5 * per_point.mean())


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.7])
def test_any_output_size(frame, scale: float) -> None:
    pred = Predictor(tiny_model()).predict(frame.left, frame.right, scale=scale)
    assert pred.disparity.shape == (round(64 * scale), round(112 * scale))
    assert np.isfinite(pred.disparity).all() and np.isfinite(pred.uncertainty).all()


def test_standard_head_and_bad_options(frame) -> None:
    pred = Predictor(tiny_model("standard")).predict(frame.left, frame.right)
    assert pred.mu0 is None and np.isfinite(pred.disparity).all()
    with pytest.raises(ValueError, match="positive"):
        SGBMGuided(max_disp=32, widths=(8, 8, 8, 0))
    with pytest.raises(ValueError, match="full_res_width"):
        SGBMGuided(max_disp=32, full_res_width=-1)
    with pytest.raises(ValueError, match="bogus"):
        SGBMGuided(max_disp=32, sgbm={"bogus": 1})
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_model().encode(torch.zeros(1, 3, 40, 64), torch.zeros(1, 3, 40, 64))


@pytest.mark.slow
@pytest.mark.parametrize(("selection", "costs"), [(False, 0), (True, 0), (True, 2)],
                         ids=["nll", "bounded+selection", "matching-costs"])
def test_short_training_run_lowers_the_loss(tmp_path: Path, selection: bool, costs: int) -> None:
    from smd_core.train.config import TrainConfig
    from smd_core.train.loop import train

    cfg = from_dict(TrainConfig, {
        "model": {"backbone": "sgbm_guided", "output": "bimodal", "max_disp": 32, "head_widths": [16, 16],
                  "backbone_options": {**TINY, "cost_offsets": costs}, "anchor_range": 4.0 if selection else 0.0},
        "selection_weight": 1.0 if selection else 0.0, "selection_target": "right" if costs else "closer",
        "data": {"kind": "synthetic", "height": 64, "width": 128, "crop_size": [64, 128], "num_points": 512,
                 "num_samples": 1, "max_disparity": 16.0, "augment": False},
        "steps": 40, "batch_size": 1, "num_workers": 0, "threads": 1, "device": "cpu",
        "log_dir": str(tmp_path / "run"), "ckpt_every": 100, "log_every": 1, "progress": False,
        "optim": {"lr": 3e-3},
    })
    result = train(cfg)
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < first - 0.3, (first, last)


def test_predictor_pads_to_the_backbones_multiple() -> None:
    assert Predictor(tiny_model()).pad_multiple == 16
    light = build_model(ModelConfig(backbone="light", max_disp=32, head_widths=(8,),
                                    backbone_options={"widths": [8, 8], "groups": 4, "agg_widths": [8, 8, 8]}))
    assert Predictor(light).pad_multiple == 64 and Predictor(light, pad_multiple=32).pad_multiple == 32


@pytest.mark.parametrize(("widths", "full_res_width"), [((8, 8), 0), ((4, 8, 8, 8, 8), 0), ((8, 8), 6)])
def test_any_number_of_levels(widths: tuple[int, ...], full_res_width: int) -> None:
    net = SGBMGuided(max_disp=32, widths=widths, features=(4, 4, 4), full_res_width=full_res_width).eval()
    # The full-resolution branch: one linear conv, or a hidden conv-BN-ReLU of full_res_width channels first.
    convs = [m for m in net.out1.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == ([full_res_width, 4] if full_res_width else [4])
    assert net.size_multiple == 2 ** len(widths)
    x = torch.rand(1, 3, 64, 128) * 255
    maps = net(x, x)
    assert [tuple(m.shape) for m in maps] == [(1, 4, 64, 128), (1, 4, 32, 64), (1, 4, 16, 32), (1, 4, 64, 128)]
    with pytest.raises(ValueError, match=f"multiple of {net.size_multiple}"):
        net(x[..., :50], x[..., :50])


def test_cpu_bfloat16_autocast_stays_close(frame) -> None:
    model = tiny_model()
    exact = Predictor(model).predict(frame.left, frame.right)
    fast = Predictor(model, autocast_dtype=torch.bfloat16).predict(frame.left, frame.right)
    assert fast.disparity.dtype == np.float32
    diff = np.abs(fast.mu0 - exact.mu0)
    assert 0 < diff.max() and np.median(diff) < 0.1  # bf16 really ran, and modes moved by a fraction of a px


def test_head_takes_feature_parts_without_concatenating() -> None:
    from smd_core.model.head import SMDHead

    head = SMDHead(12, (8, 6), 5).eval()
    parts = [torch.randn(2, 40_000, c) for c in (4, 6, 2)]
    with torch.inference_mode():  # > one block of rows, so the blocked path runs too
        torch.testing.assert_close(head.forward_points(parts), head.forward_points(torch.cat(parts, -1)))
        with pytest.raises(ValueError, match="12 feature channels"):
            head.forward_points(parts[:2])


def test_cpu_bfloat16_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    from smd_core import cpu_has_bfloat16

    assert isinstance(cpu_has_bfloat16(), bool)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert cpu_has_bfloat16() is False  # no oneDNN: float32


def test_matching_costs_are_lowest_at_the_true_offset_despite_an_exposure_difference() -> None:
    from smd_core.classical import matching_costs, normalised

    rng = np.random.default_rng(1)
    right = cv2.GaussianBlur(rng.random((40, 80), dtype=np.float32), (3, 3), 0)
    left = np.zeros_like(right)
    left[:, 5:] = right[:, :-5] * 0.6 + 0.2  # true disparity 5, the left camera darker and offset
    anchor = np.full_like(right, 3.0)  # an anchor 2 px off
    costs = matching_costs(normalised(left), normalised(right), anchor, 3)
    assert costs.shape == (7, 40, 80)
    best = np.argmin(costs[:, 8:-8, 16:-8], axis=0) - 3  # offsets -3..3 from the anchor
    assert (best == 2).mean() > 0.95


def test_cost_channels_extend_the_guide_and_a_widened_checkpoint_predicts_as_before(tmp_path: Path, frame) -> None:
    from smd_core.classical import guide_channel_count
    from smd_core.train.checkpoints import load_init_weights

    old = tiny_model()
    path = save_checkpoint(tmp_path / "old.pth", old)
    torch.manual_seed(5)
    new = tiny_model(cost_offsets=2)
    assert new.stereo_network.guide_channels == 3 + guide_channel_count(2) == old.stereo_network.guide_channels + 10
    assert load_init_weights(new, path, strict=False) == []  # widened, nothing left fresh
    new.eval()
    a, b = (Predictor(m).predict(frame.left, frame.right) for m in (old.eval(), new))
    np.testing.assert_allclose(a.disparity, b.disparity, atol=1e-4)
    with pytest.raises(ValueError, match="cost_offsets must be in 0..8"):
        tiny_model(cost_offsets=9)
