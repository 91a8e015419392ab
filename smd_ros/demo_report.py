"""`smd demo`'s report: scores what the node published with `smd eval`'s code beside the standard (L1) head and
the SGBM baselines, and writes `demo_out/`: per-frame pictures, the contact sheet, the cloud comparisons of one
recorded frame and of the real Motorcycle scene (`smd_ros.demo_pictures`) and `summary.json`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from smd_core import viz

METRIC_KEYS = ("epe", "bad2", "bad3", "see", "bleeding", "flying")
BASELINES = ("sgbm", "sgbm_fill")  # scored beside the node (smd_core.eval.baselines)
SHEET_TILE_W = 320  # px of each map in the contact sheet (its colour bar is drawn beside it at that size)
DISPARITY_RANGE = (0.0, 64.0)  # px: the recording's disparities (`scripts/make_sample_bag.py`)
ERROR_MAX = 3.0  # px: the error scale's top ("≥ 3")
UNCERTAINTY_SPAN = 4.0  # the uncertainty scale runs from the model's floor to this many times it ("≥")
UNITS = {"epe": "px", "bad2": "%", "bad3": "%", "see": "px", "bleeding": "% of edge-band pixels",
         "flying": "% of the points near ground-truth jumps over 2 px (metrics.flying_map)",
         "density": "% of ground-truth pixels", "time_s": "s"}

Outputs = dict[str, dict[int, tuple[float, Any]]]  # topic -> stamp -> (receive time, message)


def organized_cloud(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """The node's PointCloud2 (x, y, z, rgb) -> points (H, W, 3) float (NaN = no point), colors (H, W, 3) BGR."""
    names = [f.name for f in msg.fields]
    if names != ["x", "y", "z", "rgb"]:
        raise ValueError(f"expected a cloud of fields x, y, z, rgb (the node's, use_color true), got {names}")
    pts = np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width, 4)  # messages.CLOUD_FIELDS_RGB
    rgb = np.ascontiguousarray(pts[..., 3]).view(np.uint32)
    bgr = np.stack([rgb & 255, (rgb >> 8) & 255, (rgb >> 16) & 255], axis=-1).astype(np.uint8)
    return pts[..., :3].astype(np.float64), bgr


def _standard_predictor(args: argparse.Namespace) -> Any:
    """The standard-head model for the comparison, on the node's backend (the bundled one in that format)."""
    if args.standard_checkpoint.lower() == "none":
        return None
    from smd_core import weights
    from smd_core.infer.backend import load_predictor, resolve_model, torch_available

    if args.standard_checkpoint:
        return load_predictor(*resolve_model(args.standard_checkpoint, "auto"), device="cpu")
    backend = "onnxruntime" if args.backend == "onnxruntime" or not torch_available() else "torch"
    try:
        path = weights.standard_onnx() if backend == "onnxruntime" else weights.standard_checkpoint()
    except FileNotFoundError as exc:
        print(f"smd demo: no standard-head comparison ({exc})")
        return None
    return load_predictor(path, backend, device="cpu")


def colored(kind: str, values: np.ndarray, floor: float, width: int | None = None) -> np.ndarray:
    """A map in colour with its colour bar, drawn `width` px wide if given (the bar stays legible at that size)."""
    if width:
        size = (width, round(values.shape[0] * width / values.shape[1]))
        values = cv2.resize(values.astype(np.float32), size, interpolation=cv2.INTER_NEAREST_EXACT)
    if kind == "disparity":
        return viz.colorize_disparity(values, *DISPARITY_RANGE, unit="px")
    if kind == "uncertainty":
        return viz.colorize_uncertainty(values, UNCERTAINTY_SPAN * floor, vmin=floor, unit="px")
    return viz.colorize_error(values, ERROR_MAX, unit="px")


def means(rows: list[dict[str, Any]], keys: tuple[str, ...] = METRIC_KEYS) -> dict[str, float] | None:
    """summary.json's figures of `score_frame` rows: `summarize`'s frame means (+ `time_s` of timed rows)."""
    from smd_core.eval.loop import summarize

    if not rows:
        return None
    summary = summarize(rows)
    return {**{k: summary["metrics"][k] for k in keys},
            **({"time_s": summary["timing"]["mean_s"]} if "timing" in summary else {})}


