"""Arrays out as ROS messages (`stereo_outputs`: every output of one frame); no node, no I/O, nothing per pixel
in Python. Messages in are `smd_ros.sensors`' job."""

from __future__ import annotations

import array
import dataclasses
import math
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage

from smd_core.geometry import (
    StereoCamera,
    cloud_mask,
    disparity_bounds,
    disparity_to_depth,
    disparity_to_xyz,
    validity_mask,
)
from smd_ros.sensors import ENCODINGS, EncodingError

CLOUD_FIELDS_XYZ = [PointField(name=axis, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                    for i, axis in enumerate("xyz")]
# PCL's convention: `rgb` is a FLOAT32 field whose bits are the uint32 0x00RRGGBB.
CLOUD_FIELDS_RGB = [*CLOUD_FIELDS_XYZ, PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1)]


def _byte_array(arr: np.ndarray) -> array.array:
    # One copy into the message's own buffer; assigning an array.array skips rclpy's per-element checks.
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(arr).view(np.uint8).data)
    return data


def image_msg(header: Header, image: np.ndarray, encoding: str = "32FC1") -> Image:
    """sensor_msgs/Image of `image`: (H, W) for one channel, else (H, W, C), with the dtype `encoding` has in
    `sensors.ENCODINGS`."""
    if encoding not in ENCODINGS:
        raise EncodingError(f"cannot write encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    dtype, channels, _ = ENCODINGS[encoding]
    shape = "(H, W)" if channels == 1 else f"(H, W, {channels})"
    if image.dtype != dtype or image.ndim != (2 if channels == 1 else 3) or image.shape[2:] not in ((), (channels,)):
        raise ValueError(f"a {encoding} image is {np.dtype(dtype).name} {shape}, got {image.dtype} {image.shape}")
    img = np.ascontiguousarray(image)
    msg = Image(header=header, height=img.shape[0], width=img.shape[1], encoding=encoding,
                is_bigendian=sys.byteorder == "big", step=img.strides[0])
    msg.data = _byte_array(img)
    return msg


def _valid_window(valid: np.ndarray) -> RegionOfInterest:
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        return RegionOfInterest()
    cols = np.flatnonzero(valid[rows[0] : rows[-1] + 1].any(axis=0))
    return RegionOfInterest(x_offset=int(cols[0]), y_offset=int(rows[0]), width=int(cols[-1] - cols[0] + 1),
                            height=int(rows[-1] - rows[0] + 1))


def disparity_msg(header: Header, disparity: np.ndarray, valid: np.ndarray, camera: StereoCamera, *,
                  max_disparity: float, min_depth: float = 0.0, max_depth: float = math.inf) -> DisparityImage:
    """stereo_msgs/DisparityImage for float32 (H, W) `disparity` on `camera`'s grid.

    f, t: focal length (px) and baseline (m). min/max_disparity: the range a valid pixel can take (the network's
    range `max_disparity`, narrowed by the depth range). Invalid pixels (`valid` False) hold
    min_disparity - 1, below the range as the message defines, so consumers such as stereo_image_proc's
    point_cloud node treat them as missing. delta_d: the disparity is continuous, so the float32 spacing at
    max_disparity. valid_window: bounding box of the valid pixels.
    """
    low, high = disparity_bounds(camera, min_depth=min_depth, max_depth=max_depth, max_disparity=max_disparity)
    low = max(0.0, low)
    image = np.where(valid, disparity, np.float32(low - 1.0)).astype(np.float32, copy=False)
    msg = DisparityImage(header=header, f=float(camera.fx), t=float(camera.baseline),
                         min_disparity=float(low), max_disparity=float(high),
                         delta_d=float(np.spacing(np.float32(high))), valid_window=_valid_window(valid))
    msg.image = image_msg(header, image)
    return msg


def pack_rgb(bgr: np.ndarray) -> np.ndarray:
    """float32 (H, W) whose bits are the uint32 0x00RRGGBB of a BGR uint8 (H, W, 3) image.

    The top byte is 0, never 0xFF: an all-ones exponent would make the float a NaN, and readers that skip NaN
    points would drop the point.
    """
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 (H, W, 3) image, got {bgr.dtype} {bgr.shape}")
    if sys.byteorder == "little":
        # B, G, R, A bytes are the little-endian uint32 0xAARRGGBB: clear A.
        packed = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA).view(np.uint32)[..., 0]
        return (packed & np.uint32(0x00FFFFFF)).view(np.float32)
    b, g, r = (bgr[..., i].astype(np.uint32) for i in range(3))
    return ((r << 16) | (g << 8) | b).view(np.float32)


