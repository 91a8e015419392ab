"""The one real stereo pair with ground truth that needs no download: Middlebury 2014 "Motorcycle".

scikit-image (already a dependency, for textures) bundles it, downscaled 4x to 741x500, with its ground-truth
disparity (NaN where there is none: occlusions and unreliable structured-light matches). Real sensor noise,
lighting and geometry (wheels with spokes, a chair's lattice) are what the procedural generator only imitates,
so this frame is the project's check that what is learnt on synthetic scenes carries over:
`smd eval --data motorcycle --baseline sgbm,sgbm_fill`. Nothing trains on it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from smd_core.data.io import sanitize_disparity
from smd_core.geometry import StereoCamera

NAME = "middlebury2014_motorcycle_quarter"


def motorcycle_camera() -> StereoCamera:
    """The rectified camera of the bundled (4x downscaled) Motorcycle pair, as scikit-image documents it."""
    return StereoCamera(fx=994.978, fy=994.978, cx=311.193, cy=254.877, baseline=0.193001, width=741, height=500,
                        doffs=31.086)


def load_motorcycle() -> dict[str, Any]:
    """The Motorcycle frame, a full frame (`smd_core.data` docstring)."""
    from skimage import data as skdata

    left, right, disp = skdata.stereo_motorcycle()
    return {"left": cv2.cvtColor(np.ascontiguousarray(left), cv2.COLOR_RGB2BGR),
            "right": cv2.cvtColor(np.ascontiguousarray(right), cv2.COLOR_RGB2BGR),
            "disp_left": sanitize_disparity(disp), "name": NAME}


class MotorcycleDataset(Dataset):
    """One frame: `load_motorcycle()` (read once, then copies, so callers may modify what they get)."""

    has_right_disparity = False

    def __init__(self) -> None:
        self._frame = load_motorcycle()

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.frame(index)

    def frame(self, index: int, *, lazy: bool = False) -> dict[str, Any]:
        if index not in (0, -1):
            raise IndexError(f"the motorcycle data has one frame (index 0), got index {index}")
        return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in self._frame.items()}
