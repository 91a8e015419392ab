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
    from smd_core.infer.backend import resolve_model  # `smd predict`'s resolution of no --checkpoint
    from smd_core.resolve import resolve_checkpoint  # the node's resolution of checkpoint:=""

    assert resolve_model(None) == (default_checkpoint(), "torch")
    assert resolve_checkpoint("") == default_checkpoint()
    bimodal = smd_core.load_model(default_checkpoint())
    standard = smd_core.load_model(standard_checkpoint())
    assert (bimodal.config.backbone, bimodal.config.output) == ("sgbm_guided", "bimodal")
    assert (standard.config.backbone, standard.config.output) == ("sgbm_guided", "standard")
    size = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.pt"))
    assert size <= 10 * 2**20, f"bundled weights take {size / 2**20:.1f} MB (limit 10 MB)"
    from smd_core.data.synthetic.render import render_scene

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
    # Scored by smd eval's code: per-frame rows of score_frame, their frame means in the summary.
    assert summary["bimodal"]["epe"] == pytest.approx(np.mean([r["epe"] for r in summary["per_frame"]]))
    assert all(r["n_valid"] > 0 for r in summary["per_frame"])
    assert summary["standard"] is not None and np.isfinite(summary["standard"]["see"])
    # The classical baselines, scored on the same frames; raw SGBM also on its own matched pixels.
    for key in ("epe", "bad2", "bad3", "see", "bleeding", "time_s"):
        assert np.isfinite(summary["sgbm"][key]) and np.isfinite(summary["sgbm_fill"][key]), key
    assert 0 < summary["sgbm"]["valid_pixels"]["density"] < 100
    assert summary["sgbm"]["valid_pixels"]["bad2"] <= summary["sgbm"]["bad2"]  # holes are errors in the latter
    import cv2

    from smd_ros.demo_pictures import CROP_TILE, PANEL

    methods = {"SMD bimodal (node)", "standard L1 head", "SGBM", "BM (stereo_image_proc default)"}
    for key, picture_name in (("cloud_comparison", "cloud_comparison.png"),
                              ("cloud_comparison_real", "cloud_comparison_real.png")):
        clouds = summary[key]
        assert set(clouds["clouds"]) == methods, key
        for figures in clouds["clouds"].values():
            assert figures["points"] > 0 and 0 < figures["density"] <= 100 and figures["flying"] >= 0
        assert 1 <= len(clouds["crops"]) <= 3
        for crop in clouds["crops"]:
            y, x, h, w = crop["window_yxhw"]
            assert x >= 128 and sum(c["flying"] for n, c in crop["clouds"].items() if n in methods) > 0
        # Image, four clouds and the ground truth side by side; one row of zoomed views per boundary.
        picture = cv2.imread(str(out / picture_name))
        assert picture.shape[:2] == (PANEL[0] + CROP_TILE[0] * len(clouds["crops"]), 6 * PANEL[1]), key
    assert summary["cloud_comparison_real"]["scene"] == "middlebury2014_motorcycle_quarter"
    for name in ("contact_sheet.png", "node.log"):
        assert (out / name).is_file(), name
    assert len(list((out / "frames").glob("*_disparity.png"))) == summary["frames_out"]
    assert summary["dropped_frames"] == [i for i in range(3) if i not in {r["frame"] for r in summary["per_frame"]}]
    disparity = cv2.imread(str(next((out / "frames").glob("*_disparity.png"))))
    assert disparity.shape[0] == 480 and disparity.shape[1] > 640  # the colour bar


