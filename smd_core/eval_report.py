"""`smd eval`'s pictures and printed table: colored maps with colour bars, flying-pixel pictures, the overview
row of each frame, and the side-by-side table of the model and the baselines (see `smd_core.evaluate`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smd_core import metrics as M
from smd_core import viz
from smd_core.baselines import SPARSE
from smd_core.inference import DensePrediction

BLEEDING_LEGEND = (((0, 200, 255), "edge band"), ((0, 0, 255), "flying"))


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "frame"


def bleeding_picture(pred: np.ndarray, gt: np.ndarray, left: np.ndarray | None, *, max_disp: float | None = None,
                     edge_threshold: float = 1.0, band_radius: int = 3, tolerance: float = 1.0) -> np.ndarray:
    """BGR picture of the edge band (yellow) and its flying pixels (red) over the dimmed left image."""
    pred = M.resize_disparity(pred, gt.shape)
    band, flying = M.bleeding_map(pred, gt, valid=M.valid_mask(gt, max_disp=max_disp), radius=band_radius,
                                  edge_threshold=edge_threshold, tolerance=tolerance)
    if left is None:
        base = np.zeros((*gt.shape, 3), np.uint8)
    else:
        base = left
        if left.shape[:2] != gt.shape:
            base = cv2.resize(left, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_AREA)
        base = (base.astype(np.float32) * 0.4).astype(np.uint8)
    base[band] = BLEEDING_LEGEND[0][0]
    base[flying] = BLEEDING_LEGEND[1][0]
    return base


def frame_pictures(pred: DensePrediction | np.ndarray, gt: np.ndarray, left: np.ndarray | None = None, *,
                   max_disp: float | None = None, uncertainty: np.ndarray | None = None,
                   **options: Any) -> dict[str, np.ndarray]:
    """Colored BGR pictures of one frame at ground-truth resolution: disparity, gt, error, uncertainty, bleeding.

    Each is the (H, W) map with a colour bar in px (disparity, gt, error, uncertainty) or a legend
    (bleeding) on its right. NaN (holes) are black.

    `options`: edge_threshold, band_radius, tolerance (as `metrics.compute_metrics`; see_radius is ignored).
    """
    options = {k: v for k, v in options.items() if k != "see_radius"}
    disp = pred.disparity if isinstance(pred, DensePrediction) else np.asarray(pred, np.float32)
    if uncertainty is None and isinstance(pred, DensePrediction) and np.any(pred.uncertainty):
        uncertainty = pred.uncertainty
    disp = M.resize_disparity(disp, gt.shape)
    valid = M.valid_mask(gt, max_disp=max_disp)
    vmax = float(np.percentile(gt[valid], 99.5)) if valid.any() else None
    bleeding = bleeding_picture(disp, gt, left, max_disp=max_disp, **options)
    pics = {
        "disparity": viz.colorize_disparity(disp, vmin=0.0, vmax=vmax, unit="px"),
        "gt": viz.colorize_disparity(np.where(valid, gt, np.nan), vmin=0.0, vmax=vmax, unit="px"),
        "error": viz.colorize_error(np.abs(disp - gt), vmax=3.0, valid=valid, unit="px"),
        "bleeding": np.concatenate([bleeding, viz.legend(gt.shape[0], BLEEDING_LEGEND)], axis=1),
    }
    if uncertainty is not None:
        u = np.asarray(uncertainty, np.float32)
        if u.shape != gt.shape:
            u = cv2.resize(u, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        pics["uncertainty"] = viz.colorize_uncertainty(u, unit="px")
    return pics


def write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")


def write_frame_pictures(out: Path, index: int, name: str, left: np.ndarray, gt: np.ndarray, max_gt: float,
                          options: Mapping[str, Any], model: tuple[DensePrediction, Mapping[str, Any]] | None,
                          baselines: Mapping[str, tuple[np.ndarray, Mapping[str, Any]]]) -> list[np.ndarray]:
    """Write one frame's PNGs under out/images/; returns its overview row (labelled tiles)."""
    stem = f"{index:04d}_{safe_name(name)}"
    tiles: list[np.ndarray] = [viz.label(left, name)]
    runs: list[tuple[str, DensePrediction | np.ndarray, Mapping[str, Any]]] = []
    if model is not None:
        runs.append(("", *model))
    runs += [(b, d, row) for b, (d, row) in baselines.items()]
    for method, pred, row in runs:
        pics = frame_pictures(pred, gt, left, max_disp=max_gt, **options)
        prefix = f"{method}_" if method else ""
        for kind, img in pics.items():
            if kind != "gt" or not method:
                write_png(out / "images" / f"{stem}_{prefix}{kind}.png", img)
        if len(tiles) == 1:
            tiles.append(viz.label(pics["gt"], "ground truth"))
        who = f"{method} " if method else ""
        tiles += [viz.label(pics["disparity"], f"{who}EPE {row['epe']:.2f}"),
                  viz.label(pics["error"], f"{who}bad-3 {row['bad3']:.1f}%"),
                  viz.label(pics["bleeding"], f"{who}bleeding {row['bleeding']:.1f}%")]
        if "uncertainty" in pics:
            tiles.append(viz.label(pics["uncertainty"], "uncertainty"))
    return tiles


def _table_rows(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(method, summary) pairs of a report (model first, then the baselines), or of one `summarize` result."""
    if "metrics" in report:
        return [("model", report)]
    rows: list[tuple[str, Mapping[str, Any]]] = []
    if "summary" in report:
        rows.append(("model", report["summary"]))
    if "summary_below_max_uncertainty" in report:
        rows.append((f"model (uncertainty <= {report['max_uncertainty']:g} px)",
                     dict(report["summary_below_max_uncertainty"], timing={})))
    for name in SPARSE:
        if f"summary_at_{name}_density" in report:
            rows.append((f"model (at {name.upper()}'s density)", dict(report[f"summary_at_{name}_density"],
                                                                      timing={})))
    for name, entry in (report.get("baselines") or {}).items():
        if name in SPARSE:
            rows.append((f"{name} (holes = errors)", entry["summary"]))
            valid = dict(entry["valid_pixels"], timing=entry["summary"].get("timing", {}))
            rows.append((f"{name} (valid pixels)", valid))
        else:
            rows.append((name, entry["summary"]))
    return rows


def format_summary(report: Mapping[str, Any]) -> str:
    """A short table of frame-mean metrics and timing: one row per method of a report (model, baselines),
    or of one `summarize` result. For raw BM / SGBM, `density %` of a valid-pixel row is its valid fraction."""
    rows = _table_rows(report)
    if not rows:
        raise ValueError("the report has neither a model summary nor baselines")
    heads = ["method", "EPE", "bad-1 %", "bad-2 %", "bad-3 %", "SEE", "bleeding %", "flying %", "density %",
             "s/frame"]
    body = []
    for method, summary in rows:
        m, t = summary["metrics"], summary.get("timing", {})
        body.append([method, f"{m['epe']:.3f}", f"{m['bad1']:.2f}", f"{m['bad2']:.2f}", f"{m['bad3']:.2f}",
                     f"{m['see']:.3f}", f"{m['bleeding']:.2f}", f"{m.get('flying', math.nan):.2f}",
                     f"{m['density']:.1f}",
                     f"{t.get('mean_s', math.nan):.3f}"])
    widths = [max(len(r[i]) for r in [heads, *body]) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:],
                                                                                     strict=True)])

    return "\n".join([f"{rows[0][1]['frames']} frames", line(heads), *(line(r) for r in body)])
