"""The node's input topics (relative names, as stereo_image_proc's), in one place for the node, the demo's
player and the test harness."""

from __future__ import annotations

from typing import Any

# key -> (relative topic, message type name in sensor_msgs)
INPUTS: dict[str, tuple[str, str]] = {
    "left": ("left/image_rect", "Image"),
    "right": ("right/image_rect", "Image"),
    "left_info": ("left/camera_info", "CameraInfo"),
    "right_info": ("right/camera_info", "CameraInfo"),
}


def input_publishers(node: Any, qos: Any) -> dict[str, Any]:
    """Publishers for the node's four inputs on `node` (an rclpy Node), keyed as `INPUTS`."""
    from sensor_msgs import msg

    return {key: node.create_publisher(getattr(msg, kind), topic, qos) for key, (topic, kind) in INPUTS.items()}
