"""Dense inference at any output resolution, whatever runs the network (no torch here).

`DensePredictor.predict` pads like the reference test pipeline (top and right, edge mode, to a multiple of
`pad_multiple`), encodes once, queries every output pixel in row blocks of at most `chunk_points` and removes
the padding. A backend supplies `_encode` and `_query_block`: PyTorch (`torch_backend.Predictor`) or ONNX
Runtime (`ort_backend.OrtPredictor`), so both see the same padded uint8 images, the same query coordinates
and the same assembly into output-grid units.

Units: unlike the reference (whose disparity stays in input-image pixels whatever the output size),
`DensePrediction.disparity` is in pixels of the OUTPUT grid, i.e. multiplied by
`disparity_scale = W_out / W_network_input`, so it pairs directly with the output grid's intrinsics
(Z = f_out * B / d_out). Divide by `disparity_scale` for the reference's values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from smd_core import threads
from smd_core.classical import fill_background
from smd_core.config import Deployment, ModelConfig
from smd_core.data.io import resize_image
from smd_core.geometry import SPECKLE_RANGE_PX, remove_speckles
from smd_core.infer.confidence import EDGE_GAP_WEIGHT

# `mixture.uncertainty` kinds in pixels (what the Predictor scales to the output grid).
PIXEL_UNCERTAINTIES = ("edge", "peak", "sigma", "std")
MIXTURE_FIELDS = ("mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1")

QUERY_BLOCK = 16384  # rows the head computes at once on the CPU: its widest activations (rows x 1024) stay cache-sized

A = TypeVar("A")  # np.ndarray or torch.Tensor
Block = tuple[int, int, int, int]  # output rows r0:r1, columns c0:c1
# The most float32 maps of one output grid a prediction holds (disparity, uncertainty, mu0/1, sigma0/1, pi0/1).
OUTPUT_MAPS = 2 + len(MIXTURE_FIELDS)


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 0


def check_output_memory(h_out: int, w_out: int, origin: str, *, memory: int | None = None) -> None:
    """ValueError naming the size and where it came from (`origin`) when the output maps of an (h_out, w_out)
    grid would not fit in this machine's memory: found before any work, instead of NumPy's "array is too
    big" (or an out-of-memory kill) after encoding."""
    memory = (physical_memory() if memory is None else memory) or sys.maxsize  # unknown: NumPy's own limit
    need = h_out * w_out * 4 * OUTPUT_MAPS  # Python ints: no overflow however large
    if need > memory:
        raise ValueError(f"output size {h_out}x{w_out} (from {origin}) needs {need / 2**30:.3g} GiB for its "
                         f"{OUTPUT_MAPS} float32 maps, more than this machine's {memory / 2**30:.3g} GiB; "
                         "ask for a smaller output")


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) of an image `height` x `width` scaled by `scale`, at least 2x2: the one rule for the
    output grid and the network input alike."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale}")
    return max(2, round(height * scale)), max(2, round(width * scale))


@dataclasses.dataclass
class DensePrediction:
    """Dense maps, each float32 (H_out, W_out), in output-grid px: disparity (the selected mode), uncertainty
    (`DensePredictor`'s kind; zeros for a standard head), and for mixture heads the modes mu0/mu1, Laplacian
    scales sigma0/sigma1 (sigma0 also the unimodal scale) and weights pi0/pi1."""

    disparity: np.ndarray
    uncertainty: np.ndarray
    disparity_scale: float
    mu0: np.ndarray | None = None
    mu1: np.ndarray | None = None
    sigma0: np.ndarray | None = None
    sigma1: np.ndarray | None = None
    pi0: np.ndarray | None = None
    pi1: np.ndarray | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


def fill_speckles(disparity: np.ndarray, uncertainty: np.ndarray, *, max_size: int,
                  max_diff: float) -> tuple[np.ndarray, np.ndarray]:
    """(disparity, uncertainty) (H, W) px with the disparity's speckles (`geometry.remove_speckles`: regions of at
    most `max_size` pixels unlike all around them) refilled row-wise from the background side
    (`classical.fill_background`, SGBM + fill's rule) and their uncertainty raised by EDGE_GAP_WEIGHT x the change:
    at a depth edge such an island is mostly a piece of neither surface, and what replaces it is a guess."""
    valid = np.isfinite(disparity)
    speckles = valid & ~remove_speckles(disparity, valid, max_size=max_size, max_diff=max_diff)
    if not speckles.any():
        return disparity, uncertainty
    filled = np.where(valid, fill_background(np.where(speckles, np.nan, disparity)), disparity)
    return filled, uncertainty + np.float32(EDGE_GAP_WEIGHT) * np.abs(filled - disparity)


