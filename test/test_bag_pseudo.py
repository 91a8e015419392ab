"""Pseudo-labels (smd_ros.bags.pseudo, `bag2dataset --pseudo-labels`): confident, consistent pixels only."""

from __future__ import annotations

import json
import types

import cv2
import numpy as np
import pytest
from bag_fixtures import write_stereo_bag

from smd_core.data.synthetic.render import render_scene
from smd_ros.bags.cli import main
from smd_ros.bags.convert import convert
from smd_ros.bags.options import Bag2DatasetOptions
from smd_ros.bags.pseudo import left_right_error, pseudo_label

H, W = 64, 96


@pytest.fixture(scope="module")
def frame():
    # Few objects: the thresholds below assume most pixels are away from depth edges.
    return render_scene(11, height=H, width=W, max_disparity=16.0, photometric=False, num_objects=6)


class Oracle:
    """A 'model' returning the exact synthetic disparities, with a chosen uncertainty map.

    Recognises the mirrored call (flip(right), flip(left)) that pseudo-labelling makes for the right view.
    """

    def __init__(self, frames, uncertainty, auto_threshold=0.78):
        self.frames = frames
        self.uncertainty = uncertainty
        self.calls = 0
        # The auto threshold is the model's own (a max_disp-50 mixture model's: 1.1 x sqrt(2) x 0.01 x 50 px).
        self.model = types.SimpleNamespace(deployment=types.SimpleNamespace(pseudo_max_uncertainty=auto_threshold))

    def predict(self, left, right):
        self.calls += 1
        for f in self.frames:
            if np.array_equal(left, f.left):
                return types.SimpleNamespace(disparity=f.disp_left.copy(), uncertainty=self.uncertainty.copy())
            if np.array_equal(left, f.right[:, ::-1]):
                return types.SimpleNamespace(disparity=f.disp_right[:, ::-1].copy(),
                                             uncertainty=self.uncertainty.copy())
        raise AssertionError("unexpected image")


def test_left_right_error_is_small_exactly_where_both_views_see_the_point(frame):
    err = left_right_error(frame.disp_left, frame.disp_right)
    visible = ~frame.occlusion_left
    # Visible pixels agree up to float rounding, except next to depth edges, where reading the right map
    # between two pixels interpolates across the edge.
    assert np.median(err[visible]) < 1e-3 and np.mean(err[visible] < 0.5) > 0.95
    assert np.mean(err[frame.occlusion_left] > 1.0) > 0.9  # occluded: the right view sees something nearer
    # Pixels whose match falls outside the right image are never consistent.
    assert np.isinf(left_right_error(np.full((2, 4), 3.5, np.float32), np.zeros((2, 4), np.float32))[:, :3]).all()
    with pytest.raises(ValueError, match="equal size"):
        left_right_error(np.zeros((2, 3)), np.zeros((2, 4)))


