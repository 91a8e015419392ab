"""The node's model: a `NodeConfig` -> a `DensePredictor` on the backend, device and threads it asks for.

torch runs checkpoints (CPU precision rule: `runtime.cpu_bfloat16`; float16 on CUDA); onnxruntime runs `smd export`
files without importing torch. Same outputs, units and uncertainty: the rest of the node does not know which runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2

from smd_core.infer.backend import resolve_model
from smd_core.infer.dense import DensePredictor
from smd_ros import runtime
from smd_ros.params import NodeConfig


class CheckpointError(RuntimeError):
    """The model could not be loaded; the message names the file."""


def load(cfg: NodeConfig, log: Any) -> tuple[DensePredictor, int, str]:
    """The model `cfg` names, the threads it runs on and its name for the ready line; logs what it chose (and any
    fallback) on `log` (an rclpy logger)."""
    threads = cfg.threads or runtime.default_threads()
    cv2.setNumThreads(threads)  # OpenCV (SGBM in the guided models) shares the same cores
    path, backend = resolve_model(cfg.checkpoint, cfg.backend, hint="set the `checkpoint` parameter to a file")
    t0 = time.monotonic()
    predictor, detail = (_load_onnx if backend == "onnxruntime" else _load_torch)(cfg, path, threads, log)
    mc = predictor.config
    log.info(f"model {path} loaded in {time.monotonic() - t0:.1f} s ({backend}): backbone {mc.backbone}, output "
             f"{mc.output}, max_disp {mc.max_disp}, device {predictor.device}{detail}")
    return predictor, threads, f"{path.name} ({mc.backbone}, {mc.output}, max_disp {mc.max_disp}, {backend})"


def _load_onnx(cfg: NodeConfig, path: Path, threads: int, log: Any) -> tuple[DensePredictor, str]:
    from smd_core.infer.ort_backend import OnnxModel, OrtPredictor, ProviderUnavailableError, onnxruntime_version

    if cfg.half_precision:
        log.warning("half_precision applies to the torch backend; onnxruntime runs the file's float32 graph")
    try:
        model = OnnxModel(path, device=cfg.device, threads=threads, fallback=cfg.device_fallback)
    except ProviderUnavailableError:
        raise
    except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
        raise CheckpointError(f"failed to load ONNX model {path}: {exc}") from exc
    for warning in model.warnings:
        log.warning(warning)
    log.info(f"{onnxruntime_version()}; providers in use: {', '.join(model.providers)}")
    predictor = OrtPredictor(model, chunk_points=cfg.chunk_points, uncertainty_kind=cfg.uncertainty_kind)
    step = model.metadata.get("checkpoint", {}).get("step")
    return predictor, f", exported from {model.metadata.get('checkpoint', {}).get('file', '?')} (step {step})"


def _load_torch(cfg: NodeConfig, path: Path, threads: int, log: Any) -> tuple[DensePredictor, str]:
    import torch

    import smd_core
    from smd_core.resolve import resolve_device

    torch.set_num_threads(threads)
    if cfg.device.startswith("tensorrt"):
        raise ValueError(f"device={cfg.device!r} needs the onnxruntime backend (an .onnx model), not torch")
    device, warning = resolve_device(cfg.device, fallback=cfg.device_fallback)
    if warning:
        log.warning(warning)
    try:
        model = smd_core.load_model(path, backbone=cfg.backbone or None, output=cfg.output or None,
                                    max_disp=cfg.max_disparity or None, device=device)
    except (OSError, ValueError, RuntimeError, ImportError, KeyError) as exc:
        raise CheckpointError(f"failed to load checkpoint {path}: {exc}") from exc
    autocast = None
    if cfg.half_precision:
        if torch.device(device).type == "cuda":
            autocast = torch.float16
        else:
            log.warning("half_precision is ignored on the CPU")
    elif torch.device(device).type == "cpu" and runtime.cpu_bfloat16(
            cfg.cpu_precision, model.deployment.cpu_bfloat16, smd_core.cpu_has_bfloat16()):
        autocast = torch.bfloat16
    predictor = smd_core.Predictor(model, device=device, chunk_points=cfg.chunk_points, autocast_dtype=autocast,
                                   uncertainty_kind=cfg.uncertainty_kind)
    n_params = sum(p.numel() for p in model.parameters())
    gpu = f" ({torch.cuda.get_device_name(torch.device(device))})" if torch.device(device).type == "cuda" else ""
    return predictor, (f"{gpu}, {n_params / 1e6:.1f} M parameters"
                       f"{f', {autocast} autocast'.replace('torch.', '') if autocast else ''}")
