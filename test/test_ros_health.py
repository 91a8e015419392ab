"""The node's health, CPU settings and worker robustness: pure functions, then one `StereoNode` inside this
process (real rclpy logger, real DDS to a harness node) where a frame can be made to fail in ways no input can."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import pytest

from smd_core.infer.dense import scaled_size

pytest.importorskip("rclpy")
pytest.importorskip("stereo_msgs.msg")

from ros_helpers import NODE_CHECKPOINT, Harness, camera_infos, image_msg, wait_until  # noqa: E402

from smd_ros import health, runtime  # noqa: E402
from smd_ros.ros_session import ros_session  # noqa: E402

H, W = 64, 128

# ------------------------------------------------------------------------------------------------ health levels


def test_window_counts_are_differences():
    assert health.window_counts({"received": 3, "errors": 1}, {"received": 5, "errors": 1, "images": 2}) == {
        "received": 2, "errors": 0, "images": 2}


@pytest.mark.parametrize(
    "window, alive, waiting, level, text",
    [
        ({"received": 5, "published": 5}, False, 0.0, health.ERROR, "worker is not running"),
        ({"received": 5, "published": 4, "errors": 1}, True, 0.0, health.ERROR, "1 frame(s) failed"),
        ({"received": 5, "published": 0, "images": 5}, True, 12.0, health.ERROR, "nothing was published for 12.0 s"),
        ({"received": 5, "published": 3, "rejected": 2}, True, 0.0, health.WARN, "2 input set(s) skipped"),
        ({"images": 5}, True, 0.0, health.WARN, "no synchronized set"),
        ({}, True, 0.0, health.STALE, "no input"),
        ({"received": 0, "images": 0, "published": 0}, True, 0.0, health.STALE, "no input"),
        ({"received": 5, "published": 5, "images": 5}, True, 3.0, health.OK, "ok"),
    ],
)
def test_health_levels(window, alive, waiting, level, text):
    state = health.health(window, worker_alive=alive, waiting_s=waiting, stall_timeout=10.0)
    assert state.level == level and text in state.message


def test_levels_are_diagnostic_msgs_values():
    dm = pytest.importorskip("diagnostic_msgs.msg")
    status = dm.DiagnosticStatus
    assert [bytes([v]) for v in (health.OK, health.WARN, health.ERROR, health.STALE)] == [
        status.OK, status.WARN, status.ERROR, status.STALE]


# ------------------------------------------------------------------------------------------------ runtime


def test_cloud_max_uncertainty_auto_is_the_models_own_in_output_px():
    # auto (-1): the checkpoint's Deployment.cloud_max_uncertainty (network px) times the output scale.
    assert runtime.cloud_max_uncertainty(-1.0, 3.62, 1.0) == pytest.approx(3.62)
    assert runtime.cloud_max_uncertainty(-1.0, 3.62, 2.0) == pytest.approx(7.24)
    assert runtime.cloud_max_uncertainty(-1.0, 0.0, 2.0) == 0.0  # a model that keeps every point
    assert runtime.cloud_max_uncertainty(0.0, 3.62, 1.0) == 0.0
    assert runtime.cloud_max_uncertainty(2.5, 0.0, 1.0) == 2.5


@pytest.mark.parametrize(("precision", "model_safe", "supported", "expected"), [
    ("auto", True, True, True), ("auto", False, True, False), ("auto", True, False, False),
    ("bfloat16", False, True, True), ("bfloat16", True, False, False), ("float32", True, True, False),
])
def test_cpu_precision_choice(precision, model_safe, supported, expected):
    assert runtime.cpu_bfloat16(precision, model_safe, supported) is expected


def test_cpu_precision_rejects_unknown_values():
    with pytest.raises(ValueError, match="'half'"):
        runtime.cpu_bfloat16("half", True, True)


def test_openmp_defaults_leave_a_user_choice_alone():
    env: dict[str, str] = {}
    line = runtime.set_openmp_defaults(env)
    assert env == runtime.WAIT_POLICY_ENV and "smd_ros default" in line
    for user in ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "0"}):
        env = dict(user)
        line = runtime.set_openmp_defaults(env)
        assert env == user and "from the environment" in line and next(iter(user.values())) in line


def test_default_threads_follows_the_cpu_affinity():
    """`threads` 0 means the cores this process may run on (a container's or `taskset`'s), not the machine's."""
    import os

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    cores = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(cores)})  # this thread only: pid 0 is the calling thread
        assert runtime.default_threads() == 1
    finally:
        os.sched_setaffinity(0, cores)
    assert runtime.default_threads() == len(cores)


