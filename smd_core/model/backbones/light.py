"""LightStereo: a small stereo backbone for the SMD head on CPUs and embedded GPUs.

Pipeline (all 2D; no 3D convolution anywhere):

1. A shared feature pyramid on both images (run as one batch): 1/2 (`widths[0]` ch) and 1/4 (`widths[1]` ch).
2. A group-wise correlation cost volume at 1/4 resolution: D4 = max_disp / 4 disparity hypotheses spaced
   4 px apart, `groups` correlations each -> (B, groups * D4, H/4, W/4), treated as 2D channels.
3. 2D aggregation: a small U-Net over 1/4, 1/8 and 1/16 (`agg_widths`) on the reduced volume plus the left
   features, predicting one logit per hypothesis; a learned per-group mix of the raw correlation is added
   to the logits so the matching signal reaches the output from the first training step.
4. Outputs for the SMD head:
   - 1/4 map: the softmax over the D4 hypotheses (a disparity distribution), linearly compressed to
     `cost_channels` channels (or whole when 0), its soft-argmin disparity divided by max_disp, and
     `image_features[0]` channels of left-image features;
   - 1/2 map (when `image_features[1]` > 0): left-image features from the stem, for sharp object edges.

Why a distribution rather than a disparity: the head samples these maps bilinearly at continuous points.
Next to a depth edge the sample is a blend of the two sides; a blend of two distributions is a bimodal
distribution (and a linear code of it a blend of the two codes) that the bimodal head can split into its
two modes (SMD-Nets' argument), whereas a blend of two disparities is a flying pixel. The soft-argmin
channel makes the unimodal case quick to learn. The head runs once per output pixel at a cost that grows
with its input width C, so C is kept small.

Input: left/right (B, 3, H, W) float BGR in 0..255, H and W multiples of 16. Output:
[(B, D + 1 + f4, H/4, W/4), (B, f2, H/2, W/2) if f2 > 0], D = `cost_channels` or D4 when that is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smd_core.model.backbones import check_pair

SIZE_MULTIPLE = 16  # inputs must be multiples of this: the aggregation U-Net goes down to 1/16 resolution
COST_STRIDE = 4  # resolution of the cost volume relative to the input, and hence the spacing of its hypotheses in px
# Per-channel BGR mean / std of natural images on the 0..255 scale (ImageNet statistics, BGR order):
# the network sees roughly zero-mean, unit-variance inputs without any preprocessing by the caller.
_BGR_MEAN = (103.53, 116.28, 123.675)
_BGR_STD = (57.375, 57.12, 58.395)


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: BatchNorm follows) + BatchNorm + ReLU, 'same' padding."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class LightResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut; (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + x)


class FeaturePyramid(nn.Module):
    """Shared 2D features: (B, 3, H, W) normalised image -> ((B, w0, H/2, W/2), (B, w1, H/4, W/4))."""

    def __init__(self, widths: tuple[int, int]) -> None:
        super().__init__()
        w0, w1 = widths
        self.stem = nn.Sequential(conv_bn_relu(3, w0, 3, 2), conv_bn_relu(w0, w0))
        self.stage4 = nn.Sequential(conv_bn_relu(w0, w1, 3, 2), LightResidualBlock(w1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        half = self.stem(x)
        return half, self.stage4(half)


def groupwise_correlation(left: Tensor, right: Tensor, num_disp: int, groups: int) -> Tensor:
    """Group-wise correlation volume (Guo et al., GwcNet), flattened for 2D processing.

    left, right: (B, C, h, w) with C divisible by `groups`. Entry (g, d) at (y, x) is the mean over group g's
    channels of left[:, :, y, x] * right[:, :, y, x - d]; where x - d falls outside the image it is 0.
    Returns (B, groups * num_disp, h, w), channel index g * num_disp + d.
    """
    b, c, h, w = left.shape
    if c % groups:
        raise ValueError(f"feature channels {c} are not divisible by groups={groups}")
    lg, rg = left.view(b, groups, c // groups, h, w), right.view(b, groups, c // groups, h, w)
    volume = left.new_zeros(b, groups, num_disp, h, w)
    for d in range(min(num_disp, w)):
        # A view of the volume, filled in place: no per-hypothesis tensors to concatenate afterwards.
        volume[:, :, d, :, d:] = (lg[..., d:] * rg[..., : w - d]).mean(dim=2)
    return volume.view(b, groups * num_disp, h, w)


class Aggregation(nn.Module):
    """2D U-Net over the flattened cost volume and left features -> logits (B, D4, h, w) at 1/4."""

    def __init__(self, volume_ch: int, feature_ch: int, widths: tuple[int, int, int], num_disp: int) -> None:
        super().__init__()
        a0, a1, a2 = widths
        self.reduce = nn.Sequential(nn.Conv2d(volume_ch, a0, 1, bias=False), nn.BatchNorm2d(a0))
        self.context = nn.Sequential(nn.Conv2d(feature_ch, a0, 1, bias=False), nn.BatchNorm2d(a0))
        self.enc4 = conv_bn_relu(a0, a0)
        self.down8 = nn.Sequential(conv_bn_relu(a0, a1, 3, 2), conv_bn_relu(a1, a1))
        self.down16 = nn.Sequential(conv_bn_relu(a1, a2, 3, 2), conv_bn_relu(a2, a2))
        self.lat8 = nn.Sequential(nn.Conv2d(a2, a1, 1, bias=False), nn.BatchNorm2d(a1))
        self.dec8 = conv_bn_relu(a1, a1)
        self.lat4 = nn.Sequential(nn.Conv2d(a1, a0, 1, bias=False), nn.BatchNorm2d(a0))
        self.dec4 = conv_bn_relu(a0, a0)
        self.logits = nn.Conv2d(a0, num_disp, 3, padding=1)

    def forward(self, volume: Tensor, left_features: Tensor) -> Tensor:
        x4 = self.enc4(F.relu(self.reduce(volume) + self.context(left_features)))
        x8 = self.down8(x4)
        x16 = self.down16(x8)
        # Upsample-then-1x1 (rather than transposed convolutions): cheaper on CPUs and free of
        # checkerboard artefacts; align_corners=False keeps pixel centres aligned across levels.
        u8 = self.dec8(F.relu(self.lat8(F.interpolate(x16, size=x8.shape[-2:], mode="bilinear",
                                                             align_corners=False)) + x8))
        u4 = self.dec4(F.relu(self.lat4(F.interpolate(u8, size=x4.shape[-2:], mode="bilinear",
                                                             align_corners=False)) + x4))
        return self.logits(u4)


def _pair(value: Sequence[int] | int, name: str, size: int) -> tuple[int, ...]:
    if isinstance(value, int):
        value = (value,) * size
    out = tuple(int(v) for v in value)
    if len(out) != size:
        raise ValueError(f"{name} must have {size} entries, got {value!r}")
    return out


class LightStereo(nn.Module):
    """Small 2D stereo backbone for the SMD head (see the module docstring).

    max_disp: a multiple of 4 (D4 = max_disp / 4). widths: shared features at 1/2 and 1/4; `groups` divides
    widths[1]. agg_widths: the aggregation U-Net at 1/4, 1/8, 1/16. image_features: left-image channels for the
    head at 1/4 and 1/2 (0 drops the 1/2 map). cost_channels: > 0 compresses the distribution linearly (a 1x1
    convolution, so a blend of two distributions stays a blend of their codes) to this many channels.
    """

    def __init__(self, *, max_disp: int = 192, widths: Sequence[int] = (16, 32), groups: int = 8,
                 agg_widths: Sequence[int] = (32, 48, 64), image_features: Sequence[int] = (8, 8),
                 cost_channels: int = 16) -> None:
        super().__init__()
        if int(max_disp) <= 0 or int(max_disp) % COST_STRIDE:
            raise ValueError(f"max_disp must be a positive multiple of {COST_STRIDE}, got {max_disp}")
        self.widths = _pair(widths, "widths", 2)
        self.agg_widths = _pair(agg_widths, "agg_widths", 3)
        self.image_features = _pair(image_features, "image_features", 2)
        if min(self.widths) <= 0 or min(self.agg_widths) <= 0:
            raise ValueError(f"widths and agg_widths must be positive, got {self.widths}, {self.agg_widths}")
        if self.image_features[0] < 0 or self.image_features[1] < 0:
            raise ValueError(f"image_features must be >= 0, got {self.image_features}")
        if int(cost_channels) < 0:
            raise ValueError(f"cost_channels must be >= 0, got {cost_channels}")
        if int(groups) <= 0 or self.widths[1] % int(groups):
            raise ValueError(f"groups must be a positive divisor of widths[1]={self.widths[1]}, got {groups}")
        self.max_disp = int(max_disp)
        self.groups = int(groups)
        self.num_disp = self.max_disp // COST_STRIDE
        f4, f2 = self.image_features

        # Not parameters and not in the state dict: fixed constants of the input convention.
        self.register_buffer("mean", torch.tensor(_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_BGR_STD).view(1, 3, 1, 1), persistent=False)
        self.features = FeaturePyramid(self.widths)  # type: ignore[arg-type]
        self.aggregation = Aggregation(self.groups * self.num_disp, self.widths[1], self.agg_widths,  # type: ignore[arg-type]
                                       self.num_disp)
        # Per-group weights turning the raw correlation into a logit per hypothesis (a 1x1x1 Conv3d).
        self.match = nn.Conv2d(self.widths[1], self.widths[1], 1)
        # Cosine correlations lie in [-1, 1]: start with logits spanning about +-4 so the initial
        # distribution already favours the best match.
        self.correlation_mix = nn.Parameter(torch.full((self.groups,), 4.0 / self.groups))
        self.quarter_out = nn.Conv2d(self.widths[1], f4, 1) if f4 else None
        self.half_out = nn.Conv2d(self.widths[0], f2, 3, padding=1) if f2 else None
        self.cost_channels = int(cost_channels)
        self.cost_out = nn.Conv2d(self.num_disp, self.cost_channels, 1) if self.cost_channels else None
        self.feature_channels = (self.cost_channels or self.num_disp) + 1 + f4 + f2
        # Disparity of each hypothesis, in input pixels, for the soft-argmin.
        self.register_buffer("hypotheses", torch.arange(self.num_disp, dtype=torch.float32) * COST_STRIDE,
                             persistent=False)

    def cost_logits(self, left: Tensor, right: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Logits over the D4 hypotheses (B, D4, H/4, W/4), left features at 1/2 and 1/4."""
        b = left.shape[0]
        x = (torch.cat([left, right], dim=0) - self.mean) / self.std
        half, quarter = self.features(x)
        lq = quarter[:b]
        # Matching features: a linear map of the (ReLU, non-negative) pyramid output, normalised per group so
        # the correlation is a cosine (non-negative features all correlate positively: a weak matching signal).
        m = self.match(quarter)
        n, c, h, w = m.shape
        m = F.normalize(m.view(n, self.groups, c // self.groups, h, w), dim=2) * (c // self.groups) ** 0.5
        m = m.view(n, c, h, w)
        volume = groupwise_correlation(m[:b], m[b:], self.num_disp, self.groups)
        # Direct path: a learned mix of the groups' correlations is added to the aggregated logits.
        direct = torch.einsum("g,bgdhw->bdhw", self.correlation_mix.to(volume.dtype),
                              volume.view(b, self.groups, self.num_disp, *volume.shape[-2:]))
        logits = self.aggregation(volume, lq) + direct
        return logits, half[:b], lq

    def forward(self, left: Tensor, right: Tensor) -> list[Tensor]:
        check_pair(left, right)
        h, w = left.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"image size must be a multiple of {SIZE_MULTIPLE}, got {h}x{w}")
        logits, half, quarter = self.cost_logits(left, right)
        prob = torch.softmax(logits, dim=1)
        disparity = torch.einsum("bdhw,d->bhw", prob, self.hypotheses.to(prob.dtype)).unsqueeze(1)
        maps = [prob if self.cost_out is None else self.cost_out(prob), disparity / self.max_disp]
        if self.quarter_out is not None:
            maps.append(self.quarter_out(quarter))
        out = [torch.cat(maps, dim=1)]
        if self.half_out is not None:
            out.append(self.half_out(half))
        return out

    def coarse_disparity(self, features: list[Tensor]) -> Tensor:
        """The backbone's own soft-argmin disparity (B, 1, H/4, W/4) in input pixels, from `forward`'s maps.

        Training supervises it directly (`mixture.loss` adds an L1 term): through the SMD head alone the cost
        distribution is slow to learn to match.
        """
        channel = self.cost_channels or self.num_disp
        return features[0][:, channel : channel + 1] * self.max_disp
