"""Edge figures of `smd eval`: flying rate and bad-2 against density, and where the model's flying points
come from relative to SGBM + fill (its first anchor).

Density curve. A mixture model keeps its least uncertain share of the scored pixels (`most_confident`, what
the node's `max_uncertainty` does with a per-frame threshold); at each density of DENSITIES the kept pixels'
flying rate and bad-2 are pooled over frames. An uncertainty that knows edges drops flying and wrong points
faster than good ones: its curves fall as density falls. `curve_picture` draws them with the classical
matchers and the node's threshold as points on the same axes.

Breakdown (`flying_breakdown`), per frame against SGBM + fill, both dense: `kept` flying points where SGBM +
fill flies too, `introduced` where it does not, `repaired` SGBM + fill's flying points the model does not
share, and `near_anchor` the model's flying points within 1 px of SGBM + fill's value (the anchor left as
it was). Pooled over frames: shares of the model's flying points (kept, near_anchor) and of SGBM + fill's
(repaired, introduced relative to that count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from smd_core import metrics as M

DENSITIES = (100.0, 97.5, 95.0, 92.5, 90.0, 87.5, 85.0, 80.0, 75.0)  # densities (% of scored pixels) of the curve
BREAKDOWN_KEYS = ("model", "fill", "kept", "introduced", "repaired", "near_anchor")


def _pct(num: int, den: int) -> float:
    return 100.0 * num / den if den else float("nan")


def _kept_counts(kept: np.ndarray, gt: np.ndarray, scored: np.ndarray) -> dict[str, int]:
    """Pixel counts of one kept map (NaN = dropped): scored pixels kept, bad-2 among them, flying band/points."""
    valid = scored & np.isfinite(kept)
    band, flying = M.flying_map(kept, gt, valid=scored)
    with np.errstate(invalid="ignore"):
        bad = np.abs(kept - gt) > 2.0
    return {"n_valid": int(valid.sum()), "n_bad2": int((bad & valid).sum()), "n_fly_band": int(band.sum()),
            "n_fly": int(flying.sum()), "n_scored": int(scored.sum())}


def most_confident(disparity: np.ndarray, uncertainty: np.ndarray, fraction: float,
                   within: np.ndarray | None = None) -> np.ndarray:
    """`disparity` (H, W) with NaN beyond its `fraction` (0..1) least uncertain pixels of `within` (bool (H, W),
    default all; outside it NaN too); `uncertainty` (H, W) on the same grid."""
    if disparity.shape != uncertainty.shape:
        raise ValueError(f"disparity {disparity.shape} and uncertainty {uncertainty.shape} differ in size")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    within = np.ones(disparity.shape, bool) if within is None else within
    # By rank, not by a threshold: uncertainties tie (a floor on sigma), and the share must be exact.
    idx = np.flatnonzero(within)
    k = int(round(fraction * idx.size))
    keep = np.zeros(disparity.size, bool)
    if k:
        keep[idx[np.argsort(uncertainty.ravel()[idx], kind="stable")[:k]]] = True
    return np.where(keep.reshape(disparity.shape), disparity, np.nan).astype(np.float32)


def curve_counts(disparity: np.ndarray, uncertainty: np.ndarray, gt: np.ndarray, *, scored: np.ndarray,
                 densities: Sequence[float] = DENSITIES) -> list[dict[str, int]]:
    """One frame's counts at each density (%): the model's least uncertain pixels of `scored`, all (H, W) at
    ground-truth resolution."""
    if not all(0.0 < d <= 100.0 for d in densities):
        raise ValueError(f"densities must be in (0, 100] %, got {list(densities)}")
    return [_kept_counts(most_confident(disparity, uncertainty, d / 100.0, scored), gt, scored) for d in densities]


def pool_counts(rows: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Pixel-pooled density, bad-2 (on kept pixels) and flying rate, all in %, of `_kept_counts` rows."""
    total = {k: sum(r[k] for r in rows) for k in ("n_valid", "n_bad2", "n_fly_band", "n_fly", "n_scored")}
    return {"density": _pct(total["n_valid"], total["n_scored"]), "bad2": _pct(total["n_bad2"], total["n_valid"]),
            "flying": _pct(total["n_fly"], total["n_fly_band"])}


