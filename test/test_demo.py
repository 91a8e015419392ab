"""Out of the box: the bundled models load by default, and a shortened `smd demo` runs end to end over DDS."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from smd_core.weights import WEIGHTS_DIR, default_checkpoint, standard_checkpoint

BUNDLED = (WEIGHTS_DIR / "light_bimodal.pt").is_file()
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
    assert (bimodal.config.backbone, bimodal.config.output) == ("light", "bimodal")
    assert (standard.config.backbone, standard.config.output) == ("light", "standard")
    size = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.pt"))
    assert size <= 10 * 2**20, f"bundled weights take {size / 2**20:.1f} MB (limit 10 MB)"
    from smd_core.data.synthetic import render_scene

    frame = render_scene(123, height=96, width=128, max_disparity=24.0)
    pred = smd_core.Predictor(bimodal).predict(frame.left, frame.right)
    valid = frame.disp_left > 0
    assert np.median(np.abs(pred.disparity - frame.disp_left)[valid]) < 3.0  # a trained model, not noise


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
    for name in ("contact_sheet.png", "cloud_comparison.png", "node.log"):
        assert (out / name).is_file(), name
    assert len(list((out / "frames").glob("*_disparity.png"))) == summary["frames_out"]
