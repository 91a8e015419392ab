"""SGBMGuided: the SMD head on top of OpenCV SGBM (after Neural Disparity Refinement, Aleotti et al. 2021).

SGBM (`smd_core.classical`, parameters in `backbone_options["sgbm"]`, so a checkpoint reproduces its own
inputs) supplies sharp matches with no domain gap; a small 2D U-Net over the left image and SGBM's
channels learns to keep them, repair outliers, fill holes from image edges, and hand the head features
with which it picks the foreground or background mode at every boundary.

Pipeline, for left/right (B, 3, H, W) float BGR 0..255 (H, W multiples of 2 ** len(widths)):
1. SGBM on the gray pair, holes filled row-wise from the background side, and the other guide channels
   (`classical.guide_channels`: foreground / background candidates, validity, photometric errors, costs).
2. A U-Net over them and the normalised left image -> head maps at 1/2 and 1/4, and a full-resolution map
   for exact edges: [(B, f1, H, W), (B, f2, H/2, W/2), (B, f4, H/4, W/4)].
3. Four anchors (B, 4, H, W) px as the last map (not a head input): the filled SGBM disparity and the
   `alternative` (the wide window's candidate farther from it), whose offsets the head's modes are
   (`residual`: SMDNet samples them nearest-neighbour and `mixture.activate` adds the modes to them; mode 0
   refines SGBM, mode 1 the alternative), then the small window's foreground and background candidates, the
   local surfaces from which `mixture.activate` measures `Prediction.surface_gap` (the "edge" uncertainty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smd_core.classical import GUIDE_DISPARITIES, SGBMConfig, guide_channel_count, guide_channels
from smd_core.config import from_dict
from smd_core.model.backbones import check_pair
from smd_core.model.backbones.light import _BGR_MEAN, _BGR_STD, _pair, conv_bn_relu


def alternative(filled: Tensor, fg: Tensor, bg: Tensor) -> Tensor:
    """`classical.alternative_candidate` on tensors (B, 1, H, W) px."""
    return torch.where((bg - filled).abs() > (fg - filled).abs(), bg, fg)


def sgbm_guide(left: Tensor, right: Tensor, config: SGBMConfig, max_disp: int, cost_offsets: int = 0) -> Tensor:
    """`classical.guide_channels` of a batch (B, 3, H, W) BGR 0..255, computed on the CPU (OpenCV), on the
    tensors' device."""
    def to_u8(t: Tensor) -> np.ndarray:
        return t.detach().clamp(0, 255).to("cpu", torch.uint8).permute(1, 2, 0).contiguous().numpy()

    frames = [guide_channels(to_u8(lb), to_u8(rb), config, max_disp, cost_offsets)
              for lb, rb in zip(left, right, strict=True)]
    out = frames[0][None] if len(frames) == 1 else np.stack(frames)  # one frame (inference): no copy
    return torch.from_numpy(out).to(device=left.device, dtype=left.dtype)


def guide_scale(max_disp: int, cost_offsets: int) -> np.ndarray:
    """Per-channel factors that bring `classical.guide_channels` to about unit range: disparities / max_disp,
    validity and photometric errors as they are, costs / 2."""
    n_costs = 2 * (2 * cost_offsets + 1) if cost_offsets else 0
    parts = [[1.0 / max_disp] * GUIDE_DISPARITIES, [1.0] * (GUIDE_DISPARITIES + 1), [0.5] * n_costs]
    return np.array([v for part in parts for v in part], np.float32)


