"""The stereo node as its own process over real rclpy/DDS (loopback-only profile, private domain id).

One node process (the bundled default model in float32, 64x128 synthetic pairs) serves the checks in this
module, in order: outputs and their agreement with `smd_core.Predictor` and the geometry; run-time parameters;
every bad input followed by a good frame; a 30 Hz burst against the CPU model. Two more processes check the
subscription options (approximate sync with reliable QoS; compressed transport). Start-up, and every reason the
node cannot start, are checked in-process (`test_ros_node_startup.py`).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("stereo_msgs.msg")

from ros_helpers import (  # noqa: E402
    NODE_CHECKPOINT,
    Harness,
    NodeProcess,
    camera_infos,
    compressed_msg,
    image_msg,
    organized_points,
    stamp_of,
    wait_until,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # each test runs a node process (3-13 s)

H, W = 64, 128
FX, BASELINE = 100.0, 0.2
_stamps = itertools.count()


def next_stamp() -> float:
    # 0.1 s apart: far more than float rounding, far less than the node's clock-reset threshold.
    return 100.0 + 0.1 * next(_stamps)


@pytest.fixture(scope="module")
def frame():
    from smd_core.data.synthetic.render import render_scene

    return render_scene(3, height=H, width=W, max_disparity=16.0)


def good_set(frame, t):
    li, ri = camera_infos(W, H, t, fx=FX, baseline=BASELINE)
    return image_msg(frame.left, "bgr8", t), image_msg(frame.right, "bgr8", t), li, ri


@pytest.fixture(scope="module")
def stereo(ros_env, tmp_path_factory):
    # ROS_PYTHON_CHECK_FIELDS: rclpy checks every message field's type and range (fx = 1e39 once failed there).
    # cpu_precision float32: the node's outputs can then be compared with a float32 Predictor's to 1e-4 (auto would
    # pick bfloat16 autocast for this model on CPUs that have it).
    node = NodeProcess({"checkpoint": str(NODE_CHECKPOINT), "device": "cpu", "report_period": 0.5,
                        "cpu_precision": "float32"},
                       {**ros_env, "ROS_PYTHON_CHECK_FIELDS": "1"}, tmp_path_factory.mktemp("stereo_node"))
    harness = Harness()
    try:
        harness.wait_connected(node)
        yield node, harness
    finally:
        harness.close()
        rc = node.stop()
    assert rc == 0, f"node did not shut down cleanly ({rc}):\n{node.log()}"


def run_frame(stereo, frame, topics=("disparity", "uncertainty", "points2")):
    node, harness = stereo
    t = next_stamp()
    return t, harness.send(good_set(frame, t), t, topics, node=node)


def as_array(img) -> np.ndarray:
    assert img.encoding == "32FC1" and img.step == img.width * 4
    return np.frombuffer(img.data, np.float32).reshape(img.height, img.width)


# ------------------------------------------------------------------------------------------------ outputs


def test_outputs_match_predictor_and_geometry(stereo, frame):
    import torch
    from sensor_msgs.msg import Image, PointCloud2
    from stereo_msgs.msg import DisparityImage

    import smd_core
    from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE, StereoCamera, disparity_to_points, remove_speckles
    from smd_core.infer.dense import fill_speckles
    from smd_ros import runtime
    from smd_ros.messages import pack_rgb

    node, _ = stereo
    t, out = run_frame(stereo, frame)
    disp_msg, unc_msg, cloud = out["disparity"], out["uncertainty"], out["points2"]
    assert isinstance(disp_msg, DisparityImage) and isinstance(unc_msg, Image) and isinstance(cloud, PointCloud2)
    for msg in (disp_msg, disp_msg.image, unc_msg, cloud):
        assert stamp_of(msg) == pytest.approx(t, abs=1e-9) and msg.header.frame_id == "left_optical"
    disp, unc = as_array(disp_msg.image), as_array(unc_msg)
    assert disp.shape == unc.shape == (H, W)
    assert disp_msg.f == pytest.approx(FX) and disp_msg.t == pytest.approx(BASELINE)
    assert disp_msg.min_disparity == 0.0 and disp_msg.max_disparity == pytest.approx(128.0)
    assert 0 < disp_msg.delta_d < 1e-3

    # The node's disparity is the dense predictor's on the same input.
    model = smd_core.load_model(NODE_CHECKPOINT, device="cpu")
    with torch.inference_mode():
        pred = smd_core.Predictor(model, device="cpu").predict(frame.left, frame.right)
    valid = disp >= disp_msg.min_disparity
    # Almost everywhere: on ~2 % of this frame, far background whose true disparity is ~1 px, the bundled model
    # gives 0 (no depth).
    assert valid.mean() > 0.97, "the model predicts a disparity almost everywhere (a dense map)"
    np.testing.assert_allclose(disp[valid], pred.disparity[valid], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(unc, pred.uncertainty, rtol=1e-4, atol=1e-3)
    win = disp_msg.valid_window
    assert win.width > 0 and win.x_offset + win.width <= W and win.y_offset + win.height <= H

    # Organized cloud: rows x cols, the points of the published disparity through the camera geometry; the
    # default max_uncertainty (auto) keeps the pixels within the bundled model's own threshold.
    assert (cloud.height, cloud.width, cloud.point_step) == (H, W, 16) and not cloud.is_dense
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    pts = organized_points(cloud)
    camera = StereoCamera(fx=FX, fy=FX, cx=(W - 1) / 2, cy=(H - 1) / 2, baseline=BASELINE, width=W, height=H)
    confident = valid & (unc <= runtime.cloud_max_uncertainty(-1.0, model.deployment.cloud_max_uncertainty, 1.0))
    kept = remove_speckles(disp, confident, max_size=SPECKLE_SIZE, max_diff=SPECKLE_RANGE_PX)  # the defaults
    assert 0 < kept.mean() < valid.mean(), kept.mean()
    want = disparity_to_points(disp, camera, valid=kept)
    got = np.dstack([pts["x"], pts["y"], pts["z"]])
    np.testing.assert_allclose(got[kept], want[kept], rtol=1e-5)
    assert np.isnan(got[~kept]).all()
    np.testing.assert_array_equal(pts["rgb"], pack_rgb(frame.left))

    # The disparity is the mode with the highest density pi / sigma, never the mixture mean (its speckles
    # refilled as the checkpoint's deployment says).
    mode = np.where(pred.pi0 / pred.sigma0 > pred.pi1 / pred.sigma1, pred.mu0, pred.mu1)
    if model.deployment.speckle_size:
        mode = fill_speckles(mode, pred.uncertainty, max_size=model.deployment.speckle_size,
                             max_diff=SPECKLE_RANGE_PX)[0]
    np.testing.assert_allclose(disp[valid], mode[valid], rtol=1e-4, atol=1e-3)

    # Inputs use the sensor-data QoS (best effort), passed explicitly to message_filters.Subscriber.
    from rclpy.qos import ReliabilityPolicy

    infos = stereo[1].node.get_subscriptions_info_by_topic("/left/image_rect")
    assert infos and all(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)

    log = node.log()
    assert "device cpu" in log and "backbone sgbm_guided" in log and str(NODE_CHECKPOINT) in log
    assert "ready: device cpu, model guided_bimodal.pt (sgbm_guided" in log and "publishing /disparity" in log
    assert "OpenMP wait policy" in log
    # depth (publish_depth false) and camera_info (output grid = input grid) would stay silent: neither exists.
    ready = next(line for line in log.splitlines() if "ready:" in line)
    published = ready.split("publishing ", 1)[1]
    assert "/uncertainty" in published and "/depth" not in published and "/camera_info" not in published
    assert stereo[1].node.count_publishers("/depth") == stereo[1].node.count_publishers("/camera_info") == 0
    assert f"first frame: images {W}x{H}" in log and f"outputs {W}x{H}" in log


def test_runtime_parameters(stereo, frame):
    node, harness = stereo
    results = harness.set_parameters("/stereo_node", {"output_scale": 1.5, "organized_cloud": False,
                                                      "publish_depth": True})
    assert all(r.successful for r in results), [r.reason for r in results]
    refused = harness.set_parameters("/stereo_node", {"checkpoint": "/tmp/other.pth"})
    assert not refused[0].successful and "model reload" in refused[0].reason
    refused = harness.set_parameters("/stereo_node", {"queue_size": 2})
    assert not refused[0].successful and "restart" in refused[0].reason

    t, out = run_frame(stereo, frame, ("disparity", "uncertainty", "points2", "depth", "camera_info"))
    h2, w2 = 96, 192
    assert as_array(out["disparity"].image).shape == as_array(out["uncertainty"]).shape == (h2, w2)
    info = out["camera_info"]
    assert (info.width, info.height) == (w2, h2) and stamp_of(info) == pytest.approx(t)
    assert info.k[0] == pytest.approx(FX * 1.5) and info.k[2] == pytest.approx(((W - 1) / 2 + 0.5) * 1.5 - 0.5)
    assert out["disparity"].f == pytest.approx(FX * 1.5)
    log = node.log()
    assert "publishing /depth from now on" in log and "publishing /camera_info from now on" in log
    depth = as_array(out["depth"])
    cloud = out["points2"]
    n_valid = int(np.isfinite(depth).sum())
    assert cloud.is_dense and cloud.height == 1 and cloud.width == n_valid > 0
    # Depth agrees with the (super-resolved) disparity and the scaled focal length.
    disp = as_array(out["disparity"].image)
    ok = np.isfinite(depth)
    np.testing.assert_allclose(depth[ok], FX * 1.5 * BASELINE / disp[ok], rtol=1e-5)

    # An uncertainty threshold below every pixel's empties the cloud and the depth, not the disparity.
    # A half-size network input keeps the output grid (images x output_scale).
    results = harness.set_parameters("/stereo_node", {"max_uncertainty": 1e-3, "input_scale": 0.5})
    assert all(r.successful for r in results)
    t, out = run_frame(stereo, frame, ("disparity", "points2", "depth"))
    assert out["points2"].width == 0 and np.isnan(as_array(out["depth"])).all()
    assert as_array(out["disparity"].image).shape == (h2, w2)
    assert (as_array(out["disparity"].image) > 0).mean() > 0.99

    results = harness.set_parameters("/stereo_node", {"output_scale": 1.0, "organized_cloud": True,
                                                      "publish_depth": False, "max_uncertainty": 0.0,
                                                      "input_scale": 1.0})
    assert all(r.successful for r in results)
    log = node.log()
    assert "parameters changed" in log and "parameter change refused" in log
    assert f"resolution changed: images {W}x{H} (bgr8), network {W // 2}x{H // 2}, outputs 192x96" in log


# ------------------------------------------------------------------------------------------------ bad input


def make_bad(case: str, frame, t: float):
    left, right, li, ri = good_set(frame, t)
    if case == "encoding_float_nan":
        left = image_msg(np.full((H, W), np.nan, np.float32), "32FC1", t)
    elif case == "encoding_yuv":
        left.encoding = "nv12"  # YUV 4:2:0: not in the decoder's table (YUV 4:2:2 is)
    elif case == "size_mismatch":
        right = image_msg(frame.right[:, : W - 8].copy(), "bgr8", t)
    elif case == "info_size":
        li.width = ri.width = W * 2
    elif case == "zero_focal":
        li.p = [0.0] * 12
        ri.p = [0.0] * 12
    elif case == "zero_baseline":
        ri.p[3] = 0.0
    elif case == "nonfinite_calibration":
        li.p[0] = ri.p[0] = float("inf")
        ri.p[3] = float("nan")
    elif case == "empty_image":
        left.height = left.width = left.step = 0
        left.data = []
    elif case == "truncated_image":
        right.data = right.data[: len(right.data) // 2]
    elif case == "mono16_odd_step":
        left, right = mono16_odd_step(frame, t)
    elif case == "float32_calibration":
        # Finite as float64 but not as float32 (the DisparityImage's f).
        li.p[0] = ri.p[0] = li.p[5] = ri.p[5] = 1e39
        ri.p[3] = -1e39 * BASELINE
    return left, right, li, ri


def mono16_odd_step(frame, t):
    """A mono16 pair whose left rows are 2 * width + 1 bytes long: rows of half a pixel."""
    grey = (frame.left[..., 1].astype(np.uint16) << 4)
    left = image_msg(grey, "mono16", t, pad=1)
    right = image_msg((frame.right[..., 1].astype(np.uint16) << 4), "mono16", t)
    return left, right


BAD_CASES = [
    ("encoding_float_nan", "rejected_encoding", "unsupported encoding '32FC1'"),
    ("encoding_yuv", "rejected_encoding", "unsupported encoding"),
    ("size_mismatch", "rejected_size_mismatch", "but right image is"),
    ("info_size", "rejected_info_size", "camera_info describes"),
    ("zero_focal", "rejected_calibration", "focal length must be positive"),
    ("zero_baseline", "rejected_calibration", "baseline must be positive"),
    ("nonfinite_calibration", "rejected_calibration", "not finite as float32"),
    ("empty_image", "rejected_empty", "empty image"),
    ("truncated_image", "rejected_layout", "data bytes"),
    ("mono16_odd_step", "rejected_layout", "not a multiple of"),
    ("float32_calibration", "rejected_calibration", "float32"),
    ("out_of_order", "rejected_out_of_order", "out-of-order"),
    ("missing_camera_info", "no_sync_warnings", "no synchronized set"),
]


@pytest.mark.parametrize("case, counter, log_text", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_skipped_and_the_next_good_frame_published(stereo, frame, case, counter, log_text):
    node, harness = stereo
    # Counters come with /diagnostics every 0.5 s; start from a report newer than the last good frame.
    n = len(harness.diagnostics)
    wait_until(lambda: len(harness.diagnostics) > n, 10, "a fresh diagnostics report")
    before = harness.counter(counter)
    if case == "out_of_order":
        t_bad = max(harness.stamps()) - 0.05
        harness.publish(*good_set(frame, t_bad))
    elif case == "missing_camera_info":
        t_bad = next_stamp()
        left, right, _, _ = good_set(frame, t_bad)
        # Images alone, for longer than the node's no-sync warning delay.
        end = time.monotonic() + 60
        while harness.counter(counter) <= before and time.monotonic() < end:
            harness.publish(left, right, None, None)
            time.sleep(0.2)
    else:
        t_bad = next_stamp()
        harness.publish(*make_bad(case, frame, t_bad))
    wait_until(lambda: harness.counter(counter) > before, 60, f"counter {counter} to grow")
    assert node.alive()
    t, out = run_frame(stereo, frame)
    assert set(out) == {"disparity", "uncertainty", "points2"}
    assert not harness.outputs_at(t_bad, ("disparity", "uncertainty", "points2")), "bad input produced output"
    assert log_text in node.log()


def wait_diagnostics(harness, n=1, timeout=10.0):
    start = len(harness.diagnostics)
    wait_until(lambda: len(harness.diagnostics) >= start + n, timeout, f"{n} fresh diagnostics report(s)")


def publish_until_counted(harness, msgs, counter: str, timeout: float = 60.0) -> None:
    """Publish `msgs` until `counter` grows (a best-effort set can be lost; a seen one is not counted twice
    under this counter: its repeat is rejected as out of order)."""
    before = harness.counter(counter)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        harness.publish(*msgs)
        try:
            wait_until(lambda: harness.counter(counter) > before, min(5.0, end - time.monotonic()), counter)
            return
        except AssertionError:
            pass
    raise AssertionError(f"{counter} did not grow in {timeout} s")


def test_warning_then_error_kind_keeps_the_worker(stereo, frame):
    """Repro (issue 10): an unsupported encoding (a warning), then a mono16 frame with step 2 * width + 1 (which
    took the error path) raised rclpy's "Logger severity cannot be changed" in the worker and ended it."""
    node, harness = stereo
    publish_until_counted(harness, make_bad("encoding_yuv", frame, next_stamp()), "rejected_encoding")
    publish_until_counted(harness, make_bad("mono16_odd_step", frame, next_stamp()), "rejected_layout")
    run_frame(stereo, frame)
    assert node.alive() and "severity cannot be changed" not in node.log()


