"""`smd eval`'s scoring: `evaluate` runs the Predictor (and the baselines) over frames with ground truth.

    smd eval --checkpoint CKPT --data synthetic:9000:50 [--scale S] [--input-scale S] [--out DIR]
    smd eval --checkpoint CKPT --baseline sgbm,sgbm_fill [--sgbm block_size=7]   (model and SGBM side by side)
    smd eval --checkpoint none --baseline sgbm --data ... [--max-disp 128]      (baselines only)

Resolution. Frames are scored at their ground truth's resolution. The network sees the images resized by
`--input-scale`; the head is queried on a grid `--scale` times the image size, resized to the ground truth
by `metrics.resize_disparity` (nearest: bilinear resampling would itself create flying pixels). Ground truth
beyond the model's range (max_disp / input_scale image pixels) is not scored, as in SMD-Nets; the baselines
search that range (`smd_core.eval.baselines`).

Equal density. With a sparse baseline (`bm`, `sgbm`) a mixture model is also scored on as many of its own
pixels per frame as that matcher matched, its least uncertain ones (`curve.most_confident`):
`summary_at_sgbm_density`. `--max-uncertainty PX` scores it on the pixels a fixed node setting keeps (below
the threshold, then without speckles as the node's `speckle_size` / `speckle_range`): `summary_below_max_uncertainty`.

Report (returned, and `DIR/report.json` with `--out DIR`): the settings and `extra`, the model's `summary`
(`summarize`: frame means as SMD-Nets reports them, frames where a metric is undefined skipped; `pooled`,
every pixel weighing the same; timing), the summaries above, `density_curve`, `flying_breakdown` and
`per_frame` (`score_frame` rows); `baselines`: name -> {sgbm_config, num_disparities, summary, per_frame, for
BM and SGBM also valid_pixels and valid_fraction}. With `--out`: pictures of the first `--images` frames
under `DIR/images/`, `DIR/overview.png` and `DIR/flying_vs_density.png` (`smd_core.eval.report`, `curve`).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smd_core import metrics as M
from smd_core.classical import SGBMConfig
from smd_core.config import to_dict
from smd_core.eval import curve
from smd_core.eval.baselines import SPARSE, parse_baselines, run_baselines, score_baseline
from smd_core.eval.report import overview_picture, write_frame_pictures
from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE, cloud_mask
from smd_core.infer.dense import DensePrediction
from smd_core.viz import write_png

if TYPE_CHECKING:  # torch only runs a model (`evaluate`): scoring (`score_frame`, `summarize`) needs none
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import SMDNet


def score_frame(pred: np.ndarray, gt: np.ndarray, *, max_disp: float | None = None,
                valid: np.ndarray | None = None, **metric_options: Any) -> dict[str, float]:
    """`metrics.compute_metrics` of a prediction at any resolution (resized to the ground truth's), ground truth
    above `max_disp` (ground-truth pixels) not scored."""
    gt = np.asarray(gt, dtype=np.float32)
    pred = M.resize_disparity(pred, gt.shape)
    return M.compute_metrics(pred, gt, valid=M.valid_mask(gt, valid=valid, max_disp=max_disp), **metric_options)


def _at_density_of(pred: DensePrediction, sparse: np.ndarray, gt: np.ndarray, *, max_gt: float,
                   options: Mapping[str, Any]) -> dict[str, Any]:
    """The model's metrics on its least uncertain scored pixels, as large a share of them as the sparse
    baseline `sparse` (BM or SGBM, NaN holes) matched."""
    disparity, uncertainty = (M.resize_disparity(a, gt.shape) for a in (pred.disparity, pred.uncertainty))
    scored = M.valid_mask(gt, max_disp=max_gt)
    fraction = float(np.isfinite(sparse)[scored].mean()) if scored.any() else 0.0
    return score_frame(curve.most_confident(disparity, uncertainty, fraction, scored), gt, max_disp=max_gt, **options)


def _nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else math.nan


def summarize(per_frame: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Frame-mean and pixel-pooled summaries of `score_frame` results (+ `time_s` when present)."""
    if not per_frame:
        raise ValueError("summarize needs at least one frame")
    out: dict[str, Any] = {"frames": len(per_frame)}
    out["metrics"] = {k: _nanmean(f.get(k, math.nan) for f in per_frame) for k in M.METRIC_KEYS}
    out["pooled"] = M.pool(per_frame)
    if times := [f["time_s"] for f in per_frame if "time_s" in f]:
        mean = sum(times) / len(times)
        out["timing"] = {"mean_s": mean, "median_s": statistics.median(times), "min_s": min(times),
                         "fps": 1.0 / mean if mean > 0 else math.inf}
        for key in ("encode_s", "query_s"):
            if vals := [f[key] for f in per_frame if key in f]:
                out["timing"][key] = sum(vals) / len(vals)
    return out


def _iterate(frames: Any) -> tuple[Iterable[Mapping[str, Any]], int | None]:
    """(the frames, their count or None). Datasets with __getitem__/__len__ but no __iter__ iterate via the index
    protocol anyway; being explicit avoids relying on IndexError to stop."""
    try:
        n = len(frames)
    except TypeError:
        return iter(frames), None
    return ((frames[i] for i in range(n)) if hasattr(frames, "__getitem__") and not isinstance(frames, Mapping)
            else iter(frames)), n


def _as_predictor(model_or_predictor: SMDNet | Predictor | None) -> Predictor | None:
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import SMDNet

    if model_or_predictor is None or isinstance(model_or_predictor, Predictor):
        return model_or_predictor
    if isinstance(model_or_predictor, SMDNet):
        return Predictor(model_or_predictor)
    raise TypeError(f"evaluate needs an SMDNet or a Predictor (or None with baselines), "
                    f"got {type(model_or_predictor).__name__}")


def _score_range(predictor: Predictor | None, input_scale: float, scale: float, max_disp: float | None) -> float:
    """The scored disparity range in image pixels (also SGBM's search range)."""
    if predictor is None:
        if max_disp is None or not (math.isfinite(max_disp) and max_disp > 0):
            raise ValueError(f"without a model, max_disp (image pixels) must be a positive number, got {max_disp}")
        if scale != 1.0 or input_scale != 1.0:
            raise ValueError(f"scale and input_scale apply to a model; without one they must be 1, "
                             f"got scale={scale}, input_scale={input_scale}")
        return float(max_disp)
    # The model cannot output more than max_disp network pixels = max_disp / input_scale image pixels.
    model_range = predictor.model.config.max_disp / input_scale
    if max_disp is not None and not math.isclose(max_disp, model_range):
        raise ValueError(f"max_disp={max_disp} differs from the model's range ({model_range:g} image pixels: "
                         f"max_disp {predictor.model.config.max_disp} / input_scale {input_scale}); leave it unset")
    return model_range


def evaluate(model_or_predictor: SMDNet | Predictor | None, frames: Iterable[Mapping[str, Any]], *, scale: float = 1.0,
             input_scale: float = 1.0, out_dir: str | Path | None = None, images: int = 8, progress: bool = True,
             warmup: bool = True, metric_options: Mapping[str, Any] | None = None,
             extra: Mapping[str, Any] | None = None, baselines: str | Sequence[str] = (),
             sgbm: SGBMConfig | None = None, max_disp: float | None = None,
             max_uncertainty: float = 0.0, speckle_size: int = SPECKLE_SIZE,
             speckle_range: float = SPECKLE_RANGE_PX) -> dict[str, Any]:
    """Run the Predictor (and the baselines) over `frames` and score every frame; returns the report (also
    written when `out_dir`).

    model_or_predictor: the model, or None to score only `baselines`.
    frames: iterable (or dataset) of full frames (`smd_core.data`) with ground truth.
    scale, input_scale: output grid and network input relative to the images (see the module docstring).
    warmup: run the first frame once untimed first (one-off costs are no time per frame).
    metric_options: keyword options of `metrics.compute_metrics`.
    extra: entries copied into the report (e.g. checkpoint path, data spec).
    baselines: names of `baselines.BASELINES` (or comma lists); `sgbm`: their `SGBMConfig`.
    max_disp: the scored range in image pixels; only without a model (with one: its max_disp / input_scale).
    max_uncertainty: > 0: also score the model on its pixels whose uncertainty is at most this (output px), less
    the speckles among them (`geometry.cloud_mask` with speckle_size px and speckle_range px; 0: none).
    """
    from tqdm import tqdm

    if images < 0:
        raise ValueError(f"images must be >= 0, got {images}")
    if not max_uncertainty >= 0:
        raise ValueError(f"max_uncertainty must be >= 0 (0: off), got {max_uncertainty}")
    names = parse_baselines(baselines)
    predictor = _as_predictor(model_or_predictor)
    if predictor is None and not names:
        raise ValueError("evaluate needs a model, at least one baseline, or both")
    max_gt = _score_range(predictor, input_scale, scale, max_disp)
    sgbm = sgbm or SGBMConfig()
    options = dict(metric_options or {})
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and images:
        (out / "images").mkdir(parents=True, exist_ok=True)

    per_frame: list[dict[str, Any]] = []
    # A standard (L1) head has no uncertainty to rank its pixels by.
    ranked = predictor is not None and predictor.model.config.output != "standard"
    base_rows: dict[str, list[dict[str, Any]]] = {b: [] for b in names}
    sheet_rows: list[list[list[np.ndarray]]] = []  # per frame: rows of overview tiles
    frame_iter, count = _iterate(frames)
    bar = tqdm(frame_iter, total=count, desc="eval", unit="frame", disable=not progress)
    for index, frame in enumerate(bar):
        name = str(frame.get("name", f"frame_{index:06d}"))
        if "disp_left" not in frame or frame["disp_left"] is None:
            raise ValueError(f"frame {name!r} has no ground truth (disp_left); cannot evaluate it")
        gt = np.asarray(frame["disp_left"], dtype=np.float32)
        left = frame["left"]
        if gt.shape != tuple(left.shape[:2]):
            raise ValueError(f"frame {name!r}: ground truth {gt.shape} and image {left.shape[:2]} differ in size")
        model = None
        if predictor is not None:
            if warmup and index == 0:
                predictor.predict(left, frame["right"], scale=scale, input_scale=input_scale)
            t0 = time.perf_counter()
            pred = predictor.predict(left, frame["right"], scale=scale, input_scale=input_scale)
            elapsed = time.perf_counter() - t0
            per_frame.append({"name": name, **score_frame(pred.disparity, gt, max_disp=max_gt, **options),
                              "time_s": elapsed, "encode_s": pred.timings.get("encode_s", math.nan),
                              "query_s": pred.timings.get("query_s", math.nan)})
            model = (pred, per_frame[-1])
        done: dict[str, tuple[np.ndarray, Mapping[str, Any]]] = {}
        for b, (disp, seconds) in run_baselines(names, left, frame["right"], sgbm, max_gt).items():
            base_rows[b].append({"name": name, **score_baseline(b, disp, gt, max_disp=max_gt, **options),
                                 "time_s": seconds})
            done[b] = (disp, base_rows[b][-1])
        if model is not None and max_uncertainty > 0:
            disparity = model[0].disparity
            keep = cloud_mask(disparity, model[0].uncertainty, np.isfinite(disparity), max_uncertainty=max_uncertainty,
                              speckle_size=speckle_size, speckle_range=speckle_range)
            kept = np.where(keep, disparity, np.nan)
            per_frame[-1]["below_max_uncertainty"] = score_frame(kept, gt, max_disp=max_gt, **options)
        if model is not None:
            _edge_rows(per_frame[-1], model[0], done, gt, max_gt=max_gt, ranked=ranked)
        for b in (b for b in SPARSE if b in done and model is not None and ranked):
            per_frame[-1][f"at_{b}_density"] = _at_density_of(model[0], done[b][0], gt, max_gt=max_gt, options=options)
        first_rows = per_frame or base_rows[names[0]]
        bar.set_postfix(epe=f"{_nanmean(f['epe'] for f in first_rows):.2f}",
                        bleed=f"{_nanmean(f['bleeding'] for f in first_rows):.1f}%")
        if out is not None and index < images:
            sheet_rows.append(write_frame_pictures(out, index, name, left, gt, max_gt, options, model, done))
    bar.close()
    if not per_frame and not any(base_rows.values()):
        raise ValueError("no frames to evaluate")

    report: dict[str, Any] = {**dict(extra or {}),
                              "model_config": to_dict(predictor.model.config) if predictor is not None else None,
                              "scale": scale, "input_scale": input_scale, "max_disp_px": max_gt,
                              "device": str(predictor.device) if predictor is not None else "cpu",
                              "metric_options": {**M.METRIC_OPTIONS, **options}}
    if predictor is not None:
        report["summary"] = summarize(per_frame)
        if max_uncertainty > 0:
            report["max_uncertainty"] = max_uncertainty
            report["speckles"] = {"size": speckle_size, "range": speckle_range}
            report["summary_below_max_uncertainty"] = summarize([r["below_max_uncertainty"] for r in per_frame])
        for b in (b for b in SPARSE if b in names and ranked):
            report[f"summary_at_{b}_density"] = summarize([r[f"at_{b}_density"] for r in per_frame])
        if ranked:
            report["density_curve"] = curve.pool_curve([r["curve"] for r in per_frame])
        if "sgbm_fill" in names:
            report["flying_breakdown"] = curve.pool_breakdown([r["breakdown"] for r in per_frame])
        report["per_frame"] = per_frame
    if names:
        report["baselines"] = {b: _baseline_report(b, rows, sgbm, max_gt) for b, rows in base_rows.items()}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if "density_curve" in report:
            curve.curve_picture(report["density_curve"], curve_points(report), out / "flying_vs_density.png",
                                title=str((extra or {}).get("data", "")))
        (out / "report.json").write_text(json.dumps(_jsonable(report), indent=2))
        if sheet_rows:
            write_png(out / "overview.png", overview_picture(sheet_rows))
    return report


def _edge_rows(row: dict[str, Any], pred: DensePrediction, done: Mapping[str, tuple[np.ndarray, Any]],
               gt: np.ndarray, *, max_gt: float, ranked: bool) -> None:
    """Add one frame's density-curve counts (a ranked model) and flying breakdown (with `sgbm_fill`) to `row`."""
    if not ranked and "sgbm_fill" not in done:
        return
    scored = M.valid_mask(gt, max_disp=max_gt)
    disparity = M.resize_disparity(pred.disparity, gt.shape)
    if ranked:
        row["curve"] = curve.curve_counts(disparity, M.resize_disparity(pred.uncertainty, gt.shape), gt, scored=scored)
    if "sgbm_fill" in done:
        row["breakdown"] = curve.flying_breakdown(disparity, done["sgbm_fill"][0], gt, scored=scored)


def curve_points(report: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The points beside the density curve: the baselines (BM and SGBM on their matched pixels) and the node's
    threshold, each {"density", "flying", "bad2"} pooled (%)."""
    def point(summary: Mapping[str, Any]) -> dict[str, float]:
        return {k: summary["pooled"][k] for k in ("density", "flying", "bad2")}

    points: dict[str, dict[str, float]] = {}
    for name, entry in (report.get("baselines") or {}).items():
        points[name.upper().replace("_FILL", " + fill")] = point(entry.get("valid_pixels", entry["summary"]))
    if "summary_below_max_uncertainty" in report:
        points[f"model, uncertainty <= {report['max_uncertainty']:.2f} px"] = point(
            report["summary_below_max_uncertainty"])
    return points


def _baseline_report(name: str, rows: Sequence[Mapping[str, Any]], config: SGBMConfig,
                     max_disp: float) -> dict[str, Any]:
    """One baseline's report entry: settings, `summary` (all pixels), for `sgbm` also `valid_pixels` (the
    summary on its matched pixels) and `valid_fraction` (% of scored pixels it matched), and `per_frame`."""
    entry: dict[str, Any] = {"sgbm_config": to_dict(config),
                             "num_disparities": config.disparities_for(math.ceil(max_disp)),
                             "summary": summarize(rows)}
    if name in SPARSE:
        entry["valid_pixels"] = summarize([r["valid_pixels"] for r in rows])
        entry["valid_fraction"] = entry["valid_pixels"]["pooled"]["density"]
    entry["per_frame"] = list(rows)
    return entry


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python numbers, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value
