"""scripts/setup.sh's choices: which PyTorch build (scripts/torch_pip_args.py) and which ROS 2 distribution.

The choice logic is tested, not the downloads (CI's machine reaches only its package mirror).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU = ["torch==2.13.0", "--no-deps", "--extra-index-url", "https://download.pytorch.org/whl/cpu"]


def load_script():
    spec = importlib.util.spec_from_file_location("torch_pip_args", REPO / "scripts" / "torch_pip_args.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("choice, gpu, system, want", [
    ("cpu", False, "Linux", CPU),
    ("cpu", True, "Linux", CPU),
    ("cuda", False, "Linux", ["torch==2.13.0"]),
    ("auto", True, "Linux", ["torch==2.13.0"]),
    ("auto", False, "Linux", CPU),
    ("cpu", False, "Darwin", ["torch==2.13.0"]),  # PyPI's macOS torch has no CUDA to avoid
])
def test_pip_args_per_choice(choice, gpu, system, want):
    assert load_script().pip_args(choice, "2.13.0", gpu=gpu, system=system) == want


def test_unknown_choice_is_one_clear_line():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "torch_pip_args.py"), "rocm"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "torch_pip_args: SMD_TORCH must be one of cpu, cuda, auto, got 'rocm'"


def test_script_prints_one_argument_per_line_and_explains():
    script = str(REPO / "scripts" / "torch_pip_args.py")
    out = subprocess.run([sys.executable, script, "cpu", "--version", "2.13.0"], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == (CPU if sys.platform == "linux" else ["torch==2.13.0"])
    explained = subprocess.run([sys.executable, script, "cuda", "--explain"], capture_output=True, text=True,
                               check=True).stdout
    assert explained.strip() == "PyTorch 2.13.0, cuda build"
    build = subprocess.run([sys.executable, script, "cpu", "--build"], capture_output=True, text=True, check=True)
    assert build.stdout.strip() == "cpu"


def test_auto_follows_the_nvidia_driver(monkeypatch, tmp_path):
    module = load_script()
    exists = os.path.exists
    monkeypatch.setattr(module.os.path, "exists", lambda path: path != "/proc/driver/nvidia/version" and exists(path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert not module.nvidia_gpu_visible() and module.resolve("auto", module.nvidia_gpu_visible()) == "cpu"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200'\n")
    smi.chmod(0o755)
    assert module.nvidia_gpu_visible() and module.resolve("auto", True) == "cuda"


@pytest.mark.parametrize("env, message", [
    ({"SMD_ROS_DISTRO": "lyrical"}, "setup.sh: SMD_ROS_DISTRO must be kilted or jazzy, got 'lyrical'"),
    ({"SMD_TORCH": "rocm"}, "torch_pip_args: SMD_TORCH must be one of cpu, cuda, auto, got 'rocm'"),
])
def test_setup_refuses_unknown_choices_before_touching_anything(env, message, tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], capture_output=True, text=True,
                          env={**os.environ, **env, "SMD_VENV": str(venv)}, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == message, proc.stderr
    assert not venv.exists()
