"""The node's input topics (relative names, as stereo_image_proc's), in one place for the node, the demo's
player and the test harness."""

from __future__ import annotations

from typing import Any

# key -> (relative topic, message type name in sensor_msgs), with raw images.
INPUTS: dict[str, tuple[str, str]] = {
    "left": ("left/image_rect", "Image"),
    "right": ("right/image_rect", "Image"),
    "left_info": ("left/camera_info", "CameraInfo"),
    "right_info": ("right/camera_info", "CameraInfo"),
}
# image_transport's names: "raw" is the base topic; "compressed" is `<base>/compressed` (CompressedImage).
TRANSPORTS = ("raw", "compressed")


def inputs(transport: str = "raw") -> dict[str, tuple[str, str]]:
    """`INPUTS` for an image transport: with "compressed" the two images come as CompressedImage on
    `<image topic>/compressed`, as image_transport's compressed plugin publishes them."""
    if transport not in TRANSPORTS:
        raise ValueError(f"image transport must be one of {TRANSPORTS}, got {transport!r}")
    if transport == "raw":
        return dict(INPUTS)
    return {key: (f"{topic}/compressed", "CompressedImage") if kind == "Image" else (topic, kind)
            for key, (topic, kind) in INPUTS.items()}


def input_publishers(node: Any, qos: Any, transport: str = "raw") -> dict[str, Any]:
    """Publishers for the node's four inputs on `node` (an rclpy Node), keyed as `INPUTS`."""
    from sensor_msgs import msg

    return {key: node.create_publisher(getattr(msg, kind), topic, qos)
            for key, (topic, kind) in inputs(transport).items()}
