"""Backbone registry (modules imported on use). A backbone is an `nn.Module` `Cls(*, max_disp=..., **options)`
with `feature_channels` (the SMD head's input width) and `forward(left, right)`: (B, 3, H, W) float BGR 0..255
-> feature maps (B, C_i, h_i, w_i) in the head's order; optional `size_multiple` (its input multiple)."""

from __future__ import annotations

import importlib
from typing import Any

from torch import Tensor, nn

_REGISTRY = {
    "psmnet": ("smd_core.model.backbones.psmnet", "PSMNet"), "hsmnet": ("smd_core.model.backbones.hsmnet", "HSMNet"),
    "light": ("smd_core.model.backbones.light", "LightStereo"),
    "sgbm_guided": ("smd_core.model.backbones.guided", "SGBMGuided"),
}


def build_backbone(name: str, *, max_disp: int, **options: Any) -> nn.Module:
    """Build backbone `name` (one of `config.BACKBONE_NAMES`, case-insensitive)."""
    if name.lower() not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; available: {sorted(_REGISTRY)}")
    module, cls = _REGISTRY[name.lower()]
    return getattr(importlib.import_module(module), cls)(max_disp=max_disp, **options)


def projection_shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """The residual blocks' 1x1 conv + BN shortcut where a block changes size or width, else None (the published
    layouts' `downsample`, so checkpoint keys match)."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


def check_pair(left: Tensor, right: Tensor) -> None:
    """ValueError unless left and right are both (B, 3, H, W)."""
    if left.dim() != 4 or left.shape[1] != 3 or left.shape != right.shape:
        raise ValueError(f"left/right must both be (B, 3, H, W); got {tuple(left.shape)} and {tuple(right.shape)}")


def check_input_size(name: str, h: int, w: int, *, stride: int, multiple: int) -> None:
    """Raise ValueError unless ceil(H / stride) and ceil(W / stride) are positive multiples of `multiple`.

    The convolutional backbones round every stride-2 level up (padding 1), so a map at 1/`stride` has
    ceil(side / stride) pixels; the encoder-decoder levels below it must halve and double back exactly,
    which needs that size to be a multiple of `multiple`. This is the set of sizes the original code runs on.
    """
    period = stride * multiple
    hints = []
    for axis, side in (("H", h), ("W", w)):
        cells = -(-side // stride)
        if cells >= multiple and cells % multiple == 0:
            continue
        tops = {t for t in (side // period * period, -(-side // period) * period) if t >= period} or {period}
        ranges = " or ".join(f"{t - stride + 1}..{t}" for t in sorted(tops))
        hints.append(f"{axis}={side} -> {ranges}")
    if hints:
        raise ValueError(f"{name} needs ceil(side / {stride}) to be a positive multiple of {multiple} for H and W "
                         f"(sides {period}k-{stride - 1} .. {period}k), got {h}x{w}; nearest accepted: "
                         f"{'; '.join(hints)} (or pad the images)")
