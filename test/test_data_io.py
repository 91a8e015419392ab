"""Image and disparity readers / writers: PFM (both byte orders, bottom-up rows), KITTI PNG, raw, NPY."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from smd_core.data import io


def _ramp(h: int = 5, w: int = 7) -> np.ndarray:
    return (np.arange(h * w, dtype=np.float32).reshape(h, w) * 0.5 + 0.25).astype(np.float32)


def test_pfm_reads_a_hand_written_file(tmp_path) -> None:
    # Written by hand per the format: rows bottom-up, big-endian because the scale is positive.
    d = _ramp(3, 4)
    body = b"".join(struct.pack(">4f", *row) for row in d[::-1])
    (tmp_path / "be.pfm").write_bytes(b"Pf\n4 3\n1.0\n" + body)
    assert np.array_equal(io.read_pfm(tmp_path / "be.pfm"), d)
    # Little-endian (negative scale), header tokens separated by arbitrary whitespace.
    body = b"".join(struct.pack("<4f", *row) for row in d[::-1])
    (tmp_path / "le.pfm").write_bytes(b"Pf\n4\t3\n-1.000000\n" + body)
    assert np.array_equal(io.read_pfm(tmp_path / "le.pfm"), d)


@pytest.mark.parametrize("little_endian", [True, False])
def test_pfm_round_trip(tmp_path, little_endian: bool) -> None:
    grey = _ramp()
    grey[1, 2] = np.inf
    io.write_pfm(tmp_path / "g.pfm", grey, little_endian=little_endian)
    raw = (tmp_path / "g.pfm").read_bytes()
    assert raw.startswith(b"Pf\n7 5\n" + (b"-" if little_endian else b""))
    back = io.read_pfm(tmp_path / "g.pfm")
    assert back.dtype == np.float32 and np.array_equal(back, grey)
    colour = np.random.default_rng(0).random((4, 6, 3)).astype(np.float32)
    io.write_pfm(tmp_path / "c.pfm", colour, little_endian=little_endian)
    assert np.array_equal(io.read_pfm(tmp_path / "c.pfm"), colour)


def test_pfm_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        io.read_pfm(tmp_path / "missing.pfm")
    (tmp_path / "bad.pfm").write_bytes(b"P6\n2 2\n255\n" + bytes(12))
    with pytest.raises(ValueError, match="not a PFM"):
        io.read_pfm(tmp_path / "bad.pfm")
    (tmp_path / "short.pfm").write_bytes(b"Pf\n4 4\n-1.0\n" + bytes(8))
    with pytest.raises(ValueError, match="expected 64"):
        io.read_pfm(tmp_path / "short.pfm")
    (tmp_path / "trunc.pfm").write_bytes(b"Pf\n4")
    with pytest.raises(ValueError, match="truncated"):
        io.read_pfm(tmp_path / "trunc.pfm")
    (tmp_path / "hdr.pfm").write_bytes(b"Pf\nfour 4\n-1.0\n" + bytes(64))
    with pytest.raises(ValueError, match="malformed"):
        io.read_pfm(tmp_path / "hdr.pfm")
    (tmp_path / "zero.pfm").write_bytes(b"Pf\n0 4\n-1.0\n")
    with pytest.raises(ValueError, match="invalid PFM header"):
        io.read_pfm(tmp_path / "zero.pfm")
    with pytest.raises(ValueError):
        io.write_pfm(tmp_path / "x.pfm", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        io.write_pfm(tmp_path / "x.pfm", np.zeros((2, 2)), scale=-1.0)


def test_kitti_png(tmp_path) -> None:
    d = np.array([[0.0, 1.5, 100.25], [255.0, 1e-4, np.inf]], np.float32)
    io.write_kitti_disparity(tmp_path / "d.png", d)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    assert raw.tolist() == [[0, 384, 25664], [65280, 1, 0]]  # tiny positive stays valid; inf -> invalid
    back = io.read_kitti_disparity(tmp_path / "d.png")
    assert np.allclose(back, [[0.0, 1.5, 100.25], [255.0, 1 / 256, 0.0]])
    cv2.imwrite(str(tmp_path / "u8.png"), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="uint16"):
        io.read_kitti_disparity(tmp_path / "u8.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError):
        io.read_kitti_disparity(tmp_path / "junk.png")
    with pytest.raises(ValueError):
        io.write_kitti_disparity(tmp_path / "e.png", np.zeros((2, 2, 2)))


def test_read_disparity_dispatch_and_sanitize(tmp_path) -> None:
    d = np.array([[1.0, np.inf, -2.0], [np.nan, 0.0, 7.5]], np.float32)
    clean = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 7.5]], np.float32)
    np.save(tmp_path / "d.npy", d)
    io.write_pfm(tmp_path / "d.pfm", d)
    io.write_kitti_disparity(tmp_path / "d.png", d)
    for ext in ("npy", "pfm", "png"):
        got = io.read_disparity(tmp_path / f"d.{ext}")
        assert got.dtype == np.float32 and np.array_equal(got, clean), ext
    lazy = io.read_disparity(tmp_path / "d.npy", mmap=True)
    assert isinstance(lazy, np.memmap) and np.isinf(lazy[0, 1])
    np.save(tmp_path / "d1.npy", clean[..., None])
    assert io.read_disparity(tmp_path / "d1.npy").shape == (2, 3)
    assert io.read_disparity(tmp_path / "d1.npy", mmap=True).shape == (2, 3)
    np.save(tmp_path / "d3.npy", np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        io.read_disparity(tmp_path / "d3.npy")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        io.read_disparity(tmp_path / "d3.npy", mmap=True)
    (tmp_path / "d.exr").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported"):
        io.read_disparity(tmp_path / "d.exr")
    with pytest.raises(FileNotFoundError):
        io.read_disparity(tmp_path / "none.npy")


def test_read_image_converts_to_bgr_u8(tmp_path) -> None:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), bgr)
    assert np.array_equal(io.read_image(tmp_path / "c.png"), bgr)
    # 4-channel PNG (UnrealStereo4K): alpha dropped, channel order kept.
    bgra = np.dstack([bgr, np.full((6, 9), 255, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert np.array_equal(io.read_image(tmp_path / "a.png"), bgr)
    grey = bgr[:, :, 0]
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    assert np.array_equal(io.read_image(tmp_path / "g.png"), np.dstack([grey] * 3))
    deep = (bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert np.array_equal(io.read_image(tmp_path / "d.png"), bgr)
    assert np.array_equal(io.as_bgr_u8(bgr.astype(np.float32) + 0.2), bgr)
    with pytest.raises(ValueError):
        io.as_bgr_u8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError):
        io.as_bgr_u8(np.zeros((2, 2), np.int64))
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not an image format"):
        io.read_image(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError):
        io.read_image(tmp_path / "none.png")


def test_raw_images(tmp_path) -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (9, 16, 3), dtype=np.uint8)
    # The SMD-Nets README conversion: cv2.imread(png, -1) then drop alpha, bytes as they are.
    bgra = np.dstack([img, np.zeros((9, 16), np.uint8)])
    cv2.cvtColor(bgra, cv2.COLOR_RGBA2RGB).tofile(str(tmp_path / "x.raw"))
    assert np.array_equal(io.read_image(tmp_path / "x.raw"), img)  # 16:9 shape inferred
    mm = io.read_image(tmp_path / "x.raw", mmap=True)
    assert isinstance(mm, np.memmap) and np.array_equal(mm[2:4, 3:7], img[2:4, 3:7])
    np.ascontiguousarray(img[:, :12]).tofile(tmp_path / "y.raw")
    assert np.array_equal(io.read_image(tmp_path / "y.raw", raw_shape=(9, 12)), img[:, :12])
    with pytest.raises(ValueError, match="16:9"):
        io.read_image(tmp_path / "y.raw")
    with pytest.raises(ValueError, match="bytes do not hold"):
        io.read_image(tmp_path / "y.raw", raw_shape=(9, 16))
    assert io.infer_raw_shape(2160 * 3840 * 3) == (2160, 3840)
    assert io.infer_raw_shape(540 * 960 * 3) == (540, 960)
    with pytest.raises(ValueError):
        io.infer_raw_shape(10)
    with pytest.raises(ValueError):
        io.infer_raw_shape(0)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary_on_failure(tmp_path):
    from smd_core.files import atomic_write

    target = tmp_path / "sub" / "f.bin"
    assert atomic_write(target, b"first") == target and target.read_bytes() == b"first"
    # Permissions as a plain open() gives them (not mkstemp's private 0600): shipped weights must be readable.
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    atomic_write(target, lambda p: p.write_bytes(b"second"))
    assert target.read_bytes() == b"second"

    def fail_halfway(p):
        p.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, lambda p: (_ for _ in ()).throw(KeyboardInterrupt))
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]


def test_16_bit_images_follow_the_shared_policy():
    twelve_bit = np.array([[4095, 2048, 16]], np.uint16)
    assert io.uint16_to_uint8([twelve_bit])[0].tolist() == [[255, 128, 1]]  # auto: >> 4
    assert io.uint16_to_uint8([twelve_bit], 16)[0].tolist() == [[15, 8, 0]]  # full 16-bit range: >> 8
    assert io.uint16_to_uint8([twelve_bit], 10)[0].tolist() == [[255, 255, 4]]  # saturates above 2**10 - 1
    # A pair shares one shift: the darker image is not stretched on its own.
    left, right = io.uint16_to_uint8([twelve_bit, twelve_bit // 4])
    assert right.tolist() == [[63, 32, 0]] and left.tolist() == [[255, 128, 1]]
    assert io.as_bgr_u8(twelve_bit)[0, :, 0].tolist() == [255, 128, 1]
    with pytest.raises(ValueError, match="image_bits must be 0 .auto. or 9..16, got 17"):
        io.uint16_to_uint8([twelve_bit], 17)
    with pytest.raises(ValueError, match="expected uint16 images, got uint8"):
        io.uint16_to_uint8([np.zeros((2, 2), np.uint8)])
