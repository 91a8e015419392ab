"""Readers (and, for tests and tools, the PFM and KITTI writers) of stereo images and disparity maps.

- Images come back as BGR uint8 (H, W, 3), whatever is on disk (grey, BGRA, 16-bit, `.raw`); 16-bit images
  are brought to 8 bits by `uint16_to_uint8`, the policy the node and `smd bag2dataset` share.
- Disparities come back as float32 (H, W) px, 0 = no ground truth (`sanitize_disparity`: Middlebury marks
  invalid pixels with inf, KITTI with 0), from PFM, KITTI 16-bit PNG (disparity * 256) or NPY files.
- UnrealStereo4K `.raw` images: the 4-channel PNGs with the alpha dropped, as headerless BGR bytes (the
  SMD-Nets README's conversion); `read_image` infers the shape from the size (16:9) unless `raw_shape` says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

DISPARITY_EXTENSIONS = (".npy", ".pfm", ".png")

PathLike = str | Path


def _require_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    return p


def infer_raw_shape(num_bytes: int, channels: int = 3) -> tuple[int, int]:
    """(H, W) of a headerless uint8 image of `num_bytes` bytes, assuming a 16:9 frame (UnrealStereo4K)."""
    if num_bytes <= 0 or num_bytes % channels:
        raise ValueError(f"a raw image of {num_bytes} bytes is not a whole number of {channels}-channel pixels")
    pixels = num_bytes // channels
    # H * W = pixels with W = 16 H / 9  ->  H = 3 * sqrt(pixels / 16).
    h = round(3 * math.sqrt(pixels / 16.0))
    if h <= 0 or h % 9 or h * (16 * h // 9) != pixels:
        raise ValueError(f"cannot infer the shape of a raw image with {pixels} pixels: not a 16:9 frame; "
                         "pass raw_shape=(H, W)")
    return h, 16 * h // 9


def read_raw_image(path: PathLike, shape: tuple[int, int] | None = None, *, mmap: bool = False) -> np.ndarray:
    """Headerless BGR uint8 image (H, W, 3) in C order; `mmap=True` maps it (cropping reads only the crop)."""
    p = _require_file(path)
    size = p.stat().st_size
    h, w = shape if shape is not None else infer_raw_shape(size)
    if h * w * 3 != size:
        raise ValueError(f"{p}: {size} bytes do not hold a ({h}, {w}, 3) uint8 image ({h * w * 3} bytes)")
    if mmap:
        return np.memmap(p, dtype=np.uint8, mode="r", shape=(h, w, 3))
    return np.fromfile(p, dtype=np.uint8).reshape(h, w, 3)


def uint16_to_uint8(images: Sequence[np.ndarray], image_bits: int = 0) -> list[np.ndarray]:
    """16-bit camera images -> uint8 by one right shift shared by all of `images` (the 16-bit policy).

    image_bits: significant bits of the sensor, 9..16, shift = image_bits - 8 (a 12-bit camera: >> 4; full
    16-bit data: >> 8); values above 2**image_bits - 1 saturate at 255. 0 (auto): the smallest shift that
    fits the brightest of `images`, so 12-bit data keeps its contrast and a stereo pair passed together stays
    photometrically consistent. The node, `smd bag2dataset` and the image readers all convert this way.
    """
    if image_bits != 0 and not 9 <= image_bits <= 16:
        raise ValueError(f"image_bits must be 0 (auto) or 9..16, got {image_bits}")
    for im in images:
        if im.dtype != np.uint16:
            raise ValueError(f"expected uint16 images, got {im.dtype}")
    if not image_bits:  # the shift fits the peak: nothing saturates
        peak = max((int(im.max()) for im in images if im.size), default=0)
        shift = max(0, peak.bit_length() - 8)
        return [(im >> shift).astype(np.uint8) for im in images]
    shift = image_bits - 8
    return [np.minimum(im >> shift, 255).astype(np.uint8) for im in images]


def as_bgr_u8(image: np.ndarray, *, image_bits: int = 0) -> np.ndarray:
    """Any grey / BGR / BGRA image of uint8, uint16 or float (0..255) -> BGR uint8 (H, W, 3). uint16 images follow
    `uint16_to_uint8` (`image_bits`, 0 = auto from this image's peak)."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = uint16_to_uint8([img], image_bits)[0]
    elif img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating):
            raise ValueError(f"unsupported image dtype {img.dtype}")
        img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img.reshape(img.shape[0], img.shape[1]), cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    raise ValueError(f"unsupported image shape {img.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")


