"""The SMD head: an MLP over backbone features sampled at continuous points (SMD-Nets Sec. 3.1).

Layers `conv0..convL` are 1x1 Conv1d (so published checkpoints load unchanged); every layer after the
first also receives the sampled features again (residual input skip); sin activations (w0 = 1) between
layers, none after the last.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from smd_core.infer.dense import QUERY_BLOCK, normalize_coords


def normalize_points(points: Tensor, output_size: tuple[float, float]) -> Tensor:
    """Pixel coordinates (B, 2, N) as (x, y) in an output grid (H_out, W_out) -> grid_sample grid (B, 1, N, 2),
    `normalize_coords` per axis: the first and last output pixel fall on the feature map's outer edges (the
    reference's convention)."""
    if points.dim() != 3 or points.shape[1] != 2:
        raise ValueError(f"points must be (B, 2, N), got {tuple(points.shape)}")
    h_out, w_out = float(output_size[0]), float(output_size[1])
    if h_out <= 1 or w_out <= 1:
        raise ValueError(f"output_size must be larger than 1x1, got {output_size}")
    grid = torch.stack([normalize_coords(points[:, 0], w_out), normalize_coords(points[:, 1], h_out)], dim=1)
    return grid.transpose(1, 2).unsqueeze(1)


def flatten_maps(maps: list[Tensor]) -> FlatMaps:
    """Backbone maps [(B, C_i, h_i, w_i)] -> channels-last FlatMaps, done once per encode for dense queries."""
    return FlatMaps([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, m.shape[1]) for m in maps],
                    [(int(m.shape[2]), int(m.shape[3])) for m in maps])


def gather_bilinear(flat: FlatMaps, grid: Tensor) -> Tensor:
    """Sample channels-last maps at `grid` (B, 1, N, 2) -> (B, N, sum C_i): the values of
    `F.grid_sample(bilinear, zeros, align_corners=False)`, gathering whole channel rows (grid_sample loops over
    channels, slow for the head's hundreds of them on a CPU)."""
    g = grid[:, 0]  # (B, N, 2)
    b, n = g.shape[0], g.shape[1]
    out = []
    for m, (h, w) in zip(flat.maps, flat.sizes, strict=True):
        x = ((g[..., 0] + 1.0) * w - 1.0) * 0.5
        y = ((g[..., 1] + 1.0) * h - 1.0) * 0.5
        x0f, y0f = torch.floor(x), torch.floor(y)
        fx, fy = (x - x0f).to(m.dtype), (y - y0f).to(m.dtype)
        x0, y0 = x0f.long(), y0f.long()
        rows = m.reshape(-1, m.shape[-1])  # (B * h * w, C)
        base = (torch.arange(b, device=g.device) * (h * w)).view(b, 1)
        acc = None
        for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1) + base).reshape(-1)
            term = rows.index_select(0, idx).view(b, n, -1) * (wt * inside).unsqueeze(-1)
            acc = term if acc is None else acc + term
        out.append(acc)
    return torch.cat(out, dim=-1) if len(out) > 1 else out[0]


