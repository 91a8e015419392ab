"""The SMD-Nets reference forward pass, step by step, for checking `encode`/`query` at sizes the fixtures lack.

The parity fixtures (../shared/parity) only hold 256 x 512 inputs, where every map divides evenly. At other
sizes what matters is the size-dependent glue between the layers: strided convolutions rounding up, the
pyramid pooling dropping incomplete blocks, upsampling back to the skip map's size, transposed convolutions
doubling back, the disparity loops of the cost volumes, and the head normalising query points by the *input*
size. These functions restate that glue as the reference code performs it (written from reading it, see
../shared/parity/README.md): each image through the feature extractor on its own, `nn.AvgPool2d` with
kernel = stride, one slice assignment per disparity, `F.grid_sample` per map. They reuse the model's layers
(convolutions and BatchNorms hold no size logic), not its forward methods.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def psmnet_features(fe: nn.Module, image: Tensor) -> Tensor:
    """PSMNet feature extraction of one image (B, 3, H, W) -> (B, 32, ceil(H/4), ceil(W/4))."""
    x = fe.layer1(fe.firstconv(image))
    raw = fe.layer2(x)
    skip = fe.layer4(fe.layer3(raw))
    size = tuple(skip.shape[-2:])
    pyramid = []
    for i, block in ((4, 8), (3, 16), (2, 32), (1, 64)):
        branch = getattr(fe, f"branch{i}")
        pooled = nn.AvgPool2d(block, stride=block)(skip)  # incomplete blocks at the bottom/right are dropped
        pyramid.append(F.interpolate(branch[1:](pooled), size=size, mode="bilinear", align_corners=False))
    return fe.lastconv(torch.cat([raw, skip, *pyramid], dim=1))


def concat_volume(left: Tensor, right: Tensor, num_disp: int) -> Tensor:
    """(B, C, h, w) pair -> (B, 2C, num_disp, h, w), filled one disparity at a time."""
    b, c, h, w = left.shape
    volume = left.new_zeros(b, 2 * c, num_disp, h, w)
    for d in range(num_disp):
        volume[:, :c, d, :, d:] = left[..., d:]
        volume[:, c:, d, :, d:] = right[..., : w - d]
    return volume


def hourglass(hg: nn.Module, x: Tensor, presqu: Tensor | None, postsqu: Tensor | None) -> tuple[Tensor, ...]:
    out = hg.conv2(hg.conv1(x))
    pre = F.relu(out + postsqu) if postsqu is not None else F.relu(out)
    out = hg.conv4(hg.conv3(pre))
    post = F.relu(hg.conv5(out) + (presqu if presqu is not None else pre))
    return hg.conv6(post), pre, post


def psmnet_forward(net: nn.Module, left: Tensor, right: Tensor) -> list[Tensor]:
    """[cost (B, max_disp/4, h, w), left features (B, 32, h, w)] as the reference computes them."""
    ref, tgt = psmnet_features(net.feature_extraction, left), psmnet_features(net.feature_extraction, right)
    cost0 = net.dres0(concat_volume(ref, tgt, net.max_disp // 4))
    cost0 = net.dres1(cost0) + cost0
    out1, pre1, post1 = hourglass(net.dres2, cost0, None, None)
    out1 = out1 + cost0
    out2, _, post2 = hourglass(net.dres3, out1, pre1, post1)
    out2 = out2 + cost0
    out3, _, _ = hourglass(net.dres4, out2, pre1, post2)
    out3 = out3 + cost0
    cost1 = net.classif1(out1)
    cost2 = net.classif2(out2) + cost1
    cost3 = net.classif3(out3) + cost2
    return [cost3.squeeze(1), ref]


def pyramid_sum(x: Tensor, paths: nn.ModuleList) -> Tensor:
    """HSMNet's 2D pyramid pooling (sum fusion) over (B, C, h, w)."""
    h, w = x.shape[-2:]
    kernels = [(int(h / n), int(w / n)) for n in np.linspace(1, min(h, w) // 2, 4, dtype=int)][::-1]
    fused = x
    for path, k in zip(paths, kernels, strict=True):
        fused = fused + 0.25 * F.interpolate(path(F.avg_pool2d(x, k, stride=k)), size=(h, w), mode="bilinear")
    return F.relu(fused / 2.0)


def hsmnet_unet(u: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """HSMNet's U-Net: (matching features at 1/8, [conv1, conv3, conv4, conv5])."""
    conv1 = u.convbnrelu1_3(u.convbnrelu1_2(u.convbnrelu1_1(x)))
    conv3 = u.res_block3(F.max_pool2d(conv1, 3, 2, 1))
    conv4 = u.res_block5(conv3)
    conv5 = u.res_block6(conv4)
    conv6 = pyramid_sum(u.res_block7(conv5), u.pyramid_pooling.path_module_list)

    def up(block: nn.Sequential, t: Tensor) -> Tensor:
        return block[1](F.interpolate(t, scale_factor=2, mode="nearest"))

    conv5 = u.iconv5(torch.cat([conv5, up(u.upconv6, conv6)], dim=1))
    conv4 = u.iconv4(torch.cat([conv4, up(u.upconv5, conv5)], dim=1))
    conv3 = u.iconv3(torch.cat([conv3, up(u.upconv4, conv4)], dim=1))
    return u.proj3(conv3), [conv1, conv3, conv4, conv5]


def hsmnet_forward(net: nn.Module, left: Tensor, right: Tensor) -> list[Tensor]:
    """[cost (B, max_disp/16, h8, w8), conv1, conv3, conv4, conv5 of the left image] as the reference."""
    b = left.shape[0]
    matching, encoder = hsmnet_unet(net.feature_extraction, torch.cat([left, right], dim=0))
    ref, tgt = matching[:b], matching[b:]
    w = ref.shape[-1]
    volume = ref.new_zeros(b, ref.shape[1], net.max_disp // 8, *ref.shape[-2:])
    for d in range(net.max_disp // 8):
        volume[:, :, d, :, d:] = (ref[..., d:] - tgt[..., : w - d]).abs()
    cost = net.decoder3.classify(net.decoder3.convs(volume)).squeeze(1)
    return [cost, *(f[:b] for f in encoder)]


def head_raw(mlp: nn.Module, maps: list[Tensor], points: Tensor, height: float, width: float) -> Tensor:
    """Raw head outputs (B, K, N) at points (B, 2, N) (x, y) of a height x width grid."""
    u = torch.clamp(2 * points[:, 0:1] / (width - 1.0) - 1.0, -1.0, 1.0)
    v = torch.clamp(2 * points[:, 1:2] / (height - 1.0) - 1.0, -1.0, 1.0)
    grid = torch.cat([u, v], dim=1).transpose(1, 2).unsqueeze(2)  # (B, N, 1, 2)
    sampled = [F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[..., 0]
               for m in maps]
    return mlp(torch.cat(sampled, dim=1))


FORWARD = {"psmnet": psmnet_forward, "hsmnet": hsmnet_forward}
