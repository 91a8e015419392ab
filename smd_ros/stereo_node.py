"""The SMD-Nets stereo node: synchronized rectified stereo in (the topics of `stereo_image_proc`, relative);
disparity, uncertainty, point cloud (and optionally depth) out; the topic table is in README.md.

Never behind the camera: the synchronizer's callback only stores the newest set in a one-slot mailbox (a set
still waiting there is dropped and counted); a worker thread runs the network and publishes; the executor only
moves messages, parameters and timers. Bad input is logged (throttled, per kind of problem) and skipped; any
other failure of one frame is counted and logged (throttled, with where it was raised) and the worker goes on.

Run: `ros2 run smd_ros stereo_node --ros-args -p checkpoint:=/path/model.pth` or
`python -m smd_ros.stereo_node --ros-args ...`.
"""

# ruff: noqa: E402 (the OpenMP environment must be set before the imports below load torch, on the torch backend)
from __future__ import annotations

from smd_core.infer.dense import scaled_size
from smd_ros import runtime

OPENMP_STATUS = runtime.set_openmp_defaults()

import dataclasses
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy import qos
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from smd_ros import health, messages, model_loading, sensors
from smd_ros.model_loading import CheckpointError
from smd_ros.node_tools import LatestSlot, Stats, ThrottledLog, raised_at
from smd_ros.params import NodeConfig, declare_parameters, updated_config
from smd_ros.ros_libs import message_filters
from smd_ros.ros_session import ros_session
from smd_ros.sensors import InputError, stamp_ns
from smd_ros.topics import inputs

RCLError = rclpy_implementation.RCLError

try:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
except ImportError:  # diagnostics are optional: the node runs without the package
    DiagnosticArray = None

# A stamp this far behind the newest accepted one is a clock reset (bag loop, simulation restart), not an
# out-of-order frame: accept it and start over instead of rejecting every frame from now on.
TIME_JUMP_RESET_S = 2.0
# Warn when images keep arriving but no synchronized set is formed for this long (missing/mismatched info).
NO_SYNC_WARN_S = 3.0


def output_qos(best_effort: bool) -> qos.QoSProfile:
    """Keep last 1, volatile (a late subscriber gets no stale cloud), reliable or best effort."""
    reliability = qos.ReliabilityPolicy.BEST_EFFORT if best_effort else qos.ReliabilityPolicy.RELIABLE
    return qos.QoSProfile(depth=1, durability=qos.DurabilityPolicy.VOLATILE, reliability=reliability)


@dataclasses.dataclass
class FrameSet:
    left: Image | CompressedImage
    right: Image | CompressedImage
    left_info: CameraInfo
    right_info: CameraInfo
    received: float  # time.monotonic()


