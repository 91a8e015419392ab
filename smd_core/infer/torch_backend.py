"""Dense inference with PyTorch: `Predictor` runs an `SMDNet` through `dense.DensePredictor`."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from smd_core import threads
from smd_core.config import CHUNK_POINTS, Deployment, ModelConfig
from smd_core.infer.dense import DensePredictor
from smd_core.model.head import flatten_maps
from smd_core.model.mixture import uncertainty
from smd_core.model.network import SMDNet


def cpu_has_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN or without this query
        return False


def _one_torch_thread() -> None:
    torch.get_num_threads()  # a thread's first call sets its OpenMP count from the global one: done before ours
    torch.set_num_threads(1)


def single_threaded_workers(workers: int) -> ThreadPoolExecutor:
    """This process's `workers` threads on which torch runs single-threaded (the torch backend's query blocks).
    The caller's own torch threads are as they were."""
    caller = torch.get_num_threads()
    # torch.set_num_threads in the new workers also set the global count that threads started later take.
    return threads.pool("query", workers, initializer=_one_torch_thread,
                        started=lambda: torch.set_num_threads(caller))


class Predictor(DensePredictor):
    """Dense disparity + uncertainty from an `SMDNet` with PyTorch.

    model: moved to `device` (default: the model's current device). pad_multiple: default `SMDNet.pad_multiple`.
    autocast_dtype: torch.float16 / torch.bfloat16 for mixed precision on CUDA; on the CPU only torch.bfloat16
    is used. Disparities stay float32 either way. The other arguments: `DensePredictor`.
    """

    backend = "torch"

    def __init__(self, model: SMDNet, *, device: str | torch.device | None = None, chunk_points: int = CHUNK_POINTS,
                 pad_multiple: int | None = None, autocast_dtype: torch.dtype | None = None,
                 uncertainty_kind: str = "edge") -> None:
        super().__init__(chunk_points=chunk_points, pad_multiple=pad_multiple or model.pad_multiple,
                         uncertainty_kind=uncertainty_kind)
        if autocast_dtype not in (None, torch.float16, torch.bfloat16):
            raise ValueError(f"autocast_dtype must be None, torch.float16 or torch.bfloat16, got {autocast_dtype}")
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.autocast_dtype = autocast_dtype

    @property
    def config(self) -> ModelConfig:  # type: ignore[override]
        return self.model.config

    @property
    def deployment(self) -> Deployment:  # type: ignore[override]
        return self.model.deployment

    def _context(self) -> contextlib.AbstractContextManager:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.autocast_dtype is not None and self.device.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=self.autocast_dtype))
        elif self.autocast_dtype == torch.bfloat16 and self.device.type == "cpu":
            # Meant for CPUs with native bfloat16 dot products (`cpu_has_bfloat16`).
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        return stack

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _query_workers(self) -> int:
        # On the CPU the row blocks run concurrently, one per torch thread, each single-threaded: the head's many
        # small ops then need no OpenMP fork and join each, which costs about as much as they do.
        return torch.get_num_threads() if self.device.type == "cpu" else 1

    def _block_workers(self, workers: int) -> ThreadPoolExecutor:
        return single_threaded_workers(workers)

    def _encode(self, pair: np.ndarray) -> Any:
        tensor = torch.from_numpy(pair).to(self.device).permute(0, 3, 1, 2).float()
        # Channels-last copy of the maps, made once per encode for all the query blocks.
        return flatten_maps(self.model.encode(tensor[0:1], tensor[1:2]))

    def _query_block(self, features: Any, xs: np.ndarray, ys: np.ndarray,
                     grid_size: tuple[float, float]) -> dict[str, np.ndarray]:
        pred = self.model.query_grid(features, torch.from_numpy(xs).to(self.device),
                                     torch.from_numpy(ys).to(self.device), grid_size)
        maps = pred.maps()
        maps["uncertainty"] = uncertainty(pred, max_disp=self.model.config.max_disp, kind=self.uncertainty_kind)
        return {name: value[0].float().cpu().numpy() for name, value in maps.items()}