def test_default_threads_without_affinity_is_the_cpu_count(monkeypatch):
    import os

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert runtime.default_threads() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # undeterminable
    assert runtime.default_threads() == 1


@pytest.mark.parametrize("w, h, scale, limit", [(4000, 3000, 1.0, 2_100_000), (1920, 1080, 2.0, 2_100_000),
                                                (641, 479, 1.0, 100_000), (640, 480, 0.5, 4096)])
def test_input_guard_bounds_the_network_input(w, h, scale, limit):
    g = runtime.input_guard(w, h, scale, limit)
    hn, wn = scaled_size(h, w, scale * g)
    assert g < 1.0 and wn * hn <= limit and wn * hn > 0.98 * limit
    assert abs(wn / hn - w / h) < 0.02 * w / h  # the aspect ratio is kept


def test_input_guard_leaves_small_inputs_and_no_limit_alone():
    assert runtime.input_guard(640, 480, 1.0, 2_100_000) == 1.0
    assert runtime.input_guard(4000, 3000, 0.7, 0) == 1.0
    assert runtime.input_guard(1920, 1080, 1.0, 1920 * 1080) == 1.0
    assert runtime.input_guard(4000, 3000, 0.25, 1_000_000) == 1.0  # 1000x750 after input_scale


def test_max_input_pixels_validation():
    from smd_ros.params import NodeConfig

    with pytest.raises(ValueError, match="max_input_pixels=100 must be 0"):
        NodeConfig(max_input_pixels=100)
    NodeConfig(max_input_pixels=0)


# ------------------------------------------------------------------------------------------------ node pieces


def test_throttled_log_mixes_levels_on_a_real_rclpy_logger():
    """rclpy allows one severity per calling line: a warning and then an error through one ThrottledLog raised
    "Logger severity cannot be changed between calls" (issue 10)."""
    import rclpy.logging

    from smd_ros.node_tools import ThrottledLog

    log = ThrottledLog(rclpy.logging.get_logger("smd_test_throttled"), period=0.0)
    for level in ("warning", "error", "info", "warning", "error"):
        assert log(level, f"key_{level}", f"a {level}")
    with pytest.raises(ValueError, match="log level"):
        log("fatal", "k", "x")


def test_output_qos_is_volatile_keep_last_1():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from smd_ros.stereo_node import output_qos

    for best_effort, rel in ((False, ReliabilityPolicy.RELIABLE), (True, ReliabilityPolicy.BEST_EFFORT)):
        qos = output_qos(best_effort)
        assert qos.reliability == rel and qos.durability == DurabilityPolicy.VOLATILE and qos.depth == 1


def test_raised_at_names_the_innermost_frame():
    from smd_ros.node_tools import raised_at

    def inner():
        raise KeyError("x")

    try:
        inner()
    except KeyError as exc:
        where = raised_at(exc)
    assert where.endswith("in inner") and "test_ros_health.py:" in where


# ------------------------------------------------------------------------------------------------ a node in process


class Unforeseen(Exception):
    """An exception type no code in smd_ros names."""


@pytest.fixture(scope="module")
def frame():
    from smd_core.data.synthetic.render import render_scene

    return render_scene(5, height=H, width=W, max_disparity=16.0)


def good_set(frame, t):
    li, ri = camera_infos(W, H, t)
    return image_msg(frame.left, "bgr8", t), image_msg(frame.right, "bgr8", t), li, ri


