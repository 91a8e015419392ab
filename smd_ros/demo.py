"""`smd demo`: the real stereo node on the bundled recording, over real DDS, with pictures.

1. starts `stereo_node` as its own process with the bundled light bimodal model, on a loopback-only Fast DDS
   profile and a private domain id (nothing leaves 127.0.0.1);
2. warms it up on copies of the first frame stamped before the recording (`WARMUP_ANSWERS`), then plays the
   bundled rosbag2 recording (`smd_ros/data/sample_stereo`, mcap) into it at its recorded rate, decoding its
   JPEG images to `sensor_msgs/Image` as `image_transport` would;
3. receives every `disparity`, `uncertainty` and `points2` output; then sends the real Middlebury Motorcycle
   pair with its calibration (`--no-real` skips it) and receives the node's answer;
4. `smd_ros.demo_report` scores the outputs against the ground truth beside the standard (L1) head and the
   classical matchers on the same frames and writes `demo_out/`: per-frame pictures with colour bars (px),
   `contact_sheet.png` (every recorded frame; dropped ones marked), `cloud_comparison.png` and
   `cloud_comparison_real.png` (`smd_ros.demo_pictures`: the node's cloud, the L1 head's, SGBM's, BM's and
   the ground truth's, with counts, densities and flying points, and zooms at the boundaries with the most
   flying points) and `summary.json`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from smd_ros.topics import input_publishers

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
# Before the recording plays, the node answers this many copies of its first frame (stamped earlier, never
# scored): its first frames pay one-time costs (allocations, kernel selection, page faults) that would otherwise
# make it drop recorded frames; an answer also proves both directions of the DDS link are matched.
WARMUP_ANSWERS = 2
WARMUP_LEAD_NS = 5_000_000_000  # warm-up stamps lie this far before the recording (newer ones follow)
WARMUP_RESEND_S = 3.0  # a warm-up copy not answered by then may have been sent before the node's readers matched
AUTO_RATE_MARGIN = 1.3  # the auto playback leaves the node this factor of its warm-up answer time per frame
TAIL_IDLE_S = 10.0  # after playback, give up on the last frame when no output arrived for this long


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
        from std_msgs.msg import Header

        from smd_ros.messages import image_msg

        stamp = frame["left_info"].header.stamp
        for side in ("left", "right"):
            msg = image_msg(Header(stamp=stamp, frame_id=frame[f"{side}_info"].header.frame_id), frame[side], "bgr8")
            self.pubs[f"{side}_info"].publish(frame[f"{side}_info"])
            self.pubs[side].publish(msg)

    def count(self, stamps: list[int]) -> int:
        with self.lock:
            return sum(all(s in out for out in self.outputs.values()) for s in stamps)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out/)")
    parser.add_argument("--frames", type=int, default=None, help="play only the first N frames (N >= 1; default all)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="playback speed relative to the recording (default 0: auto, as fast as the recording "
                             "but no faster than the node answered its warm-up frames, so that none is dropped)")
    parser.add_argument("--checkpoint", default="", help="model for the node: a checkpoint or an `smd export` .onnx "
                        "file (default: the bundled bimodal one)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="the node's backend (auto: by the model file's type; the bundled model runs on torch "
                        "where it is installed, else on onnxruntime)")
    parser.add_argument("--standard-checkpoint", default="",
                        help="standard-head model for the comparison (default: the bundled one; 'none' skips it)")
    parser.add_argument("--bag", type=Path, default=DATA_DIR / "sample_stereo", help="rosbag2 folder to play")
    parser.add_argument("--ground-truth", type=Path, default=DATA_DIR / "sample_gt.npz",
                        help="npz with disparity_x256 (F, H, W) for scoring ('' to skip)")
    parser.add_argument("--device", default="cpu", help="node device: cpu (default), cuda or auto")
    parser.add_argument("--domain-id", type=int, default=0, help="ROS domain id (default: random 100-199)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the node")
    parser.add_argument("--no-real", dest="real", action="store_false",
                        help="skip the real scene (Middlebury Motorcycle, sent to the node after the recording)")


def _start_node(args: argparse.Namespace, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "smd_ros.stereo_node", "--ros-args",
           "-p", f"device:={args.device}", "-p", "use_color:=true", "-p", "organized_cloud:=true",
           "-p", "report_period:=2.0", "-p", f"backend:={args.backend}",
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


def restamped(frame: dict[str, Any], stamp_ns: int) -> dict[str, Any]:
    """A copy of a recorded frame whose camera_infos (and so images: `DemoClient.publish`) carry `stamp_ns`."""
    from builtin_interfaces.msg import Time

    out = dict(frame, stamp_ns=stamp_ns)
    for key in ("left_info", "right_info"):
        out[key] = copy.deepcopy(frame[key])
        out[key].header.stamp = Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return out


def _warm_up(client: DemoClient, frame: dict[str, Any], proc: subprocess.Popen, log: Path,
             timeout: float) -> tuple[int, float]:
    """Send copies of `frame` stamped before the recording until the node answered WARMUP_ANSWERS of them
    (see WARMUP_ANSWERS); returns how many were sent and the seconds the last answer took."""
    deadline = time.monotonic() + timeout
    stamps: list[int] = []
    took = 0.0
    while client.count(stamps) < WARMUP_ANSWERS:
        stamps.append(frame["stamp_ns"] - WARMUP_LEAD_NS + len(stamps) * 1_000_000)
        sent = time.monotonic()
        client.publish(restamped(frame, stamps[-1]))
        answered, resend = client.count(stamps), time.monotonic() + WARMUP_RESEND_S
        # Wait for an answer to this copy; resend when none came (sent before the node's readers matched).
        _wait(lambda a=answered, r=resend: client.count(stamps) > a or time.monotonic() > r,
              deadline - time.monotonic(), proc, "warming up the node (no answer to its first frame)", log)
        took = time.monotonic() - sent
    return len(stamps), took


def auto_rate(stamps_ns: list[int], answer_s: float) -> float:
    """Playback speed (<= 1) at which frames come no faster than the node answers (`answer_s` per frame, with
    AUTO_RATE_MARGIN to spare): the node keeps only the newest set, so a faster recording drops frames."""
    if len(stamps_ns) < 2 or answer_s <= 0:
        return 1.0
    period = statistics.median(b - a for a, b in zip(stamps_ns, stamps_ns[1:], strict=False)) / 1e9
    return min(1.0, period / (AUTO_RATE_MARGIN * answer_s))


def _answer_real(client: DemoClient, stamp_ns: int, proc: subprocess.Popen, log: Path,
                 timeout: float) -> dict[str, Any] | None:
    """Send the Middlebury Motorcycle pair (`demo_report.real_frame`) to the node and return it with the node's
    outputs, or None (with a note) when it did not answer."""
    from smd_ros.demo_report import real_frame

    try:
        frame = real_frame(stamp_ns)
    except ImportError as exc:  # a runtime install: the pair comes with scikit-image (pip install .[torch])
        print(f"smd demo: no real-scene comparison: {exc}")
        return None
    client.publish(frame)
    s = frame["stamp_ns"]
    try:
        _wait(lambda: client.count([s]) == 1, timeout, proc, "waiting for the node's answer to the real scene", log)
    except (TimeoutError, RuntimeError) as exc:
        print(f"smd demo: no real-scene comparison: {str(exc).splitlines()[0]}")
        return None
    with client.lock:
        frame["outputs"] = (client.outputs["disparity"][s], client.outputs["uncertainty"][s][1],
                            client.outputs["points2"][s][1])
    return frame


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
    if args.rate < 0:
        raise ValueError(f"--rate must be positive (or 0: auto), got {args.rate}")
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be at least 1 (omit it to play every frame), got {args.frames}")
    frames = read_recording(args.bag, args.frames or 0)
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
                warmups, took = _warm_up(client, frames[0], proc, log, args.timeout)
                rate = args.rate or auto_rate(stamps, took)
                print(f"smd demo: node warmed up ({WARMUP_ANSWERS} answers to {warmups} copies of frame 0, the last in "
                      f"{1000 * took:.0f} ms); playing at {rate:.2f}x the recorded rate")
                sent = _play(client, frames, rate)
                # The node keeps only the newest set: frames it had no time for are dropped, not queued. Nothing
                # newer follows the last one, so it is answered unless the node fails: wait for it.
                last, seen = time.monotonic(), client.count(stamps)
                while not client.count(stamps[-1:]) and time.monotonic() - last < TAIL_IDLE_S and proc.poll() is None:
                    time.sleep(0.05)
                    if client.count(stamps) != seen:
                        seen, last = client.count(stamps), time.monotonic()
                outputs = {k: {s: v[s] for s in stamps if s in v} for k, v in client.outputs.items()}
                real = _answer_real(client, stamps[-1] + WARMUP_LEAD_NS, proc, log, args.timeout) \
                    if args.real else None
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
    from smd_ros.demo_report import report

    summary = report(args, frames, sent, outputs, out, wall, real, rate=rate)
    print(json.dumps({k: summary[k] for k in ("frames_in", "frames_out", "latency_ms", "bimodal", "standard",
                                              "sgbm", "sgbm_fill")}, indent=1))
    print(f"smd demo: pictures and summary.json in {out}/")
    return 0 if summary["frames_out"] > 0 else 1
