"""Weights shipped inside the package (installed as package data; see MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent


def bundled(name: str) -> Path:
    path = WEIGHTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"bundled weights {name} are not in this install ({WEIGHTS_DIR}); "
                                "pass a checkpoint path explicitly")
    return path


def default_checkpoint() -> Path:
    """The bundled SGBM-guided bimodal model, the default of the node, the demo and the CLI."""
    return bundled("guided_bimodal.pt")


def standard_checkpoint() -> Path:
    """The bundled SGBM-guided standard (L1) model, trained with the same recipe, for comparisons."""
    return bundled("guided_standard.pt")


def default_onnx() -> Path:
    """The default model as `smd export` writes it, for the onnxruntime backend (no torch needed)."""
    return bundled("guided_bimodal.onnx")


def standard_onnx() -> Path:
    """The standard (L1) model as ONNX."""
    return bundled("guided_standard.onnx")