def test_error_kind_then_out_of_order_keeps_the_node(stereo, frame):
    """Repro (issue 10): the odd-step frame first, then a repeated stamp (a warning on the executor thread) made
    the process exit with code 1."""
    node, harness = stereo
    bad = make_bad("mono16_odd_step", frame, next_stamp())
    publish_until_counted(harness, bad, "rejected_layout")
    publish_until_counted(harness, bad, "rejected_out_of_order")  # the same stamp again
    run_frame(stereo, frame)
    assert node.alive() and "severity cannot be changed" not in node.log()


def test_clock_jump_back_starts_over(stereo, frame):
    """A stamp far in the past (a looping bag, a restarted simulation) is a new start, not an old frame."""
    node, harness = stereo
    t_back = max(harness.stamps()) - 30.0
    harness.send(good_set(frame, t_back), t_back, node=node)
    assert "time jumped back" in node.log()
    run_frame(stereo, frame)  # and later stamps still work


# ------------------------------------------------------------------------------------------------ real time


def vga_set(vga, t):
    li, ri = camera_infos(640, 480, t, fx=FX, baseline=BASELINE)
    return image_msg(vga.left, "bgr8", t), image_msg(vga.right, "bgr8", t), li, ri


def idle_counters(harness, after: int) -> dict[str, str] | None:
    """The latest diagnostics counters if they came in the second report or later after the first `after` reports
    (so made after the moment `after` was read) and say the node is idle: no set waiting, and every set it received
    published, dropped or rejected (none in the worker); else None."""
    with harness.lock:
        if len(harness.diagnostics) <= after + 1:
            return None
    counters = harness.latest_counters()
    done = sum(int(counters.get(k, "0")) for k in ("published", "dropped_stale", "rejected", "errors"))
    return counters if counters["queued"] == "0" and int(counters["received"]) == done else None


