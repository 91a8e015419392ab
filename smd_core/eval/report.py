"""`smd eval`'s pictures and printed table: colored maps with colour bars, flying-pixel pictures, the overview
row of each frame, and the side-by-side table of the model and the baselines (see `smd_core.eval.loop`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smd_core import metrics as M
from smd_core import viz
from smd_core.eval.baselines import SPARSE
from smd_core.infer.dense import DensePrediction

BLEEDING_LEGEND = (((0, 200, 255), "edge band"), ((0, 0, 255), "flying"))


def bleeding_picture(pred: np.ndarray, gt: np.ndarray, left: np.ndarray | None, *, max_disp: float | None = None,
                     edge_threshold: float = M.EDGE_THRESHOLD_PX, band_radius: int = M.BAND_RADIUS,
                     tolerance: float = M.TOLERANCE_PX) -> np.ndarray:
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
                   max_disp: float | None = None, uncertainty: np.ndarray | None = None, width: int | None = None,
                   **options: Any) -> dict[str, np.ndarray]:
    """Colored BGR pictures of one frame (disparity, gt, error, uncertainty, bleeding) at ground-truth
    resolution or `width` px wide (colour bars and text drawn at the size shown), each with a colour bar in px
    or a legend; NaN (holes) black. `options`: those of `metrics.compute_metrics` (see_radius ignored)."""
    options = {k: v for k, v in options.items() if k != "see_radius"}
    disp = pred.disparity if isinstance(pred, DensePrediction) else np.asarray(pred, np.float32)
    if uncertainty is None and isinstance(pred, DensePrediction) and np.any(pred.uncertainty):
        uncertainty = pred.uncertainty
    disp = M.resize_disparity(disp, gt.shape)
    valid = M.valid_mask(gt, max_disp=max_disp)
    vmax = float(np.percentile(gt[valid], 99.5)) if valid.any() else None
    bleeding = bleeding_picture(disp, gt, left, max_disp=max_disp, **options)
    maps = {"disparity": disp, "gt": np.where(valid, gt, np.nan), "error": np.where(valid, np.abs(disp - gt), np.nan)}
    if uncertainty is not None:
        u = np.asarray(uncertainty, np.float32)
        if u.shape != gt.shape:
            u = cv2.resize(u, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        maps["uncertainty"] = u
    if width is not None:
        size = (width, max(1, round(gt.shape[0] * width / gt.shape[1])))
        maps = {k: cv2.resize(v.astype(np.float32), size, interpolation=cv2.INTER_NEAREST_EXACT)
                for k, v in maps.items()}
        bleeding = cv2.resize(bleeding, size, interpolation=cv2.INTER_AREA)
    pics = {
        "disparity": viz.colorize_disparity(maps["disparity"], vmin=0.0, vmax=vmax, unit="px"),
        "gt": viz.colorize_disparity(maps["gt"], vmin=0.0, vmax=vmax, unit="px"),
        "error": viz.colorize_error(maps["error"], vmax=3.0, unit="px"),
        "bleeding": np.concatenate([bleeding, viz.legend(bleeding.shape[0], BLEEDING_LEGEND)], axis=1),
    }
    if "uncertainty" in maps:
        u = maps["uncertainty"]
        floor = float(np.nanmin(u)) if np.isfinite(u).any() else 0.0
        pics["uncertainty"] = viz.colorize_uncertainty(u, vmin=floor, unit="px")
    return pics


# Width (px) of each map in overview.png, before its colour bar: four maps and their bars fit a screen.
OVERVIEW_TILE_W = 400


def write_frame_pictures(out: Path, index: int, name: str, left: np.ndarray, gt: np.ndarray, max_gt: float,
                          options: Mapping[str, Any], model: tuple[DensePrediction, Mapping[str, Any]] | None,
                          baselines: Mapping[str, tuple[np.ndarray, Mapping[str, Any]]]) -> list[list[np.ndarray]]:
    """Write one frame's PNGs under out/images/; returns its overview block: rows of labelled tiles (the left
    image and the ground truth, then one row per method: disparity, error, bleeding, uncertainty)."""
    stem = f"{index:04d}_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "frame")
    runs: list[tuple[str, DensePrediction | np.ndarray, Mapping[str, Any]]] = []
    if model is not None:
        runs.append(("", *model))
    runs += [(b, d, row) for b, (d, row) in baselines.items()]
    width = OVERVIEW_TILE_W
    shown = cv2.resize(left, (width, max(1, round(left.shape[0] * width / left.shape[1]))),
                       interpolation=cv2.INTER_AREA)
    block: list[list[np.ndarray]] = [[viz.label(shown, f"#{index} {name}")]]
    for method, pred, row in runs:
        prefix = f"{method}_" if method else ""
        for kind, img in frame_pictures(pred, gt, left, max_disp=max_gt, **options).items():
            if kind != "gt" or not method:
                viz.write_png(out / "images" / f"{stem}_{prefix}{kind}.png", img)
        pics = frame_pictures(pred, gt, left, max_disp=max_gt, width=width, **options)
        if len(block[0]) == 1:
            block[0].append(viz.label(pics["gt"], "ground truth"))
        who = method or "model"
        tiles = [viz.label(pics["disparity"], f"{who}: disparity, EPE {row['epe']:.2f} px"),
                 viz.label(pics["error"], f"{who}: error, bad-3 {row['bad3']:.1f} %"),
                 viz.label(pics["bleeding"], f"{who}: bleeding {row['bleeding']:.1f} %")]
        if "uncertainty" in pics:
            tiles.append(viz.label(pics["uncertainty"], f"{who}: uncertainty"))
        block.append(tiles)
    return block


def overview_picture(blocks: Sequence[Sequence[Sequence[np.ndarray]]]) -> np.ndarray:
    """overview.png: each frame's block (`write_frame_pictures`) one under the other, tiles at their drawn size
    in a grid as wide as the longest row (shorter rows padded with black)."""
    rows = [list(r) for block in blocks for r in block]
    if not rows:
        raise ValueError("overview_picture needs at least one row of tiles")
    cols = max(len(r) for r in rows)
    tiles = [t for r in rows for t in r + [np.zeros((1, 1, 3), np.uint8)] * (cols - len(r))]
    return viz.contact_sheet(tiles, cols=cols, width=None)


def _table_rows(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(method, summary) pairs of a report (model first, then the baselines), or of one `summarize` result."""
    if "metrics" in report:
        return [("model", report)]
    rows: list[tuple[str, Mapping[str, Any]]] = []
    if "summary" in report:
        rows.append(("model", report["summary"]))
    if "summary_below_max_uncertainty" in report:
        rows.append((f"model (uncertainty <= {report['max_uncertainty']:.2f} px)",
                     dict(report["summary_below_max_uncertainty"], timing={})))
    for name in SPARSE:
        if f"summary_at_{name}_density" in report:
            rows.append((f"model (at {name.upper()}'s density)", dict(report[f"summary_at_{name}_density"], timing={})))
    for name, entry in (report.get("baselines") or {}).items():
        if name in SPARSE:
            timing = entry["summary"].get("timing", {})
            rows += [(f"{name} (holes = errors)", entry["summary"]),
                     (f"{name} (valid pixels)", dict(entry["valid_pixels"], timing=timing))]
        else:
            rows.append((name, entry["summary"]))
    return rows


def format_summary(report: Mapping[str, Any]) -> str:
    """A short table of frame-mean metrics and timing: one row per method of a report (model, baselines),
    or of one `summarize` result. For raw BM / SGBM, `density %` of a valid-pixel row is its valid fraction."""
    rows = _table_rows(report)
    if not rows:
        raise ValueError("the report has neither a model summary nor baselines")
    heads = ["method", "EPE", "bad-1 %", "bad-2 %", "bad-3 %", "SEE", "bleeding %", "flying %", "density %", "s/frame"]
    body = []
    for method, summary in rows:
        m, t = summary["metrics"], summary.get("timing", {})
        body.append([method, f"{m['epe']:.3f}", f"{m['bad1']:.2f}", f"{m['bad2']:.2f}", f"{m['bad3']:.2f}",
                     f"{m['see']:.3f}", f"{m['bleeding']:.2f}", f"{m.get('flying', math.nan):.2f}",
                     f"{m['density']:.1f}", f"{t.get('mean_s', math.nan):.3f}"])
    widths = [max(len(r[i]) for r in [heads, *body]) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)])

    return "\n".join([f"{rows[0][1]['frames']} frames", line(heads), *(line(r) for r in body)])