class _Up(nn.Module):
    """Upsample the coarser map, add a 1x1 lateral of the skip, conv: (B, cin, h, w) -> (B, cout, 2h, 2w)."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.top = nn.Conv2d(cin, cout, 1, bias=False)
        self.lat = nn.Conv2d(cskip, cout, 1, bias=False)
        self.conv = conv_bn_relu(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        up = F.interpolate(self.top(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(F.relu(up + self.lat(skip)))


class SGBMGuided(nn.Module):
    """SGBM + a small U-Net for the SMD head (see the module docstring).

    max_disp: SGBM's range unless `sgbm` (SGBMConfig fields) sets it. widths: U-Net channels at 1/2, 1/4, ...
    (inputs multiples of 2 ** len(widths)). features: head channels at 1/2, 1/4 and full resolution.
    full_res_width: > 0 puts a conv-BN-ReLU layer of this width before the full-resolution map (a 5x5 nonlinear
    view, to place each depth edge to the pixel). cost_offsets: k > 0 adds the matching costs at -k..k px
    around both anchors (`classical.matching_costs`: evidence to move a smeared anchor); 0 as earlier models.
    """

    residual = True

    def __init__(self, *, max_disp: int = 128, sgbm: Mapping[str, Any] | None = None,
                 widths: Sequence[int] = (16, 32, 48, 64, 96), features: Sequence[int] = (16, 8, 8),
                 full_res_width: int = 0, cost_offsets: int = 0) -> None:
        super().__init__()
        self.max_disp = int(max_disp)
        self.sgbm = from_dict(SGBMConfig, dict(sgbm or {}))
        self.widths = tuple(int(v) for v in widths)
        self.features = _pair(features, "features", 3)
        self.full_res_width = int(full_res_width)
        self.cost_offsets = int(cost_offsets)
        if len(self.widths) < 2 or min(self.widths) <= 0 or min(self.features) <= 0 or self.full_res_width < 0:
            raise ValueError(f"widths (two or more levels from 1/2 down) and features must be positive and "
                             f"full_res_width >= 0, got {self.widths}, {self.features}, {self.full_res_width}")
        if not 0 <= self.cost_offsets <= 8:
            raise ValueError(f"cost_offsets must be in 0..8 px, got {self.cost_offsets}")
        self.guide_channels = 3 + guide_channel_count(self.cost_offsets)
        f2, f4, f1 = self.features
        g = self.guide_channels
        self.size_multiple = 2 ** len(self.widths)
        self.register_buffer("mean", torch.tensor(_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_BGR_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("guide_scale", torch.from_numpy(guide_scale(self.max_disp, self.cost_offsets)).view(
            1, -1, 1, 1), persistent=False)
        # Level i runs at 1/2^(i+1) with widths[i] channels; decoders climb back to 1/2.
        ins = (g, *self.widths[:-1])
        self.encoders = nn.ModuleList(nn.Sequential(conv_bn_relu(cin, cout, 3, 2), conv_bn_relu(cout, cout))
                                      for cin, cout in zip(ins, self.widths, strict=True))
        self.decoders = nn.ModuleList(_Up(self.widths[i + 1], self.widths[i], self.widths[i])
                                      for i in reversed(range(len(self.widths) - 1)))
        self.out4 = nn.Conv2d(self.widths[1], f4, 1)
        self.out2 = nn.Conv2d(self.widths[0], f2, 1)
        if self.full_res_width:
            w1 = self.full_res_width
            self.out1: nn.Module = nn.Sequential(conv_bn_relu(g, w1), nn.Conv2d(w1, f1, 3, padding=1))
        else:
            self.out1 = nn.Conv2d(g, f1, 3, padding=1)
        self.feature_channels = f1 + f2 + f4

    def guide(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor]:
        """The U-Net's input (B, self.guide_channels, H, W): the normalised left image and the scaled
        `classical.guide_channels`; and the anchors (B, 4, H, W) px (module docstring)."""
        return self.guide_from(left, sgbm_guide(left, right, self.sgbm, self.max_disp, self.cost_offsets))

    def guide_from(self, left: Tensor, sg: Tensor) -> tuple[Tensor, Tensor]:
        """`guide` from the SGBM channels `sg` (B, guide_channels - 3, H, W) already computed (`sgbm_guide`)."""
        d = GUIDE_DISPARITIES
        filled, fg, bg = sg[:, :1], sg[:, d - 2 : d - 1], sg[:, d - 1 : d]
        return self._unet_input(left, sg), torch.cat([filled, alternative(filled, fg, bg), sg[:, 1:3]], dim=1)

    def _unet_input(self, left: Tensor, sg: Tensor) -> Tensor:
        """The normalised left image and the scaled SGBM channels (B, guide_channels, H, W)."""
        scale = self.guide_scale.to(sg.dtype)
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing():
            # The exporters do not follow writes into views of an empty tensor.
            return torch.cat([(left - self.mean) / self.std, sg * scale], dim=1)
        # Written in place in the autocast dtype (which every convolution would otherwise cast it to), then made
        # channels-last: oneDNN's convolutions run on that layout without reordering, and the head's maps come out
        # of it channels-last (`head.flatten_maps` then copies nothing).
        b, _, h, w = sg.shape
        kind = sg.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else sg.dtype
        x = torch.empty((b, self.guide_channels, h, w), dtype=dtype, device=sg.device)
        torch.div(left - self.mean, self.std, out=x[:, :3])
        torch.mul(sg, scale, out=x[:, 3:])
        return x.contiguous(memory_format=torch.channels_last)

    def forward(self, left: Tensor, right: Tensor) -> list[Tensor]:
        check_pair(left, right)
        h, w = left.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"image size must be a multiple of {self.size_multiple}, got {h}x{w}")
        return self.forward_guided(left, sgbm_guide(left, right, self.sgbm, self.max_disp, self.cost_offsets))

    def forward_guided(self, left: Tensor, sg: Tensor) -> list[Tensor]:
        """`forward` after SGBM (what `smd export` puts in ONNX), from the SGBM channels `sg` (`sgbm_guide`)."""
        x, anchors = self.guide_from(left, sg)
        skips, y = [], x
        for enc in self.encoders:
            y = enc(y)
            skips.append(y)
        levels = [y]  # coarsest first; the decoders climb to 1/2
        for dec, skip in zip(self.decoders, reversed(skips[:-1]), strict=True):
            levels.append(dec(levels[-1], skip))
        d2, d4 = levels[-1], levels[-2]
        return [self.out1(x), self.out2(d2), self.out4(d4), anchors]
