"""HSMNet (hierarchical deep stereo) backbone, in the simplified form SMD-Nets uses.

Yang et al., "Hierarchical Deep Stereo Matching on High-resolution Images", CVPR 2019. SMD-Nets (Tosi et
al., CVPR 2021) keeps HSMNet's U-Net feature extractor and one 3D decoder, the finest one (`decoder3`, at
1/8 resolution): a difference cost volume over max_disp/8 hypotheses is aggregated (halving the disparity
axis once) into a cost of max_disp/16 channels. The SMD head receives that cost followed by four of the
left image's encoder features (`forward`): an input width of 352 + max_disp/16.

Checkpoint layout: the published models were built with HSMNet's full decoder hierarchy (`decoder6`,
`decoder5`, `decoder4`, disparity-regression buffers `disp_reg8/16/32/64`) although its forward pass only
runs `decoder3`. Those modules are kept here, with the original names and shapes, so the published state
dicts (keys `stereo_network.<name>`) load with `strict=True`; they take no part in the forward pass and get
no gradients. Eval and training modes compute the same graph (decoder3 has no upsampling branch, where
HSMNet's eval mode differs).

Input: left/right (B, 3, H, W) float BGR in 0..255 without normalisation (as the published models were
trained), of any size the original runs on: ceil(H/8) and ceil(W/8) multiples of 8, i.e. sides 64k-7 .. 64k.
Map sizes below are ceil(side / stride).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smd_core.model.backbones import check_input_size, check_pair, projection_shortcut
from smd_core.model.backbones.psmnet import conv_bn_3d

# The encoder reaches 1/64 resolution and its decoder concatenates levels 1/8 .. 1/32 with the 2x-upsampled
# coarser one, so the 1/8 map (every stride-2 level rounds up) must halve exactly three more times.
MATCHING_STRIDE = 8
DECODER_MULTIPLE = 8
# Channels of the encoder features returned to the head: conv1 (1/2), conv3 (1/8), conv4 (1/16), conv5 (1/32).
ENCODER_CHANNELS = (32, 64, 128, 128)
# Channels of the 1/8 projection the cost volume is built from.
MATCHING_CHANNELS = 16


class ConvBnLeaky(nn.Module):
    """Conv2d + BatchNorm2d + LeakyReLU(0.1) (`cbr_unit.0/1/2`); the BN is dropped when `with_bn` is False."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, *,
                 with_bn: bool = True) -> None:
        super().__init__()
        # Without BN the conv needs its own bias; with BN the BN's shift replaces it.
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=not with_bn)]
        if with_bn:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.LeakyReLU(0.1, inplace=True))
        self.cbr_unit = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.cbr_unit(x)