def normalize_coords(coords: A, size: float) -> A:
    """Pixel coordinates (any shape, NumPy or torch) along one axis of an output grid of `size` pixels -> [-1, 1]:
    clip(2 c / (size - 1) - 1, -1, 1), the reference's convention (`head.normalize_points`)."""
    if float(size) <= 1:
        raise ValueError(f"output grid size must be larger than 1, got {size}")
    return (coords * (2.0 / (float(size) - 1.0)) - 1.0).clip(-1.0, 1.0)  # type: ignore[operator,union-attr]


def as_bgr(image: np.ndarray, name: str) -> np.ndarray:
    """Validate an 8-bit image (H, W), (H, W, 1) or (H, W, 3) and return (H, W, 3) uint8 BGR."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be (H, W, 3) BGR or (H, W) gray, got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{name} is too small: {image.shape}")
    return image


class DensePredictor:
    """Dense disparity + uncertainty, backend-independent (see the module docstring).

    chunk_points: query points per block; bounds memory whatever the output size. uncertainty_kind: the
    `uncertainty` map, one of PIXEL_UNCERTAINTIES (`mixture.uncertainty`; "edge" by default).
    Subclasses set `backend` ("torch" / "onnxruntime"), `device`, `config` (the ModelConfig) and `deployment`.
    """

    backend = ""
    device: Any = "cpu"
    config: ModelConfig
    deployment: Deployment

    def __init__(self, *, chunk_points: int, pad_multiple: int, uncertainty_kind: str) -> None:
        if uncertainty_kind not in PIXEL_UNCERTAINTIES:
            raise ValueError(f"uncertainty_kind must be one of {PIXEL_UNCERTAINTIES}, got {uncertainty_kind!r}")
        if chunk_points < 1:
            raise ValueError(f"chunk_points must be >= 1, got {chunk_points}")
        if pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {pad_multiple}")
        self.chunk_points = int(chunk_points)
        self.pad_multiple = int(pad_multiple)
        self.uncertainty_kind = uncertainty_kind

    def _context(self) -> contextlib.AbstractContextManager:
        """Around encode and every query (torch: inference mode and autocast)."""
        return contextlib.nullcontext()

    def _sync(self) -> None:
        """Wait for the device (so the timings are the work's)."""

    def _block_points(self) -> int:
        """Query points per backend call (at most chunk_points)."""
        return self.chunk_points

    def _encode(self, pair: np.ndarray) -> Any:
        """pair (2, Hp, Wp, 3) uint8 BGR, padded -> the backend's encoded features."""
        raise NotImplementedError

    def _query_block(self, features: Any, xs: np.ndarray, ys: np.ndarray,
                     grid_size: tuple[float, float]) -> dict[str, np.ndarray]:
        """`Prediction.maps()` and `uncertainty` (of `uncertainty_kind`) in network px at the grid of columns xs
        (W,) x rows ys (R,) (float32 px of `grid_size`), each float32 (R * W,) row-major."""
        raise NotImplementedError

    def predict(self, left_bgr: np.ndarray, right_bgr: np.ndarray, *, output_size: tuple[int, int] | None = None,
                scale: float | None = None, input_scale: float = 1.0) -> DensePrediction:
        """Dense prediction for one rectified pair.

        left_bgr, right_bgr: (H, W, 3) uint8 BGR (or (H, W) gray). The network sees them resized by
        `input_scale`. The output grid is `output_size` = (H_out, W_out), or (H, W) * `scale`, or (H, W);
        any size works, not only integer factors of the input.
        """
        left, right = as_bgr(left_bgr, "left image"), as_bgr(right_bgr, "right image")
        if left.shape != right.shape:
            raise ValueError(f"left and right images differ in size: {left.shape} vs {right.shape}")
        h, w = left.shape[:2]
        if output_size is not None and scale is not None:
            raise ValueError("give output_size or scale, not both")
        if scale is not None:
            output_size = scaled_size(h, w, scale)
        h_out, w_out = (int(v) for v in (output_size or (h, w)))
        if h_out < 2 or w_out < 2:
            raise ValueError(f"output_size must be at least 2x2, got {(h_out, w_out)}")
        check_output_memory(h_out, w_out, f"scale {scale:g} of {h}x{w}" if scale is not None else "output_size")
        if not (math.isfinite(input_scale) and input_scale > 0):
            raise ValueError(f"input_scale must be a positive number, got {input_scale}")

        t0 = time.perf_counter()
        if input_scale != 1.0:
            left, right = (resize_image(im, scaled_size(h, w, input_scale)) for im in (left, right))
        hn, wn = left.shape[:2]
        top, rightpad = -hn % self.pad_multiple, -wn % self.pad_multiple
        pair = np.pad(np.stack([left, right]), ((0, 0), (top, 0), (0, rightpad), (0, 0)), mode="edge")
        hp, wp = hn + top, wn + rightpad
        sy, sx = h_out / hn, w_out / wn
        # The padded image's output grid, in which query points live (reference: (Hp*s, Wp*s)).
        grid_size = (hp * sy, wp * sx)
        with self._context():
            features = self._encode(pair)
            self._sync()
            t1 = time.perf_counter()
            maps = self._query_dense(features, (h_out, w_out), top * sy, grid_size)
            self._sync()
        t2 = time.perf_counter()
        # Disparity is horizontal: it scales with the output grid's width.
        for name in ("disparity", "mu0", "mu1", "uncertainty"):
            if name in maps:
                maps[name] *= sx
        for name in ("sigma0", "sigma1"):
            if name in maps:
                maps[name] *= float(self.config.max_disp) * sx
        disparity, uncertainty = maps["disparity"], maps["uncertainty"]
        if self.deployment.speckle_size:
            disparity, uncertainty = fill_speckles(disparity, uncertainty,
                                                   max_size=round(self.deployment.speckle_size * sx * sy),
                                                   max_diff=SPECKLE_RANGE_PX * sx)
        return DensePrediction(disparity=disparity, uncertainty=uncertainty, disparity_scale=sx,
                               timings={"encode_s": t1 - t0, "query_s": t2 - t1, "total_s": t2 - t0},
                               **{k: maps.get(k) for k in MIXTURE_FIELDS})

    def _query_workers(self) -> int:
        """Row blocks the backend queries at once (`_map_blocks`); 1: one after another."""
        return 1

    def _block_workers(self, workers: int) -> ThreadPoolExecutor:
        """The threads on which `workers` row blocks run at once."""
        return threads.pool(f"{self.backend}-query", workers)

    def _map_blocks(self, run: Callable[[Block], dict[str, np.ndarray]],
                    blocks: list[Block]) -> Iterable[dict[str, np.ndarray]]:
        """`run` on every block, results in order: `_query_workers` blocks at once on `_block_workers`."""
        workers = self._query_workers()
        if workers == 1 or len(blocks) == 1:
            return map(run, blocks)

        def in_worker(block: Block) -> dict[str, np.ndarray]:
            with self._context():  # per thread (torch: inference mode and autocast)
                return run(block)

        return self._block_workers(workers).map(in_worker, blocks)

    def _query_dense(self, features: Any, out_hw: tuple[int, int], y_offset: float,
                     grid_size: tuple[float, float]) -> dict[str, np.ndarray]:
        h_out, w_out = out_hw
        # Blocks of whole rows (or of one row's columns when a row alone exceeds chunk_points): at most
        # chunk_points queries each, on a grid so the features are sampled separably (SMDNet.query_grid).
        block = self._block_points()
        cols = min(w_out, block)
        rows = max(1, block // w_out)
        workers = self._query_workers()
        if workers > 1 and cols == w_out:
            # Equal blocks, as many as the workers or a multiple of them, so that none waits for another.
            count = math.ceil(math.ceil(h_out / rows) / workers) * workers
            rows = math.ceil(h_out / count)
        blocks = [(r0, min(h_out, r0 + rows), c0, min(w_out, c0 + cols))
                  for r0 in range(0, h_out, rows) for c0 in range(0, w_out, cols)]

        def run(b: Block) -> dict[str, np.ndarray]:
            ys = np.arange(b[0], b[1], dtype=np.float32) + np.float32(y_offset)
            return self._query_block(features, np.arange(b[2], b[3], dtype=np.float32), ys, grid_size)

        maps: dict[str, np.ndarray] = {}
        for (r0, r1, c0, c1), values in zip(blocks, self._map_blocks(run, blocks), strict=True):
            for name, value in values.items():
                if name not in maps:
                    maps[name] = np.empty((h_out, w_out), dtype=np.float32)
                maps[name][r0:r1, c0:c1] = value.reshape(r1 - r0, c1 - c0)
        return maps
