"""The SMD head: an MLP over backbone features sampled at continuous points (SMD-Nets Sec. 3.1).

Layers `conv0..convL` are 1x1 Conv1d (so published checkpoints load unchanged); every layer after the
first also receives the sampled features again (residual input skip); sin activations (w0 = 1) between
layers, none after the last.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def normalize_points(points: Tensor, output_size: tuple[float, float]) -> Tensor:
    """Pixel coordinates (B, 2, N) as (x, y) in an output grid (H_out, W_out) -> grid_sample grid (B, 1, N, 2).

    As the reference: x_n = clamp(2 x / (W_out - 1) - 1, -1, 1), same for y with H_out. This maps the first
    and last output pixel onto the feature map's outer edges (the reference's convention, kept for parity).
    """
    if points.dim() != 3 or points.shape[1] != 2:
        raise ValueError(f"points must be (B, 2, N), got {tuple(points.shape)}")
    h_out, w_out = float(output_size[0]), float(output_size[1])
    if h_out <= 1 or w_out <= 1:
        raise ValueError(f"output_size must be larger than 1x1, got {output_size}")
    scale = points.new_tensor([2.0 / (w_out - 1.0), 2.0 / (h_out - 1.0)]).view(1, 2, 1)
    grid = (points * scale - 1.0).clamp(-1.0, 1.0)
    return grid.transpose(1, 2).unsqueeze(1)


def sample_maps(maps: list[Tensor], grid: Tensor) -> Tensor:
    """Bilinearly sample each map (B, C_i, h_i, w_i) at `grid` (B, 1, N, 2); concatenated -> (B, sum C_i, N)."""
    out = [F.grid_sample(m, grid.to(m.dtype), mode="bilinear", padding_mode="zeros", align_corners=False) for m in maps]
    return torch.cat(out, dim=1).squeeze(2) if len(out) > 1 else out[0].squeeze(2)


def sample_sum(maps: list[Tensor], grid: Tensor) -> Tensor:
    """Bilinearly sample same-width maps (B, R, h_i, w_i) at `grid` (B, 1, N, 2) and sum them -> (B, R, N)."""
    out = None
    for m in maps:
        s = F.grid_sample(m, grid.to(m.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
        out = s if out is None else out.add_(s)
    assert out is not None
    return out.squeeze(2)


@dataclasses.dataclass
class ProjectedFeatures:
    """Backbone maps already multiplied by every layer's feature weights (see `SMDHead.project`).

    `maps[i]` is (B, R, h_i, w_i) with R = widths[0] + sum(widths[1:]) + K: the rows of conv0 and of each
    later layer's skip block, without biases (grid_sample's zero padding must not zero a bias).
    """

    maps: list[Tensor]


class SMDHead(nn.Module):
    """MLP regressor, widths [C, *hidden, K]; input (B, C, N) sampled features -> raw outputs (B, K, N)."""

    def __init__(self, in_channels: int, hidden: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        widths = [int(in_channels), *[int(h) for h in hidden], int(out_channels)]
        self.in_channels = widths[0]
        self.widths = widths
        for i in range(len(widths) - 1):
            cin = widths[i] + (widths[0] if i else 0)
            self.add_module(f"conv{i}", nn.Conv1d(cin, widths[i + 1], kernel_size=1))

    @property
    def layers(self) -> list[nn.Conv1d]:
        return [getattr(self, f"conv{i}") for i in range(len(self.widths) - 1)]

    def forward(self, features: Tensor) -> Tensor:
        y = features
        layers = self.layers
        for i, conv in enumerate(layers):
            y = conv(y if i == 0 else torch.cat([y, features], dim=1))
            if i < len(layers) - 1:
                y = torch.sin(y)
        return y

    # Fast path for dense queries. grid_sample and the feature part of every layer are linear, so
    # W @ sample(F) == sample(W @ F): project the (small) feature maps once, then each point only costs
    # sampling plus the hidden-to-hidden products. Exact up to float rounding.
    def _feature_weights(self) -> Tensor:
        """(R, C): conv0's weights stacked over the skip (feature) columns of each later layer."""
        c = self.in_channels
        blocks = [self.layers[0].weight[:, :, 0]]
        blocks += [conv.weight[:, -c:, 0] for conv in self.layers[1:]]
        return torch.cat(blocks, dim=0)

    def projected_rows(self) -> int:
        return sum(self.widths[1:])

    def project(self, maps: list[Tensor]) -> ProjectedFeatures:
        """Backbone maps [(B, C_i, h_i, w_i)] -> ProjectedFeatures with maps (B, R, h_i, w_i)."""
        w = self._feature_weights()
        out, start = [], 0
        for m in maps:
            wi = w[:, start : start + m.shape[1]].to(m.dtype)
            out.append(torch.einsum("rc,bchw->brhw", wi, m))
            start += m.shape[1]
        if start != self.in_channels:
            raise ValueError(f"feature maps carry {start} channels, the head expects {self.in_channels}")
        return ProjectedFeatures(out)

    def forward_projected(self, projected: Tensor) -> Tensor:
        """Sampled projected features (B, R, N) -> raw outputs (B, K, N); equals forward(sampled features)."""
        layers = self.layers
        sizes = self.widths[1:]
        parts = torch.split(projected, sizes, dim=1)
        y = torch.sin(parts[0] + layers[0].bias.view(1, -1, 1).to(projected.dtype))
        for i in range(1, len(layers)):
            conv = layers[i]
            hid = conv.weight.shape[1] - self.in_channels
            w = conv.weight[:, :hid, 0].to(y.dtype)
            y = torch.matmul(w, y).add_(parts[i]).add_(conv.bias.view(1, -1, 1).to(y.dtype))
            if i < len(layers) - 1:
                y = torch.sin_(y) if not y.requires_grad else torch.sin(y)
        return y
