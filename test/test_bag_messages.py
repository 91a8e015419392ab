"""Bag messages (bag_fixtures builders, real CDR via smd_ros.bags.reader) decoded by the shared decoder."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from bag_fixtures import (
    camera_info_message,
    compressed_depth_message,
    compressed_image_message,
    disparity_image_message,
    header,
    image_message,
    serialize,
)

from smd_ros import sensors
from smd_ros.bags.reader import deserialize, header_stamp_ns

STAMP = 1_700_000_123_456_789_012


def roundtrip(msg):
    """Serialize to CDR and back, as a bag does."""
    return deserialize(serialize(msg), msg.__msgtype__)


@pytest.fixture
def bgr() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "bgra8", "rgba8", "8UC3"])
def test_colour_encodings_decode_to_bgr(bgr, encoding):
    msg = roundtrip(image_message(bgr, STAMP, "cam", encoding))
    assert msg.encoding == encoding
    np.testing.assert_array_equal(sensors.decode_image(msg), bgr)


@pytest.mark.parametrize("encoding", ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])
def test_bayer_patterns_match_their_colours(encoding):
    # A flat colour survives mosaicking + demosaicking exactly (away from the border) only when the
    # ROS pattern name and OpenCV's conversion code agree.
    flat = np.zeros((8, 8, 3), np.uint8)
    flat[:] = (30, 120, 220)
    msg = roundtrip(image_message(flat, STAMP, "cam", encoding))
    assert msg.encoding == encoding
    out = sensors.decode_image(msg)
    np.testing.assert_array_equal(out[2:-2, 2:-2], flat[2:-2, 2:-2])


def test_mono_16bit_float_and_yuv():
    mono = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(sensors.decode_image(roundtrip(image_message(mono, STAMP, "c"))), mono)
    deep = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    out = sensors.decode_image(roundtrip(image_message(deep, STAMP, "c")))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, deep)
    depth = np.linspace(0.5, 9.5, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(sensors.decode_image(roundtrip(image_message(depth, STAMP, "c"))), depth)
    # UYVY: a grey frame (U = V = 128) decodes to grey.
    uyvy = np.full((2, 4, 2), 128, np.uint8)
    uyvy[..., 1] = 100
    msg = image_message(uyvy, STAMP, "c", "yuv422")
    out = sensors.decode_image(roundtrip(msg))
    assert out.shape == (2, 4, 3) and np.ptp(out) <= 1


def test_row_padding_and_big_endian_are_honoured():
    values = np.array([[1, 2, 3], [400, 500, 60000]], np.uint16)
    msg = image_message(values, STAMP, "c")
    # Big-endian rows padded to 8 bytes, as some drivers send them.
    rows = [np.concatenate([r.astype(">u2").view(np.uint8), np.zeros(2, np.uint8)]) for r in values]
    msg.data = np.concatenate(rows)
    msg.step = 8
    msg.is_bigendian = 1
    np.testing.assert_array_equal(sensors.decode_image(roundtrip(msg)), values)


def test_short_data_and_unknown_encoding_raise():
    msg = image_message(np.zeros((4, 4), np.uint8), STAMP, "c")
    msg.encoding = "nv12"
    with pytest.raises(sensors.EncodingError, match="unsupported encoding 'nv12'.*supported: mono8"):
        sensors.decode_image(roundtrip(msg))
    msg = image_message(np.zeros((4, 4), np.uint8), STAMP, "c")
    msg.data = msg.data[:10]
    with pytest.raises(sensors.InputError, match="too short") as err:
        sensors.decode_image(msg)
    assert err.value.kind == "layout"
    with pytest.raises(sensors.EncodingError, match="cannot encode"):
        image_message(np.zeros((2, 2, 3), np.uint8), STAMP, "c", "mono16")


def test_compressed_png_is_lossless_and_jpeg_close(bgr):
    png = roundtrip(compressed_image_message(bgr, STAMP, "c", "png"))
    assert png.format == "bgr8; png compressed bgr8"
    np.testing.assert_array_equal(sensors.decode_image(png), bgr)
    smooth = cv2.GaussianBlur(np.repeat(np.repeat(bgr, 8, 0), 8, 1), (9, 9), 3)
    jpeg = roundtrip(compressed_image_message(smooth, STAMP, "c", "jpeg", jpeg_quality=95))
    assert np.abs(sensors.decode_image(jpeg).astype(int) - smooth).mean() < 3
    with pytest.raises(ValueError, match="'png' or 'jpeg'"):
        compressed_image_message(bgr, STAMP, "c", "gif")


def test_compressed_errors():
    msg = compressed_image_message(np.zeros((4, 4), np.uint8), STAMP, "c", "png")
    msg.format = "theora"
    with pytest.raises(sensors.EncodingError, match="unsupported CompressedImage format 'theora'"):
        sensors.decode_image(msg)
    msg.format = "png"
    msg.data = np.frombuffer(b"not a png at all", np.uint8)
    with pytest.raises(ValueError, match="could not decode CompressedImage"):
        sensors.decode_image(msg)


def test_compressed_depth_16_and_32_bit():
    mm = np.array([[0, 1000, 2500], [65535, 10, 300]], np.uint16)
    msg = roundtrip(compressed_depth_message(mm, STAMP, "c"))
    assert msg.format == "16UC1; compressedDepth"
    np.testing.assert_array_equal(sensors.decode_image(msg), mm)
    metres = sensors.depth_metres(msg, "/d")
    assert np.isnan(metres[0, 0]) and metres[0, 1] == pytest.approx(1.0)
    # 32FC1 compressedDepth (image_transport): inverse depth quantized as v = A / Z + B.
    quant_a, quant_b = 100.0, 10.0
    z = np.array([[1.0, 2.0], [4.0, 0.0]], np.float32)
    v = np.where(z > 0, quant_a / np.where(z > 0, z, 1) + quant_b, 0).astype(np.uint16)
    ok, png = cv2.imencode(".png", v)
    assert ok
    msg.format = "32FC1; compressedDepth"
    msg.data = np.concatenate([np.frombuffer(struct.pack("<iff", 0, quant_a, quant_b), np.uint8), png.ravel()])
    depth = sensors.decode_image(roundtrip(msg))
    np.testing.assert_allclose(depth[:, :][z > 0], z[z > 0], rtol=1e-6)
    assert np.isnan(depth[1, 1])


def test_depth_metres_units_and_invalid():
    mm = roundtrip(image_message(np.array([[1500, 0]] * 2, np.uint16), STAMP, "c"))
    np.testing.assert_allclose(sensors.depth_metres(mm, "/d")[0, 0], 1.5)
    assert np.isnan(sensors.depth_metres(mm, "/d")[0, 1])
    metres = roundtrip(image_message(np.array([[np.inf, -1.0, 2.0]] * 2, np.float32), STAMP, "c"))
    out = sensors.depth_metres(metres, "/d")
    assert np.isnan(out[0, :2]).all() and out[0, 2] == 2.0
    with pytest.raises(sensors.EncodingError, match="depth encoding 'mono8' is not supported"):
        sensors.depth_metres(image_message(np.zeros((2, 2), np.uint8), STAMP, "c"), "/d")
    # A depth image is no camera image.
    depth = image_message(np.ones((2, 2), np.float32), STAMP, "c")
    with pytest.raises(sensors.EncodingError, match="unsupported encoding '32FC1'"):
        sensors.stereo_images(depth, depth)


def test_16_bit_policy_is_one_shift_shared_by_the_pair():
    # 12-bit data (peak 4095): auto shifts by 4, so 8-bit contrast is kept (the old bag tool scaled by
    # 255/65535 and trained on 0..16).
    left = np.array([[4095, 16, 0]] * 2, np.uint16)
    right = left // 2
    msgs = [roundtrip(image_message(im, STAMP, "c", "mono16")) for im in (left, right)]
    out_l, out_r = sensors.stereo_images(*msgs)
    assert out_l[..., 0].tolist() == [[255, 1, 0]] * 2 and out_r[..., 0].tolist() == [[127, 0, 0]] * 2
    assert out_l.shape == (2, 3, 3) and out_l.dtype == np.uint8
    # A fixed sensor depth: the shift no longer follows the frame's brightness; saturates above 2**bits - 1.
    dark = [roundtrip(image_message(im // 16, STAMP, "c", "mono16")) for im in (left, right)]
    assert sensors.stereo_images(*dark)[0][0, 0, 0] == 255  # auto: peak 255 -> no shift
    assert sensors.stereo_images(*dark, image_bits=12)[0][0, 0, 0] == 15
    assert sensors.stereo_images(*msgs, image_bits=10)[0][0, :, 0].tolist() == [255, 4, 0]
    with pytest.raises(ValueError, match="image_bits must be 0 .* or 9..16, got 8"):
        sensors.stereo_images(*msgs, image_bits=8)


def test_header_stamp_fast_path_matches_deserialization(bgr):
    for msg in (
        image_message(bgr, STAMP, "left"),
        compressed_image_message(bgr, STAMP, "left"),
        camera_info_message(stamp_ns=STAMP, frame_id="l", width=10, height=6, k=np.eye(3), d=np.zeros(5),
                            r=np.eye(3), p=np.eye(3, 4)),
        disparity_image_message(np.ones((6, 10), np.float32), stamp_ns=STAMP, frame_id="l", focal=1, baseline=1),
    ):
        raw = serialize(msg)
        assert header_stamp_ns(raw, msg.__msgtype__) == STAMP
        assert sensors.stamp_ns(deserialize(raw, msg.__msgtype__)) == STAMP
    with pytest.raises(ValueError, match="non-negative"):
        header(-1, "x")


def test_disparity_image_invalid_pixels_become_zero():
    d = np.array([[5.0, -1.0, np.nan], [300.0, 0.5, 40.0]], np.float32)
    msg = roundtrip(disparity_image_message(d, stamp_ns=STAMP, frame_id="l", focal=500, baseline=0.1,
                                            min_disparity=1.0, max_disparity=256.0))
    out = sensors.disparity_pixels(msg, "/disparity")
    np.testing.assert_array_equal(out, [[5.0, 0.0, 0.0], [0.0, 0.0, 40.0]])
    msg.image.encoding = "16UC1"
    with pytest.raises(sensors.EncodingError, match="must be 32FC1"):
        sensors.disparity_pixels(msg, "/disparity")
