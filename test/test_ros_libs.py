"""smd_ros.ros_libs: the equivalents of message_filters, cv_bridge and point_cloud2 behave as the originals are
documented to; every test also runs on whatever the seam exports (the real packages on a ROS machine)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_helpers import header, image_msg, wait_until  # noqa: E402
from sensor_msgs.msg import Image, PointField  # noqa: E402

from smd_ros import ros_libs  # noqa: E402
from smd_ros.ros_session import ros_session  # noqa: E402

MF = {"own": ros_libs.own_message_filters, "exported": ros_libs.message_filters}
BRIDGE = {"own": ros_libs.own_cv_bridge.CvBridge, "exported": ros_libs.CvBridge}
BRIDGE_ERROR = {"own": ros_libs.own_cv_bridge.CvBridgeError, "exported": ros_libs.CvBridgeError}
PC2 = {"own": ros_libs.own_point_cloud2, "exported": ros_libs.point_cloud2}
WHICH = ["own", "exported"]


def test_backends_are_reported():
    assert set(ros_libs.BACKENDS) == {"message_filters", "cv_bridge", "point_cloud2"}
    assert set(ros_libs.BACKENDS.values()) <= {"ros", "smd_ros"}


# ------------------------------------------------------------------------------------------------ message_filters


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


@pytest.mark.parametrize("which", WHICH)
def test_time_synchronizer_pairs_equal_stamps_in_order(which):
    mf = MF[which]
    a, b = Source(), Source()
    sync = mf.TimeSynchronizer([a, b], 3)
    got = []
    sync.registerCallback(lambda x, y, tag: got.append((x.header.frame_id, y.header.frame_id, tag)), "extra")
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
    assert got[-1][:2] == ("a6", "b6")


@pytest.mark.parametrize("which", WHICH)
def test_approximate_synchronizer_within_slop(which):
    mf = MF[which]
    a, b, c = Source(), Source(), Source()
    sync = mf.ApproximateTimeSynchronizer([a, b, c], 5, 0.05)
    got = []
    sync.registerCallback(lambda *msgs: got.append(tuple(m.header.frame_id for m in msgs)))
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
    """message_filters 6.x: candidates nearest first, the first combination (itertools.product order) spanning
    strictly less than the slop wins, not just each input's nearest message."""
    mf = MF[which]
    a, b, c = Source(), Source(), Source()
    sync = mf.ApproximateTimeSynchronizer([a, b, c], 5, 0.05)
    got = []
    sync.registerCallback(lambda *msgs: got.append(tuple(m.header.frame_id for m in msgs)))
    b.feed(stamped(1.03, "b_late"))
    b.feed(stamped(0.98, "b_near"))
    c.feed(stamped(1.04, "c_near"))
    c.feed(stamped(0.955, "c_early"))
    # Each input's nearest (0.98, 1.04) spans 0.06 > slop; the next combination (0.98, 0.955) spans 0.045.
    a.feed(stamped(1.00, "a"))
    assert got == [("a", "b_near", "c_early")]
    # A span of exactly the slop is not enough (strict comparison).
    d, e = Source(), Source()
    pair = mf.ApproximateTimeSynchronizer([d, e], 5, 0.5)
    pairs = []
    pair.registerCallback(lambda *msgs: pairs.append(tuple(m.header.frame_id for m in msgs)))
    d.feed(stamped(2.0, "d"))
    e.feed(stamped(2.5, "e_exact"))
    assert pairs == []
    e.feed(stamped(2.25, "e"))
    assert pairs == [("d", "e")]


def test_own_synchronizer_arguments_unchecked_like_the_original():
    """The originals accept any queue_size and slop: queue_size 0 keeps nothing, a negative slop matches nothing."""
    mf = ros_libs.own_message_filters
    for sync in (lambda fs: mf.TimeSynchronizer(fs, 0), lambda fs: mf.ApproximateTimeSynchronizer(fs, 5, -1.0),
                 lambda fs: mf.ApproximateTimeSynchronizer(fs, 0, 0.5)):
        d, e = Source(), Source()
        got: list = []
        sync([d, e]).registerCallback(lambda *msgs, store=got: store.append(msgs))
        d.feed(stamped(1.0, "d"))
        e.feed(stamped(1.0, "e"))
        assert got == []
    d, e = Source(), Source()
    got = []
    mf.TimeSynchronizer([d, e], 1).registerCallback(lambda *msgs: got.append(msgs))
    d.feed(stamped(1.0, "d"))
    e.feed(stamped(1.0, "e"))
    assert len(got) == 1


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
    mf = MF[which]
    topic = f"libs_test_{which}"
    best_effort = mf.Subscriber(node, Image, topic, qos_profile=qos_profile_sensor_data)
    default = mf.Subscriber(node, Image, topic)
    assert best_effort.getTopic() == topic
    assert best_effort.sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    # The original's default: reliable, depth 10 (it never matches a best-effort camera driver).
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