def test_30hz_input_with_slow_model_drops_stale_sets(stereo):
    """A 30 Hz VGA camera: the bundled model needs more than 100 ms a frame on a CPU (README), so most sets
    are dropped as stale, never queued."""
    from smd_core.data.synthetic.render import render_scene

    node, harness = stereo
    vga = render_scene(5, height=480, width=640, max_disparity=48.0)
    reports = len(harness.diagnostics)
    counters = wait_until(lambda: idle_counters(harness, reports), 30, "the node to be idle")
    dropped_before, node_published_before = int(counters["dropped_stale"]), int(counters["published"])
    published_before = len(harness.stamps())
    sets = [vga_set(vga, next_stamp()) for _ in range(45)]
    period = 1 / 30
    start = time.monotonic()
    for i, msgs in enumerate(sets):
        harness.publish(*msgs)
        time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
    stop = time.monotonic()
    last = stamp_of(sets[-1][0])
    # The newest set is never dropped: once the burst ends the node finishes with it (or one just before it if
    # the transport lost the very last messages) and then goes quiet.
    wait_until(lambda: any(s >= stamp_of(sets[-3][0]) - 1e-6 for s in harness.stamps()), 90, "the newest set")
    # Then until a later report says the node is idle and every frame it published since the burst began is here:
    # nothing more can follow.
    reports = len(harness.diagnostics)

    def settled() -> bool:
        counters = idle_counters(harness, reports)
        return counters is not None and (len(harness.stamps()) - published_before
                                         >= int(counters["published"]) - node_published_before)

    try:
        wait_until(settled, 30, "the node to go idle with every output delivered")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: counters {harness.latest_counters()}, {len(harness.stamps())} outputs "
                             "here") from None
    with harness.lock:
        burst = [(rt, stamp_of(m)) for rt, m in harness.received["disparity"][published_before:]]
    stamps = [s for _, s in burst]
    assert len(stamps) < len(sets) / 2, "a slow model cannot keep up with 30 Hz: most sets must be dropped"
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[-1] >= stamp_of(sets[-3][0]) - 1e-6 and stamps[-1] <= last + 1e-6
    # No backlog: after the input stops, at most the frame in progress and the one waiting in the slot follow.
    assert sum(rt > stop for rt, _ in burst) <= 2
    wait_until(lambda: harness.counter("dropped_stale") > dropped_before, 10, "dropped_stale in diagnostics")
    counters = harness.latest_counters()
    assert int(counters["queued"]) <= 1
    assert int(counters["dropped_stale"]) - dropped_before >= len(sets) - len(stamps) - 5
    assert node.alive()


