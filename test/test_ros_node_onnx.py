"""The stereo node on the onnxruntime backend, as its own process over real rclpy/DDS (loopback-only profile,
private domain id), with torch blocked in that process (a runtime install has none): the bundled .onnx model's
outputs equal `OrtPredictor`'s on the same input, and its cloud follows the same rule as on torch. GPU requests
that fall back to the CPU (or fail, with device_fallback false) are checked in-process (`test_ros_node_startup.py`)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("stereo_msgs.msg")
pytest.importorskip("onnxruntime")

from ros_helpers import answer_once, organized_points  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 96, 128
FX, BASELINE = 100.0, 0.2


@pytest.fixture(scope="module")
def torch_free_env(ros_env, tmp_path_factory) -> dict[str, str]:
    block = tmp_path_factory.mktemp("no_torch")
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # torch is not installed\n")
    return {**ros_env, "PYTHONPATH": os.pathsep.join([str(block), ros_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def as_array(img) -> np.ndarray:
    assert img.encoding == "32FC1" and img.step == img.width * 4
    return np.frombuffer(img.data, np.float32).reshape(img.height, img.width)


def test_onnxruntime_node_outputs_match_the_predictor(torch_free_env, tmp_path):
    from smd_core import weights
    from smd_core.data.synthetic.render import render_scene
    from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE, StereoCamera, disparity_to_points, remove_speckles
    from smd_core.infer.ort_backend import OrtPredictor

    scene = render_scene(4, height=H, width=W, max_disparity=24.0)
    # checkpoint "" and backend auto: with no torch, the bundled model's .onnx export.
    out, log = answer_once({"checkpoint": "", "backend": "auto", "device": "cpu", "use_color": False,
                            "output_scale": 1.5}, torch_free_env, tmp_path, scene.left, scene.right, t=900.0,
                           name="onnx_node", namespace="onnx", fx=FX, baseline=BASELINE)
    assert "(onnxruntime)" in log and "guided_bimodal.onnx" in log and "providers in use: CPUExecutionProvider" in log
    assert "ready: device cpu (CPUExecutionProvider)" in log

    h, w = int(H * 1.5), int(W * 1.5)
    disp, unc = as_array(out["disparity"].image), as_array(out["uncertainty"])
    predictor = OrtPredictor(weights.default_onnx())
    pred = predictor.predict(scene.left, scene.right, output_size=(h, w))
    np.testing.assert_allclose(disp, pred.disparity, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(unc, pred.uncertainty, rtol=1e-5, atol=1e-4)
    assert out["disparity"].max_disparity == pytest.approx(128 * 1.5)
    # The cloud rule: auto keeps the pixels within the model's deployment threshold (output px), less the
    # speckles among them (the node's default speckle_size and speckle_range, output px), as on torch.
    pts = organized_points(out["points2"])
    in_cloud = np.isfinite(pts["z"])
    confident = (disp > 0) & (unc <= predictor.deployment.cloud_max_uncertainty * 1.5)
    np.testing.assert_array_equal(in_cloud, remove_speckles(disp, confident, max_size=SPECKLE_SIZE,
                                                            max_diff=SPECKLE_RANGE_PX))
    assert 0.3 < in_cloud.mean() < 1.0
    camera = StereoCamera(fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=BASELINE, width=W,
                          height=H).scaled(w, h)
    want = disparity_to_points(disp, camera, valid=in_cloud)
    got = np.dstack([pts["x"], pts["y"], pts["z"]])
    np.testing.assert_allclose(got[in_cloud], want[in_cloud], rtol=1e-5)