@pytest.fixture(scope="module")
def inproc(ros_env):
    import rclpy
    import torch
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from smd_ros.stereo_node import StereoNode

    threads = torch.get_num_threads()
    session = contextlib.ExitStack()
    context = session.enter_context(ros_session(context=rclpy.Context()))
    overrides = [Parameter("checkpoint", value=str(NODE_CHECKPOINT)), Parameter("device", value="cpu"),
                 Parameter("report_period", value=0.3), Parameter("threads", value=1)]
    node = StereoNode(context=context, namespace="inproc", parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin():
        try:
            executor.spin()
        except ExternalShutdownException:
            pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    harness = Harness(namespace="inproc")
    try:
        harness.wait_connected()
        yield node, harness
    finally:
        harness.close()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        session.close()
        thread.join(timeout=5.0)
        torch.set_num_threads(threads)


def wait_logged(capfd, found: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
    """What the process wrote to stderr (from the last `capfd.readouterr()` on) once `found(it)` holds."""
    err: list[str] = []

    def logged() -> bool:
        err.append(capfd.readouterr().err)
        return found("".join(err))

    wait_until(logged, timeout, what)
    return "".join(err)


def levels_since(harness, start: int) -> list[int]:
    with harness.lock:
        return [s.level[0] for s in harness.diagnostics[start:]]


def test_starts_with_threads_and_reports_stale_without_input(inproc):
    import torch
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    node, harness = inproc
    assert torch.get_num_threads() == 1 and node._threads == 1
    wait_until(lambda: levels_since(harness, 0), 10, "a diagnostics report")
    assert levels_since(harness, 0)[0] == health.STALE
    infos = harness.node.get_publishers_info_by_topic("/inproc/points2")
    assert infos and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE and
                         i.qos_profile.durability == DurabilityPolicy.VOLATILE for i in infos)


def test_unforeseen_exception_is_counted_and_the_next_frame_published(inproc, frame, monkeypatch):
    from smd_ros import messages

    node, harness = inproc
    real = messages.stereo_outputs
    t_bad, t_good = 300.0, 300.1

    def fail_once(header, *args, **kwargs):
        if abs(header.stamp.sec + header.stamp.nanosec * 1e-9 - t_bad) < 1e-6:
            raise Unforeseen("injected")
        return real(header, *args, **kwargs)

    monkeypatch.setattr(messages, "stereo_outputs", fail_once)
    start = len(harness.diagnostics)
    errors = node.stats.counts["errors"]
    harness.publish(*good_set(frame, t_bad))
    wait_until(lambda: node.stats.counts["errors"] > errors, 30, "the failing frame")
    assert node.worker.is_alive()
    harness.send(good_set(frame, t_good), t_good)
    assert not harness.outputs_at(t_bad)
    # /diagnostics: ERROR for the window with the failure, then OK again once frames go through.
    wait_until(lambda: health.ERROR in levels_since(harness, start), 10, "an ERROR report")
    first_error = levels_since(harness, start).index(health.ERROR)
    for i in range(20):
        harness.send(good_set(frame, t_good + 0.1 * (i + 1)), t_good + 0.1 * (i + 1))
        if health.OK in levels_since(harness, start + first_error):
            break
    assert health.OK in levels_since(harness, start + first_error)
    counters = harness.latest_counters()
    assert int(counters["errors"]) >= 1


def test_bad_input_warns_for_its_window_only(inproc, frame):
    """One rejected set made /diagnostics WARN forever (cumulative counters); now only its report window."""
    node, harness = inproc
    start = len(harness.diagnostics)
    left, right, li, ri = good_set(frame, 350.0)
    left.encoding = "32FC1"  # a depth encoding: not a camera image
    harness.publish(left, right, li, ri)
    wait_until(lambda: health.WARN in levels_since(harness, start), 20, "a WARN report")
    after = start + levels_since(harness, start).index(health.WARN)
    for i in range(20):
        t = 350.1 + 0.1 * i
        harness.send(good_set(frame, t), t)
        if health.OK in levels_since(harness, after):
            break
    assert health.OK in levels_since(harness, after)
    assert int(harness.latest_counters()["rejected_encoding"]) >= 1  # the counter stays, as a value


def test_images_without_camera_info_warn(inproc, frame):
    node, harness = inproc
    left, right, _, _ = good_set(frame, 360.0)
    start = len(harness.diagnostics)

    def warned():
        with harness.lock:
            return any(s.level[0] == health.WARN and "no synchronized set" in s.message
                       for s in harness.diagnostics[start:])

    end = time.monotonic() + 20
    while not warned() and time.monotonic() < end:
        harness.pubs["left"].publish(left)
        harness.pubs["right"].publish(right)
        time.sleep(0.1)
    assert warned()


def test_first_image_after_a_pause_does_not_warn(inproc, frame, monkeypatch):
    """After a pause in the input longer than the no-sync delay, a timer tick between the first image and the
    rest of its set said "no synchronized set for N s" (it measured from the last set, before the pause)."""
    from smd_ros import stereo_node

    # A shorter delay (read at every timer tick) for a shorter pause; still longer than the 1 s after which the
    # node judges the input afresh.
    monkeypatch.setattr(stereo_node, "NO_SYNC_WARN_S", 1.2)
    NO_SYNC_WARN_S = stereo_node.NO_SYNC_WARN_S
    node, harness = inproc
    t = 380.0
    harness.send(good_set(frame, t), t)
    wait_until(lambda: time.monotonic() - node._last_image > NO_SYNC_WARN_S + 0.5, NO_SYNC_WARN_S + 10,
               "a pause in the input")
    warnings = node.stats.counts["no_sync_warnings"]
    msgs = good_set(frame, t + 10.0)
    harness.pubs["left"].publish(msgs[0])  # the left image first; the rest of its set after a timer tick
    wait_until(lambda: time.monotonic() - node._last_image < 1.0, 20, "the left image at the node")
    ticks = len(harness.diagnostics)  # a report is published at every timer tick (report_period 0.3 s)
    wait_until(lambda: len(harness.diagnostics) > ticks, 10, "a timer tick with the left image alone")
    harness.send(msgs, t + 10.0)
    assert node.stats.counts["no_sync_warnings"] == warnings


def test_failure_log_names_type_and_place(inproc, frame, monkeypatch, capfd):
    from smd_ros import messages

    node, harness = inproc

    def fail(*args, **kwargs):
        raise Unforeseen("injected again")

    monkeypatch.setattr(messages, "stereo_outputs", fail)
    node.throttled._last.pop("frame_error_Unforeseen", None)
    errors = node.stats.counts["errors"]
    harness.publish(*good_set(frame, 310.0))
    err = wait_logged(capfd, lambda err: "frame 310.000000 failed" in err, "the failure's log line", 30)
    assert node.stats.counts["errors"] > errors
    assert "frame 310.000000 failed (Unforeseen at " in err and "test_ros_health.py:" in err and "in fail" in err


def test_time_jump_warning_is_throttled(inproc, frame, capfd):
    """Two sources alternating between stamps 30 s apart: every set is a jump back, one WARN per period."""
    node, harness = inproc
    node.throttled._last.pop("time_jump", None)
    jumps = node.stats.counts["time_jumps"]
    for i in range(20):
        t = 400.0 + 0.01 * i - (30.0 if i % 2 else 0.0)
        node._on_set(*good_set(frame, t))  # logs, if at all, before it returns
    err = wait_logged(capfd, lambda err: "time jumped back" in err, "a time jump warning")
    lines = [line for line in err.splitlines() if "time jumped back" in line]
    assert node.stats.counts["time_jumps"] - jumps >= 10
    assert 1 <= len(lines) <= 2, lines


def test_large_input_is_downscaled_once(inproc, frame, capfd):
    """Above max_input_pixels the whole frame is downscaled (network and outputs, with a camera_info for the
    output grid), said once per image size."""
    node, harness = inproc
    results = harness.set_parameters("/inproc/stereo_node", {"max_input_pixels": 4096})
    assert all(r.successful for r in results), [r.reason for r in results]
    g = runtime.input_guard(W, H, 1.0, 4096)
    hn, wn = scaled_size(H, W, g)
    assert wn * hn <= 4096
    try:
        for t in (500.0, 500.1):
            out = harness.send(good_set(frame, t), t, ("disparity", "points2", "camera_info"))
            assert (out["disparity"].image.width, out["disparity"].image.height) == (wn, hn)
            assert (out["points2"].width, out["points2"].height) == (wn, hn)
            info = out["camera_info"]
            assert (info.width, info.height) == (wn, hn) and info.k[0] == pytest.approx(100.0 * wn / W, rel=0.02)
        # The size line follows the frame's publication.
        err = wait_logged(capfd, lambda err: f"network {wn}x{hn}, outputs {wn}x{hn}" in err, "the size line")
        assert err.count("exceed max_input_pixels=4096") == 1
    finally:
        harness.set_parameters("/inproc/stereo_node", {"max_input_pixels": 2_100_000})


def test_stall_goes_error(inproc, frame, monkeypatch):
    from smd_ros import messages

    node, harness = inproc
    real = messages.stereo_outputs
    release = threading.Event()

    def slow(*args, **kwargs):
        release.wait(20)
        return real(*args, **kwargs)

    assert all(r.successful for r in harness.set_parameters("/inproc/stereo_node", {"stall_timeout": 0.5}))
    monkeypatch.setattr(messages, "stereo_outputs", slow)
    start = len(harness.diagnostics)
    try:
        harness.publish(*good_set(frame, 600.0))
        wait_until(lambda: any(s.level[0] == health.ERROR and "nothing was published" in s.message
                               for s in harness.diagnostics[start:]), 20, "a stall ERROR")
    finally:
        release.set()
        harness.set_parameters("/inproc/stereo_node", {"stall_timeout": 10.0})
    harness.wait_outputs(600.0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_worker_goes_error(inproc, frame, monkeypatch):
    """Last in this module: it ends the worker (a BaseException is not a frame failure)."""
    from smd_ros import messages

    node, harness = inproc

    def die(*args, **kwargs):
        raise SystemExit("worker killed by the test")

    monkeypatch.setattr(messages, "stereo_outputs", die)
    harness.publish(*good_set(frame, 700.0))
    wait_until(lambda: not node.worker.is_alive(), 30, "the worker to end")
    start = len(harness.diagnostics)
    wait_until(lambda: any(s.level[0] == health.ERROR and "worker is not running" in s.message
                           for s in harness.diagnostics[start:]), 10, "a dead-worker ERROR")
