"""The runtime path without torch: the node, `smd predict` and `smd demo` import and run with torch blocked.

A `sitecustomize` on PYTHONPATH sets sys.modules["torch"] = None in every Python process it starts (the
node and the demo's node process too), so any `import torch` on their path fails as it would in a runtime
install (`pip install .[runtime]`). Training and export keep needing torch (a clear error says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]
RUNTIME_MODULES = ("smd_ros.stereo_node", "smd_ros.demo", "smd_ros.demo_pictures", "smd_ros.cli",
                   "smd_core.infer.predict_cli", "smd_core.infer.backend", "smd_core.infer.ort_backend",
                   "smd_ros.model_loading", "smd_ros.bags.reader")


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory) -> dict[str, str]:
    block = tmp_path_factory.mktemp("no_torch")
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # torch is not installed\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(block), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_py(code: str, env: dict[str, str], cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_runtime_modules_import_without_torch(no_torch_env):
    code = (f"import importlib, sys\nfor m in {RUNTIME_MODULES!r}: importlib.import_module(m)\n"
            "try:\n    import torch\nexcept ImportError:\n    print('BLOCKED')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision') "
            "and sys.modules[m] is not None))")
    proc = run_py(code, no_torch_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["BLOCKED", "[]"], proc.stdout


def test_smd_predict_runs_the_bundled_onnx_without_torch(no_torch_env, tmp_path):
    import cv2

    from smd_core.data.synthetic.render import render_scene

    scene = render_scene(5, height=96, width=128, max_disparity=20.0)
    cv2.imwrite(str(tmp_path / "l.png"), scene.left)
    cv2.imwrite(str(tmp_path / "r.png"), scene.right)
    code = ("import sys\nfrom smd_ros.cli import main\n"
            f"sys.exit(main(['predict', {str(tmp_path / 'l.png')!r}, {str(tmp_path / 'r.png')!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--device', 'cpu', '--scale', '1.5']))")
    proc = run_py(code, no_torch_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert info["backend"] == "onnxruntime" and info["checkpoint"].endswith("guided_bimodal.onnx")
    assert info["output_size"] == [144, 192]
    disp = np.load(tmp_path / "out" / "disparity.npy")
    assert disp.shape == (144, 192) and np.isfinite(disp).all() and disp.max() > 0
    for name in ("uncertainty", "mu0", "pi1"):
        assert (tmp_path / "out" / f"{name}.npy").is_file()


def test_export_and_training_say_they_need_torch(no_torch_env, tmp_path):
    code = ("import sys\nfrom smd_ros.cli import main\n"
            f"sys.exit(main(['export', 'smd_core/weights/guided_bimodal.pt', '--out', {str(tmp_path / 'x.onnx')!r}]))")
    proc = run_py(code, no_torch_env)
    assert proc.returncode == 2 and "smd export needs torch and onnx" in proc.stderr, proc.stderr


@pytest.mark.slow
@pytest.mark.ros
def test_smd_demo_runs_without_torch(no_torch_env, tmp_path, ros_env):
    pytest.importorskip("rclpy")
    env = {**ros_env, "PYTHONPATH": no_torch_env["PYTHONPATH"]}
    code = ("import sys\nfrom smd_ros.cli import main\n"
            f"sys.exit(main(['demo', '--frames', '3', '--out', {str(tmp_path / 'demo')!r}]))")
    proc = run_py(code, env, timeout=600)
    log = (tmp_path / "demo" / "node.log").read_text() if (tmp_path / "demo" / "node.log").is_file() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + log[-3000:]
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["frames_out"] >= 1 and summary["bimodal"]["epe"] < 10 and summary["standard"] is not None
    assert "(onnxruntime)" in log and "guided_bimodal.onnx" in log