def test_demo_rejects_a_frame_count_below_one(capsys, monkeypatch):
    from smd_ros import cli

    monkeypatch.delenv("SMD_DEBUG", raising=False)
    assert cli.main(["demo", "--frames", "-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["smd demo: error: --frames must be at least 1 (omit it to play every frame), got -3"]


def test_contact_sheet_keeps_a_row_for_every_frame_and_marks_dropped_ones(tmp_path):
    import cv2

    from smd_ros.demo_report import SHEET_TILE_W, write_contact_sheet

    frames = [{"left": np.full((48, 64, 3), 100 + i, np.uint8)} for i in range(3)]
    tile_h = round(48 * SHEET_TILE_W / 64)
    maps = [np.full((tile_h, 330, 3), 200, np.uint8)] * 3  # each map with its colour bar
    write_contact_sheet(tmp_path / "s.png", frames, {0: (150.0, maps), 2: (170.0, maps)})
    picture = cv2.imread(str(tmp_path / "s.png"))
    assert picture.shape[:2] == (3 * tile_h, SHEET_TILE_W + 3 * 330)
    dropped = picture[tile_h:2 * tile_h, SHEET_TILE_W:]
    assert ((dropped == (40, 40, 90)).all(axis=2).mean() > 0.8)  # placeholders, not maps or black
    assert (picture[2 * tile_h:, SHEET_TILE_W:] == 200).all(axis=2).mean() > 0.8


# ---------------------------------------------------------------------------------------------- cloud comparison


def _scene():
    from smd_core.data.synthetic.render import render_scene
    from smd_core.geometry import StereoCamera

    frame = render_scene(9000, height=160, width=240, max_disparity=24.0)
    camera = StereoCamera(fx=200.0, fy=200.0, cx=119.5, cy=79.5, baseline=0.1, width=240, height=160)
    return frame, camera


def test_flying_points_are_the_flying_maps_points_with_a_point():
    from smd_core.metrics import flying_map
    from smd_ros.demo_pictures import flying_points

    gt = np.full((20, 30), 5.0, np.float32)
    gt[:, 15:] = 20.0
    pred = gt.copy()
    pred[:, 13:17] = 12.0  # between the two sides: flying
    pred[:2, 13:17] = np.nan  # no point: never flying
    pred[2:4, 13:17] = 0.0  # no point either (the node's invalid value)
    flying = flying_points(pred, gt)
    assert np.array_equal(flying, flying_map(np.where(pred > 0, pred, np.nan), gt)[1])
    assert flying[4:, 13:17].all() and not flying[:4].any() and flying.sum() == 16 * 4
    assert flying_points(pred, None) is None and flying_points(pred, gt[:, :10]) is None


def test_zoom_windows_stay_out_of_the_border_band():
    from smd_ros.demo_pictures import border_margins, zoom_windows

    score = np.zeros((200, 400), np.float32)
    score[:, :40] = 5.0  # the left occlusion band: the most "flying points" of all
    score[:4, :] = 5.0  # and the top rows
    score[100:120, 200:240] = 1.0  # one object boundary inside
    margins = border_margins(max_disp=48)
    assert margins == (8, 8, 48, 8)
    windows = zoom_windows(score, margins, size=(40, 80), count=3)
    # Only the boundary inside has flying points: one window, holding all of them.
    assert len(windows) == 1 and score[windows[0][0]:windows[0][0] + 40, windows[0][1]:windows[0][1] + 80].sum() == 800
    for y, x, h, w in windows:
        assert y >= 8 and x >= 48 and y + h <= 192 and x + w <= 392
        assert score[y:y + h, x:x + w].sum() > 0  # each holds flying points
    assert zoom_windows(score, (0, 0, 390, 0), size=(40, 80)) == []  # no room left


def test_compare_clouds_states_counts_density_and_flying_per_panel_and_zoom(tmp_path):
    import cv2

    from smd_core.metrics import flying_map
    from smd_ros.demo_pictures import CROP_TILE, FLYING_BGR, PANEL, cloud_from_disparity, compare_clouds

    frame, camera = _scene()
    gt = frame.disp_left
    blurred = cv2.blur(gt, (7, 7))  # a regression that averages across edges: flying points at every edge
    holes = np.where(np.arange(gt.shape[1])[None, :] % 7 == 0, np.nan, gt).astype(np.float32)  # exact, holed
    clouds = [cloud_from_disparity("blurred", blurred, frame.left, camera, gt),
              cloud_from_disparity("holed", holes, frame.left, camera, gt)]
    truth = cloud_from_disparity("ground truth", gt, frame.left, camera, None)
    max_disp = 24.0
    info = compare_clouds(tmp_path / "c.png", frame.left, clouds, camera, truth, max_disp=max_disp)
    blurred_fig, holed_fig = info["clouds"]["blurred"], info["clouds"]["holed"]
    # The counts are flying_map's, on the pixels that have a point; density is points per pixel.
    assert blurred_fig["flying"] == int(flying_map(blurred, gt)[1].sum()) > 100 and holed_fig["flying"] == 0
    n_holed = int(np.isfinite(holes).sum())
    assert holed_fig["points"] == n_holed and holed_fig["density"] == pytest.approx(100 * n_holed / gt.size)
    assert np.isnan(clouds[1].points[:, ::7]).all() and truth.flying is None and 1 <= len(info["crops"]) <= 3
    for crop in info["crops"]:
        y, x, h, w = crop["window_yxhw"]
        # Outside the border band (left: the max disparity; elsewhere 8 px), on flying points.
        assert x >= max_disp and y >= 8 and y + h <= gt.shape[0] - 8 and x + w <= gt.shape[1] - 8
        assert crop["clouds"]["blurred"]["flying"] == flying_map(blurred, gt)[1][y:y + h, x:x + w].sum() > 0
        assert crop["clouds"]["holed"]["flying"] == 0
        assert crop["clouds"]["holed"]["points"] == np.isfinite(holes[y:y + h, x:x + w]).sum()
    picture = cv2.imread(str(tmp_path / "c.png"))
    assert picture.shape[:2] == (PANEL[0] + CROP_TILE[0] * len(info["crops"]), 4 * PANEL[1])
    # Flying points are drawn in the full view and the zooms of the blurred cloud, never in the exact one's.
    marked = (picture == FLYING_BGR).all(axis=2)
    assert marked[:PANEL[0], PANEL[1]:2 * PANEL[1]].sum() > 50
    assert marked[PANEL[0]:, PANEL[1]:2 * PANEL[1]].sum() > 50
    assert marked[:, 2 * PANEL[1]:3 * PANEL[1]].sum() == 0


def test_warm_up_resends_until_the_node_answered_before_the_recording(monkeypatch, tmp_path):
    pytest.importorskip("builtin_interfaces")
    from sensor_msgs.msg import CameraInfo

    from smd_ros import demo

    class Node:  # answers every copy but the first (sent before its readers matched), on the next count
        def __init__(self) -> None:
            self.sent: list[int] = []

        def publish(self, frame: dict) -> None:
            self.sent.append(frame["stamp_ns"])
            assert frame["left_info"].header.stamp.sec * 10**9 + frame["left_info"].header.stamp.nanosec \
                == frame["stamp_ns"]

        def count(self, stamps: list[int]) -> int:
            return sum(s in self.sent[1:] for s in stamps)

    class Running:
        def poll(self) -> None:
            return None

    monkeypatch.setattr(demo, "WARMUP_RESEND_S", 0.2)
    first = {"stamp_ns": 50 * 10**9, "left_info": CameraInfo(), "right_info": CameraInfo()}
    node = Node()
    sent, took = demo._warm_up(node, first, Running(), tmp_path / "log", timeout=10.0)
    assert sent == 3 and took > 0
    assert node.sent == sorted(node.sent) and node.sent[-1] < first["stamp_ns"]  # never scored, never out of order
    assert first["left_info"].header.stamp.sec == 0  # the recorded frame itself is untouched


def test_auto_rate_plays_no_faster_than_the_node_answers() -> None:
    from smd_ros.demo import AUTO_RATE_MARGIN, auto_rate

    stamps = [i * 200_000_000 for i in range(5)]  # a 5 Hz recording
    assert auto_rate(stamps, 0.1) == 1.0  # a fast node: the recorded rate
    assert auto_rate(stamps, 0.4) == pytest.approx(0.2 / (AUTO_RATE_MARGIN * 0.4))  # a slow one: slower
    assert auto_rate(stamps[:1], 0.4) == 1.0 and auto_rate(stamps, 0.0) == 1.0
