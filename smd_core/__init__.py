"""smd_core: SMD-Nets in pure PyTorch (no ROS imports).

Public API: `load_model`, `build_model`, `save_checkpoint`, `SMDNet`, `Predictor`, `DensePrediction`,
`ModelConfig`, `Prediction`.
"""

from smd_core.config import ModelConfig
from smd_core.inference import DensePrediction, Predictor
from smd_core.model.mixture import Prediction
from smd_core.model.network import SMDNet, build_model, load_model, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "DensePrediction",
    "ModelConfig",
    "Prediction",
    "Predictor",
    "SMDNet",
    "build_model",
    "load_model",
    "save_checkpoint",
    "__version__",
]
