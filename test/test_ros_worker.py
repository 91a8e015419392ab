"""The stereo node's plumbing without DDS: the latest-frame slot, the throttled log, the counters."""

from __future__ import annotations

import threading
import time

import pytest

from smd_ros.node_tools import LatestSlot, Stats, ThrottledLog


def test_latest_slot_keeps_only_the_newest_item():
    slot = LatestSlot()
    assert len(slot) == 0 and slot.take(timeout=0.01) is None
    assert slot.put("a") is None
    assert slot.put("b") == "a"  # the stale item comes back so the caller can count the drop
    assert len(slot) == 1
    assert slot.take(timeout=0.01) == "b" and len(slot) == 0


def test_latest_slot_wakes_a_waiting_taker_and_closes():
    slot = LatestSlot()
    got = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    taker.start()
    time.sleep(0.05)
    slot.put("frame")
    taker.join(timeout=5)
    assert got == ["frame"]
    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=10)))
    waiter.start()
    time.sleep(0.05)
    slot.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and got[-1] is None


class FakeLogger:
    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(("warning", msg))

    def error(self, msg):
        self.lines.append(("error", msg))


def test_throttled_log_is_per_key_and_counts_repeats():
    now = [0.0]
    logger = FakeLogger()
    log = ThrottledLog(logger, period=5.0, clock=lambda: now[0])
    assert log("warning", "encoding", "bad encoding")
    assert not log("warning", "encoding", "bad encoding")
    assert log("error", "calibration", "bad calibration")  # another key is not throttled
    now[0] = 2.0
    assert not log("warning", "encoding", "bad encoding")
    now[0] = 6.0
    assert log("warning", "encoding", "bad encoding again")
    assert logger.lines == [("warning", "bad encoding"), ("error", "bad calibration"),
                            ("warning", "bad encoding again (2 more since the last report)")]


def test_stats_windows():
    stats = Stats()
    stats.add("received", 3)
    stats.add("dropped_stale")
    stats.frame(latency=0.5, model=0.4, overhead=0.01)
    counts, window, seconds = stats.snapshot()
    assert counts == {"received": 3, "dropped_stale": 1, "published": 1}
    assert window == [(0.5, 0.4, 0.01)] and seconds >= 0
    counts, window, _ = stats.snapshot()
    assert counts["published"] == 1 and window == []  # counters are cumulative, the window restarts


def test_ctrl_c_during_start_up_exits_cleanly(monkeypatch, ros_env):
    """SIGINT while the model loads: rclpy's shutdown destroys the half-built node, which must not raise."""
    pytest.importorskip("rclpy")
    from smd_ros import stereo_node

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(stereo_node.StereoNode, "_load_model", interrupted)
    assert stereo_node.main(["stereo_node", "--ros-args", "-p", "device:=cpu"]) == 0