def resize_image(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """`image` at (h, w) = `size_hw`: INTER_AREA when it shrinks (no aliasing), bilinear when it grows."""
    h, w = size_hw
    if image.shape[:2] == (h, w):
        return image
    shrinks = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


def read_image(path: PathLike, *, raw_shape: tuple[int, int] | None = None, mmap: bool = False) -> np.ndarray:
    """An image file as BGR uint8 (H, W, 3) (module docstring); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found: {p}")
    if p.suffix.lower() == ".raw":
        return read_raw_image(p, raw_shape, mmap=mmap)
    # Decoded from the bytes: cv2.imread logs a WARN line of its own for a file it cannot open or decode.
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"cannot read image {p}: {exc.strerror or exc}") from exc
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f"cannot read image {p}: not an image format OpenCV decodes")
    return as_bgr_u8(img)


def sanitize_disparity(disp: np.ndarray) -> np.ndarray:
    """float32 copy with inf / NaN / negative values set to 0 (= invalid)."""
    d = np.array(disp, dtype=np.float32, copy=True)
    d[~np.isfinite(d) | (d < 0)] = 0.0
    return d


_PFM_TOKEN = re.compile(rb"\S+")


def read_pfm(path: PathLike) -> np.ndarray:
    """PFM file -> float32 array (H, W) for `Pf`, (H, W, 3) for `PF`, top row first. Values untouched."""
    p = _require_file(path)
    data = p.read_bytes()
    # Header: four whitespace-separated tokens, the last followed by exactly one whitespace byte.
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        m = _PFM_TOKEN.search(data, pos)
        if m is None:
            raise ValueError(f"{p}: truncated PFM header")
        tokens.append(m.group())
        pos = m.end()
    pos += 1
    kind, w_tok, h_tok, scale_tok = tokens
    if kind not in (b"PF", b"Pf"):
        raise ValueError(f"{p}: not a PFM file (magic {kind[:8]!r}, expected b'PF' or b'Pf')")
    try:
        width, height, scale = int(w_tok), int(h_tok), float(scale_tok)
    except ValueError:
        raise ValueError(f"{p}: malformed PFM header {b' '.join(tokens)!r}") from None
    if width <= 0 or height <= 0 or scale == 0:
        raise ValueError(f"{p}: invalid PFM header (width={width}, height={height}, scale={scale})")
    channels = 3 if kind == b"PF" else 1
    count = width * height * channels
    if len(data) - pos < 4 * count:
        raise ValueError(f"{p}: PFM data has {len(data) - pos} bytes, expected {4 * count}")
    # The sign of the scale encodes the byte order: negative = little-endian.
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos).astype(np.float32)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.ascontiguousarray(np.flipud(arr.reshape(shape)))  # rows are stored bottom-up


def write_pfm(path: PathLike, array: np.ndarray, *, scale: float = 1.0, little_endian: bool = True) -> None:
    """Write a float (H, W) or (H, W, 3) array as PFM (rows bottom-up; negative scale = little-endian)."""
    arr = np.asarray(array, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"PFM holds (H, W) or (H, W, 3) arrays, got shape {arr.shape}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (its sign is set by little_endian), got {scale}")
    kind = b"PF" if arr.ndim == 3 else b"Pf"
    h, w = arr.shape[:2]
    header = kind + b"\n" + f"{w} {h}\n".encode() + f"{-scale if little_endian else scale}\n".encode()
    body = np.flipud(arr).astype("<f4" if little_endian else ">f4").tobytes()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(header + body)


def read_kitti_disparity(path: PathLike) -> np.ndarray:
    """KITTI 16-bit PNG disparity -> float32 (H, W) px (value / 256, 0 = invalid)."""
    p = _require_file(path)
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{p}: not a readable PNG")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"{p}: a disparity PNG must be single-channel uint16, got {img.dtype} {img.shape}")
    return img.astype(np.float32) / 256.0


def write_kitti_disparity(path: PathLike, disp: np.ndarray) -> None:
    """float disparity (H, W) px -> KITTI 16-bit PNG (round(d * 256), 0 = invalid, max 255.996)."""
    d = sanitize_disparity(disp)
    if d.ndim != 2:
        raise ValueError(f"disparity must be (H, W), got {d.shape}")
    q = np.clip(np.round(d * 256.0), 0, 65535).astype(np.uint16)
    q[(d > 0) & (q == 0)] = 1  # a tiny positive disparity must not turn into the invalid marker
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() != ".png":
        raise ValueError(f"{p}: a KITTI disparity file must be a .png")
    if not cv2.imwrite(str(p), q):
        raise ValueError(f"{p}: could not write a 16-bit PNG")


def read_disparity(path: PathLike, *, mmap: bool = False, sanitize: bool = True) -> np.ndarray:
    """Disparity file (.npy float px, .pfm, .png KITTI 16-bit) -> float32 (H, W), 0 = invalid.

    `mmap=True` memory-maps `.npy` files (cropping then reads only the crop); it implies
    `sanitize=False` for them, so call `sanitize_disparity` on the crop.
    """
    p = _require_file(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        d = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    elif ext == ".pfm":
        d = read_pfm(p)
    elif ext == ".png":
        d = read_kitti_disparity(p)
    else:
        raise ValueError(f"{p}: unsupported disparity format {ext!r}; expected one of {DISPARITY_EXTENSIONS}")
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        raise ValueError(f"{p}: disparity must be (H, W), got {d.shape}")
    if mmap and ext == ".npy":
        return d
    return sanitize_disparity(d) if sanitize else d.astype(np.float32, copy=False)
