"""Weights shipped inside the package (installed as package data; see MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
DEFAULT_NAME = "guided_bimodal.pt"
STANDARD_NAME = "guided_standard.pt"


def bundled(name: str) -> Path:
    path = WEIGHTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"bundled weights {name} are not in this install ({WEIGHTS_DIR}); "
                                "pass a checkpoint path explicitly")
    return path


def default_checkpoint() -> Path:
    """The bundled SGBM-guided bimodal model, the default of the node, the demo and the CLI."""
    return bundled(DEFAULT_NAME)


def standard_checkpoint() -> Path:
    """The bundled SGBM-guided standard (L1) model, trained with the same recipe, for comparisons."""
    return bundled(STANDARD_NAME)


DEFAULT_ONNX_NAME = "guided_bimodal.onnx"
STANDARD_ONNX_NAME = "guided_standard.onnx"


def default_onnx() -> Path:
    """The default model as `smd export` writes it, for the onnxruntime backend (no torch needed)."""
    return bundled(DEFAULT_ONNX_NAME)


def standard_onnx() -> Path:
    """The standard (L1) model as ONNX."""
    return bundled(STANDARD_ONNX_NAME)
