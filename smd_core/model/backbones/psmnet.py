"""PSMNet (stacked hourglass) stereo backbone, as used by SMD-Nets.

Chang & Chen, "Pyramid Stereo Matching Network", CVPR 2018; SMD-Nets (Tosi et al., CVPR 2021) keeps its
feature extractor and 3D stacked-hourglass cost regularisation but, instead of upsampling the cost and
soft-argmin regressing a disparity, hands the *final cost volume* (one channel per disparity hypothesis at
1/4 resolution) and the left image's 32-channel feature map to the SMD head.

Module and parameter names mirror the published SMD-Nets checkpoints (keys `stereo_network.<name>`), so
`load_state_dict(strict=True)` works on them; that is why some blocks are plain `nn.Sequential`s indexed
like the original.

Input: left/right (B, 3, H, W) float BGR in 0..255 with no normalisation (the published models were trained
that way), of any size the original runs on: ceil(H/4) and ceil(W/4) multiples of 4, i.e. sides 16k-3 .. 16k
(the 1/4 cost volume is halved twice and doubled back by each hourglass).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from smd_core.model.backbones import check_input_size, check_pair, projection_shortcut

FEATURE_WIDTH = 32  # channels of the 2D feature map fed to the cost volume (and to the SMD head)
# The 1/4-resolution maps (feature stride 4) must be multiples of 4: two stride-2 levels in each hourglass.
FEATURE_STRIDE = 4
HOURGLASS_MULTIPLE = 4


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> nn.Sequential:
    """2D convolution (no bias: the BatchNorm right after has one) + BatchNorm. Keys `0.weight`, `1.*`."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
    )


def conv_bn_3d(in_ch: int, out_ch: int, kernel: int, stride: int | tuple[int, int, int], padding: int) -> nn.Sequential:
    """3D convolution (no bias) + BatchNorm3d. Keys `0.weight`, `1.*`."""
    return nn.Sequential(nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm3d(out_ch))


