"""Which backend runs a model file, with no torch import: PyTorch for checkpoints, ONNX Runtime for `smd export`
files (the node's `backend` parameter, `smd predict` and `smd demo` `--backend`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from smd_core.config import ModelConfig
from smd_core.infer.dense import DensePredictor
from smd_core.resolve import COMMAND_HINT, resolve_checkpoint

BACKENDS = ("auto", "torch", "onnxruntime")
ONNX_SUFFIX = ".onnx"


def torch_available() -> bool:
    """Whether torch can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a blocked or half-installed torch
        return False


def _bundled(backend: str, hint: str) -> Path:
    if backend == "onnxruntime" or (backend == "auto" and not torch_available()):
        try:
            from smd_core.weights import default_onnx
        except ImportError as exc:
            raise FileNotFoundError(f"checkpoint is empty (meaning the bundled model) but smd_core.weights is not "
                                    f"importable; {hint}") from exc
        return default_onnx()
    return resolve_checkpoint(None, hint=hint)


def resolve_model(checkpoint: str | Path | None, backend: str = "auto", *,
                  hint: str = "pass a checkpoint file") -> tuple[Path, str]:
    """(model file, "torch" or "onnxruntime") for a checkpoint setting and a backend setting: "auto" picks by the
    file's type (.onnx: onnxruntime); "" / None is the bundled model, its checkpoint where torch is installed
    (and backend is not onnxruntime), else its .onnx export. ValueError for a file the backend cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = _bundled(backend, hint) if checkpoint is None or str(checkpoint) == "" \
        else resolve_checkpoint(checkpoint, hint=hint)
    is_onnx = path.suffix.lower() == ONNX_SUFFIX
    if backend == "auto":
        backend = "onnxruntime" if is_onnx else "torch"
    if backend == "torch" and is_onnx:
        raise ValueError(f"backend=torch cannot run the ONNX file {path}: use backend onnxruntime, or its checkpoint")
    if backend == "onnxruntime" and not is_onnx:
        raise ValueError(f"backend=onnxruntime needs an .onnx file, got {path}: write one with "
                         f"`smd export {path} --out {path.with_suffix(ONNX_SUFFIX).name}`")
    return path, backend


def load_predictor(path: str | Path, backend: str, *, device: str = "cpu", threads: int = 0, fallback: bool = False,
                   **kwargs: Any) -> DensePredictor:
    """A predictor for a file `resolve_model` returned, for the commands (the node adds its own CPU settings).
    kwargs: chunk_points, uncertainty_kind; for torch also backbone, output, max_disp (published checkpoints)."""
    overrides = {k: v for k in ("backbone", "output", "max_disp") if (v := kwargs.pop(k, None)) is not None}
    if backend == "onnxruntime":
        from smd_core.infer.ort_backend import OrtPredictor

        if overrides:
            raise ValueError(f"{path}: an ONNX file carries its own model config; {sorted(overrides)} apply to "
                             "checkpoints only")
        return OrtPredictor(path, device=device, threads=threads, fallback=fallback, hint=COMMAND_HINT, **kwargs)
    if backend != "torch":
        raise ValueError(f"backend must be torch or onnxruntime here, got {backend!r}")
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model
    from smd_core.resolve import resolve_device

    torch_device, _ = resolve_device(device, fallback=fallback, hint=COMMAND_HINT)
    model = load_model(path, device=torch_device, **overrides)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return Predictor(model, device=torch_device, **kwargs)


def model_config(path: str | Path, backend: str) -> ModelConfig:
    """The ModelConfig of a file `resolve_model` returned, without building a predictor."""
    path = Path(path)
    if backend == "onnxruntime":
        from smd_core.infer.ort_backend import config_of, read_onnx

        return config_of(read_onnx(path)[1], path)
    from smd_core.model.network import load_model

    return load_model(path, device="cpu").config