def _axis_taps(g: Tensor, n: int, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bilinear taps along one axis of length n for normalized coordinates g (M,), align_corners=False:
    (index0, index1) clamped into range and (weight0, weight1), zero where the tap falls outside (zeros padding)."""
    u = ((g + 1.0) * n - 1.0) * 0.5
    i0f = torch.floor(u)
    f = (u - i0f).to(dtype)
    i0 = i0f.long()
    i1 = i0 + 1
    w0 = (1 - f) * ((i0 >= 0) & (i0 < n))
    w1 = f * ((i1 >= 0) & (i1 < n))
    return i0.clamp(0, n - 1), i1.clamp(0, n - 1), w0, w1


def gather_grid(flat: FlatMaps, gx: Tensor, gy: Tensor, *, split: bool = False) -> Tensor | list[Tensor]:
    """Sample channels-last maps on the Cartesian grid of normalized columns gx (W,) and rows gy (R,).

    Returns (B, R * W, sum C_i) row-major (with `split`, the per-map parts for `SMDHead.forward_points`): the
    values of `gather_bilinear` at every (gx[j], gy[i]), since a bilinear weight is the product of one weight per
    axis. Interpolating rows first and then columns costs 2 R (w_i + W) C_i multiply-adds instead of 4 R W C_i
    gathers.
    """
    if gx.dim() != 1 or gy.dim() != 1:
        raise ValueError(f"gx and gy must be 1-D, got shapes {tuple(gx.shape)} and {tuple(gy.shape)}")
    out = []
    for m, (h, w) in zip(flat.maps, flat.sizes, strict=True):
        b, c = m.shape[0], m.shape[-1]
        grid = m.view(b, h, w, c)
        y0, y1, wy0, wy1 = _axis_taps(gy, h, m.dtype)
        x0, x1, wx0, wx1 = _axis_taps(gx, w, m.dtype)
        rows = grid.index_select(1, y0).mul_(wy0.view(1, -1, 1, 1)).addcmul_(grid.index_select(1, y1),
                                                                             wy1.view(1, -1, 1, 1))
        # Column weights spelled out as (W, C): broadcasting a (W, 1) weight over the few channels of the
        # innermost dimension is slow on a CPU.
        ex0, ex1 = (wt.view(-1, 1).expand(-1, c).contiguous() for wt in (wx0, wx1))
        cols = rows.index_select(2, x0).mul_(ex0).addcmul_(rows.index_select(2, x1), ex1)
        out.append(cols.reshape(b, -1, c))
    if split:
        return out
    return torch.cat(out, dim=-1) if len(out) > 1 else out[0]


def _nearest_index(g: Tensor, n: int) -> Tensor:
    """Nearest map index (clamped: border padding) of normalized coordinates g, align_corners=False."""
    return torch.floor(((g + 1.0) * n - 1.0) * 0.5 + 0.5).long().clamp(0, n - 1)


def gather_nearest(flat: FlatMaps, grid: Tensor) -> Tensor:
    """Nearest-neighbour sample of ONE channels-last map (B, h * w, A) at `grid` (B, 1, N, 2) -> (B, A, N). For values
    that must never be blended across an edge (a residual backbone's disparities)."""
    (m,), ((h, w),) = flat.maps, flat.sizes
    g = grid[:, 0]
    idx = _nearest_index(g[..., 1], h) * w + _nearest_index(g[..., 0], w)  # (B, N)
    return m.gather(1, idx.unsqueeze(-1).expand(-1, -1, m.shape[-1])).transpose(1, 2)


def gather_nearest_grid(flat: FlatMaps, gx: Tensor, gy: Tensor) -> Tensor:
    """`gather_nearest` on the grid of normalized columns gx (W,) x rows gy (R,) -> (B, A, R * W), row-major."""
    (m,), ((h, w),) = flat.maps, flat.sizes
    grid = m.view(m.shape[0], h, w, m.shape[-1])
    picked = grid.index_select(1, _nearest_index(gy, h)).index_select(2, _nearest_index(gx, w))
    return picked.flatten(1, 2).transpose(1, 2)


@dataclasses.dataclass
class FlatMaps:
    """Channels-last backbone maps: `maps[i]` is (B, h_i * w_i, C_i), `sizes[i]` = (h_i, w_i)."""

    maps: list[Tensor]
    sizes: list[tuple[int, int]]


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

    def forward_points(self, features: Tensor | list[Tensor]) -> Tensor:
        """Sampled features (B, N, C), or their per-map parts (B, N, C_i) in head order, -> raw outputs (B, N, K):
        `forward` in points-major layout, where every layer is one GEMM and the skip inputs of all layers come
        from one product with the stacked feature weights (nothing is concatenated)."""
        parts = [features] if isinstance(features, Tensor) else list(features)
        b, n = parts[0].shape[:2]
        rows = [p.reshape(b * n, p.shape[-1]) for p in parts]
        if not torch.is_grad_enabled() and b * n > QUERY_BLOCK:
            out = [self._forward_rows([r[i : i + QUERY_BLOCK] for r in rows]) for i in range(0, b * n, QUERY_BLOCK)]
            return torch.cat(out, dim=0).view(b, n, -1)
        return self._forward_rows(rows).view(b, n, -1)

    def _forward_rows(self, rows: list[Tensor]) -> Tensor:
        """Feature parts [(M, C_i)] -> raw outputs (M, K)."""
        c = self.widths[0]
        if sum(r.shape[1] for r in rows) != c:
            raise ValueError(f"head expects {c} feature channels, got parts of {[r.shape[1] for r in rows]}")
        layers = self.layers
        dtype = rows[0].dtype
        w_feat = torch.cat([layers[0].weight[:, :, 0]] + [conv.weight[:, -c:, 0] for conv in layers[1:]], dim=0)
        skip = torch.cat([conv.bias for conv in layers]).to(dtype)
        inplace = not torch.is_grad_enabled()
        start = 0
        for i, r in enumerate(rows):
            w = w_feat[:, start : start + r.shape[1]].t().to(dtype)
            # Accumulated in place after the first part (each out-of-place addmm copies its input).
            skip = skip.addmm_(r, w) if inplace and i else torch.addmm(skip, r, w)
            start += r.shape[1]
        parts = torch.split(skip, self.widths[1:], dim=1)
        y = torch.sin_(parts[0].contiguous()) if inplace else torch.sin(parts[0])
        for i in range(1, len(layers)):
            hid = layers[i].weight.shape[1] - c
            y = torch.addmm(parts[i], y, layers[i].weight[:, :hid, 0].t().to(y.dtype))
            if i < len(layers) - 1:
                y = torch.sin_(y) if inplace else torch.sin(y)
        return y
