"""Backbone registry: name -> builder.

Every backbone is an `nn.Module` built as `Cls(*, max_disp=..., **options)` with
- `feature_channels: int`, the total channels of the maps it returns (the SMD head's input width C);
- `forward(left, right) -> list[Tensor]`: left/right (B, 3, H, W) float BGR in 0..255, H and W
  multiples of 64; returns feature maps (B, C_i, h_i, w_i) in the order the head concatenates them.
Modules are imported lazily so one backbone's dependencies never block another.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

_REGISTRY = {
    "psmnet": ("smd_core.model.backbones.psmnet", "PSMNet"),
    "hsmnet": ("smd_core.model.backbones.hsmnet", "HSMNet"),
    "light": ("smd_core.model.backbones.light", "LightStereo"),
    "sgbm_guided": ("smd_core.model.backbones.guided", "SGBMGuided"),
}


def backbone_class(name: str) -> type[nn.Module]:
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {sorted(_REGISTRY)}")
    module, cls = _REGISTRY[key]
    return getattr(importlib.import_module(module), cls)


def build_backbone(name: str, *, max_disp: int, **options: Any) -> nn.Module:
    """Build backbone `name` ("psmnet", "hsmnet", "light", "sgbm_guided"; case-insensitive)."""
    return backbone_class(name)(max_disp=max_disp, **options)
