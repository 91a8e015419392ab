"""`smd demo`'s report: scores what the node published against the ground truth, beside the standard (L1) head
and the classical matchers on the same frames, and writes `demo_out/`: per-frame pictures, the contact sheet
(every recorded frame; the ones the node dropped marked as such), the cloud comparisons of one recorded frame and
of the real Motorcycle scene (`smd_ros.demo_pictures`) and `summary.json`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from smd_core import viz

METRIC_KEYS = ("epe", "bad2", "bad3", "see", "bleeding", "flying")
BASELINE_NAMES = ("sgbm", "sgbm_fill")
SHEET_TILE_W = 320  # px of each map in the contact sheet (its colour bar is drawn beside it at that size)
DISPARITY_RANGE = (0.0, 64.0)  # px: the recording's disparities (`scripts/make_sample_bag.py`)
ERROR_MAX = 3.0  # px: the error scale's top ("≥ 3")
UNCERTAINTY_SPAN = 4.0  # the uncertainty scale runs from the model's floor to this many times it ("≥")

Outputs = dict[str, dict[int, tuple[float, Any]]]


def disparity_from_msg(msg: Any) -> np.ndarray:
    """DisparityImage -> float32 (H, W) disparity, 0 where the node marked the pixel invalid."""
    img = msg.image
    d = np.frombuffer(bytes(img.data), np.float32).reshape(img.height, img.step // 4)[:, : img.width].copy()
    d[~np.isfinite(d) | (d < msg.min_disparity)] = 0.0
    return d


def float_image_from_msg(msg: Any) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.step // 4)[:, : msg.width].copy()


def organized_cloud(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """PointCloud2 with x, y, z, rgb -> points (H, W, 3) float (NaN = no point) and colors (H, W, 3) BGR uint8
    in the cloud's own layout (height x width; an unorganized cloud is one row)."""
    names = [f.name for f in msg.fields]
    if names != ["x", "y", "z", "rgb"]:
        raise ValueError(f"expected a cloud of fields x, y, z, rgb (the node's, use_color true), got {names}")
    h, w = int(msg.height), int(msg.width)
    pts = np.frombuffer(msg.data, np.float32).reshape(h, w, 4)  # the node's layout: messages.CLOUD_FIELDS_RGB
    xyz = pts[..., :3].astype(np.float64)
    rgb = np.ascontiguousarray(pts[..., 3]).view(np.uint32)
    bgr = np.stack([rgb & 255, (rgb >> 8) & 255, (rgb >> 16) & 255], axis=-1).astype(np.uint8)
    return xyz, bgr


def load_ground_truth(path: Path) -> np.ndarray:
    with np.load(path) as z:
        return z["disparity_x256"].astype(np.float32) / 256.0


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _mean(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if np.isfinite(r.get(key, np.nan))]
    return float(np.mean(vals)) if vals else float("nan")


def _standard_predictor(args: argparse.Namespace) -> Any:
    """The standard-head model for the comparison, on the node's backend (the bundled one in that format)."""
    if args.standard_checkpoint.lower() == "none":
        return None
    from smd_core.infer.backend import load_predictor, resolve_model, torch_available

    if args.standard_checkpoint:
        path, backend = resolve_model(args.standard_checkpoint, "auto")
    else:
        from smd_core import weights

        onnx = args.backend == "onnxruntime" or not torch_available()
        try:
            path = weights.standard_onnx() if onnx else weights.standard_checkpoint()
        except FileNotFoundError as exc:
            print(f"smd demo: no standard-head comparison ({exc})")
            return None
        backend = "onnxruntime" if onnx else "torch"
    return load_predictor(path, backend, device="cpu")


def received(frames: list[dict[str, Any]], outputs: Outputs) -> dict[int, tuple[Any, ...]]:
    """frame index -> ((receive time, DisparityImage), uncertainty Image, PointCloud2) of the frames the node
    answered on every output."""
    out = {}
    for i, frame in enumerate(frames):
        s = frame["stamp_ns"]
        if all(s in outputs[k] for k in outputs):
            out[i] = (outputs["disparity"][s], outputs["uncertainty"][s][1], outputs["points2"][s][1])
    return out