def pool_curve(per_frame: Sequence[Sequence[Mapping[str, int]]],
               densities: Sequence[float] = DENSITIES) -> dict[str, list[float]]:
    """Frames' `curve_counts` -> {"target": densities, "density", "bad2", "flying": pooled % per density}."""
    if not per_frame:
        raise ValueError("pool_curve needs at least one frame")
    points = [pool_counts([frame[i] for frame in per_frame]) for i in range(len(densities))]
    return {"target": list(densities), **{k: [p[k] for p in points] for k in ("density", "bad2", "flying")}}


def flying_breakdown(model: np.ndarray, fill: np.ndarray, gt: np.ndarray, *, scored: np.ndarray) -> dict[str, int]:
    """Counts of one frame (see the module docstring); model and fill are dense (H, W) at gt's resolution."""
    _, fly_model = M.flying_map(model, gt, valid=scored)
    _, fly_fill = M.flying_map(fill, gt, valid=scored)
    with np.errstate(invalid="ignore"):
        near = np.abs(model - fill) <= 1.0
    return {"model": int(fly_model.sum()), "fill": int(fly_fill.sum()), "kept": int((fly_model & fly_fill).sum()),
            "introduced": int((fly_model & ~fly_fill).sum()), "repaired": int((fly_fill & ~fly_model).sum()),
            "near_anchor": int((fly_model & near).sum())}


def pool_breakdown(rows: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """Pooled `flying_breakdown` counts and shares (%): kept and near_anchor of the model's flying points,
    repaired and introduced relative to SGBM + fill's."""
    total = {k: sum(r[k] for r in rows) for k in BREAKDOWN_KEYS}
    return {**{f"n_{k}": v for k, v in total.items()}, "kept_pct": _pct(total["kept"], total["model"]),
            "near_anchor_pct": _pct(total["near_anchor"], total["model"]),
            "repaired_pct": _pct(total["repaired"], total["fill"]),
            "introduced_pct": _pct(total["introduced"], total["fill"])}


def format_edges(report: Mapping[str, Any]) -> str:
    """Text of the report's density curve and breakdown (empty when it has neither)."""
    lines = []
    if curve := report.get("density_curve"):
        lines.append("flying % / bad-2 % of the model's least uncertain pixels, by density:")
        lines += [f"  {d:5.1f} %: flying {f:5.2f}  bad-2 {b:5.2f}"
                  for d, f, b in zip(curve["density"], curve["flying"], curve["bad2"], strict=True)]
    if brk := report.get("flying_breakdown"):
        lines.append(f"flying points vs SGBM + fill: model {brk['n_model']}, SGBM + fill {brk['n_fill']}; of the "
                     f"model's: {brk['kept_pct']:.1f} % where SGBM + fill flies too, {brk['near_anchor_pct']:.1f} % "
                     f"within 1 px of it; SGBM + fill's repaired {brk['repaired_pct']:.1f} %, new ones "
                     f"{brk['introduced_pct']:.1f} % of its count")
    return "\n".join(lines)


def curve_picture(curve: Mapping[str, Sequence[float]], points: Mapping[str, Mapping[str, float]],
                  path: str | Path, *, title: str = "") -> Path:
    """Write a PNG: flying rate and bad-2 (own pixels) against density for the model's curve, with `points`
    (name -> {"density", "flying", "bad2"} in %, e.g. BM, SGBM, SGBM + fill, the node's threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    markers = "osD^vP*X"
    for ax, key, label in ((axes[0], "flying", "flying points, % of edge-band points"),
                           (axes[1], "bad2", "bad-2, % of kept pixels")):
        ax.plot(curve["density"], curve[key], "-o", color="tab:blue", label="model, ranked by uncertainty", ms=4)
        for i, (name, p) in enumerate(points.items()):
            ax.plot([p["density"]], [p[key]], markers[i % len(markers)], ms=9, label=name)
        ax.set_xlabel("density, % of ground-truth pixels kept")
        ax.set_ylabel(label)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
