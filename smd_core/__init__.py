"""smd_core: SMD-Nets in pure PyTorch (no ROS imports).

Public API: `load_model`, `build_model`, `save_checkpoint`, `SMDNet`, `Predictor`, `DensePrediction`,
`ModelConfig`, `Prediction`. They are loaded on first use (module `__getattr__`), so importing smd_core,
or a light part of it such as `smd_core.geometry`, does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_LAZY = {
    "DensePrediction": "smd_core.infer.dense",
    "Predictor": "smd_core.infer.torch_backend",
    "cpu_has_bfloat16": "smd_core.infer.torch_backend",
    "ModelConfig": "smd_core.config",
    "Prediction": "smd_core.model.mixture",
    "SMDNet": "smd_core.model.network",
    "build_model": "smd_core.model.network",
    "load_model": "smd_core.model.network",
    "save_checkpoint": "smd_core.model.network",
}

__all__ = ["DensePrediction", "ModelConfig", "Prediction", "Predictor", "SMDNet", "build_model", "cpu_has_bfloat16",
           "load_model", "save_checkpoint", "__version__"]

if TYPE_CHECKING:
    from smd_core.config import ModelConfig
    from smd_core.infer.dense import DensePrediction
    from smd_core.infer.torch_backend import Predictor, cpu_has_bfloat16
    from smd_core.model.mixture import Prediction
    from smd_core.model.network import SMDNet, build_model, load_model, save_checkpoint


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smd_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