def node_model(args: argparse.Namespace) -> tuple[float, float]:
    """(max_disp, uncertainty floor in output px) of the node's model: SGBM and BM search the same range, the
    uncertainty scale starts at the floor (the demo's outputs are at scale 1)."""
    from smd_core.infer.backend import model_config, resolve_model
    from smd_core.infer.predict_cli import uncertainty_floor_px

    config = model_config(*resolve_model(args.checkpoint or "", args.backend))
    return float(config.max_disp), uncertainty_floor_px(config.output, config.max_disp)


def _sheet_tile(values: np.ndarray, kind: str, floor: float) -> np.ndarray:
    """A contact-sheet map drawn at SHEET_TILE_W px with its colour bar at that size (legible ticks)."""
    h = round(values.shape[0] * SHEET_TILE_W / values.shape[1])
    small = cv2.resize(values.astype(np.float32), (SHEET_TILE_W, h), interpolation=cv2.INTER_NEAREST_EXACT)
    if kind == "disparity":
        return viz.colorize_disparity(small, *DISPARITY_RANGE, unit="px")
    if kind == "uncertainty":
        return viz.colorize_uncertainty(small, UNCERTAINTY_SPAN * floor, vmin=floor, unit="px")
    return viz.colorize_error(small, ERROR_MAX, unit="px")


