"""`SampleConfig` (`DataConfig.sample` in YAML), apart from `smd_core.data.sampling` because it needs no torch."""

from __future__ import annotations

import dataclasses

SAMPLING_STRATEGIES = ("random", "dda")


@dataclasses.dataclass
class SampleConfig:
    """How a training sample is cut from a frame (`smd_core.data.sampling`)."""

    # Training crop (height, width) at ground-truth resolution (SMD-Nets: 512 x 512 on UnrealStereo4K).
    crop_size: tuple[int, int] = (256, 512)
    # GT resolution / network-input resolution (SMD-Nets trains on UnrealStereo4K with 4: 4K GT, 960 px input).
    aspect_ratio: float = 1.0
    num_points: int = 10000  # query points per crop (SMD-Nets: 50000)
    strategy: str = "dda"  # "random" (uniform over valid pixels) or "dda" (half of the points on depth edges)
    # DDA: depth edges are disparity jumps > edge_threshold (network px), dilated by a dilation x dilation square.
    edge_threshold: float = 1.0
    dilation: int = 10
    dense_labels: bool = False  # training samples also carry the dense label grid "disp" (crop_h, crop_w)
    crop_tries: int = 10  # crops without a single valid pixel are redrawn up to this many times

    def __post_init__(self) -> None:
        crop = tuple(int(v) for v in self.crop_size)
        if len(crop) != 2 or min(crop) <= 0:
            raise ValueError(f"crop_size must be (height, width) > 0, got {self.crop_size}")
        self.crop_size = crop
        if not self.aspect_ratio > 0:
            raise ValueError(f"aspect_ratio must be > 0, got {self.aspect_ratio}")
        _ = self.network_size  # validates divisibility
        if int(self.num_points) <= 0:
            raise ValueError(f"num_points must be > 0, got {self.num_points}")
        self.strategy = str(self.strategy).lower()
        if self.strategy not in SAMPLING_STRATEGIES:
            raise ValueError(f"sampling strategy must be one of {SAMPLING_STRATEGIES}, got {self.strategy!r}")
        if self.edge_threshold < 0 or self.dilation < 0 or self.crop_tries < 1:
            raise ValueError(f"need edge_threshold >= 0, dilation >= 0, crop_tries >= 1; got "
                             f"{self.edge_threshold}, {self.dilation}, {self.crop_tries}")

    @property
    def network_size(self) -> tuple[int, int]:
        """(h, w) of the network input: crop_size / aspect_ratio, which must be whole numbers."""
        out = []
        for v in self.crop_size:
            s = v / float(self.aspect_ratio)
            if abs(s - round(s)) > 1e-6 or round(s) < 1:
                raise ValueError(f"crop_size {self.crop_size} / aspect_ratio {self.aspect_ratio} must be whole "
                                 f"numbers of pixels (got {s})")
            out.append(int(round(s)))
        return out[0], out[1]