class PSMResidualBlock(nn.Module):
    """PSMNet's basic residual block: conv-bn-relu, conv-bn, + shortcut, no ReLU after the sum (as trained)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int) -> None:
        super().__init__()
        # PSMNet pads by the dilation so every dilated 3x3 conv keeps the spatial size.
        self.conv1 = nn.Sequential(conv_bn(in_ch, out_ch, 3, stride, dilation, dilation), nn.ReLU(inplace=True))
        self.conv2 = conv_bn(out_ch, out_ch, 3, 1, dilation, dilation)
        self.downsample = projection_shortcut(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.conv2(self.conv1(x)) + shortcut


class BlockAvgPool(nn.Module):
    """`nn.AvgPool2d(size, stride=size)` (the pyramid's pooling step, incomplete blocks dropped as in the
    reference), except that along a side shorter than `size` it pools the whole side instead of failing."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: Tensor) -> Tensor:
        kernel = (min(self.size, x.shape[-2]), min(self.size, x.shape[-1]))
        return F.avg_pool2d(x, kernel, stride=kernel)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class FeatureExtraction(nn.Module):
    """Shared 2D feature extractor with spatial pyramid pooling: (B, 3, H, W) -> (B, 32, H/4, W/4)."""

    # Pooling block sizes of branch1..branch4, in 1/4-resolution pixels.
    POOL_SIZES = (64, 32, 16, 8)

    def __init__(self) -> None:
        super().__init__()
        self.firstconv = nn.Sequential(conv_bn(3, 32, 3, 2, 1), nn.ReLU(inplace=True), conv_bn(32, 32, 3, 1, 1),
                                       nn.ReLU(inplace=True), conv_bn(32, 32, 3, 1, 1), nn.ReLU(inplace=True))
        self.layer1 = self._stage(32, 32, blocks=3, stride=1, dilation=1)
        self.layer2 = self._stage(32, 64, blocks=16, stride=2, dilation=1)
        self.layer3 = self._stage(64, 128, blocks=3, stride=1, dilation=1)
        self.layer4 = self._stage(128, 128, blocks=3, stride=1, dilation=2)
        for i, size in enumerate(self.POOL_SIZES, start=1):
            branch = nn.Sequential(BlockAvgPool(size), conv_bn(128, 32, 1, 1, 0), nn.ReLU(inplace=True))
            self.add_module(f"branch{i}", branch)
        # 320 = layer2 (64) + layer4 (128) + four pyramid branches (4 x 32).
        self.lastconv = nn.Sequential(conv_bn(320, 128, 3, 1, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(128, FEATURE_WIDTH, 1, bias=False))

    @staticmethod
    def _stage(in_ch: int, out_ch: int, *, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        layers = [PSMResidualBlock(in_ch, out_ch, stride, dilation)]
        layers += [PSMResidualBlock(out_ch, out_ch, 1, dilation) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer1(self.firstconv(x))
        raw = self.layer2(x)  # (B, 64, H/4, W/4)
        skip = self.layer4(self.layer3(raw))  # (B, 128, H/4, W/4)
        size = skip.shape[-2:]
        # Concatenation order (coarse pyramid levels last) is what lastconv's weights expect. The reference
        # called the removed upsample function (bilinear) without align_corners, which modern PyTorch runs as
        # align_corners=False; the parity fixtures confirm it.
        pyramid = [
            F.interpolate(getattr(self, f"branch{i}")(skip), size=size, mode="bilinear", align_corners=False)
            for i in (4, 3, 2, 1)
        ]
        return self.lastconv(torch.cat([raw, skip, *pyramid], dim=1))


class Hourglass(nn.Module):
    """3D encoder-decoder over the cost volume: 1/4 -> 1/8 -> 1/16 -> 1/8 -> 1/4 (spatial and disparity). Also returns
    its 1/8-resolution activations so the next hourglass can add them (PSMNet's stacking)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c2 = channels * 2
        self.conv1 = nn.Sequential(conv_bn_3d(channels, c2, 3, 2, 1), nn.ReLU(inplace=True))
        self.conv2 = conv_bn_3d(c2, c2, 3, 1, 1)
        self.conv3 = nn.Sequential(conv_bn_3d(c2, c2, 3, 2, 1), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(conv_bn_3d(c2, c2, 3, 1, 1), nn.ReLU(inplace=True))
        self.conv5 = nn.Sequential(nn.ConvTranspose3d(c2, c2, 3, stride=2, padding=1, output_padding=1, bias=False),
                                   nn.BatchNorm3d(c2))
        self.conv6 = nn.Sequential(
            nn.ConvTranspose3d(c2, channels, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm3d(channels),
        )

    def forward(self, x: Tensor, presqu: Tensor | None, postsqu: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, C, D, h, w) -> (out (B, C, D, h, w), pre (B, 2C, D/2, h/2, w/2), post (same as pre)).

        presqu/postsqu: 1/8-resolution activations of an earlier hourglass, added before the ReLUs.
        """
        pre = self.conv2(self.conv1(x))
        pre = F.relu(pre if postsqu is None else pre + postsqu)
        out = self.conv4(self.conv3(pre))  # 1/16
        post = F.relu(self.conv5(out) + (pre if presqu is None else presqu))
        return self.conv6(post), pre, post


def build_cost_volume(left: Tensor, right: Tensor, num_disp: int) -> Tensor:
    """Concatenation cost volume, without a Python loop over disparities.

    left, right: (B, C, h, w) -> (B, 2C, num_disp, h, w) where, for disparity d and column x >= d,
    [:C] = left[..., x] and [C:] = right[..., x - d]; columns x < d (no match inside the image) are zero.
    Bitwise equal to filling the volume disparity by disparity.
    """
    b, c, h, w = left.shape
    # valid[d, x] = x >= d.
    cols = torch.arange(w, device=left.device)
    disps = torch.arange(num_disp, device=left.device)
    valid = (cols.view(1, w) >= disps.view(num_disp, 1)).view(1, 1, num_disp, 1, w)
    ref = torch.where(valid, left.unsqueeze(2), left.new_zeros(()))
    # Left-pad by num_disp - 1 zero columns: window o (of width w) then starts at column x - (num_disp-1-o)
    # of `right`, i.e. holds disparity d = num_disp - 1 - o; flip the window axis to order by d.
    padded = F.pad(right, (num_disp - 1, 0))
    shifted = padded.unfold(3, w, 1).flip(3)  # (B, C, h, num_disp, w)
    shifted = shifted.permute(0, 1, 3, 2, 4)  # (B, C, num_disp, h, w)
    return torch.cat([ref, shifted], dim=1).contiguous()


class PSMNet(nn.Module):
    """PSMNet stacked-hourglass backbone for SMD-Nets; max_disp (input pixels) a positive multiple of 16 (the
    volume's max_disp / 4 hypotheses are halved twice in each hourglass)."""

    def __init__(self, *, max_disp: int = 256) -> None:
        super().__init__()
        if int(max_disp) != max_disp or max_disp <= 0 or max_disp % 16:
            raise ValueError(f"max_disp must be a positive multiple of 16, got {max_disp}")
        self.max_disp = int(max_disp)
        self.num_disp = self.max_disp // 4
        self.feature_channels = FEATURE_WIDTH + self.num_disp

        self.feature_extraction = FeatureExtraction()
        self.dres0 = nn.Sequential(conv_bn_3d(2 * FEATURE_WIDTH, 32, 3, 1, 1), nn.ReLU(inplace=True),
                                   conv_bn_3d(32, 32, 3, 1, 1), nn.ReLU(inplace=True))
        self.dres1 = nn.Sequential(conv_bn_3d(32, 32, 3, 1, 1), nn.ReLU(inplace=True), conv_bn_3d(32, 32, 3, 1, 1))
        self.dres2 = Hourglass(32)
        self.dres3 = Hourglass(32)
        self.dres4 = Hourglass(32)
        for i in (1, 2, 3):
            classifier = nn.Sequential(conv_bn_3d(32, 32, 3, 1, 1), nn.ReLU(inplace=True),
                                       nn.Conv3d(32, 1, 3, padding=1, bias=False))
            self.add_module(f"classif{i}", classifier)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PSMNet's initialisation: He-normal convolutions (fan-out; transposed ones keep PyTorch's default, as in
        the original), unit/zero BatchNorm."""
        for m in self.modules():
            if type(m) in (nn.Conv2d, nn.Conv3d):
                fan_out = math.prod(m.kernel_size) * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """left, right: (B, 3, H, W) float BGR 0..255, ceil(H/4) and ceil(W/4) multiples of 4.

        Returns [cost (B, max_disp/4, h, w), left features (B, 32, h, w)], h, w = ceil(H/4), ceil(W/4): the
        final cost volume (three hourglasses, classifier outputs summed, no upsampling, no softmax) and the
        left image's features, in the order the SMD head concatenates them.
        """
        check_pair(left, right)
        check_input_size("PSMNet", *left.shape[-2:], stride=FEATURE_STRIDE, multiple=HOURGLASS_MULTIPLE)

        # One pass over both images (shared weights); in eval mode BatchNorm is per-channel affine, so
        # batching them is exact. In training, batch statistics must stay per image as in the reference.
        if self.training:
            ref_feat, tgt_feat = self.feature_extraction(left), self.feature_extraction(right)
        else:
            ref_feat, tgt_feat = self.feature_extraction(torch.cat([left, right], dim=0)).chunk(2, dim=0)

        cost = build_cost_volume(ref_feat, tgt_feat, self.num_disp)  # (B, 64, D, h, w)
        cost0 = self.dres0(cost)
        cost0 = self.dres1(cost0) + cost0

        out1, pre1, post1 = self.dres2(cost0, None, None)
        out1 = out1 + cost0
        out2, _, post2 = self.dres3(out1, pre1, post1)
        out2 = out2 + cost0
        # The third hourglass takes the *first* one's `pre` (not the second's), as in PSMNet's release.
        out3, _, _ = self.dres4(out2, pre1, post2)
        out3 = out3 + cost0

        cost1 = self.classif1(out1)
        cost2 = self.classif2(out2) + cost1
        cost3 = self.classif3(out3) + cost2  # (B, 1, D, h, w)
        return [cost3.squeeze(1), ref_feat]
