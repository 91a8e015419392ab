"""The node's input topics (relative names, as stereo_image_proc's), in one place for the node, the demo's
player and the test harness."""

from __future__ import annotations

from typing import Any

# image_transport's names: "raw" is the base topic; "compressed" is `<base>/compressed` (CompressedImage).
TRANSPORTS = ("raw", "compressed")


def inputs(transport: str = "raw") -> dict[str, tuple[str, str]]:
    """key -> (relative topic, message type name in sensor_msgs) of the four inputs for an image transport."""
    if transport not in TRANSPORTS:
        raise ValueError(f"image transport must be one of {TRANSPORTS}, got {transport!r}")
    suffix, image = ("", "Image") if transport == "raw" else ("/compressed", "CompressedImage")
    return {"left": (f"left/image_rect{suffix}", image), "right": (f"right/image_rect{suffix}", image),
            "left_info": ("left/camera_info", "CameraInfo"), "right_info": ("right/camera_info", "CameraInfo")}


def input_publishers(node: Any, qos: Any, transport: str = "raw") -> dict[str, Any]:
    """Publishers for the node's four inputs on `node` (an rclpy Node), keyed as `inputs`."""
    from sensor_msgs import msg

    return {key: node.create_publisher(getattr(msg, kind), topic, qos)
            for key, (topic, kind) in inputs(transport).items()}
