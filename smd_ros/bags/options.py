"""What `smd bag2dataset` is asked: `Bag2DatasetOptions`, validated."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass
class Bag2DatasetOptions:
    """Conversion settings; defaults match the stereo node's topic names."""

    left_image: str = "/left/image_rect"
    right_image: str = "/right/image_rect"
    left_info: str = "/left/camera_info"
    right_info: str = "/right/camera_info"
    # Labels, at most one source: depth registered to the left camera, a DisparityImage, or a model's checkpoint.
    depth: str | None = None
    disparity: str | None = None
    pseudo_labels: str | None = None
    # px, the Predictor's uncertainty; 0: auto, the model's own (`Deployment.pseudo_max_uncertainty`).
    pseudo_max_uncertainty: float = 0.0
    pseudo_lr_tolerance: float = 1.0  # px, left-right consistency
    device: str = "cpu"
    tolerance: float = 0.01  # seconds between paired stamps
    stamp: str = "header"  # "header" (message header stamps) or "log" (recording receive time)
    stride: int = 1
    max_frames: int | None = None
    start: float | None = None  # seconds after the first paired frame of each bag
    end: float | None = None
    val_fraction: float = 0.1
    val_blocks: int = 10
    rectify: bool = False
    # Label check: labels must be finite, 0 <= d < image width and d <= max_disparity (the model's range, image px;
    # 0: width only); others are masked (0). A frame with more "impossible" ones (non-finite or >= the width: corrupt
    # data or a wrong calibration) than max_bad_labels x its pixels is left out of the lists.
    max_disparity: float = 256.0
    max_bad_labels: float = 1e-4
    # Significant bits of 16-bit images (smd_core.data.io.uint16_to_uint8): 0 = auto, as the node's image_bits.
    image_bits: int = 0
    min_depth: float = 0.0  # metres; depth outside [min_depth, max_depth] is invalid
    max_depth: float | None = None
    check_rectification: bool = True
    allow_truncated: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        sources = [n for n, v in (("--depth", self.depth), ("--disparity", self.disparity),
                                  ("--pseudo-labels", self.pseudo_labels)) if v]
        start, end = self.start, self.end
        topics = [t for t in (self.left_image, self.right_image, self.left_info, self.right_info, self.gt_topic) if t]
        for ok, problem in (
            (len(sources) <= 1, f"choose one ground-truth source, got {' and '.join(sources)}"),
            (self.stamp in ("header", "log"), f"stamp must be 'header' or 'log', got {self.stamp!r}"),
            (math.isfinite(self.tolerance) and self.tolerance >= 0,
             f"tolerance must be >= 0 seconds, got {self.tolerance}"),
            (self.stride >= 1, f"stride must be >= 1, got {self.stride}"),
            (self.max_frames is None or self.max_frames >= 1, f"max_frames must be >= 1, got {self.max_frames}"),
            ((start is None or start >= 0) and (end is None or end > 0),
             f"time window must be start >= 0 and end > 0 seconds, got start={start}, end={end}"),
            (start is None or end is None or end > start, f"time window is empty: start={start} s >= end={end} s"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.val_blocks >= 2, f"val_blocks must be >= 2, got {self.val_blocks}"),
            (self.min_depth >= 0 and (self.max_depth is None or self.max_depth > self.min_depth),
             f"depth range must satisfy 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}"),
            (math.isfinite(self.max_disparity) and self.max_disparity >= 0,
             f"max_disparity must be >= 0 px (0: the image width only), got {self.max_disparity}"),
            (0.0 <= self.max_bad_labels < 1.0,
             f"max_bad_labels must be a fraction in [0, 1), got {self.max_bad_labels}"),
            (self.image_bits == 0 or 9 <= self.image_bits <= 16,
             f"image_bits must be 0 (auto) or 9..16, got {self.image_bits}"),
            (self.pseudo_max_uncertainty >= 0 and self.pseudo_lr_tolerance > 0,
             "pseudo_max_uncertainty must be >= 0 (0: auto) and pseudo_lr_tolerance positive, got "
             f"{self.pseudo_max_uncertainty} and {self.pseudo_lr_tolerance}"),
            (len(set(topics)) == len(topics), f"topics must be distinct, got {topics}"),
        ):
            if not ok:
                raise ValueError(problem)

    @property
    def gt_topic(self) -> str | None:
        return self.depth or self.disparity

    @property
    def has_labels(self) -> bool:
        return bool(self.gt_topic or self.pseudo_labels)