def test_pseudo_label_keeps_confident_consistent_pixels(frame):
    unc = np.full((H, W), 0.2, np.float32)
    unc[:, : W // 4] = 5.0  # the model is unsure about the left quarter
    oracle = Oracle([frame], unc)
    label = pseudo_label(oracle, frame.left, frame.right, max_uncertainty=1.0, lr_tolerance=0.5)
    assert oracle.calls == 2
    assert not label.confident[:, : W // 4].any()
    kept = label.confident[:, W // 4:]
    assert kept.mean() > 0.8 and not (kept & frame.occlusion_left[:, W // 4:]).any()
    np.testing.assert_array_equal(label.disparity[label.confident], frame.disp_left[label.confident])
    assert (label.disparity[~label.confident] == 0).all()
    with pytest.raises(ValueError, match="must be positive"):
        pseudo_label(oracle, frame.left, frame.right, max_uncertainty=0.0, lr_tolerance=1.0)


def test_bag_to_pseudo_labelled_dataset(tmp_path, frame):
    frames = [frame, render_scene(12, height=H, width=W, max_disparity=16.0, photometric=False, num_objects=6)]
    bag = tmp_path / "rec"
    write_stereo_bag(bag, frames, compressed="png")
    (tmp_path / "model.pth").write_bytes(b"unused: the oracle replaces the checkpoint")
    unc = np.full((H, W), 0.2, np.float32)
    unc[: H // 2] = 3.0
    out = tmp_path / "ds"
    report = convert([bag], out, Bag2DatasetOptions(pseudo_labels=str(tmp_path / "model.pth"), progress=False,
                                                    val_fraction=0.0), predictor=Oracle(frames, unc))
    assert report.frames == 2 and not any("no ground truth" in w for w in report.warnings)
    assert (out / "train.txt").read_text().splitlines()[1] == "left/000001.png right/000001.png disp/000001.npy"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == "pseudo"
    for i, f in enumerate(frames):
        disp = np.load(out / "disp" / f"{i:06d}.npy")
        conf = cv2.imread(str(out / "conf" / f"{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
        assert set(np.unique(conf)) <= {0, 255}
        np.testing.assert_array_equal(conf == 255, disp > 0)
        assert not conf[: H // 2].any() and (conf[H // 2:] == 255).mean() > 0.8
        np.testing.assert_array_equal(disp[disp > 0], f.disp_left[disp > 0])
        assert manifest["frames"][i]["valid_fraction"] == pytest.approx((disp > 0).mean())
    # Run again: every frame is on disk, so no model is loaded (the placeholder file would not load) and the
    # auto threshold is not needed.
    again = convert([bag], out, Bag2DatasetOptions(pseudo_labels=str(tmp_path / "model.pth"), progress=False,
                                                   val_fraction=0.0))
    assert again.reused == 2
    with pytest.raises(FileNotFoundError, match="--pseudo-labels checkpoint not found"):
        convert([bag], tmp_path / "x", Bag2DatasetOptions(pseudo_labels=str(tmp_path / "missing.pth")))


def test_pseudo_labels_from_a_real_checkpoint(tmp_path, frame):
    """A (randomly initialised) light model through the real loader and Predictor, via the command line."""
    torch = pytest.importorskip("torch")
    from smd_core.config import ModelConfig
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import build_model, load_model, save_checkpoint

    torch.manual_seed(0)
    try:
        model = build_model(ModelConfig(backbone="light", output="bimodal", max_disp=64, head_widths=(16, 8)))
    except (ImportError, KeyError, ValueError) as err:
        pytest.skip(f"light backbone unavailable: {err}")
    ckpt = save_checkpoint(tmp_path / "light.pth", model)
    bag = tmp_path / "rec"
    write_stereo_bag(bag, [frame], storage="sqlite3")
    out = tmp_path / "ds"
    # Loose thresholds so that an untrained model keeps something; the mask logic is what is checked.
    assert main([str(bag), "--out", str(out), "--pseudo-labels", str(ckpt), "--pseudo-max-uncertainty", "1e6",
                 "--pseudo-lr-tolerance", "2.0", "--no-progress", "--val-fraction", "0"]) == 0
    disp = np.load(out / "disp" / "000000.npy")
    conf = cv2.imread(str(out / "conf" / "000000.png"), cv2.IMREAD_GRAYSCALE) == 255
    predictor = Predictor(load_model(ckpt, device="cpu"), device="cpu")
    expected = pseudo_label(predictor, frame.left, frame.right, max_uncertainty=1e6, lr_tolerance=2.0)
    np.testing.assert_array_equal(conf, expected.confident)
    np.testing.assert_allclose(disp, expected.disparity, atol=1e-4)
    assert np.all(expected.lr_error[conf] <= 2.0)


@pytest.mark.slow  # the bundled model on 640x480 pairs, twice with its left-right check
def test_auto_threshold_with_the_bundled_model_keeps_accurate_pixels():
    """The default threshold (0: auto) follows the model's uncertainty floor: with the bundled model a fixed
    1 px kept nothing (its floor is 1.81 px), the auto one keeps most pixels and they are right."""
    from smd_core.infer.confidence import PSEUDO_FLOOR_FACTOR, uncertainty_floor
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model
    from smd_core.weights import default_checkpoint

    try:
        ckpt = default_checkpoint()
    except FileNotFoundError:
        pytest.skip("the bundled weights are not in this checkout")
    predictor = Predictor(load_model(ckpt, device="cpu"), device="cpu")
    max_disp = predictor.model.config.max_disp
    auto = predictor.model.deployment.pseudo_max_uncertainty
    assert auto == pytest.approx(PSEUDO_FLOOR_FACTOR * uncertainty_floor(max_disp))  # smd_core's one rule
    assert Bag2DatasetOptions().pseudo_max_uncertainty == 0.0
    f = render_scene(5, height=480, width=640, max_disparity=40.0)
    label = pseudo_label(predictor, f.left, f.right, max_uncertainty=auto, lr_tolerance=1.0)
    assert float(label.uncertainty.min()) >= uncertainty_floor(max_disp) * 0.999
    assert not pseudo_label(predictor, f.left, f.right, max_uncertainty=1.0, lr_tolerance=1.0).confident.any()
    kept = label.confident & (f.disp_left > 0)
    error = np.abs(label.disparity - f.disp_left)[kept]
    assert label.confident.mean() > 0.3 and np.mean(error > 2) < 0.02, (label.confident.mean(), np.mean(error > 2))
