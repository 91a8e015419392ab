"""smd_ros.ros_libs: the synchronizer stand-in pairs messages as message_filters does. Where message_filters is
installed the same tests also run on it, and the node must have picked it."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")

from ros_helpers import header, wait_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from smd_ros import ros_libs  # noqa: E402
from smd_ros.ros_session import ros_session  # noqa: E402

# The stand-in, and ROS's message_filters where it is installed (then the seam exports it).
IMPLEMENTATIONS = {"stand-in": ros_libs}
if ros_libs.message_filters is not ros_libs:
    IMPLEMENTATIONS["message_filters"] = ros_libs.message_filters
WHICH = list(IMPLEMENTATIONS)


def test_the_seam_exports_message_filters_where_installed():
    try:
        import message_filters
    except ImportError:
        assert ros_libs.message_filters is ros_libs
    else:
        assert ros_libs.message_filters is message_filters


class Source:
    """Stands in for a Subscriber: anything with registerCallback feeds a synchronizer."""

    def __init__(self):
        self.callbacks = []

    def registerCallback(self, cb, *args):  # noqa: N802
        self.callbacks.append((cb, args))
        return len(self.callbacks) - 1

    def feed(self, msg):
        for cb, args in self.callbacks:
            cb(msg, *args)


def stamped(t, name=""):
    return Image(header=header(t, name))


def collect(sync, *extra):
    got = []
    sync.registerCallback(lambda *out: got.append(tuple(m if isinstance(m, str) else m.header.frame_id for m in out)),
                          *extra)
    return got


@pytest.mark.parametrize("which", WHICH)
def test_time_synchronizer_pairs_equal_stamps_oldest_first(which):
    a, b = Source(), Source()
    got = collect(IMPLEMENTATIONS[which].TimeSynchronizer([a, b], 3), "extra")
    a.feed(stamped(1.0, "a1"))
    a.feed(stamped(2.0, "a2"))
    assert got == []
    b.feed(stamped(2.0, "b2"))
    b.feed(stamped(1.0, "b1"))
    assert got == [("a2", "b2", "extra"), ("a1", "b1", "extra")]
    # Queue size 3: the oldest unmatched stamps are forgotten.
    for t in (3.0, 4.0, 5.0, 6.0):
        a.feed(stamped(t, f"a{t:g}"))
    b.feed(stamped(3.0, "b3"))
    assert len(got) == 2
    b.feed(stamped(6.0, "b6"))
    assert got[-1] == ("a6", "b6", "extra")


@pytest.mark.parametrize("which", WHICH)
def test_approximate_synchronizer_within_slop(which):
    a, b, c = Source(), Source(), Source()
    got = collect(IMPLEMENTATIONS[which].ApproximateTimeSynchronizer([a, b, c], 5, 0.05))
    a.feed(stamped(1.00, "a"))
    b.feed(stamped(1.02, "b"))
    c.feed(stamped(1.2, "c_far"))  # outside the slop: no set
    assert got == []
    c.feed(stamped(1.01, "c"))
    assert got == [("a", "b", "c")]
    # Used messages are removed: the far one needs new partners.
    a.feed(stamped(1.21, "a2"))
    b.feed(stamped(1.19, "b2"))
    assert got[-1] == ("a2", "b2", "c_far")


@pytest.mark.parametrize("which", WHICH)
def test_approximate_synchronizer_follows_the_original_policy(which):
    """Candidates nearest first; the first combination (itertools.product order) spanning strictly less than the
    slop wins, not just each input's nearest message."""
    mf = IMPLEMENTATIONS[which]
    a, b, c = Source(), Source(), Source()
    got = collect(mf.ApproximateTimeSynchronizer([a, b, c], 5, 0.05))
    b.feed(stamped(1.03, "b_late"))
    b.feed(stamped(0.98, "b_near"))
    c.feed(stamped(1.04, "c_near"))
    c.feed(stamped(0.955, "c_early"))
    # Each input's nearest (0.98, 1.04) spans 0.06 > slop; the next combination (0.98, 0.955) spans 0.045.
    a.feed(stamped(1.00, "a"))
    assert got == [("a", "b_near", "c_early")]
    # A span of exactly the slop is not enough (strict comparison).
    d, e = Source(), Source()
    pairs = collect(mf.ApproximateTimeSynchronizer([d, e], 5, 0.5))
    d.feed(stamped(2.0, "d"))
    e.feed(stamped(2.5, "e_exact"))
    assert pairs == []
    e.feed(stamped(2.25, "e"))
    assert pairs == [("d", "e")]


@pytest.mark.parametrize("which", WHICH)
def test_approximate_synchronizer_queue_drops_the_oldest(which):
    d, e = Source(), Source()
    got = collect(IMPLEMENTATIONS[which].ApproximateTimeSynchronizer([d, e], 2, 0.1))
    for t in (1.0, 2.0, 3.0):
        d.feed(stamped(t, f"d{t:g}"))
    e.feed(stamped(1.0, "e1"))  # its partner was dropped
    e.feed(stamped(2.6, "e2.6"))
    e.feed(stamped(2.7, "e2.7"))
    e.feed(stamped(2.0, "e2"))  # older than e's full queue of 2: dropped at once, though d holds 2.0
    assert got == []
    e.feed(stamped(3.05, "e3"))
    assert got == [("d3", "e3")]


@pytest.fixture(scope="module")
def rcl_node(ros_env):
    import rclpy
    from rclpy.node import Node

    with ros_session(context=rclpy.Context()) as context:
        node = Node("ros_libs_test", context=context)
        yield node, context
        node.destroy_node()


@pytest.mark.parametrize("which", WHICH)
def test_subscriber_uses_the_given_qos_and_passes_messages(which, rcl_node):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    node, context = rcl_node
    mf = IMPLEMENTATIONS[which]
    topic = f"libs_test_{which.replace('-', '_')}"
    best_effort = mf.Subscriber(node, Image, topic, qos_profile=qos_profile_sensor_data)
    default = mf.Subscriber(node, Image, topic)
    assert best_effort.sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    # message_filters' default: reliable, depth 10 (it never matches a best-effort camera driver).
    assert default.sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert default.sub.qos_profile.depth == 10
    got = []
    best_effort.registerCallback(lambda m: got.append(m.header.frame_id))
    pub = node.create_publisher(Image, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        wait_until(lambda: pub.get_subscription_count() >= 2, 10, "subscriptions")
        end = time.monotonic() + 10
        while not got and time.monotonic() < end:
            pub.publish(stamped(1.0, "hello"))
            executor.spin_once(timeout_sec=0.1)
        assert got and got[0] == "hello"
    finally:
        executor.remove_node(node)
        node.destroy_publisher(pub)
        for s in (best_effort, default):
            node.destroy_subscription(s.sub)
