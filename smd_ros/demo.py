"""`smd demo`: the real stereo node on the bundled recording, over real DDS, with pictures.

1. starts `stereo_node` as its own process with the bundled bimodal model (or `--checkpoint`) on a
   loopback-only Fast DDS profile and a private domain id (nothing leaves 127.0.0.1);
2. warms it up on copies of the first frame stamped before the recording (`WARMUP_ANSWERS`), then plays the
   bundled rosbag2 recording (`smd_ros/data/sample_stereo`) into it as raw `sensor_msgs/Image`, no faster than
   the node answers (`auto_rate`);
3. collects every `disparity`, `uncertainty` and `points2` output, then sends the real Middlebury Motorcycle pair
   with its calibration (`--no-real` skips it);
4. `smd_ros.demo_report` scores the outputs with `smd eval`'s code beside the standard (L1) head and the classical
   matchers and writes `demo_out/` (pictures, contact sheet, cloud comparisons, `summary.json`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from smd_ros.sensors import stamp_ns
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
    with contextlib.suppress(ImportError, LookupError, OSError, ValueError):  # a colcon install elsewhere
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("smd_ros")) / "config" / name)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"config/{name} not found (looked in {', '.join(map(str, candidates))})")


def read_recording(bag: Path, limit: int = 0) -> list[dict[str, Any]]:
    """Frames of a stereo bag by header stamp: dicts with `stamp_ns`, `left`, `right` (BGR uint8, decoded by the
    node's own decoder: the demo scores what the node sees), `left_info`, `right_info` (rclpy CameraInfo)."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs import msg as sensor_msgs

    from smd_ros.bags.reader import BagSource
    from smd_ros.sensors import stereo_images

    topics = {"/left/image_rect": "left", "/right/image_rect": "right", "/left/camera_info": "left_info",
              "/right/camera_info": "right_info"}
    frames: dict[int, dict[str, Any]] = {}
    for raw in BagSource(bag).messages(set(topics)):
        msg = deserialize_message(bytes(raw.data), getattr(sensor_msgs, raw.msgtype.rsplit("/", 1)[-1]))
        frames.setdefault(stamp_ns(msg), {"stamp_ns": stamp_ns(msg)})[topics[raw.topic]] = msg
    complete = [f for _, f in sorted(frames.items()) if len(f) == 5][: limit or None]
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
        self.pubs = input_publishers(self.node, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.lock = threading.Lock()
        # topic -> stamp -> (receive time, message)
        self.outputs: dict[str, dict[int, tuple[float, Any]]] = {"disparity": {}, "uncertainty": {}, "points2": {}}
        out_qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic, mtype in (("disparity", DisparityImage), ("uncertainty", Image), ("points2", PointCloud2)):
            self.node.create_subscription(mtype, topic, functools.partial(self._receive, topic), out_qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _receive(self, topic: str, msg: Any) -> None:
        with self.lock:
            self.outputs[topic][stamp_ns(msg)] = (time.monotonic(), msg)

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


@contextlib.contextmanager
def _node_process(args: argparse.Namespace, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """The stereo node as its own process, logging to `log`; stopped with SIGINT (killed if it hangs) on exit."""
    cmd = [sys.executable, "-m", "smd_ros.stereo_node", "--ros-args",
           "-p", f"device:={args.device}", "-p", "use_color:=true", "-p", "organized_cloud:=true",
           "-p", "report_period:=2.0", "-p", f"backend:={args.backend}",
           # Played back from a recording: reliable delivery, as `ros2 bag play` offers by default.
           "-p", "sensor_data_qos:=false"]
    if args.checkpoint:
        cmd += ["-p", f"checkpoint:={Path(args.checkpoint).resolve()}"]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait(predicate: Any, timeout: float, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise RuntimeError(f"the stereo node exited ({proc.returncode}) while {what}; its log:\n"
                               + log.read_text()[-3000:])
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s {what}; node log: {log}")
        time.sleep(0.05)


def restamped(frame: dict[str, Any], stamp: int) -> dict[str, Any]:
    """A copy of a recorded frame whose camera_infos (and so images: `DemoClient.publish`) carry `stamp` (ns)."""
    from builtin_interfaces.msg import Time

    out = dict(frame, stamp_ns=stamp)
    for key in ("left_info", "right_info"):
        out[key] = copy.deepcopy(frame[key])
        out[key].header.stamp = Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
    return out


def _warm_up(client: DemoClient, frame: dict[str, Any], proc: subprocess.Popen, log: Path,
             timeout: float) -> tuple[int, float]:
    """Send copies of `frame` stamped before the recording until the node answered WARMUP_ANSWERS of them;
    returns how many were sent and the seconds the last answer took."""
    deadline, stamps, took = time.monotonic() + timeout, [], 0.0
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


def real_frame(stamp: int, frame_id: str = "motorcycle_left_optical_frame") -> dict[str, Any]:
    """The Middlebury Motorcycle pair (`smd_core.data.real_sample`) as the node receives a stereo set: BGR
    images, ground truth, and the left / right CameraInfo of its calibration (P_right carries -fx B and the
    right principal point cx + doffs), stamped `stamp` (ns)."""
    from sensor_msgs.msg import CameraInfo

    from smd_core.data.real_sample import load_motorcycle, motorcycle_camera

    sample, cam = load_motorcycle(), motorcycle_camera()
    frame = {"stamp_ns": stamp, "left": sample["left"], "right": sample["right"], "gt": sample["disp_left"],
             "name": sample["name"]}
    for side, cx, tx in (("left", cam.cx, 0.0), ("right", cam.cx + cam.doffs, -cam.fx * cam.baseline)):
        frame[f"{side}_info"] = CameraInfo(height=cam.height, width=cam.width, distortion_model="plumb_bob",
                                           d=[0.0] * 5, k=[cam.fx, 0.0, cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0],
                                           r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                                           p=[cam.fx, 0.0, cx, tx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        frame[f"{side}_info"].header.frame_id = frame_id
    return restamped(frame, stamp)


def _answer_real(client: DemoClient, stamp: int, proc: subprocess.Popen, log: Path,
                 timeout: float) -> dict[str, Any] | None:
    """The Motorcycle pair (`real_frame`) with the node's outputs to it (topic -> (receive time, message)), or None
    (with a note) when it did not answer."""
    try:  # ImportError: a runtime install has no loader of the pair (it comes with pip install .[torch])
        frame = real_frame(stamp)
        client.publish(frame)
        _wait(lambda: client.count([stamp]) == 1, timeout, proc, "waiting for the node's answer to the real scene", log)
    except (ImportError, TimeoutError, RuntimeError) as exc:
        print(f"smd demo: no real-scene comparison: {str(exc).splitlines()[0]}")
        return None
    with client.lock:
        return dict(frame, outputs={k: v[stamp] for k, v in client.outputs.items()})


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
    from smd_ros.ros_session import dds_profile_env, ros_session

    # Loopback only, a private domain; this process's rclpy gets the same DDS set-up as the node.
    os.environ.update(dds_profile_env(find_config("loopback_fastdds.xml"), domain))
    # The node's environment: the profile decides the transport; no OpenMP settings (the node chooses them).
    env = {k: v for k, v in os.environ.items() if k != "ROS_LOCALHOST_ONLY"}
    log, stamps, t_start = out / "node.log", [f["stamp_ns"] for f in frames], time.monotonic()
    print(f"smd demo: {len(frames)} frames from {args.bag}, node on ROS_DOMAIN_ID={domain} (loopback only)")
    with _node_process(args, env, log) as proc, ros_session(), contextlib.closing(DemoClient()) as client:
        _wait(client.connected, args.timeout, proc, "waiting for the node to subscribe", log)
        warmups, took = _warm_up(client, frames[0], proc, log, args.timeout)
        rate = args.rate or auto_rate(stamps, took)
        print(f"smd demo: node warmed up ({WARMUP_ANSWERS} answers to {warmups} copies of frame 0, the last in "
              f"{1000 * took:.0f} ms); playing at {rate:.2f}x the recorded rate")
        start, sent = time.monotonic(), []  # each frame's wall-clock send time
        for frame in tqdm(frames, desc="play", unit="frame"):
            time.sleep(max(0.0, start + (frame["stamp_ns"] - stamps[0]) / 1e9 / rate - time.monotonic()))
            sent.append(time.monotonic())
            client.publish(frame)
        # The node keeps only the newest set: frames it had no time for are dropped, not queued. Nothing newer
        # follows the last one, so it is answered unless the node fails: wait for it.
        last, seen = time.monotonic(), client.count(stamps)
        while not client.count(stamps[-1:]) and time.monotonic() - last < TAIL_IDLE_S and proc.poll() is None:
            time.sleep(0.05)
            if client.count(stamps) != seen:
                seen, last = client.count(stamps), time.monotonic()
        outputs = {k: {s: v[s] for s in stamps if s in v} for k, v in client.outputs.items()}
        real = _answer_real(client, stamps[-1] + WARMUP_LEAD_NS, proc, log, args.timeout) if args.real else None
    from smd_ros.demo_report import report

    summary = report(args, frames, sent, outputs, out, time.monotonic() - t_start, real, rate=rate)
    print(json.dumps({k: summary[k] for k in ("frames_in", "frames_out", "latency_ms", "bimodal", "standard",
                                              "sgbm", "sgbm_fill")}, indent=1))
    print(f"smd demo: pictures and summary.json in {out}/")
    return 0 if summary["frames_out"] > 0 else 1
