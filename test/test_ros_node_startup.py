"""The stereo node's start-up, inside this process over real rclpy: what it loads, and every reason it cannot start
as one fatal line and exit status 1 (`stereo_node.main`, the console entry point, with command-line parameters).

In-process: each case is the entry point's own code path, without a Python interpreter, torch and DDS participant
to start per case (`test_ros_node.py` runs the node as its own process for its outputs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("stereo_msgs.msg")

from ros_helpers import NODE_CHECKPOINT, node_command  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(autouse=True)
def keep_threads(ros_env) -> Iterator[None]:
    """The node sets torch's and OpenCV's thread counts for the whole process: put them back."""
    import cv2
    import torch

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)


@pytest.fixture
def run_main(capfd, monkeypatch) -> Callable[[dict[str, Any]], tuple[int, str]]:
    """`stereo_node.main` with `params` as `-p name:=value` arguments -> (exit status, what it logged).

    A node that starts fails the test instead of spinning for ever."""
    import rclpy

    from smd_ros import stereo_node

    def run(params: dict[str, Any]) -> tuple[int, str]:
        def spin(node, *args, **kwargs):
            raise AssertionError(f"the node started: {params}")

        monkeypatch.setattr(rclpy, "spin", spin)
        capfd.readouterr()
        rc = stereo_node.main(node_command({"threads": 1, **params})[2:])  # [module, --ros-args, -p ...]
        captured = capfd.readouterr()
        return rc, captured.out + captured.err

    return run


@contextlib.contextmanager
def started(params: dict[str, Any]) -> Iterator[Any]:
    """A `StereoNode` with `params` as parameter overrides, in its own context; destroyed on exit."""
    import rclpy
    from rclpy.parameter import Parameter

    from smd_ros.ros_session import ros_session
    from smd_ros.stereo_node import StereoNode

    with ros_session(context=rclpy.Context()) as context:
        overrides = [Parameter(k, value=v) for k, v in {"threads": 1, **params}.items()]
        node = StereoNode(context=context, namespace="startup", parameter_overrides=overrides)
        try:
            yield node
        finally:
            node.destroy_node()


def fatal(rc: int, log: str, *texts: str) -> None:
    assert rc == 1 and "cannot start" in log, (rc, log)
    for text in texts:
        assert text in log, (text, log)


# ------------------------------------------------------------------------------------------------ cannot start


def test_missing_checkpoint(tmp_path, run_main):
    missing = tmp_path / "no_such_model.pth"
    fatal(*run_main({"checkpoint": str(missing), "device": "cpu"}), str(missing))


def test_corrupt_checkpoint(tmp_path, run_main):
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"this is not a checkpoint")
    fatal(*run_main({"checkpoint": str(bad), "device": "cpu"}), f"failed to load checkpoint {bad}")


def test_invalid_parameter(run_main):
    fatal(*run_main({"checkpoint": str(NODE_CHECKPOINT), "output_scale": 0.5}), "output_scale")


def test_no_bundled_model_and_no_checkpoint(tmp_path, monkeypatch, run_main):
    """An install without the bundled weights (a slim package) and `checkpoint` left empty: the fatal line names
    the missing file and where it was looked for."""
    from smd_core import weights

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    fatal(*run_main({"device": "cpu", "backend": "torch"}), "no model is bundled", "guided_bimodal.pt",
          str(tmp_path), "set the `checkpoint` parameter")


def test_cuda_requested_but_absent_without_fallback(run_main):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fatal(*run_main({"checkpoint": str(NODE_CHECKPOINT), "device": "cuda", "device_fallback": False}),
          "CUDA is not available", "device_fallback is false")


def test_tensorrt_needs_the_onnxruntime_backend(run_main):
    fatal(*run_main({"backend": "torch", "device": "tensorrt"}), "device='tensorrt' needs backend onnxruntime")


def test_gpu_provider_requested_but_absent_without_fallback(run_main):
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    fatal(*run_main({"checkpoint": "", "backend": "onnxruntime", "device": "tensorrt", "device_fallback": False}),
          "has no TensorrtExecutionProvider")


# ------------------------------------------------------------------------------------------------ starts


def test_empty_checkpoint_is_the_bundled_model(capfd):
    from smd_core import weights

    with started({"checkpoint": "", "device": "cpu"}) as node:
        assert str(node.predictor.device) == "cpu"
    log = capfd.readouterr().err
    assert f"model {weights.default_checkpoint()} loaded" in log and "(torch)" in log
    assert "ready: device cpu, model guided_bimodal.pt (sgbm_guided" in log


def test_cuda_requested_but_absent_falls_back_to_the_cpu(capfd):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with started({"checkpoint": str(NODE_CHECKPOINT), "device": "cuda", "half_precision": True}) as node:
        assert str(node.predictor.device) == "cpu"
    log = capfd.readouterr().err
    assert "device='cuda' requested but CUDA is not available: running on the CPU" in log
    assert "half_precision is ignored on the CPU" in log and "ready: device cpu" in log


def test_gpu_provider_requested_but_absent_falls_back_to_the_cpu(capfd):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with started({"checkpoint": "", "backend": "onnxruntime", "device": "cuda"}):
        pass
    log = capfd.readouterr().err
    assert "has no CUDAExecutionProvider" in log and "running on the CPU" in log
    assert "guided_bimodal.onnx" in log and "ready: device cpu (CPUExecutionProvider)" in log


@pytest.mark.parametrize("context_down", [True, False])
def test_spin_error_is_a_shutdown_only_after_the_context_went_down(monkeypatch, context_down):
    """Ctrl-C's handler can shut the context down while spin builds its wait set (seen on Jazzy): exit status 0.
    The same error with the context still up is a real failure and propagates."""
    import rclpy
    from rclpy.utilities import try_shutdown

    from smd_ros import stereo_node

    def spin(node, *args, **kwargs):
        if context_down:
            try_shutdown()
        raise stereo_node.RCLError("failed to initialize wait set: the given context is not valid")

    monkeypatch.setattr(rclpy, "spin", spin)
    argv = node_command({"threads": 1, "checkpoint": str(NODE_CHECKPOINT)})[2:]
    if context_down:
        assert stereo_node.main(argv) == 0
    else:
        with pytest.raises(stereo_node.RCLError):
            stereo_node.main(argv)