class ConvBn(nn.Module):
    """Conv2d (no bias) + BatchNorm2d, no activation (`cb_unit.0/1`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.cb_unit = nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),
                                     nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        return self.cb_unit(x)


class HSMResidualBlock(nn.Module):
    """conv-bn-leaky, conv-bn, + (projected) shortcut; no activation after the sum, as trained."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.convbnrelu1 = ConvBnLeaky(in_ch, out_ch, 3, stride, 1)
        self.convbn2 = ConvBn(out_ch, out_ch, 3, 1, 1)
        self.downsample = projection_shortcut(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.convbn2(self.convbnrelu1(x)) + shortcut


def pyramid_pool_sizes(size: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Pooling kernels (= strides) of HSMNet's four pyramid branches for a map of spatial `size`.

    The pyramid divides the map into 1..min(size)//2 bins per side (4 levels, linearly spaced and
    truncated to integers) and pools each bin; the kernel is `int(side / bins)` per side. Where the smallest
    side is below 2 the reference would divide by zero; there every level pools the whole map instead.
    Ordered from the most bins (smallest kernel) to a single bin: the order of the 2D pyramid's branches.
    """
    levels = np.linspace(1, min(size) // 2, 4, dtype=int)
    levels = np.maximum(levels, 1)
    return [tuple(int(side / int(n)) for side in size) for n in levels][::-1]


class PyramidPooling(nn.Module):
    """ICNet-style pyramid pooling, fused by summation: relu((x + 0.25 * sum_i up(conv_i(pool_i(x)))) / 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.path_module_list = nn.ModuleList([ConvBnLeaky(channels, channels, 1, 1, 0) for _ in range(4)])

    def forward(self, x: Tensor) -> Tensor:
        size = tuple(x.shape[-2:])
        fused = x
        for branch, kernel in zip(self.path_module_list, pyramid_pool_sizes(size), strict=True):
            pooled = branch(F.avg_pool2d(x, kernel, stride=kernel))
            # The reference's F.interpolate(mode="bilinear") default is align_corners=False.
            fused = fused + 0.25 * F.interpolate(pooled, size=size, mode="bilinear", align_corners=False)
        return F.relu(fused / 2.0)


def _up_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """2x nearest upsampling then conv-bn-leaky (`0` = upsample, `1.cbr_unit.*`)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), ConvBnLeaky(in_ch, out_ch, 3, 1, 1))


class UNetFeatures(nn.Module):
    """HSMNet's U-Net feature extractor.

    (B, 3, H, W) -> encoder conv1 (B, 32, H/2, W/2) down to conv6 (B, 128, H/64, W/64) with pyramid pooling,
    then a decoder back to 1/8, plus 1x1 projections of levels 6..3 for the cost volumes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.convbnrelu1_1 = ConvBnLeaky(3, 16, 3, 2, 1)
        self.convbnrelu1_2 = ConvBnLeaky(16, 16, 3, 1, 1)
        self.convbnrelu1_3 = ConvBnLeaky(16, 32, 3, 1, 1)
        self.res_block3 = nn.Sequential(HSMResidualBlock(32, 64, 2))
        self.res_block5 = nn.Sequential(HSMResidualBlock(64, 128, 2))
        self.res_block6 = nn.Sequential(HSMResidualBlock(128, 128, 2))
        self.res_block7 = nn.Sequential(HSMResidualBlock(128, 128, 2))
        self.pyramid_pooling = PyramidPooling(128)
        self.upconv6 = _up_conv(128, 64)
        self.iconv5 = ConvBnLeaky(192, 128, 3, 1, 1)
        self.upconv5 = _up_conv(128, 64)
        self.iconv4 = ConvBnLeaky(192, 128, 3, 1, 1)
        self.upconv4 = _up_conv(128, 64)
        self.iconv3 = ConvBnLeaky(128, 64, 3, 1, 1)
        # proj6..proj4 feed HSMNet's coarser cost volumes, which SMD-Nets does not build; kept for the
        # checkpoint layout and not computed.
        self.proj6 = ConvBnLeaky(128, 32, 1, 1, 0)
        self.proj5 = ConvBnLeaky(128, 16, 1, 1, 0)
        self.proj4 = ConvBnLeaky(128, 16, 1, 1, 0)
        self.proj3 = ConvBnLeaky(64, MATCHING_CHANNELS, 1, 1, 0)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, 3, H, W) -> (proj3 (B, 16, H/8, W/8), [conv1, conv3, conv4, conv5]).

        conv3..conv5 are the decoder's refined maps (after iconv3..iconv5), as HSMNet returns them:
        (B, 32, H/2, W/2), (B, 64, H/8, W/8), (B, 128, H/16, W/16), (B, 128, H/32, W/32).
        """
        conv1 = self.convbnrelu1_3(self.convbnrelu1_2(self.convbnrelu1_1(x)))
        pool1 = F.max_pool2d(conv1, 3, 2, 1)  # 1/4
        conv3 = self.res_block3(pool1)  # 1/8
        conv4 = self.res_block5(conv3)  # 1/16
        conv5 = self.res_block6(conv4)  # 1/32
        conv6 = self.pyramid_pooling(self.res_block7(conv5))  # 1/64

        conv5 = self.iconv5(torch.cat([conv5, self.upconv6(conv6)], dim=1))
        conv4 = self.iconv4(torch.cat([conv4, self.upconv5(conv5)], dim=1))
        conv3 = self.iconv3(torch.cat([conv3, self.upconv4(conv4)], dim=1))
        return self.proj3(conv3), [conv1, conv3, conv4, conv5]


class DisparityProjection(nn.Module):
    """Shortcut of a residual 3D block: a 1x1 conv over (channels x disparities) that may stride the disparity axis.

    The volume (B, C, D, h, w) is viewed as a 2D map (B, C, D, h*w) so a Conv2d with stride (s, 1) subsamples
    the disparities and leaves the pixels untouched; BatchNorm2d then normalises per channel.
    """

    def __init__(self, in_ch: int, out_ch: int, disparity_stride: int) -> None:
        super().__init__()
        self.disparity_stride = disparity_stride
        self.conv1 = nn.Conv2d(in_ch, out_ch, 1, stride=(disparity_stride, 1), bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_ch, D, h, w) -> (B, out_ch, ceil(D / s), h, w)."""
        b, _, d, h, w = x.shape
        y = self.bn(self.conv1(x.reshape(b, x.shape[1], d, h * w)))
        return y.reshape(b, y.shape[1], y.shape[2], h, w)


class Residual3dBlock(nn.Module):
    """Two 3x3x3 conv-bn layers with a residual connection and ReLUs (projected shortcut when shapes change)."""

    def __init__(self, in_ch: int, out_ch: int, stride: tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.downsample: DisparityProjection | None = None
        if in_ch != out_ch or stride != (1, 1, 1):
            if stride[1:] != (1, 1):
                raise ValueError(f"only the disparity axis may be strided, got stride {stride}")
            self.downsample = DisparityProjection(in_ch, out_ch, stride[0])
        self.conv1 = conv_bn_3d(in_ch, out_ch, 3, stride, 1)
        self.conv2 = conv_bn_3d(out_ch, out_ch, 3, (1, 1, 1), 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_ch, D, h, w) -> (B, out_ch, D / stride_d, h, w)."""
        out = F.relu(self.conv1(x))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + self.conv2(out))


class DecoderBlock(nn.Module):
    """HSMNet's 3D cost aggregation at one pyramid level.

    `convs` (residual 3D blocks, the first may stride the disparity axis), optional volume pyramid pooling
    (`pool_convs`), and `classify` to a one-channel cost. `up` (2x trilinear upsampling + conv, which feeds
    the next finer level in the full HSMNet) exists only for the checkpoint layout; SMD-Nets never uses it.
    """

    def __init__(self, num_convs: int, in_ch: int, channels: int, *, disparity_stride: int = 1, up: bool = False,
                 pool: bool = False) -> None:
        super().__init__()
        first = Residual3dBlock(in_ch, channels, (disparity_stride, 1, 1))
        self.convs = nn.Sequential(first, *[Residual3dBlock(channels, channels) for _ in range(num_convs - 1)])
        self.classify = nn.Sequential(conv_bn_3d(channels, channels, 3, (1, 1, 1), 1), nn.ReLU(inplace=True),
                                      nn.Sequential(nn.Conv3d(channels, 1, 3, padding=1, bias=True)))
        self.up: nn.Sequential | None = None
        if up:
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                                    conv_bn_3d(channels, channels // 2, 3, (1, 1, 1), 1), nn.ReLU(inplace=True))
        self.pool_convs: nn.ModuleList | None = None
        if pool:
            self.pool_convs = nn.ModuleList([conv_bn_3d(channels, channels, 1, (1, 1, 1), 0) for _ in range(4)])

    def forward(self, volume: Tensor) -> Tensor:
        """(B, in_ch, D, h, w) -> cost (B, D / disparity_stride, h, w)."""
        x = self.convs(volume)
        if self.pool_convs is not None:
            size = tuple(x.shape[-3:])
            # Same bin layout as the 2D pyramid but over (D, h, w) and in increasing-bins order.
            kernels = pyramid_pool_sizes(size)[::-1]
            fused = x
            for conv, kernel in zip(self.pool_convs, kernels, strict=True):
                pooled = conv(F.avg_pool3d(x, kernel, stride=kernel))
                fused = fused + 0.25 * F.interpolate(pooled, size=size, mode="trilinear", align_corners=False)
            x = F.relu(fused / 2.0)
        return self.classify(x).squeeze(1)


class DisparityRegression(nn.Module):
    """Soft-argmin over `max_disp / divisor` bins spaced `divisor` pixels apart (buffer `disp` (1, n, 1, 1)). Part of
    the published checkpoint layout; SMD-Nets regresses disparity with its head instead."""

    def __init__(self, max_disp: int, divisor: int) -> None:
        super().__init__()
        self.divisor = divisor
        bins = max_disp // divisor
        self.register_buffer("disp", torch.arange(bins, dtype=torch.float32).view(1, bins, 1, 1))

    def forward(self, probability: Tensor) -> Tensor:
        """Probabilities over the bins (B, n, h, w) -> expected disparity in pixels (B, h, w)."""
        return (probability * self.disp).sum(dim=1) * self.divisor


def difference_volume(left: Tensor, right: Tensor, num_disp: int) -> Tensor:
    """Absolute-difference cost volume.

    left, right: (B, C, h, w) -> (B, C, num_disp, h, w) with [..., d, y, x] = |left[..., y, x] - right[..., y, x-d]|
    for x >= d and 0 where x - d falls outside the image.
    """
    b, c, h, w = left.shape
    volume = left.new_zeros(b, c, num_disp, h, w)
    # A loop over the (few dozen) disparities writing slices keeps the peak memory at one volume, where a
    # gather through unfold would materialise shifted copies; slice assignment is differentiable.
    for d in range(min(num_disp, w)):
        volume[:, :, d, :, d:] = (left[..., d:] - right[..., : w - d]).abs()
    return volume


class HSMNet(nn.Module):
    """HSMNet backbone for SMD-Nets; max_disp (input pixels) a positive multiple of 16 (the cost volume's
    max_disp / 8 hypotheses are halved once by the decoder)."""

    def __init__(self, *, max_disp: int = 256) -> None:
        super().__init__()
        if isinstance(max_disp, bool) or int(max_disp) != max_disp or max_disp <= 0 or max_disp % 16:
            raise ValueError(f"max_disp must be a positive multiple of 16, got {max_disp!r}")
        self.max_disp = int(max_disp)
        self.num_disp = self.max_disp // 8  # hypotheses of the 1/8 cost volume
        self.feature_channels = sum(ENCODER_CHANNELS) + self.num_disp // 2

        self.feature_extraction = UNetFeatures()
        self.decoder6 = DecoderBlock(6, 32, 32, up=True, pool=True)
        self.decoder5 = DecoderBlock(6, 32, 32, up=True, pool=True)
        self.decoder4 = DecoderBlock(6, 32, 32, up=True)
        self.decoder3 = DecoderBlock(5, MATCHING_CHANNELS, 32, disparity_stride=2)
        self.disp_reg8 = DisparityRegression(self.max_disp, 16)
        self.disp_reg16 = DisparityRegression(self.max_disp, 16)
        self.disp_reg32 = DisparityRegression(self.max_disp, 32)
        self.disp_reg64 = DisparityRegression(self.max_disp, 64)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """HSMNet's initialisation: He-normal (fan-out) 2D convs of the U-Net and 3D convs of the decoders; the
        decoders' 1x1 Conv2d shortcuts and all BatchNorms keep PyTorch's defaults, as in the original."""
        convs = [m for m in self.feature_extraction.modules() if isinstance(m, nn.Conv2d)]
        convs += [m for m in self.modules() if isinstance(m, nn.Conv3d)]
        for m in convs:
            fan_out = math.prod(m.kernel_size) * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """[cost (B, max_disp/16, H/8, W/8): decoder3's raw classifier output (no softmax, no upsampling), left
        conv1 (B, 32, H/2, W/2), conv3 (B, 64, H/8, W/8), conv4 (B, 128, H/16, W/16), conv5 (B, 128, H/32, W/32)]."""
        check_pair(left, right)
        check_input_size("HSMNet", *left.shape[-2:], stride=MATCHING_STRIDE, multiple=DECODER_MULTIPLE)

        b = left.shape[0]
        # Both views in one batch, as the reference: exact in eval mode (BatchNorm is a per-channel affine)
        # and, in training, BatchNorm statistics are shared by the two views exactly as the models were trained.
        matching, encoder = self.feature_extraction(torch.cat([left, right], dim=0))
        volume = difference_volume(matching[:b], matching[b:], self.num_disp)  # (B, 16, max_disp/8, H/8, W/8)
        cost = self.decoder3(volume)
        return [cost, *(f[:b] for f in encoder)]
