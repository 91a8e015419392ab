"""`smd demo`: the real stereo node on the bundled recording, over real DDS, with pictures.

1. starts `stereo_node` as its own process with the bundled light bimodal model, on a loopback-only Fast DDS
   profile and a private domain id (nothing leaves 127.0.0.1);
2. plays the bundled rosbag2 recording (`smd_ros/data/sample_stereo`, mcap) into it at its recorded rate,
   decoding its JPEG images to `sensor_msgs/Image` as `image_transport` would;
3. receives every `disparity`, `uncertainty` and `points2` output and scores the disparity against the
   recording's ground truth (EPE, bad-3, soft edge error, bleeding rate);
4. runs the standard (L1) light model and the classical baselines (`smd_core.baselines`: SGBM as
   stereo_image_proc runs it, and SGBM + row-wise background fill) offline on the same frames for
   comparison, and writes `demo_out/`: per-frame colorized disparity / uncertainty / error PNGs with colour
   bars (px), `cloud_comparison.png` (side views of the node's point cloud, the standard head's, SGBM's and
   the ground truth's, plus zoomed views of the boundaries with the most flying points, each labelled with
   its count: `smd_ros.demo_pictures`), a contact sheet of all frames and `summary.json` (frame means of
   each method; SGBM's holes count as errors, its `valid_pixels` figures are on its matched pixels).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from smd_ros.topics import input_publishers

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
METRIC_KEYS = ("epe", "bad2", "bad3", "see", "bleeding")
BASELINE_NAMES = ("sgbm", "sgbm_fill")


def find_config(name: str) -> Path:
    """A file of the package's `config/` folder: the source tree's, else the installed share/smd_ros/config."""
    candidates = [PACKAGE_DIR.parent / "config" / name, Path(sys.prefix) / "share" / "smd_ros" / "config" / name]
    if not any(p.is_file() for p in candidates):
        try:  # a colcon install elsewhere on the ament index
            from ament_index_python.packages import get_package_share_directory

            candidates.append(Path(get_package_share_directory("smd_ros")) / "config" / name)
        except (ImportError, LookupError, OSError, ValueError):
            pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"config/{name} not found (looked in {', '.join(map(str, candidates))})")


def loopback_env(domain_id: int) -> dict[str, str]:
    """Environment for a loopback-only DDS run on a private domain."""
    from smd_ros.ros_session import dds_profile_env

    env = {**os.environ, **dds_profile_env(find_config("loopback_fastdds.xml"), domain_id)}
    env.pop("ROS_LOCALHOST_ONLY", None)
    # No OpenMP settings: the node chooses its wait policy itself (smd_ros.runtime), as for any user.
    return env


def read_recording(bag: Path, limit: int = 0) -> list[dict[str, Any]]:
    """Frames of a stereo bag: dicts with `stamp_ns`, `left`, `right` (BGR uint8), `left_info`, `right_info`
    (rclpy CameraInfo), grouped by header stamp and sorted. Images are decoded by `smd_ros.sensors`, the
    node's own decoder, so the demo scores what the node sees."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from smd_ros.bags.reader import BagSource
    from smd_ros.sensors import stereo_images

    topics = {"/left/image_rect": "left", "/right/image_rect": "right", "/left/camera_info": "left_info",
              "/right/camera_info": "right_info"}
    types = {"sensor_msgs/msg/CompressedImage": CompressedImage, "sensor_msgs/msg/Image": Image,
             "sensor_msgs/msg/CameraInfo": CameraInfo}
    frames: dict[int, dict[str, Any]] = {}
    for raw in BagSource(bag).messages(set(topics)):
        msg = deserialize_message(bytes(raw.data), types[raw.msgtype])
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        frames.setdefault(stamp, {"stamp_ns": stamp})[topics[raw.topic]] = msg
    complete = [f for _, f in sorted(frames.items()) if len(f) == 5]
    complete = complete[:limit] if limit > 0 else complete
    for frame in complete:
        frame["left"], frame["right"] = stereo_images(frame["left"], frame["right"])
    return complete


