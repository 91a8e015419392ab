"""Dense inference with PyTorch: `Predictor` runs an `SMDNet` through `dense.DensePredictor` (padding, row
blocks of at most `chunk_points` queries, output-grid units; see `smd_core.infer.dense`).

Units: `DensePrediction.disparity` is in pixels of the OUTPUT grid (`disparity_scale = W_out / W_network_input`
times the reference's input-pixel values), so it pairs directly with the output grid's intrinsics.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from smd_core.config import CHUNK_POINTS, Deployment, ModelConfig
from smd_core.infer.dense import DensePredictor
from smd_core.model.mixture import uncertainty
from smd_core.model.network import SMDNet


def cpu_has_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (oneDNN: AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN or without this query
        return False


class Predictor(DensePredictor):
    """Dense disparity + uncertainty from an `SMDNet` with PyTorch.

    Args:
        model: the network (its device is changed to `device`).
        device: torch device; default: the model's current device.
        chunk_points: query points per chunk; bounds memory whatever the output size.
        pad_multiple: pad the network input to a multiple of this; default: the backbone's `size_multiple`
            where it declares one (16 for sgbm_guided), else 64 (the published backbones' test pipeline).
        autocast_dtype: torch.float16 / torch.bfloat16 for mixed precision on CUDA; on the CPU only
            torch.bfloat16 is used (float16 is ignored there). Disparities stay float32 either way.
        uncertainty_kind: the `uncertainty` map, one of PIXEL_UNCERTAINTIES (see `mixture.uncertainty`):
            "edge" (default) is "peak" plus the distance to the nearer local surface where a disparity lies
            between the two sides of a depth edge; "peak" ranks pixels by how sure the mode choice is too;
            "sigma" is the selected mode's std, which sits at its floor on most pixels of the bundled models.
    """

    backend = "torch"

    def __init__(
        self,
        model: SMDNet,
        *,
        device: str | torch.device | None = None,
        chunk_points: int = CHUNK_POINTS,
        pad_multiple: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        uncertainty_kind: str = "edge",
    ) -> None:
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
            # CPUs with bfloat16 dot products (AVX512-BF16, AMX) run the convolutions and the head's GEMMs
            # several times faster than float32 (bench/bench_model.py --bf16).
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
        return stack

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _encode(self, pair: np.ndarray) -> Any:
        tensor = torch.from_numpy(pair).to(self.device).permute(0, 3, 1, 2).float()
        return self.model.prepare(self.model.encode(tensor[0:1], tensor[1:2]))

    def _query_block(self, features: Any, xs: np.ndarray, ys: np.ndarray,
                     grid_size: tuple[float, float]) -> dict[str, np.ndarray]:
        pred = self.model.query_grid(features, torch.from_numpy(xs).to(self.device),
                                     torch.from_numpy(ys).to(self.device), grid_size)
        maps = pred.maps()
        maps["uncertainty"] = uncertainty(pred, max_disp=self.model.config.max_disp, kind=self.uncertainty_kind)
        return {name: value[0].float().cpu().numpy() for name, value in maps.items()}