def report(args: argparse.Namespace, frames: list[dict[str, Any]], sent: list[float], outputs: Outputs, out: Path,
           wall: float, real: dict[str, Any] | None = None, *, rate: float = 1.0) -> dict[str, Any]:
    """Score, draw and write summary.json; `real`: the Motorcycle frame and the node's answer to it; `rate`: the
    playback speed used (relative to the recording)."""
    from smd_core.classical import SGBMConfig
    from smd_core.eval.baselines import run_baselines, score_baseline
    from smd_core.eval.loop import score_frame
    from smd_core.infer.backend import model_config, resolve_model
    from smd_core.infer.predict_cli import uncertainty_floor_px
    from smd_ros.sensors import decode_image, disparity_pixels

    gt_all = None
    if str(args.ground_truth) and Path(args.ground_truth).is_file():
        with np.load(args.ground_truth) as z:
            gt_all = z["disparity_x256"].astype(np.float32) / 256.0
    standard = _standard_predictor(args)
    sgbm = SGBMConfig()
    # The node's model: its range is the one scored (SGBM and BM search it too); the uncertainty scale starts at
    # its floor (in output px: the demo's outputs are at scale 1).
    config = model_config(*resolve_model(args.checkpoint or "", args.backend))
    max_disp, floor = float(config.max_disp), uncertainty_floor_px(config.output, config.max_disp)

    def standard_disparity(frame: dict[str, Any]) -> np.ndarray | None:
        return standard.predict(frame["left"], frame["right"]).disparity if standard is not None else None

    got = [i for i, frame in enumerate(frames) if all(frame["stamp_ns"] in v for v in outputs.values())]
    compare = got[len(got) // 2] if got else -1
    rows, std_rows, base_rows = [], [], {name: [] for name in BASELINES}
    sheet: dict[int, tuple[float, list[np.ndarray]]] = {}
    clouds = None
    for i in tqdm(got, desc="score", unit="frame"):
        frame, stamp = frames[i], frames[i]["stamp_ns"]
        (t_recv, dmsg), (_, umsg), (_, cmsg) = (outputs[k][stamp] for k in ("disparity", "uncertainty", "points2"))
        row: dict[str, Any] = {"frame": i, "stamp_ns": stamp, "latency_ms": (t_recv - sent[i]) * 1000.0}
        maps = {"disparity": disparity_pixels(dmsg), "uncertainty": decode_image(umsg, "uncertainty")}
        disp = maps["disparity"]
        gt = gt_all[i] if gt_all is not None and i < len(gt_all) else None
        std_disp = standard_disparity(frame) if gt is not None or i == compare else None
        if gt is not None:
            row.update(score_frame(disp, gt, max_disp=max_disp))
            if std_disp is not None:
                std_rows.append(score_frame(std_disp, gt, max_disp=max_disp))
            base = run_baselines(BASELINES, frame["left"], frame["right"], sgbm, max_disp)
            for name, (bdisp, seconds) in base.items():
                base_rows[name].append({**score_baseline(name, bdisp, gt, max_disp=max_disp), "time_s": seconds})
            maps["error"] = np.where((gt > 0) & (disp > 0), np.abs(disp - gt), np.nan)
        names = {"disparity": "disparity", "uncertainty": f"uncertainty (floor {floor:.2f} px)",
                 "error": f"error, EPE {row.get('epe', math.nan):.2f} px"}
        sheet[i] = (row["latency_ms"], [])
        for kind, values in maps.items():
            cv2.imwrite(str(out / "frames" / f"{i:03d}_{kind}.png"), colored(kind, values, floor))
            sheet[i][1].append(viz.label(colored(kind, values, floor, SHEET_TILE_W), names[kind]))
        if i == compare:
            clouds = compare_scene(out / "cloud_comparison.png", frame, disp, cmsg, std_disp, gt, max_disp,
                                   title=f"recording frame #{i}")
        rows.append(row)
    write_contact_sheet(out / "contact_sheet.png", frames, sheet)
    real_figures = None
    if real is not None and real.get("outputs") is not None:
        (_, dmsg), (_, cmsg) = real["outputs"]["disparity"], real["outputs"]["points2"]
        real_figures = {"scene": real["name"], **compare_scene(
            out / "cloud_comparison_real.png", real, disparity_pixels(dmsg), cmsg, standard_disparity(real), real["gt"],
            max_disp, title="Middlebury Motorcycle (real)")}
    latencies = [r["latency_ms"] for r in rows]
    sgbm_means = means(base_rows["sgbm"])
    if sgbm_means:
        sgbm_means["valid_pixels"] = means([r["valid_pixels"] for r in base_rows["sgbm"]], (*METRIC_KEYS, "density"))
    summary = {"frames_in": len(frames), "frames_out": len(got), "frames_dropped": len(frames) - len(got),
               "dropped_frames": sorted(set(range(len(frames))) - set(got)),
               "latency_ms": {f"p{q}": float(np.percentile(latencies, q)) if latencies else math.nan for q in (50, 95)},
               "bimodal": means([r for r in rows if "epe" in r]) or dict.fromkeys(METRIC_KEYS, math.nan),
               "standard": means(std_rows), "sgbm": sgbm_means, "sgbm_fill": means(base_rows["sgbm_fill"]),
               "units": UNITS, "uncertainty_floor_px": floor,
               "sgbm_settings": {"num_disparities": sgbm.disparities_for(int(max_disp)), "mode": sgbm.mode,
                                 "block_size": sgbm.block_size,
                                 "holes": "all-pixel figures count every hole as an error (smd_core.eval.baselines); "
                                          "valid_pixels: on SGBM's matched pixels, density = its valid fraction"},
               "cloud_comparison": clouds, "cloud_comparison_real": real_figures,
               "wall_s": wall, "rate": rate, "bag": str(args.bag), "per_frame": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def write_contact_sheet(path: Path, frames: list[dict[str, Any]],
                        sheet: dict[int, tuple[float, list[np.ndarray]]]) -> None:
    """One row per recorded frame: its left image and `sheet[i]` (latency ms, the node's labelled maps); a frame
    the node dropped keeps its row, with placeholders that say so (row numbers never skip silently)."""
    if not sheet:
        return
    cols = max(len(maps) for _, maps in sheet.values())
    widths = [max(maps[c].shape[1] for _, maps in sheet.values() if c < len(maps)) for c in range(cols)]
    tiles: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        h = round(frame["left"].shape[0] * SHEET_TILE_W / frame["left"].shape[1])
        image = cv2.resize(frame["left"], (SHEET_TILE_W, h), interpolation=cv2.INTER_AREA)
        if i in sheet:
            latency, maps = sheet[i]
            tiles += [viz.label(image, f"#{i} left, {latency:.0f} ms"), *maps]
            tiles += [viz.text_tile(h, w, "no ground truth") for w in widths[len(maps):]]
        else:
            tiles.append(viz.label(image, f"#{i} left: DROPPED"))
            tiles += [viz.text_tile(h, w, f"frame #{i} dropped:\nthe node was busy with\nan older frame",
                                    color=(40, 40, 90)) for w in widths]
    if not cv2.imwrite(str(path), viz.contact_sheet(tiles, cols + 1, width=None)):
        raise OSError(f"could not write {path}")


def compare_scene(path: Path, frame: dict[str, Any], disp: np.ndarray, cmsg: Any, std_disp: np.ndarray | None,
                  gt: np.ndarray | None, max_disp: float, title: str) -> dict[str, Any]:
    """A cloud comparison picture of one frame: the node's cloud (its points2 as published), the standard
    head's, SGBM's and BM's (holes dropped) and the ground truth's (`smd_ros.demo_pictures`)."""
    from smd_core.classical import SGBMConfig
    from smd_core.eval.baselines import run_baselines
    from smd_ros.demo_pictures import Cloud, cloud_from_disparity, compare_clouds, flying_points
    from smd_ros.sensors import stereo_camera

    left = frame["left"]
    camera = stereo_camera(frame["left_info"], frame["right_info"], left.shape[1], left.shape[0])
    xyz, bgr = organized_cloud(cmsg)
    # The node's points are the pixels of its disparity that it kept (confidence filter): count only those.
    node_flying = flying_points(np.where(np.isfinite(xyz).all(axis=2), disp, np.nan), gt) \
        if xyz.shape[:2] == disp.shape else None
    base = run_baselines(("bm", "sgbm"), left, frame["right"], SGBMConfig(), max_disp)
    methods = [("standard L1 head", std_disp)] if std_disp is not None else []
    methods += [("SGBM", base["sgbm"][0]), ("BM (stereo_image_proc default)", base["bm"][0])]
    clouds = [Cloud("SMD bimodal (node)", xyz, bgr, node_flying)]
    clouds += [cloud_from_disparity(name, d, left, camera, gt) for name, d in methods]
    truth = cloud_from_disparity("ground truth", gt, left, camera, None) if gt is not None else None
    return compare_clouds(path, left, clouds, camera, truth, max_disp=max_disp, title=title)