class StereoNode(Node):
    """See the module docstring. Raises CheckpointError / ValueError / RuntimeError when it cannot start."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("stereo_node", **node_kwargs)
        # First, so that destroy_node works on a node interrupted (Ctrl-C) half-way through start-up.
        self.slot = LatestSlot()
        self._stop = threading.Event()
        self.worker = threading.Thread(target=self._work, name="smd_inference", daemon=True)
        self.config: NodeConfig = declare_parameters(self)
        self.throttled = ThrottledLog(self.get_logger(), period=self.config.report_period)
        self.stats = Stats()
        self._geometry: tuple | None = None
        self._last_stamp: int | None = None
        self._last_image = 0.0
        # When images started arriving without a synchronized set (None: the last image completed a set, or the
        # input paused). Measured from the first unsynchronized image, not from the last set: after a pause in
        # the input the first image would otherwise look like seconds of images without sets.
        self._unsynced_since: float | None = None
        self._synced_stamp: int | None = None  # stamp of the last set the synchronizer delivered
        self._last_report = self._last_published = time.monotonic()
        self._last_counts: dict[str, int] = {}
        self._busy_since: float | None = None  # when the worker took the frame it is working on
        self._guard_logged: tuple[int, int] | None = None
        self.predictor, self.model_max_disp = self._load_model()

        # sensor_data_qos:=false means ROS's default profile (reliable, keep last 10), the one most publishers use. Not
        # the RMW's "system default": for a Fast DDS reader that is best effort, which would make the switch a no-op.
        sub_qos = qos.qos_profile_sensor_data if self.config.sensor_data_qos else qos.qos_profile_default
        self._pub_qos = output_qos(self.config.output_best_effort)
        self.pub_disparity = self.create_publisher(DisparityImage, "disparity", self._pub_qos)
        self.pub_disparity_image = self.create_publisher(Image, "disparity_image", self._pub_qos)
        self.pub_uncertainty = self.create_publisher(Image, "uncertainty", self._pub_qos)
        self.pub_points = self.create_publisher(PointCloud2, "points2", self._pub_qos)
        # depth and camera_info exist only while something is published on them (publish_depth; an output grid
        # other than the input's), so the graph and the ready line never show an output that stays silent. They
        # are made now when the start-up parameters already need them, else at the first frame that does.
        self._optional_pubs: dict[str, Any] = {}
        if self.config.publish_depth:
            self._optional_publisher("depth")
        if self.config.output_scale != 1.0:
            self._optional_publisher("camera_info")
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10) if DiagnosticArray else None

        # message_filters.Subscriber defaults to reliable depth 10, which never matches a best-effort camera:
        # always pass the QoS explicitly.
        types = {"Image": Image, "CompressedImage": CompressedImage, "CameraInfo": CameraInfo}
        self.subscribers = [message_filters.Subscriber(self, types[kind], topic, qos_profile=sub_qos)
                            for topic, kind in inputs(self.config.image_transport).values()]
        cfg = self.config
        if cfg.approximate_sync:
            self.sync = message_filters.ApproximateTimeSynchronizer(self.subscribers, cfg.queue_size, cfg.sync_slop)
        else:
            self.sync = message_filters.TimeSynchronizer(self.subscribers, cfg.queue_size)
        self.sync.registerCallback(self._on_set)
        # Raw arrivals of the left image, to tell "no camera" from "images but no synchronized set".
        self.subscribers[0].registerCallback(self._on_left_image)

        self.worker.start()
        self.add_on_set_parameters_callback(self._on_parameters)
        self.timer = self.create_timer(0.5, self._on_timer)
        sync = f"approximate (slop {cfg.sync_slop} s)" if cfg.approximate_sync else "exact"
        outputs = (self.pub_disparity, self.pub_uncertainty, self.pub_points, *self._optional_pubs.values())
        self.get_logger().info(
            f"ready: device {self.predictor.device}, model {self._model_name}, {self._threads} threads; "
            f"subscribed to {', '.join(s.sub.topic_name for s in self.subscribers)} "
            f"({'sensor-data' if cfg.sensor_data_qos else 'default (reliable)'} QoS, {sync} sync, queue "
            f"{cfg.queue_size}); publishing {', '.join(p.topic_name for p in outputs)} "
            f"({'best effort' if cfg.output_best_effort else 'reliable'}, volatile); synchronizer: "
            f"{message_filters.__name__}")

    def _optional_publisher(self, topic: str) -> Any:
        pub = self._optional_pubs.get(topic)
        if pub is None:
            msg_type = Image if topic == "depth" else CameraInfo
            pub = self._optional_pubs[topic] = self.create_publisher(msg_type, topic, self._pub_qos)
            if self.worker.is_alive():  # after start-up: the ready line cannot say it any more
                self.get_logger().info(f"publishing {pub.topic_name} from now on")
        return pub

    def _load_model(self) -> tuple[Any, int]:
        log = self.get_logger()
        log.info(OPENMP_STATUS)
        predictor, self._threads, self._model_name = model_loading.load(self.config, log)
        cfg = self.config
        log.info(f"resolution: network input = images x {cfg.input_scale} (padded to multiples of "
                 f"{predictor.pad_multiple}), outputs = images x {cfg.output_scale}; the sizes are logged at the "
                 "first frame")
        log.info("parameters: " + ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(cfg).items()))
        return predictor, predictor.config.max_disp

    def _on_left_image(self, msg: Any) -> None:
        # Registered after the synchronizer: when this image completed a set, `_on_set` has already run.
        self._last_image = time.monotonic()
        if self._unsynced_since is None and stamp_ns(msg) != self._synced_stamp:
            self._unsynced_since = self._last_image
        self.stats.add("images")

    def _on_set(self, left: Any, right: Any, left_info: CameraInfo, right_info: CameraInfo) -> None:
        now, stamp = time.monotonic(), stamp_ns(left)
        self._unsynced_since, self._synced_stamp = None, stamp
        self.stats.add("received")
        if self._last_stamp is not None and stamp <= self._last_stamp:
            if (self._last_stamp - stamp) * 1e-9 < TIME_JUMP_RESET_S:
                self.stats.add("rejected")
                self.stats.add("rejected_out_of_order")
                self.throttled("warning", "out_of_order",
                               f"dropping out-of-order set: stamp {stamp * 1e-9:.6f} is not newer than "
                               f"{self._last_stamp * 1e-9:.6f}")
                return
            self.stats.add("time_jumps")
            self.throttled("warning", "time_jump", f"time jumped back by {(self._last_stamp - stamp) * 1e-9:.1f} s "
                           "(bag loop or simulation restart?): starting over")
        self._last_stamp = stamp
        if self.slot.put(FrameSet(left, right, left_info, right_info, now)) is not None:
            self.stats.add("dropped_stale")

    def _on_parameters(self, params: list[Any]) -> SetParametersResult:
        new, reason = updated_config(self.config, [(p.name, p.value) for p in params])
        if new is None:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        changed = {k: v for k, v in dataclasses.asdict(new).items() if getattr(self.config, k) != v}
        self.config = new  # one reference swap: the worker reads a consistent snapshot per frame
        self.throttled.period = new.report_period
        if changed:
            self.get_logger().info(f"parameters changed: {changed}")
        return SetParametersResult(successful=True)

    def _on_timer(self) -> None:
        now = time.monotonic()
        if now - self._last_image >= 1.0:
            self._unsynced_since = None  # the input paused: what follows is judged afresh
        unsynced = now - self._unsynced_since if self._unsynced_since is not None else 0.0
        if unsynced > NO_SYNC_WARN_S:
            self.stats.add("no_sync_warnings")
            self.throttled("warning", "no_sync",
                           f"images arrive but no synchronized set for {unsynced:.0f} s: are "
                           "left/camera_info and right/camera_info published with the images' stamps"
                           f"{' (within sync_slop)' if self.config.approximate_sync else ' (exact sync)'}?")
        if now - self._last_report >= self.config.report_period:
            self._last_report = now
            self._report()

    def _waiting_s(self) -> float:
        """How long synchronized input has waited for an output: the frame in the worker, else the slot's."""
        now, busy = time.monotonic(), self._busy_since
        if busy is not None:
            return now - busy
        return now - self._last_published if len(self.slot) else 0.0

    def _report(self) -> None:
        counts, window, seconds = self.stats.snapshot()
        rate = len(window) / seconds if seconds > 0 else 0.0
        ms = np.array(window, dtype=float).reshape(-1, 3) * 1e3  # per frame: latency, model, overhead
        figures = (ms[:, 0].mean(), ms[:, 0].max(), ms[:, 1].mean(), ms[:, 2].mean()) if len(ms) else [np.nan] * 4
        names = ("latency_mean_ms", "latency_max_ms", "model_mean_ms", "overhead_mean_ms")
        summary = {"rate_hz": f"{rate:.2f}", **{k: f"{v:.1f}" for k, v in zip(names, figures, strict=True)},
                   "queued": str(len(self.slot))}
        # The main counters, then the per-kind ones (rejected_<kind>, no_sync_warnings) as they appear.
        for key in ("received", "published", "dropped_stale", "rejected", "errors", *sorted(counts)):
            summary.setdefault(key, str(counts.get(key, 0)))
        # Log only when something happened since the last report; /diagnostics gets every report.
        previous, self._last_counts = self._last_counts, counts
        if counts != previous:
            self.get_logger().info(
                f"{rate:.1f} Hz, latency {summary['latency_mean_ms']} ms mean / {summary['latency_max_ms']} ms max "
                f"(model {summary['model_mean_ms']} ms, node {summary['overhead_mean_ms']} ms); received "
                f"{summary['received']}, published {summary['published']}, dropped stale {summary['dropped_stale']}, "
                f"rejected {summary['rejected']}, errors {summary['errors']}")
        if self.pub_diag is None:
            return
        state = health.health(health.window_counts(previous, counts), worker_alive=self.worker.is_alive(),
                              waiting_s=self._waiting_s(), stall_timeout=self.config.stall_timeout)
        status = DiagnosticStatus(level=bytes([state.level]), name=f"{self.get_fully_qualified_name()}: stereo",
                                  message=state.message, hardware_id=str(self.predictor.device),
                                  values=[KeyValue(key=k, value=v) for k, v in summary.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.slot.take(timeout=0.2)
                if frame is None:
                    continue
                self._busy_since = time.monotonic()
                try:
                    self._process(frame)
                except InputError as exc:
                    self.stats.add("rejected")
                    self.stats.add(f"rejected_{exc.kind}")
                    self.throttled("warning", f"input_{exc.kind}", f"skipping frame: {exc}")
                except Exception as exc:  # noqa: BLE001 (no failure of one frame may end the worker)
                    self.stats.add("errors")
                    self.throttled("error", f"frame_error_{type(exc).__name__}",
                                   f"frame {stamp_ns(frame.left) * 1e-9:.6f} failed ({type(exc).__name__} at "
                                   f"{raised_at(exc)}): {exc}")
                finally:
                    self._busy_since = None
        finally:
            if not self._stop.is_set():  # /diagnostics goes ERROR (worker not alive); say why once
                self.get_logger().fatal("the inference worker stopped: no more outputs will be published")

    def _process(self, frame: FrameSet) -> None:
        cfg = self.config
        t0 = time.monotonic()
        left, right = sensors.stereo_images(frame.left, frame.right, image_bits=cfg.image_bits)
        h, w = left.shape[:2]
        camera = sensors.stereo_camera(frame.left_info, frame.right_info, w, h)
        guard = runtime.input_guard(w, h, cfg.input_scale, cfg.max_input_pixels)
        scale = cfg.input_scale * guard
        hn, wn = scaled_size(h, w, scale)
        h_out, w_out = scaled_size(h, w, cfg.output_scale * guard)
        resized = (w_out, h_out) != (w, h)
        if resized:
            camera = camera.scaled(w_out, h_out)
        self.predictor.chunk_points = cfg.chunk_points
        if guard < 1.0 and self._guard_logged != (w, h):
            self._guard_logged = (w, h)
            self.get_logger().warning(
                f"images {w}x{h} x input_scale {cfg.input_scale:g} exceed max_input_pixels={cfg.max_input_pixels}: "
                f"frames of this size are downscaled by {guard:.3f} (network {wn}x{hn}, outputs {w_out}x{h_out} "
                "with their camera_info)")
        t1 = time.monotonic()
        pred = self.predictor.predict(left, right, output_size=(h_out, w_out), input_scale=scale)
        t2 = time.monotonic()
        max_uncertainty = runtime.cloud_max_uncertainty(
            cfg.max_uncertainty, self.predictor.deployment.cloud_max_uncertainty, pred.disparity_scale)
        header = frame.left.header
        out = messages.stereo_outputs(
            header, pred.disparity, pred.uncertainty, camera, max_disparity=self.model_max_disp * pred.disparity_scale,
            left_bgr=left if cfg.use_color else None, left_info=frame.left_info if resized else None,
            max_uncertainty=max_uncertainty, speckle_size=cfg.speckle_size, speckle_range=cfg.speckle_range,
            mask_disparity_by_uncertainty=cfg.mask_disparity_by_uncertainty,
            min_depth=cfg.depth_range[0], max_depth=cfg.depth_range[1], organized=cfg.organized_cloud,
            publish_depth=cfg.publish_depth)
        self.pub_disparity.publish(out.disparity)
        if self.pub_disparity_image.get_subscription_count():
            self.pub_disparity_image.publish(out.disparity.image)
        self.pub_uncertainty.publish(out.uncertainty)
        self.pub_points.publish(out.points)
        if out.depth is not None:
            self._optional_publisher("depth").publish(out.depth)
        if out.camera_info is not None:
            self._optional_publisher("camera_info").publish(out.camera_info)
        self._last_published = t3 = time.monotonic()
        self.stats.frame(latency=t3 - frame.received, model=t2 - t1, overhead=(t1 - t0) + (t3 - t2))
        geometry = (w, h, wn, hn, w_out, h_out, frame.left.encoding)
        if geometry != self._geometry:  # the first frame, or the images or the scales changed
            first = self._geometry is None
            self._geometry = geometry
            self.get_logger().info(
                f"{'first frame' if first else 'resolution changed'}: images {w}x{h} ({frame.left.encoding}), "
                f"network {wn}x{hn}, outputs {w_out}x{h_out}, frame '{header.frame_id}'; {out.valid_points} valid "
                f"points; model {1e3 * (t2 - t1):.0f} ms, node {1e3 * ((t1 - t0) + (t3 - t2)):.0f} ms")

    def destroy_node(self) -> None:
        self._stop.set()
        self.slot.close()
        if self.worker.is_alive():
            self.worker.join(timeout=30.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console entry point (`ros2 run smd_ros stereo_node`); returns the exit status."""
    try:
        with ros_session(args=args):
            try:
                node = StereoNode()
            except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as exc:
                if not rclpy.ok():  # Ctrl-C during start-up: the signal handler shut the context down under us
                    return 0
                rclpy.logging.get_logger("stereo_node").fatal(f"cannot start: {exc}")
                return 1
            try:
                rclpy.spin(node)
            except RCLError:
                # Jazzy's executor can build its wait set just after Ctrl-C's handler shut the context down;
                # that is a shutdown, not a failure.
                if rclpy.ok():
                    raise
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