# ------------------------------------------------------------------------------------------------ cv_bridge


@pytest.mark.parametrize("which", WHICH)
@pytest.mark.parametrize(
    "array, encoding",
    [
        (np.arange(24, dtype=np.uint8).reshape(4, 6), "mono8"),
        (np.arange(24, dtype=np.uint16).reshape(4, 6) * 1000, "mono16"),
        (np.arange(72, dtype=np.uint8).reshape(4, 6, 3), "bgr8"),
        (np.arange(72, dtype=np.uint8).reshape(4, 6, 3), "rgb8"),
        (np.arange(96, dtype=np.uint8).reshape(4, 6, 4), "bgra8"),
        (np.arange(96, dtype=np.uint8).reshape(4, 6, 4), "rgba8"),
        (np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6), "32FC1"),
    ],
)
def test_bridge_round_trip(which, array, encoding):
    bridge = BRIDGE[which]()
    msg = bridge.cv2_to_imgmsg(array, encoding=encoding, header=header(2.5, "cam"))
    assert (msg.height, msg.width, msg.encoding) == (4, 6, encoding)
    assert msg.step == array.nbytes // 4 and msg.header.frame_id == "cam"
    back = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("which", WHICH)
def test_bridge_passthrough_names_and_checks(which):
    bridge, error = BRIDGE[which](), BRIDGE_ERROR[which]
    assert bridge.cv2_to_imgmsg(np.zeros((2, 3), np.float32)).encoding == "32FC1"
    assert bridge.cv2_to_imgmsg(np.zeros((2, 3, 3), np.uint8)).encoding == "8UC3"
    with pytest.raises(error):
        bridge.cv2_to_imgmsg(np.zeros((2, 3), np.float32), encoding="bgr8")
    with pytest.raises(TypeError):
        bridge.cv2_to_imgmsg([[1, 2]])


@pytest.mark.parametrize("which", WHICH)
def test_bridge_reads_padded_rows_and_converts(which):
    bridge = BRIDGE[which]()
    rgb = np.arange(72, dtype=np.uint8).reshape(4, 6, 3)
    msg = image_msg(rgb, "rgb8", pad=5)
    assert msg.step == 6 * 3 + 5
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), rgb)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, desired_encoding="bgr8"), rgb[..., ::-1])


def test_own_bridge_rejects_bad_messages():
    bridge, error = ros_libs.own_cv_bridge.CvBridge(), ros_libs.own_cv_bridge.CvBridgeError
    msg = image_msg(np.zeros((4, 6), np.uint8), "mono8")
    msg.encoding = "yuv422_weird"
    with pytest.raises(error, match="unsupported image encoding"):
        bridge.imgmsg_to_cv2(msg)
    msg = image_msg(np.zeros((4, 6), np.uint8), "mono8")
    msg.data = msg.data[:10]
    with pytest.raises(error, match="expected height"):
        bridge.imgmsg_to_cv2(msg)
    msg = image_msg(np.zeros((4, 6), np.uint8), "mono8")
    msg.step = 3
    with pytest.raises(error, match="step"):
        bridge.imgmsg_to_cv2(msg)
    with pytest.raises(error, match="not supported"):
        bridge.imgmsg_to_cv2(image_msg(np.zeros((4, 6), np.uint16), "mono16"), desired_encoding="bgr8")
    with pytest.raises(error, match="unsupported array"):
        bridge.cv2_to_imgmsg(np.zeros((2, 3), np.complex64))


def test_own_bridge_big_endian_input():
    bridge = ros_libs.own_cv_bridge.CvBridge()
    values = np.arange(24, dtype=np.uint16).reshape(4, 6) * 300
    msg = image_msg(values.astype(">u2"), "mono16")
    msg.is_bigendian = True
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), values)


# ------------------------------------------------------------------------------------------------ point_cloud2


FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="i", offset=12, datatype=PointField.UINT16, count=1),
]


@pytest.mark.parametrize("which", WHICH)
def test_cloud_from_one_structured_array(which):
    pc2 = PC2[which]
    dtype = pc2.dtype_from_fields(FIELDS, point_step=16)
    assert dtype.itemsize == 16 and dtype.names == ("x", "y", "z", "i")
    pts = np.zeros(5, dtype)
    pts["x"], pts["z"], pts["i"] = np.arange(5), np.array([1, np.nan, 3, 4, 5]), 7
    cloud = pc2.create_cloud(header(1.0, "f"), FIELDS, pts, point_step=16)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, 5, 16, 80)
    assert len(cloud.data) == 80 and cloud.header.frame_id == "f"
    back = pc2.read_points(cloud)
    np.testing.assert_array_equal(back["x"], pts["x"])
    assert (back["i"] == 7).all()
    assert pc2.read_points(cloud, field_names=["x", "z"], skip_nans=True).shape == (4,)
    # An unstructured array with one datatype for all fields works too.
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    cloud = pc2.create_cloud(header(0), FIELDS[:3], xyz)
    np.testing.assert_array_equal(pc2.read_points(cloud)["y"], xyz[:, 1])


@pytest.mark.parametrize("which", WHICH)
def test_cloud_rejects_mismatched_dtype_and_expands_counts(which):
    pc2 = PC2[which]
    wrong = np.zeros(3, np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("i", "<u2")]))
    with pytest.raises(AssertionError):
        pc2.create_cloud(header(0), FIELDS, wrong)
    multi = [PointField(name="n", offset=0, datatype=PointField.FLOAT32, count=3)]
    dtype = pc2.dtype_from_fields(multi)
    assert dtype.names == ("n_0", "n_1", "n_2") and dtype.itemsize == 12


@pytest.mark.parametrize("which", WHICH)
def test_organized_cloud_layout_quirks(which):
    """sensor_msgs_py (rolling 2024-11): a 2-D array (a, b) becomes width a, height b, and
    `read_points(reshape_organized_cloud=True)` reshapes to (width, height); a flat read reshaped to
    (height, width) is the portable way (what the project does)."""
    pc2 = PC2[which]
    dtype = pc2.dtype_from_fields(FIELDS[:3])
    pts = np.zeros((2, 3), dtype)
    pts["x"] = np.arange(6).reshape(2, 3)
    cloud = pc2.create_cloud(header(0), FIELDS[:3], pts)
    assert (cloud.height, cloud.width, cloud.row_step) == (3, 2, 24)
    assert pc2.read_points(cloud, reshape_organized_cloud=True).shape == (2, 3)  # (width, height)
    flat = pc2.create_cloud(header(0), FIELDS[:3], pts.reshape(-1))
    flat.height, flat.width, flat.row_step = 2, 3, 36
    assert pc2.read_points(flat, reshape_organized_cloud=True).shape == (3, 2)  # (width, height) again
    np.testing.assert_array_equal(pc2.read_points(flat).reshape(flat.height, flat.width)["x"], pts["x"])


@pytest.mark.parametrize("which", WHICH)
def test_cloud_errors_are_the_originals(which):
    pc2 = PC2[which]
    with pytest.raises(KeyError):
        pc2.dtype_from_fields([PointField(name="q", offset=0, datatype=99, count=1)])
    with pytest.raises(AssertionError):
        pc2.dtype_from_fields([PointField(name="q", offset=0, datatype=PointField.FLOAT32, count=0)])
    cloud = pc2.create_cloud(header(0), FIELDS[:3], np.zeros(2, pc2.dtype_from_fields(FIELDS[:3])))
    with pytest.raises(AssertionError):
        pc2.read_points(cloud, field_names=["nope"])
    with pytest.raises(AssertionError):
        pc2.create_cloud(header(0), FIELDS, np.zeros((2, 4), np.float32))  # mixed datatypes, unstructured


def test_own_read_points_views_the_message_bytes():
    """Like the original: no copy, so writing to the result writes to the message."""
    pc2 = ros_libs.own_point_cloud2
    cloud = pc2.create_cloud(header(0), FIELDS[:3], np.zeros(2, pc2.dtype_from_fields(FIELDS[:3])))
    pc2.read_points(cloud)["x"][1] = 5.0
    assert pc2.read_points(cloud)["x"][1] == 5.0
