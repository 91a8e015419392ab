"""Out of the box: the bundled models load by default, and a shortened `smd demo` runs end to end over DDS."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from smd_core.weights import WEIGHTS_DIR, default_checkpoint, standard_checkpoint

BUNDLED = (WEIGHTS_DIR / "guided_bimodal.pt").is_file()
needs_weights = pytest.mark.skipif(not BUNDLED, reason="the bundled light weights are not in this checkout")


@needs_weights
def test_bundled_models_load_by_default_and_predict():
    import smd_core
    from smd_core.predict import default_checkpoint as cli_default
    from smd_ros.params import resolve_checkpoint  # the node's resolution of checkpoint:=""

    assert cli_default() == default_checkpoint()
    assert resolve_checkpoint("") == default_checkpoint()
    bimodal = smd_core.load_model(default_checkpoint())
    standard = smd_core.load_model(standard_checkpoint())
    assert (bimodal.config.backbone, bimodal.config.output) == ("sgbm_guided", "bimodal")
    assert (standard.config.backbone, standard.config.output) == ("sgbm_guided", "standard")
    size = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.pt"))
    assert size <= 10 * 2**20, f"bundled weights take {size / 2**20:.1f} MB (limit 10 MB)"
    from smd_core.data.synthetic import render_scene

    frame = render_scene(123, height=96, width=128, max_disparity=24.0)
    pred = smd_core.Predictor(bimodal).predict(frame.left, frame.right)
    valid = frame.disp_left > 0
    assert np.median(np.abs(pred.disparity - frame.disp_left)[valid]) < 3.0  # a trained model, not noise


@pytest.mark.slow
@needs_weights
@pytest.mark.ros
def test_short_demo_end_to_end(tmp_path, ros_env):
    out = tmp_path / "demo_out"
    env = dict(ros_env, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "smd_ros.cli", "demo", "--frames", "3", "--rate", "0.5",
                           "--out", str(out), "--domain-id", ros_env["ROS_DOMAIN_ID"]],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] == 3 and 1 <= summary["frames_out"] <= 3
    assert summary["latency_ms"]["p50"] > 0
    assert np.isfinite(summary["bimodal"]["epe"]) and summary["bimodal"]["epe"] < 10
    assert summary["standard"] is not None and np.isfinite(summary["standard"]["see"])
    # The classical baselines, scored on the same frames; raw SGBM also on its own matched pixels.
    for key in ("epe", "bad2", "bad3", "see", "bleeding", "time_s"):
        assert np.isfinite(summary["sgbm"][key]) and np.isfinite(summary["sgbm_fill"][key]), key
    assert 0 < summary["sgbm"]["valid_pixels"]["density"] < 100
    assert summary["sgbm"]["valid_pixels"]["bad2"] <= summary["sgbm"]["bad2"]  # holes are errors in the latter
    clouds = summary["cloud_comparison"]
    assert set(clouds["frame_flying_points"]) == {"SMD bimodal (node)", "standard L1 head", "SGBM"}
    assert all(n >= 0 for n in clouds["frame_flying_points"].values()) and 1 <= len(clouds["crops"]) <= 3
    for name in ("contact_sheet.png", "cloud_comparison.png", "node.log"):
        assert (out / name).is_file(), name
    import cv2

    picture = cv2.imread(str(out / "cloud_comparison.png"))
    # Image, three clouds and the ground truth side by side; one row of zoomed views per boundary.
    assert picture.shape[:2] == (360 + 240 * len(clouds["crops"]), 5 * 480)
    assert len(list((out / "frames").glob("*_disparity.png"))) == summary["frames_out"]
    disparity = cv2.imread(str(next((out / "frames").glob("*_disparity.png"))))
    assert disparity.shape[0] == 480 and disparity.shape[1] > 640  # the colour bar


# ---------------------------------------------------------------------------------------------- cloud comparison


def _scene():
    from smd_core.data.synthetic import render_scene
    from smd_core.geometry import StereoCamera

    frame = render_scene(9000, height=160, width=240, max_disparity=24.0)
    camera = StereoCamera(fx=200.0, fy=200.0, cx=119.5, cy=79.5, baseline=0.1, width=240, height=160)
    return frame, camera


def test_flying_points_are_the_bleeding_maps_flying_pixels():
    from smd_core.metrics import bleeding_map
    from smd_ros.demo_pictures import flying_points

    gt = np.full((20, 30), 5.0, np.float32)
    gt[:, 15:] = 20.0
    pred = gt.copy()
    pred[:, 13:17] = 12.0  # between the two sides: flying
    pred[:2, 13:17] = np.nan  # no point: never flying
    pred[2:4, 13:17] = 0.0  # no point either (the node's invalid value)
    flying = flying_points(pred, gt)
    assert np.array_equal(flying, bleeding_map(np.where(pred > 0, pred, np.nan), gt)[1])
    assert flying[4:, 13:17].all() and not flying[:4].any() and flying.sum() == 16 * 4
    assert flying_points(pred, None) is None and flying_points(pred, gt[:, :10]) is None


def test_compare_clouds_counts_flying_points_per_panel_and_crop(tmp_path):
    import cv2

    from smd_ros.demo_pictures import CROP_TILE, PANEL, cloud_from_disparity, compare_clouds

    frame, camera = _scene()
    gt = frame.disp_left
    blurred = cv2.blur(gt, (7, 7))  # a regression that averages across edges: flying points at every edge
    holes = np.where(np.arange(gt.shape[1])[None, :] % 7 == 0, np.nan, gt).astype(np.float32)  # exact, holed
    clouds = [cloud_from_disparity("blurred", blurred, frame.left, camera, gt),
              cloud_from_disparity("holed", holes, frame.left, camera, gt)]
    truth = cloud_from_disparity("ground truth", gt, frame.left, camera, None)
    info = compare_clouds(tmp_path / "c.png", frame.left, clouds, camera, truth)
    assert info["frame_flying_points"]["blurred"] > 100 and info["frame_flying_points"]["holed"] == 0
    assert np.isnan(clouds[1].points[:, ::7]).all()  # holes have no point
    assert truth.flying is None and 1 <= len(info["crops"]) <= 3
    for crop in info["crops"]:
        y, x, h, w = crop["window_yxhw"]
        assert crop["flying_points"]["blurred"] == clouds[0].flying[y:y + h, x:x + w].sum() > 0
        assert crop["flying_points"]["holed"] == 0
    picture = cv2.imread(str(tmp_path / "c.png"))
    assert picture.shape[:2] == (PANEL[0] + CROP_TILE[0] * len(info["crops"]), 4 * PANEL[1])
    # Flying points are drawn red in the zoomed views of the blurred cloud, never in the exact one's.
    red = (picture == (0, 0, 255)).all(axis=2)
    crop_rows = slice(PANEL[0], None)
    assert red[crop_rows, PANEL[1]:2 * PANEL[1]].sum() > 50
    assert red[crop_rows, 2 * PANEL[1]:3 * PANEL[1]].sum() == 0