class DemoClient:
    """In-process ROS side of the demo: publishes the recording, collects the node's outputs by stamp."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        from stereo_msgs.msg import DisparityImage

        self.node = rclpy.create_node("smd_demo_player")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = input_publishers(self.node, qos)
        self.lock = threading.Lock()
        self.outputs: dict[str, dict[int, tuple[float, Any]]] = {"disparity": {}, "uncertainty": {}, "points2": {}}
        out_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic, mtype in (("disparity", DisparityImage), ("uncertainty", Image), ("points2", PointCloud2)):
            self.node.create_subscription(mtype, topic, self._receiver(topic), out_qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _receiver(self, topic: str) -> Any:
        def callback(msg: Any) -> None:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self.lock:
                self.outputs[topic][stamp] = (time.monotonic(), msg)

        return callback

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.pubs.values())

    def publish(self, frame: dict[str, Any]) -> None:
        from smd_ros.ros_libs import CvBridge

        bridge = CvBridge()
        stamp = frame["left_info"].header.stamp
        for side in ("left", "right"):
            msg = bridge.cv2_to_imgmsg(frame[side], "bgr8")
            msg.header.stamp = stamp
            msg.header.frame_id = frame[f"{side}_info"].header.frame_id
            self.pubs[f"{side}_info"].publish(frame[f"{side}_info"])
            self.pubs[side].publish(msg)

    def count(self, stamps: list[int]) -> int:
        with self.lock:
            return sum(all(s in out for out in self.outputs.values()) for s in stamps)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


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
    from smd_ros.ros_libs import point_cloud2

    pts = np.asarray(point_cloud2.read_points(msg, field_names=("x", "y", "z", "rgb"), skip_nans=False))
    h, w = int(msg.height), int(msg.width)
    xyz = np.stack([pts["x"], pts["y"], pts["z"]], axis=-1).astype(np.float64).reshape(h, w, 3)
    rgb = np.ascontiguousarray(pts["rgb"]).astype(np.float32).view(np.uint32).reshape(h, w)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out/)")
    parser.add_argument("--frames", type=int, default=0, help="play only the first N frames (0: all)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed relative to the recording")
    parser.add_argument("--checkpoint", default="", help="model for the node (default: the bundled bimodal one)")
    parser.add_argument("--standard-checkpoint", default="",
                        help="standard-head model for the comparison (default: the bundled one; 'none' skips it)")
    parser.add_argument("--bag", type=Path, default=DATA_DIR / "sample_stereo", help="rosbag2 folder to play")
    parser.add_argument("--ground-truth", type=Path, default=DATA_DIR / "sample_gt.npz",
                        help="npz with disparity_x256 (F, H, W) for scoring ('' to skip)")
    parser.add_argument("--device", default="cpu", help="node device: cpu (default), cuda or auto")
    parser.add_argument("--domain-id", type=int, default=0, help="ROS domain id (default: random 100-199)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node")


def _start_node(args: argparse.Namespace, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "smd_ros.stereo_node", "--ros-args",
           "-p", f"device:={args.device}", "-p", "use_color:=true", "-p", "organized_cloud:=true",
           "-p", "report_period:=2.0",
           # Played back from a recording: reliable delivery, as `ros2 bag play` offers by default.
           "-p", "sensor_data_qos:=false"]
    if args.checkpoint:
        cmd += ["-p", f"checkpoint:={Path(args.checkpoint).resolve()}"]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(predicate: Any, timeout: float, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise RuntimeError(f"the stereo node exited ({proc.returncode}) while {what}; its log:\n"
                               + log.read_text()[-3000:])
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s {what}; node log: {log}")
        time.sleep(0.05)


def _play(client: DemoClient, frames: list[dict[str, Any]], rate: float) -> list[float]:
    """Publish at the recorded rate; returns each frame's wall-clock send time."""
    t0_stamp = frames[0]["stamp_ns"]
    start = time.monotonic()
    sent = []
    for frame in tqdm(frames, desc="play", unit="frame"):
        due = start + (frame["stamp_ns"] - t0_stamp) / 1e9 / rate
        time.sleep(max(0.0, due - time.monotonic()))
        sent.append(time.monotonic())
        client.publish(frame)
    return sent