def test_approximate_sync_and_reliable_qos(ros_env, tmp_path, frame):
    """approximate_sync pairs camera_info stamped a little off the images; sensor_data_qos:=false is reliable."""
    from rclpy.qos import ReliabilityPolicy

    node = NodeProcess({"checkpoint": str(NODE_CHECKPOINT), "device": "cpu", "approximate_sync": True,
                        "sync_slop": 0.02, "sensor_data_qos": False, "use_color": False}, ros_env, tmp_path, "approx",
                       namespace="approx")  # apart from the module's node
    harness = Harness(namespace="approx")
    try:
        harness.wait_connected(node)
        infos = harness.node.get_subscriptions_info_by_topic("/approx/right/camera_info")
        assert infos and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        t = 500.0
        left, right, _, _ = good_set(frame, t)
        li, ri = camera_infos(W, H, t + 0.01, fx=FX, baseline=BASELINE)
        out = harness.send((left, right, li, ri), t, node=node)
        assert [f.name for f in out["points2"].fields] == ["x", "y", "z"]
        assert "approximate (slop 0.02 s)" in node.log()
    finally:
        harness.close()
        rc = node.stop()
    assert rc == 0, node.log()


def test_compressed_image_transport(ros_env, tmp_path, frame, stereo):
    """image_transport:=compressed subscribes to <image>/compressed; a lossless PNG pair gives the disparity
    of the same pair sent raw to the module's node."""
    node = NodeProcess({"checkpoint": str(NODE_CHECKPOINT), "device": "cpu", "image_transport": "compressed",
                        "cpu_precision": "float32"},  # as the module's node, so the two disparities are equal
                       ros_env, tmp_path, "compressed", namespace="compressed")
    harness = Harness(namespace="compressed", transport="compressed")
    try:
        harness.wait_connected(node)
        assert harness.node.get_subscriptions_info_by_topic("/compressed/left/image_rect/compressed")
        assert not harness.node.get_subscriptions_info_by_topic("/compressed/left/image_rect")
        t = 600.0
        li, ri = camera_infos(W, H, t, fx=FX, baseline=BASELINE)
        out = harness.send((compressed_msg(frame.left, "png", t), compressed_msg(frame.right, "png", t), li, ri),
                           t, node=node)
    finally:
        harness.close()
        rc = node.stop()
    assert rc == 0, node.log()
    _, raw = run_frame(stereo, frame)
    np.testing.assert_array_equal(as_array(out["disparity"].image), as_array(raw["disparity"].image))