def _iter_scored(got: dict[int, tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
    for i in tqdm(sorted(got), desc="score", unit="frame"):
        yield i, got[i]


def report(args: argparse.Namespace, frames: list[dict[str, Any]], sent: list[float], outputs: Outputs, out: Path,
           wall: float, real: dict[str, Any] | None = None, *, rate: float = 1.0) -> dict[str, Any]:
    """Score, draw and write summary.json; `real`: the Motorcycle frame and the node's answer to it; `rate`: the
    playback speed used (relative to the recording)."""
    from smd_core.classical import SGBMConfig
    from smd_core.eval.baselines import run_baselines, score_baseline
    from smd_core.metrics import compute_metrics

    gt_all = load_ground_truth(args.ground_truth) if str(args.ground_truth) and Path(args.ground_truth).is_file() \
        else None
    standard = _standard_predictor(args)
    sgbm = SGBMConfig()
    max_disp, floor = node_model(args)
    got = received(frames, outputs)
    rows, std_rows, latencies = [], [], []
    sheet: dict[int, tuple[list[np.ndarray], list[str]]] = {}
    base_rows: dict[str, list[dict[str, Any]]] = {"sgbm": [], "sgbm_fill": []}
    compare_index = sorted(got)[len(got) // 2] if got else -1
    clouds: dict[str, Any] = {}
    for i, ((t_recv, dmsg), umsg, cmsg) in _iter_scored(got):
        frame = frames[i]
        latencies.append((t_recv - sent[i]) * 1000.0)
        disp = disparity_from_msg(dmsg)
        unc = float_image_from_msg(umsg)
        row: dict[str, Any] = {"frame": i, "stamp_ns": frame["stamp_ns"], "latency_ms": latencies[-1]}
        tiles = [_sheet_tile(disp, "disparity", floor), _sheet_tile(unc, "uncertainty", floor)]
        names = ["disparity", f"uncertainty (floor {floor:.2f} px)"]
        cv2.imwrite(str(out / "frames" / f"{i:03d}_disparity.png"),
                    viz.colorize_disparity(disp, *DISPARITY_RANGE, unit="px"))
        cv2.imwrite(str(out / "frames" / f"{i:03d}_uncertainty.png"),
                    viz.colorize_uncertainty(unc, UNCERTAINTY_SPAN * floor, vmin=floor, unit="px"))
        gt = gt_all[i] if gt_all is not None and i < len(gt_all) else None
        base = run_baselines(BASELINE_NAMES, frame["left"], frame["right"], sgbm, max_disp) \
            if gt is not None or i == compare_index else {}
        if gt is not None:
            row.update(compute_metrics(disp, gt))
            for name, (bdisp, seconds) in base.items():
                base_rows[name].append({**score_baseline(name, bdisp, gt, max_disp=None), "time_s": seconds})
            err = np.where((gt > 0) & (disp > 0), np.abs(disp - gt), np.nan)
            cv2.imwrite(str(out / "frames" / f"{i:03d}_error.png"), viz.colorize_error(err, ERROR_MAX, unit="px"))
            tiles.append(_sheet_tile(err, "error", floor))
            names.append(f"error, EPE {row['epe']:.2f} px")
        sheet[i] = (tiles, names)
        std_disp = None
        if standard is not None:
            std_disp = standard.predict(frame["left"], frame["right"]).disparity
            if gt is not None:
                std_rows.append(compute_metrics(std_disp, gt))
        if i == compare_index:
            clouds = compare_scene(out / "cloud_comparison.png", frame, disp, cmsg, std_disp, base["sgbm"][0], gt,
                                   max_disp, title=f"recording frame #{i}")
        rows.append(row)
    write_contact_sheet(out / "contact_sheet.png", frames, sheet, latencies_by_frame(rows))
    real_figures = _real_scene(out, real, standard, max_disp) if real else None
    summary = {
        "frames_in": len(frames),
        "frames_out": len(got),
        "frames_dropped": len(frames) - len(got),
        "dropped_frames": [i for i in range(len(frames)) if i not in got],
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "bimodal": {k: _mean(rows, k) for k in METRIC_KEYS},
        "standard": {k: _mean(std_rows, k) for k in METRIC_KEYS} if std_rows else None,
        **_baseline_summary(base_rows),
        "units": {"epe": "px", "bad2": "%", "bad3": "%", "see": "px", "bleeding": "% of edge-band pixels",
                  "flying": "% of the points near ground-truth jumps over 2 px (metrics.flying_map)",
                  "density": "% of ground-truth pixels", "time_s": "s"},
        "uncertainty_floor_px": floor,
        "sgbm_settings": {"num_disparities": sgbm.disparities_for(int(max_disp)), "mode": sgbm.mode,
                          "block_size": sgbm.block_size,
                          "holes": "all-pixel figures count every hole as an error (smd_core.eval.baselines); "
                                   "valid_pixels: on SGBM's matched pixels, density = its valid fraction"},
        "cloud_comparison": clouds or None,
        "cloud_comparison_real": real_figures,
        "wall_s": wall,
        "rate": rate,
        "bag": str(args.bag),
        "per_frame": rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def latencies_by_frame(rows: list[dict[str, Any]]) -> dict[int, float]:
    return {int(r["frame"]): float(r["latency_ms"]) for r in rows}


def write_contact_sheet(path: Path, frames: list[dict[str, Any]], sheet: dict[int, tuple[list[np.ndarray], list[str]]],
                         latency: dict[int, float]) -> None:
    """One row per recorded frame: left image, disparity, uncertainty, error; a frame the node dropped keeps its
    row, with placeholders that say so (row numbers never skip silently)."""
    if not sheet:
        return
    cols = 1 + max(len(t) for t, _ in sheet.values())
    widths = [max(t[c].shape[1] for t, _ in sheet.values() if c < len(t)) for c in range(cols - 1)]
    tiles: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        left = frame["left"]
        h = round(left.shape[0] * SHEET_TILE_W / left.shape[1])
        image = cv2.resize(left, (SHEET_TILE_W, h), interpolation=cv2.INTER_AREA)
        if i in sheet:
            maps, names = sheet[i]
            tiles.append(viz.label(image, f"#{i} left, {latency[i]:.0f} ms"))
            tiles += [viz.label(m, n) for m, n in zip(maps, names, strict=True)]
            tiles += [viz.text_tile(h, widths[c], "no ground truth") for c in range(len(maps), cols - 1)]
        else:
            tiles.append(viz.label(image, f"#{i} left: DROPPED"))
            tiles += [viz.text_tile(h, widths[c], f"frame #{i} dropped:\nthe node was busy with\nan older frame",
                                    color=(40, 40, 90)) for c in range(cols - 1)]
    if not cv2.imwrite(str(path), viz.contact_sheet(tiles, cols, width=None)):
        raise OSError(f"could not write {path}")


def _baseline_summary(base_rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """summary.json's `sgbm` (all pixels, holes as errors, + `valid_pixels`) and `sgbm_fill` frame means."""
    if not base_rows["sgbm"]:
        return {"sgbm": None, "sgbm_fill": None}
    sgbm = {k: _mean(base_rows["sgbm"], k) for k in (*METRIC_KEYS, "time_s")}
    sgbm["valid_pixels"] = {k: _mean([r["valid_pixels"] for r in base_rows["sgbm"]], k)
                            for k in (*METRIC_KEYS, "density")}
    return {"sgbm": sgbm, "sgbm_fill": {k: _mean(base_rows["sgbm_fill"], k) for k in (*METRIC_KEYS, "time_s")}}


def compare_scene(path: Path, frame: dict[str, Any], disp: np.ndarray, cmsg: Any, std_disp: np.ndarray | None,
                  sgbm_disp: np.ndarray, gt: np.ndarray | None, max_disp: float, title: str) -> dict[str, Any]:
    """A cloud comparison picture of one frame: the node's cloud (its points2 as published), the standard
    head's, SGBM's and BM's (holes dropped) and the ground truth's (`smd_ros.demo_pictures`)."""
    from smd_core.classical import bm_disparity
    from smd_ros.demo_pictures import Cloud, cloud_from_disparity, compare_clouds, flying_points
    from smd_ros.sensors import stereo_camera

    left = frame["left"]
    h, w = left.shape[:2]
    camera = stereo_camera(frame["left_info"], frame["right_info"], w, h)
    xyz, bgr = organized_cloud(cmsg)
    node_flying = None
    if xyz.shape[:2] == disp.shape:
        # The node's points are its disparity's pixels that it kept (confidence filter): count only those.
        node_flying = flying_points(np.where(np.isfinite(xyz).all(axis=2), disp, np.nan), gt)
    clouds = [Cloud("SMD bimodal (node)", xyz, bgr, node_flying)]
    if std_disp is not None:
        clouds.append(cloud_from_disparity("standard L1 head", std_disp, left, camera, gt))
    clouds.append(cloud_from_disparity("SGBM", sgbm_disp, left, camera, gt))
    clouds.append(cloud_from_disparity("BM (stereo_image_proc default)", bm_disparity(left, frame["right"], max_disp),
                                       left, camera, gt))
    truth = cloud_from_disparity("ground truth", gt, left, camera, None) if gt is not None else None
    return compare_clouds(path, left, clouds, camera, truth, max_disp=max_disp, title=title)


def _real_scene(out: Path, real: dict[str, Any], standard: Any, max_disp: float) -> dict[str, Any] | None:
    """cloud_comparison_real.png: the same comparison on the Middlebury Motorcycle pair the node answered."""
    from smd_core.classical import SGBMConfig
    from smd_core.eval.baselines import run_baselines

    if real.get("outputs") is None:
        return None
    (_, dmsg), _, cmsg = real["outputs"]
    std_disp = standard.predict(real["left"], real["right"]).disparity if standard is not None else None
    sgbm_disp = run_baselines(("sgbm",), real["left"], real["right"], SGBMConfig(), max_disp)["sgbm"][0]
    figures = compare_scene(out / "cloud_comparison_real.png", real, disparity_from_msg(dmsg), cmsg, std_disp,
                            sgbm_disp, real["gt"], max_disp, title="Middlebury Motorcycle (real)")
    return {"scene": real["name"], **figures}


def real_frame(stamp_ns: int, frame_id: str = "motorcycle_left_optical_frame") -> dict[str, Any]:
    """The Middlebury Motorcycle pair (`smd_core.data.real_sample`) as the node receives a stereo set: BGR
    images, ground truth, and the left / right CameraInfo of its calibration (P_right carries -fx B and the
    right principal point cx + doffs), stamped `stamp_ns`."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo

    from smd_core.data.real_sample import load_motorcycle, motorcycle_camera

    sample, cam = load_motorcycle(), motorcycle_camera()
    stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    infos = {}
    for side, cx, tx in (("left", cam.cx, 0.0), ("right", cam.cx + cam.doffs, -cam.fx * cam.baseline)):
        info = CameraInfo(height=cam.height, width=cam.width, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=[cam.fx, 0.0, cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[cam.fx, 0.0, cx, tx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header.stamp, info.header.frame_id = stamp, frame_id
        infos[f"{side}_info"] = info
    return {"stamp_ns": stamp_ns, "left": sample["left"], "right": sample["right"], "gt": sample["disp_left"],
            "name": sample["name"], **infos}