def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        raise ValueError(f"--rate must be positive, got {args.rate}")
    frames = read_recording(args.bag, args.frames)
    if not frames:
        raise ValueError(f"{args.bag}: no complete stereo frames (left/right image + camera_info)")
    out = Path(args.out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    domain = args.domain_id or random.Random(os.getpid() ^ time.time_ns()).randint(100, 199)
    env = loopback_env(domain)
    from smd_ros.ros_session import dds_profile_env, ros_session

    os.environ.update({k: env[k] for k in dds_profile_env("", 0)})  # this process's rclpy: the same DDS set-up
    log = out / "node.log"
    print(f"smd demo: {len(frames)} frames from {args.bag}, node on ROS_DOMAIN_ID={domain} (loopback only)")

    proc = _start_node(args, env, log)
    stamps = [f["stamp_ns"] for f in frames]
    t_start = time.monotonic()
    try:
        with ros_session():
            client = DemoClient()
            try:
                _wait(client.connected, args.timeout, proc, "waiting for the node to subscribe", log)
                # Discovery is matched on our side first; give the node's readers time to match our writers
                # so the first frames are not published into the void.
                time.sleep(2.0)
                sent = _play(client, frames, args.rate)
                # The node keeps only the newest set: frames it had no time for are dropped, not queued.
                last = time.monotonic()
                seen = client.count(stamps)
                while seen < len(frames) and time.monotonic() - last < 10.0 and proc.poll() is None:
                    time.sleep(0.1)
                    now = client.count(stamps)
                    if now != seen:
                        seen, last = now, time.monotonic()
                outputs = {k: dict(v) for k, v in client.outputs.items()}
            finally:
                client.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    wall = time.monotonic() - t_start
    summary = _report(args, frames, sent, outputs, out, wall)
    print(json.dumps({k: summary[k] for k in ("frames_in", "frames_out", "latency_ms", "bimodal", "standard",
                                              "sgbm", "sgbm_fill")}, indent=1))
    print(f"smd demo: pictures and summary.json in {out}/")
    return 0 if summary["frames_out"] > 0 else 1


def _standard_predictor(args: argparse.Namespace) -> Any:
    if args.standard_checkpoint.lower() == "none":
        return None
    import smd_core

    if args.standard_checkpoint:
        path = Path(args.standard_checkpoint)
    else:
        from smd_core.weights import standard_checkpoint

        try:
            path = standard_checkpoint()
        except FileNotFoundError as exc:
            print(f"smd demo: no standard-head comparison ({exc})")
            return None
    return smd_core.Predictor(smd_core.load_model(path, device="cpu"))


def _iter_received(frames: list[dict[str, Any]], outputs: dict[str, dict[int, tuple[float, Any]]]) -> Iterator:
    for i, frame in enumerate(frames):
        s = frame["stamp_ns"]
        if all(s in outputs[k] for k in outputs):
            yield i, frame, outputs["disparity"][s], outputs["uncertainty"][s][1], outputs["points2"][s][1]


def _node_max_disp(args: argparse.Namespace) -> float:
    """max_disp of the node's model (SGBM searches the same range)."""
    import smd_core
    from smd_ros.params import resolve_checkpoint

    return float(smd_core.load_model(resolve_checkpoint(args.checkpoint or ""), device="cpu").config.max_disp)


def _report(args: argparse.Namespace, frames: list[dict[str, Any]], sent: list[float],
            outputs: dict[str, dict[int, tuple[float, Any]]], out: Path, wall: float) -> dict[str, Any]:
    from smd_core import viz
    from smd_core.baselines import run_baselines, score_baseline
    from smd_core.classical import SGBMConfig
    from smd_core.metrics import compute_metrics

    gt_all = load_ground_truth(args.ground_truth) if str(args.ground_truth) and Path(args.ground_truth).is_file() \
        else None
    standard = _standard_predictor(args)
    sgbm, max_disp = SGBMConfig(), _node_max_disp(args)
    received = list(_iter_received(frames, outputs))
    rows, std_rows, latencies, sheet = [], [], [], []
    base_rows: dict[str, list[dict[str, Any]]] = {"sgbm": [], "sgbm_fill": []}
    compare_index = received[len(received) // 2][0] if received else -1
    clouds: dict[str, Any] = {}
    for i, frame, (t_recv, dmsg), umsg, cmsg in tqdm(received, desc="score", unit="frame"):
        latencies.append((t_recv - sent[i]) * 1000.0)
        disp = disparity_from_msg(dmsg)
        unc = float_image_from_msg(umsg)
        row: dict[str, Any] = {"frame": i, "stamp_ns": frame["stamp_ns"], "latency_ms": latencies[-1]}
        pictures = [frame["left"], viz.colorize_disparity(disp, 0, 64, unit="px"),
                    viz.colorize_uncertainty(unc, 4.0, unit="px")]
        labels = [f"#{i} left", "disparity", "uncertainty"]
        gt = gt_all[i] if gt_all is not None and i < len(gt_all) else None
        base = run_baselines(BASELINE_NAMES, frame["left"], frame["right"], sgbm, max_disp) \
            if gt is not None or i == compare_index else {}
        if gt is not None:
            row.update(compute_metrics(disp, gt))
            for name, (bdisp, seconds) in base.items():
                base_rows[name].append({**score_baseline(name, bdisp, gt, max_disp=None), "time_s": seconds})
            err = viz.colorize_error(np.abs(disp - gt), 3.0, valid=(gt > 0) & (disp > 0), unit="px")
            pictures.append(err)
            labels.append(f"error EPE {row['epe']:.2f}")
            cv2.imwrite(str(out / "frames" / f"{i:03d}_error.png"), err)
        cv2.imwrite(str(out / "frames" / f"{i:03d}_disparity.png"), pictures[1])
        cv2.imwrite(str(out / "frames" / f"{i:03d}_uncertainty.png"), pictures[2])
        sheet.append((pictures, labels))
        std_disp = None
        if standard is not None:
            std_disp = standard.predict(frame["left"], frame["right"]).disparity
            if gt is not None:
                std_rows.append(compute_metrics(std_disp, gt))
        if i == compare_index:
            clouds = _compare_clouds(out, frame, disp, cmsg, std_disp, base["sgbm"][0], gt)
        rows.append(row)
    if sheet:
        cols = len(sheet[0][0])
        tiles = [p for pics, _ in sheet for p in pics]
        names = [n for _, labels in sheet for n in labels]
        cv2.imwrite(str(out / "contact_sheet.png"), viz.contact_sheet(tiles, cols, width=320, labels=names))
    summary = {
        "frames_in": len(frames),
        "frames_out": len(received),
        "frames_dropped": len(frames) - len(received),
        "latency_ms": {"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
        "bimodal": {k: _mean(rows, k) for k in METRIC_KEYS},
        "standard": {k: _mean(std_rows, k) for k in METRIC_KEYS} if std_rows else None,
        **_baseline_summary(base_rows),
        "units": {"epe": "px", "bad2": "%", "bad3": "%", "see": "px", "bleeding": "% of edge-band pixels",
                  "density": "% of ground-truth pixels", "time_s": "s"},
        "sgbm_settings": {"num_disparities": sgbm.disparities_for(int(max_disp)), "mode": sgbm.mode,
                          "block_size": sgbm.block_size,
                          "holes": "all-pixel figures count every hole as an error (smd_core.baselines); "
                                   "valid_pixels: on SGBM's matched pixels, density = its valid fraction"},
        "cloud_comparison": clouds or None,
        "wall_s": wall,
        "rate": args.rate,
        "bag": str(args.bag),
        "per_frame": rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _baseline_summary(base_rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """summary.json's `sgbm` (all pixels, holes as errors, + `valid_pixels`) and `sgbm_fill` frame means."""
    if not base_rows["sgbm"]:
        return {"sgbm": None, "sgbm_fill": None}
    sgbm = {k: _mean(base_rows["sgbm"], k) for k in (*METRIC_KEYS, "time_s")}
    sgbm["valid_pixels"] = {k: _mean([r["valid_pixels"] for r in base_rows["sgbm"]], k)
                            for k in (*METRIC_KEYS, "density")}
    return {"sgbm": sgbm, "sgbm_fill": {k: _mean(base_rows["sgbm_fill"], k) for k in (*METRIC_KEYS, "time_s")}}


def _compare_clouds(out: Path, frame: dict[str, Any], disp: np.ndarray, cmsg: Any, std_disp: np.ndarray | None,
                    sgbm_disp: np.ndarray, gt: np.ndarray | None) -> dict[str, Any]:
    """cloud_comparison.png: the node's cloud, the standard head's, SGBM's (holes dropped) and the ground
    truth's, side by side and zoomed into boundaries (`smd_ros.demo_pictures`); returns its figures."""
    from smd_ros.demo_pictures import Cloud, cloud_from_disparity, compare_clouds, flying_points
    from smd_ros.messages import stereo_camera

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
    truth = cloud_from_disparity("ground truth", gt, left, camera, None) if gt is not None else None
    return compare_clouds(out / "cloud_comparison.png", left, clouds, camera, truth)
