"""Execution providers from the `device` setting (onnxruntime backend), and the CPU fallback on this machine.

No GPU here: the CUDA / TensorRT orders are checked on the provider lists onnxruntime would report, and the
fallback on the real session, including a provider onnxruntime lists but cannot start."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")

from smd_core import weights  # noqa: E402
from smd_core.infer.ort_backend import (  # noqa: E402
    CPU,
    CUDA,
    TENSORRT,
    OnnxModel,
    ProviderUnavailableError,
    select_providers,
)

GPU_BUILD = [TENSORRT, CUDA, CPU]


def names(providers):
    return [p[0] if isinstance(p, tuple) else p for p in providers]


def test_cpu_and_auto():
    assert select_providers("cpu", GPU_BUILD) == ([CPU], "")
    assert select_providers("auto", [CPU]) == ([CPU], "")
    providers, warning = select_providers("auto", GPU_BUILD)
    # auto never starts a TensorRT engine build on its own.
    assert names(providers) == [CUDA, CPU] and warning == ""


def test_cuda_and_tensorrt_orders(tmp_path):
    providers, _ = select_providers("cuda:1", GPU_BUILD)
    assert providers == [(CUDA, {"device_id": 1}), CPU]
    providers, _ = select_providers("tensorrt", GPU_BUILD, cache_dir=tmp_path)
    assert names(providers) == [TENSORRT, CUDA, CPU]
    assert providers[0][1] == {"device_id": 0, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path)}
    providers, _ = select_providers("tensorrt:0", [TENSORRT, CPU])
    assert names(providers) == [TENSORRT, CPU]


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "tensorrt"])
def test_absent_gpu_provider_falls_back_or_fails(device):
    providers, warning = select_providers(device, [CPU])
    assert providers == [CPU]
    assert f"device={device!r} requested but this onnxruntime has no" in warning and "running on the CPU" in warning
    with pytest.raises(ProviderUnavailableError, match="device_fallback is false"):
        select_providers(device, [CPU], fallback=False)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tensorrt:", ""])
def test_bad_device_strings(device):
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda"):
        select_providers(device, GPU_BUILD)


def test_session_on_this_machine_falls_back_to_the_cpu():
    import onnxruntime as ort

    model = OnnxModel(weights.default_onnx(), device="cuda")
    if CUDA in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the GPU script checks it (bench/gpu_check.sh)")
    assert model.providers == [CPU] and model.device == f"cpu ({CPU})"
    assert len(model.warnings) == 1 and "has no CUDAExecutionProvider" in model.warnings[0]
    with pytest.raises(ProviderUnavailableError):
        OnnxModel(weights.default_onnx(), device="tensorrt", fallback=False)


def test_listed_provider_that_cannot_start_falls_back(monkeypatch):
    """onnxruntime lists a provider whose libraries are missing: the session runs on the CPU; we say so."""
    import onnxruntime as ort

    if CUDA in ort.get_available_providers():
        pytest.skip("CUDA really is available here")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    model = OnnxModel(weights.default_onnx(), device="cuda")
    assert model.providers == [CPU] and model.requested == [CUDA, CPU]
    assert any("could not start CUDAExecutionProvider" in w and "running on CPUExecutionProvider" in w
               for w in model.warnings)
    with pytest.raises(ProviderUnavailableError, match="could not start"):
        OnnxModel(weights.default_onnx(), device="cuda", fallback=False)