def cloud_msg(header: Header, disparity: np.ndarray, valid: np.ndarray, camera: StereoCamera, *,
              colors_bgr: np.ndarray | None = None, organized: bool = True) -> PointCloud2:
    """PointCloud2 of the points of `disparity` (H, W) px on `camera`'s grid, left optical frame.

    Fields x, y, z (float32, metres) and, with `colors_bgr` (H, W, 3) uint8, a packed `rgb`. Organized: height H,
    width W, NaN x/y/z where not `valid`; otherwise one row of the valid points only (is_dense).
    """
    h, w = disparity.shape
    planes = list(disparity_to_xyz(disparity, camera, valid=valid))
    if colors_bgr is not None:
        if colors_bgr.shape[:2] != (h, w):
            raise ValueError(f"colors are {colors_bgr.shape[1]}x{colors_bgr.shape[0]}, the grid is {w}x{h}")
        planes.append(pack_rgb(colors_bgr))
    # Interleave the planar maps into the cloud's bytes in one SIMD pass (cv2.merge: (H, W, F) float32).
    point_step = 4 * len(planes)
    points = cv2.merge(planes).reshape(h * w, len(planes))
    if not organized:
        # Gather whole points as opaque items (much faster than boolean indexing of (H, W, F)).
        points = points.view(np.dtype((np.void, point_step)))[valid.reshape(-1)]
    height, width = (h, w) if organized else (1, len(points))
    cloud = PointCloud2(header=header, height=height, width=width, is_bigendian=sys.byteorder == "big",
                        fields=CLOUD_FIELDS_XYZ if colors_bgr is None else CLOUD_FIELDS_RGB,
                        point_step=point_step, row_step=point_step * width, is_dense=not organized)
    cloud.data = _byte_array(points)
    return cloud


def camera_info_msg(header: Header, template: CameraInfo, camera: StereoCamera) -> CameraInfo:
    """CameraInfo of the left rectified camera on `camera`'s grid (for outputs at another resolution).

    Distortion is zero and R is the template's (the images are rectified); K and P hold the grid's intrinsics,
    P[0,3] = 0 (left camera); binning and ROI are reset because the grid is the whole output image.
    """
    k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(header=header, height=camera.height, width=camera.width,
                      distortion_model=template.distortion_model or "plumb_bob", d=[0.0] * 5,
                      k=k, r=list(template.r), p=p)


@dataclasses.dataclass
class StereoOutputs:
    disparity: DisparityImage
    uncertainty: Image
    points: PointCloud2
    depth: Image | None
    camera_info: CameraInfo | None
    valid_points: int


def stereo_outputs(header: Header, disparity: np.ndarray, uncertainty: np.ndarray, camera: StereoCamera, *,
                   max_disparity: float, left_bgr: np.ndarray | None = None, left_info: CameraInfo | None = None,
                   max_uncertainty: float = 0.0, speckle_size: int = 0, speckle_range: float = 0.0,
                   mask_disparity_by_uncertainty: bool = False, min_depth: float = 0.0, max_depth: float = math.inf,
                   organized: bool = True, publish_depth: bool = False) -> StereoOutputs:
    """Every output message of one frame from the dense maps on `camera`'s grid.

    disparity, uncertainty: float32 (H, W) in output-grid px (the selected mode and its standard deviation).
    left_bgr: the left image (any size; resized to the grid) to colour the cloud, or None for x, y, z only.
    left_info: the input left CameraInfo; given, a CameraInfo for the grid is included (for outputs whose size
    differs from the input). Validity: finite disparity in front of the camera, inside the depth range; the
    cloud and depth also drop pixels above `max_uncertainty` (> 0), then the speckles left among them
    (`geometry.cloud_mask`: regions of at most `speckle_size` pixels, `speckle_range` px), the disparity
    only with `mask_disparity_by_uncertainty`.
    """
    geometric = validity_mask(disparity, camera, min_depth=min_depth, max_depth=max_depth)
    confident = cloud_mask(disparity, uncertainty, geometric, max_uncertainty=max_uncertainty,
                           speckle_size=speckle_size, speckle_range=speckle_range)
    disp_valid = confident if mask_disparity_by_uncertainty else geometric
    h, w = disparity.shape
    colors = left_bgr
    if left_bgr is not None and left_bgr.shape[:2] != (h, w):
        colors = cv2.resize(left_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    return StereoOutputs(
        disparity=disparity_msg(header, disparity, disp_valid, camera, max_disparity=max_disparity,
                                min_depth=min_depth, max_depth=max_depth),
        uncertainty=image_msg(header, np.asarray(uncertainty, np.float32)),
        points=cloud_msg(header, disparity, confident, camera, colors_bgr=colors, organized=organized),
        depth=image_msg(header, disparity_to_depth(disparity, camera, valid=confident)) if publish_depth else None,
        camera_info=camera_info_msg(header, left_info, camera) if left_info is not None else None,
        valid_points=int(np.count_nonzero(confident)))
