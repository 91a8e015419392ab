"""Output representations of the SMD head (SMD-Nets Sec. 3.2-3.3): activations, mode selection, losses,
uncertainty. As in the reference, disparities (`mu0`, `mu1`, `disparity`) are in pixels of the network input,
Laplacian scales (`sigma0`, `sigma1`, `sigma`) in units of max_disp, clamped to [SIGMA_EPS, 1], and the
weights are `pi0`, `pi1 = 1 - pi0`; every field is (B, N), one value per query point."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from smd_core.config import OUTPUT_CHANNELS
from smd_core.infer.confidence import EDGE_GAP_WEIGHT, SIGMA_EPS

COARSE_WEIGHT = 1.0  # weight of the L1 term on a backbone's own disparity (`Prediction.coarse`, light backbone only)
UNCERTAINTY_KINDS = ("edge", "peak", "sigma", "std", "entropy")
# The "edge" uncertainty: where the backbone's local foreground and background surfaces (anchors 2 and 3) differ
# by more than EDGE_JUMP_PX, a disparity that lies off both is between two surfaces (a flying point in the
# making); its distance to the nearer one (`Prediction.surface_gap`, px) counts EDGE_GAP_WEIGHT times on top of
# "peak" (`infer.confidence`).
EDGE_JUMP_PX = 2.0
RESIDUAL_SCALE = 1.0 / 16.0  # residual backbones: one unit of raw head output moves a mode by this fraction of max_disp
# Selection loss (px): "closer" ignores points where the modes' errors differ by less than this; "right"
# counts a mode within this of the label as right and uses only points where exactly one mode is.
SELECTION_MARGIN_PX = 1.0
SELECTION_TARGETS = ("closer", "right")


@dataclasses.dataclass
class Prediction:
    """Per-point outputs of the SMD head; every tensor is (B, N)."""

    disparity: Tensor
    mu0: Tensor | None = None
    mu1: Tensor | None = None
    sigma0: Tensor | None = None
    sigma1: Tensor | None = None
    pi0: Tensor | None = None
    pi1: Tensor | None = None
    sigma: Tensor | None = None
    # Training only: the backbone's own disparity estimate at the points (px), when it has one.
    coarse: Tensor | None = None
    # Distance (px) of `disparity` to the nearer of the backbone's local surfaces where they differ by over
    # EDGE_JUMP_PX (0 elsewhere), for the "edge" uncertainty; residual backbones with four anchors only.
    surface_gap: Tensor | None = None

    @property
    def output(self) -> str:
        if self.mu0 is not None:
            return "bimodal"
        return "unimodal" if self.sigma is not None else "standard"

    def maps(self) -> dict[str, Tensor]:
        """The output fields that are set, named as `dense.DensePrediction` names them (the unimodal `sigma` as
        `sigma0`; not `surface_gap`, an input of `uncertainty`)."""
        return {"sigma0" if f.name == "sigma" else f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None and f.name != "surface_gap"}


def select_mode(mu0: Tensor, mu1: Tensor, sigma0: Tensor, sigma1: Tensor, pi0: Tensor, pi1: Tensor) -> Tensor:
    """The mode with the highest density: a Laplacian's peak density is pi / (2 b).

    Picking a mode (never the mean) is what removes flying pixels at depth edges (SMD-Nets Sec. 3.3).
    Ties go to mu1, as in the reference (`pi0/sigma0 > pi1/sigma1`).
    """
    return torch.where(pi0 / sigma0 > pi1 / sigma1, mu0, mu1)


def activate(raw: Tensor, output: str, max_disp: float, base: Tensor | None = None, *,
             anchor_range: float = 0.0) -> Prediction:
    """Raw head outputs (B, K, N) -> Prediction with fields (B, N).

    K = 5 (bimodal: mu0, mu1, sigma0, sigma1, pi0), 2 (unimodal: mu, b) or 1 (standard).
    Disparities are sigmoid(raw) * max_disp, or, with `base` (B, A, N) or (B, N) px (a residual backbone's
    own disparities at the points: A anchors), anchor + raw * RESIDUAL_SCALE * max_disp clamped to
    [0, max_disp], where mode k uses anchor min(k, A - 1) (a standard head the first).
    anchor_range > 0 (px, with A >= 2): modes k >= 1 are anchor + anchor_range * tanh(raw) instead, so the
    second mode stays the second anchor's hypothesis (refined) rather than drifting to a broad catch-all
    that the highest-density rule never selects; mode 0 keeps its unbounded offset to repair outliers.
    With A >= 4, anchors 2 and 3 are the local foreground and background surfaces (never modes): they set
    `surface_gap`.
    """
    if not anchor_range >= 0:
        raise ValueError(f"anchor_range must be >= 0 px, got {anchor_range}")
    if output not in OUTPUT_CHANNELS:
        raise ValueError(f"output must be one of {sorted(OUTPUT_CHANNELS)}, got {output!r}")
    if raw.dim() != 3 or raw.shape[1] != OUTPUT_CHANNELS[output]:
        raise ValueError(f"{output} head needs raw outputs (B, {OUTPUT_CHANNELS[output]}, N), got {tuple(raw.shape)}")
    act = torch.sigmoid(raw)
    if base is None:
        def disp(k: int) -> Tensor:
            return act[:, k] * max_disp
    else:
        if base.dim() == 2:
            base = base.unsqueeze(1)
        if base.dim() != 3 or base.shape[0] != raw.shape[0] or base.shape[2] != raw.shape[2]:
            raise ValueError(f"base must be (B, A, N) or (B, N) with B, N = {raw.shape[0]}, {raw.shape[2]}, "
                             f"got {tuple(base.shape)}")

        def disp(k: int) -> Tensor:
            anchor = base[:, min(k, base.shape[1] - 1)]
            if k >= 1 and base.shape[1] > 1 and anchor_range > 0:
                return (anchor + anchor_range * torch.tanh(raw[:, k])).clamp(0.0, max_disp)
            return (anchor + raw[:, k] * (RESIDUAL_SCALE * max_disp)).clamp(0.0, max_disp)
    if output == "standard":
        pred = Prediction(disparity=disp(0))
    elif output == "unimodal":
        pred = Prediction(disparity=disp(0), sigma=act[:, 1])
    else:
        mu0, mu1 = disp(0), disp(1)
        sigma0, sigma1 = act[:, 2].clamp(SIGMA_EPS, 1.0), act[:, 3].clamp(SIGMA_EPS, 1.0)
        pi0, pi1 = act[:, 4], 1.0 - act[:, 4]
        pred = Prediction(select_mode(mu0, mu1, sigma0, sigma1, pi0, pi1), mu0, mu1, sigma0, sigma1, pi0, pi1)
    if base is not None and base.shape[1] >= 4:
        fg, bg = base[:, 2], base[:, 3]
        gap = torch.minimum((pred.disparity - fg).abs(), (pred.disparity - bg).abs())
        pred.surface_gap = torch.where((fg - bg).abs() > EDGE_JUMP_PX, gap, torch.zeros_like(gap))
    return pred


def laplacian_log_density(y: Tensor, mu: Tensor, b: Tensor) -> Tensor:
    """log L(y | mu, b) = -|y - mu| / b - log(2 b)."""
    return -(y - mu).abs() / b - torch.log(2.0 * b)


def bimodal_nll(pred: Prediction, y: Tensor) -> Tensor:
    """Per-point -log(pi0 L(y|mu0,b0) + pi1 L(y|mu1,b1)); y and mu in units of max_disp (SMD-Nets Eq. 4), by
    logsumexp: the reference's value where that is finite, finite where the reference's exp underflows."""
    tiny = torch.finfo(y.dtype).tiny
    l0 = torch.log(pred.pi0.clamp_min(tiny)) + laplacian_log_density(y, pred.mu0, pred.sigma0)
    l1 = torch.log(pred.pi1.clamp_min(tiny)) + laplacian_log_density(y, pred.mu1, pred.sigma1)
    return -torch.logaddexp(l0, l1)


def selection_loss(pred: Prediction, y: Tensor, *, max_disp: float, target: str = "closer") -> Tensor:
    """Per-point loss (B, N) that trains the highest-density rule (`select_mode`) to pick the better mode.

    The rule picks mu0 where z = log(pi0 / sigma0) - log(pi1 / sigma1) > 0; this is the binary cross-entropy
    of sigmoid(z) against "mu0 is the one to pick" (the modes themselves are not moved by it). target
    "closer": mu0 is closer to y, at points where the modes' errors differ by more than SELECTION_MARGIN_PX;
    "right": mu0 is within SELECTION_MARGIN_PX of y, at points where exactly one mode is (where both are
    wrong, picking the closer one would teach the rule to pick a third surface's value: a flying pixel).
    y and mu in units of max_disp, as in `bimodal_nll`. The mixture NLL alone lets a mode that is right at
    a few points stay broad, and a broad mode is never selected.
    """
    if target not in SELECTION_TARGETS:
        raise ValueError(f"selection target must be one of {SELECTION_TARGETS}, got {target!r}")
    tiny = torch.finfo(y.dtype).tiny
    z = (torch.log(pred.pi0.clamp_min(tiny)) - torch.log(pred.sigma0)
         - torch.log(pred.pi1.clamp_min(tiny)) + torch.log(pred.sigma1))
    e0, e1 = (pred.mu0.detach() - y).abs() * max_disp, (pred.mu1.detach() - y).abs() * max_disp
    if target == "closer":
        first, decisive = e0 < e1, (e0 - e1).abs() > SELECTION_MARGIN_PX
    else:
        first, decisive = e0 <= SELECTION_MARGIN_PX, (e0 <= SELECTION_MARGIN_PX) != (e1 <= SELECTION_MARGIN_PX)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, first.to(z.dtype), reduction="none")
    return bce * decisive.to(z.dtype)


def loss(pred: Prediction, target: Tensor, *, output: str, max_disp: float, selection_weight: float = 0.0,
         selection_target: str = "closer") -> Tensor:
    """Training loss (scalar) over the labels `target` (B, N) (network-input px) with 0 < target / max_disp <= 1,
    as in the reference: mixture NLL (bimodal), |mu - y| / b + log b (unimodal) or L1 (standard), in units of
    max_disp; plus COARSE_WEIGHT * L1 of `pred.coarse` when set and, for a bimodal head, selection_weight *
    `selection_loss` (weight 0: the reference's loss exactly)."""
    if target.shape != pred.disparity.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != prediction shape {tuple(pred.disparity.shape)}")
    y = target / max_disp
    valid = (y > 0) & (y <= 1)
    if not bool(valid.any()):
        return pred.disparity.sum() * 0.0  # keep the graph connected so DDP and AMP scalers see every parameter
    if output == "bimodal":
        scaled = dataclasses.replace(pred, mu0=pred.mu0 / max_disp, mu1=pred.mu1 / max_disp)
        per_point = bimodal_nll(scaled, y)
        if selection_weight > 0:
            per_point = per_point + selection_weight * selection_loss(scaled, y, max_disp=max_disp,
                                                                             target=selection_target)
    elif output == "unimodal":
        if pred.sigma is None:
            raise ValueError("unimodal loss needs pred.sigma")
        per_point = (pred.disparity / max_disp - y).abs() / pred.sigma + torch.log(pred.sigma)
    elif output == "standard":
        per_point = (pred.disparity / max_disp - y).abs()
    else:
        raise ValueError(f"output must be standard, unimodal or bimodal, got {output!r}")
    total = per_point[valid].mean()
    if pred.coarse is not None:
        total = total + COARSE_WEIGHT * (pred.coarse / max_disp - y).abs()[valid].mean()
    return total


def uncertainty(pred: Prediction, *, max_disp: float, kind: str = "sigma") -> Tensor:
    """Per-point uncertainty (B, N).

    - "edge" (the Predictor's): "peak" + EDGE_GAP_WEIGHT * `Prediction.surface_gap` px, so that a disparity
      between the two surfaces of a depth edge ranks as uncertain however sharp its mode; "peak" where the
      backbone gives no local surfaces.
    - "peak": sqrt(2) b / pi max_disp px of the selected mode, the std of the Laplacian of the same peak
      density: "sigma" where that mode holds all the weight, more as the other mode shares it, so it also ranks
      the many pixels whose b sits at its floor, where "sigma" ties.
    - "sigma": the selected (unimodal: the only) mode's std in px, sqrt(2) b max_disp.
    - "std": the whole mixture's std in px; "entropy": its `differential_entropy` (nats).
    A standard head gives zeros (and has no entropy).
    """
    if kind not in UNCERTAINTY_KINDS:
        raise ValueError(f"uncertainty kind must be one of {UNCERTAINTY_KINDS}, got {kind!r}")
    out = pred.output
    if out == "standard":
        if kind == "entropy":
            raise ValueError("a standard (L1) head has no distribution: entropy is undefined")
        return torch.zeros_like(pred.disparity)
    if out == "unimodal":
        if kind == "entropy":
            return 1.0 + torch.log(2.0 * pred.sigma)  # closed form for one Laplacian
        return math.sqrt(2.0) * pred.sigma * max_disp
    if kind in ("sigma", "peak", "edge"):
        first = pred.pi0 / pred.sigma0 > pred.pi1 / pred.sigma1
        b = torch.where(first, pred.sigma0, pred.sigma1)
        if kind != "sigma":
            b = b / torch.where(first, pred.pi0, pred.pi1).clamp_min(1e-6)
        px = math.sqrt(2.0) * max_disp * b
        if kind == "edge" and pred.surface_gap is not None:
            px = px + EDGE_GAP_WEIGHT * pred.surface_gap
        return px
    if kind == "std":
        mu0, mu1 = pred.mu0 / max_disp, pred.mu1 / max_disp
        mean = pred.pi0 * mu0 + pred.pi1 * mu1
        second = pred.pi0 * (2 * pred.sigma0**2 + mu0**2) + pred.pi1 * (2 * pred.sigma1**2 + mu1**2)
        return torch.sqrt((second - mean**2).clamp_min(0.0)) * max_disp
    return differential_entropy(pred.mu0 / max_disp, pred.mu1 / max_disp, pred.sigma0, pred.sigma1, pred.pi0, pred.pi1)


def differential_entropy(mu0: Tensor, mu1: Tensor, sigma0: Tensor, sigma1: Tensor, pi0: Tensor, pi1: Tensor, *,
                         steps: int = 2000, a: float = -1.0, b: float = 2.0, chunk: int = 4096) -> Tensor:
    """Differential entropy -∫ f log f of the bimodal Laplacian mixture (mu in units of max_disp), broadcast.

    The reference's trapezoid rule (`steps` intervals over [a, b], integrand zeroed where f < 1e-6), except
    that it adds f/2 rather than f log f / 2 at the two end nodes (below 3e-4 nats for any clamped sigma);
    `chunk` points at a time bound the memory.
    """
    shape = torch.broadcast_shapes(mu0.shape, mu1.shape, sigma0.shape, sigma1.shape, pi0.shape, pi1.shape)
    flat = [t.expand(shape).reshape(-1, 1).to(torch.float64) for t in (mu0, mu1, sigma0, sigma1, pi0, pi1)]
    x = torch.linspace(a, b, steps + 1, dtype=torch.float64, device=mu0.device).unsqueeze(0)
    w = torch.full_like(x, (b - a) / steps)
    w[:, 0] = w[:, -1] = (b - a) / (2 * steps)
    out = torch.empty(flat[0].shape[0], dtype=torch.float64, device=mu0.device)
    for s in range(0, out.numel(), chunk):
        m0, m1, s0, s1, p0, p1 = (t[s : s + chunk] for t in flat)
        f = p0 * torch.exp(-(x - m0).abs() / s0) / (2 * s0) + p1 * torch.exp(-(x - m1).abs() / s1) / (2 * s1)
        g = torch.where(f < 1e-6, torch.zeros_like(f), f * torch.log(f.clamp_min(1e-300)))
        out[s : s + chunk] = -(g * w).sum(dim=1)
    return out.reshape(shape).to(mu0.dtype)
