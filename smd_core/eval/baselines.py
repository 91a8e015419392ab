"""Classical baselines scored beside the model (`smd eval --baseline`, the demo), from `smd_core.classical`:
`bm` (`stereo_image_proc`'s default block matcher), `sgbm` (SGBM as `stereo_image_proc` runs it) and
`sgbm_fill` (SGBM + `fill_background`, dense). They run at ground-truth resolution and search the scored range.

BM and SGBM keep their holes (NaN) and get two sets of figures: all pixels, where every hole is an error (a
bad pixel at every threshold, a flying pixel in the edge band, and in EPE and SEE the error of disparity 0:
what a consumer that needs a depth at every pixel gets), and `valid_pixels`, the pixels they did match
(whose `density` is their valid fraction).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from smd_core import metrics as M
from smd_core.classical import SGBMConfig, bm_disparity, fill_background, sgbm_disparity
from smd_core.config import apply_overrides, from_dict, to_dict

BASELINES = ("bm", "sgbm", "sgbm_fill")
# Baselines with holes: scored with holes as errors and on their matched pixels (`valid_pixels`).
SPARSE = ("bm", "sgbm")


def parse_baselines(values: str | Iterable[str]) -> list[str]:
    """`--baseline` values (repeatable, each a comma list; or one string) -> names in order, without repeats."""
    if isinstance(values, str):
        values = [values]
    names: list[str] = []
    for value in values:
        for name in str(value).split(","):
            name = name.strip().lower().replace("-", "_")
            if not name:
                continue
            if name not in BASELINES:
                raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
            if name not in names:
                names.append(name)
    return names


def sgbm_config(overrides: Sequence[str] = ()) -> SGBMConfig:
    """The baseline's `SGBMConfig` (stereo_image_proc's defaults) with `key=value` overrides of its fields."""
    data = to_dict(SGBMConfig())
    apply_overrides(data, overrides)
    return from_dict(SGBMConfig, data, _where="--sgbm")


def run_baselines(names: Sequence[str], left: np.ndarray, right: np.ndarray, config: SGBMConfig,
                  max_disp: float) -> dict[str, tuple[np.ndarray, float]]:
    """name -> (disparity (H, W) float32 px, seconds) for one frame; SGBM runs once for both SGBM baselines
    (`sgbm_fill`'s time includes it)."""
    out: dict[str, tuple[np.ndarray, float]] = {}
    if "bm" in names:
        t0 = time.perf_counter()
        out["bm"] = (bm_disparity(left, right, max_disp), time.perf_counter() - t0)
    if "sgbm" not in names and "sgbm_fill" not in names:
        return out
    t0 = time.perf_counter()
    raw = sgbm_disparity(left, right, config, math.ceil(max_disp))
    t_sgbm = time.perf_counter() - t0
    if "sgbm" in names:
        out["sgbm"] = (raw, t_sgbm)
    if "sgbm_fill" in names:
        t0 = time.perf_counter()
        out["sgbm_fill"] = (fill_background(raw), t_sgbm + time.perf_counter() - t0)
    return out


def holes_as_errors_metrics(disparity: np.ndarray, gt: np.ndarray, valid: np.ndarray,
                            **metric_options: Any) -> dict[str, Any]:
    """`metrics.compute_metrics` with every hole (NaN) of `disparity` an error, nesting `valid_pixels` (module
    docstring)."""
    matched = M.compute_metrics(disparity, gt, valid=valid, **metric_options)
    holes_at_0 = np.where(np.isfinite(disparity), disparity, 0.0).astype(np.float32)
    row: dict[str, Any] = M.compute_metrics(holes_at_0, gt, valid=valid, **metric_options)
    holes = M.valid_mask(gt, valid=valid) & ~np.isfinite(disparity)
    n_holes = int(np.count_nonzero(holes))
    n = row["n_valid"]
    for t in M.BAD_THRESHOLDS:
        key = f"bad{t:g}"
        bad = (matched[key] * matched["n_valid"] / 100.0 if matched["n_valid"] else 0.0) + n_holes
        row[key] = 100.0 * bad / n if n else math.nan
    options = {**M.METRIC_OPTIONS, **metric_options}
    band = M.edge_band(gt, radius=options["band_radius"], edge_threshold=options["edge_threshold"], valid=valid)
    row["n_flying"] = matched["n_flying"] + int(np.count_nonzero(band & holes))
    row["bleeding"] = 100.0 * row["n_flying"] / row["n_band"] if row["n_band"] else math.nan
    fly_band = M.edge_band(gt, edge_threshold=M.FLYING_EDGE_PX, valid=valid)
    row["n_fly"] = matched["n_fly"] + int(np.count_nonzero(fly_band & holes))
    row["flying"] = 100.0 * row["n_fly"] / row["n_fly_band"] if row["n_fly_band"] else math.nan
    row["valid_pixels"] = matched
    return row


def score_baseline(name: str, disparity: np.ndarray, gt: np.ndarray, *, max_disp: float | None,
                   **metric_options: Any) -> dict[str, Any]:
    """One frame's metrics row for baseline `name` (module docstring)."""
    mask = M.valid_mask(gt, max_disp=max_disp)
    if name in SPARSE:
        return holes_as_errors_metrics(disparity, gt, mask, **metric_options)
    if name == "sgbm_fill":
        return M.compute_metrics(disparity, gt, valid=mask, **metric_options)
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
