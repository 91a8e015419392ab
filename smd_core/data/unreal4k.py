"""UnrealStereo4K frame sources, full and quarter resolution.

- `UnrealStereo4KDataset`: `root/0000S/Image0|Image1/NNNNN.png` (4-channel PNG, alpha dropped) or the `.raw`
  conversion the SMD-Nets README recommends (headerless BGR 2160x3840), `Disp0|Disp1/NNNNN.npy` (float32 at
  full 4K pixel scale); an official split file (4 columns relative to `root`) may select the frames; a listed
  `.png` that is missing is looked up as `.raw` and vice versa.
- `UnrealStereo4KQuarterDataset`: the quarter-resolution release (960x540 JPG or PNG images, NPY disparities)
  in the same layout. Whether its NPYs are at quarter resolution and/or in quarter-resolution pixels is
  detected, not assumed: a map k times wider than the image is resampled to the image grid, and the value
  scale is the candidate (1 / k and 1, or 1 and 1 / 4) with which the right image, warped by the disparity,
  matches the left image best (`detect_disparity_scale`); `disparity_scale` overrides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from smd_core.data.datasets import FrameDataset, FrameEntry
from smd_core.data.io import read_disparity, read_image, sanitize_disparity


def _with_fallback(path: Path, extensions: Sequence[str]) -> Path:
    """`path` if it exists, else the first existing sibling with one of `extensions`."""
    if path.is_file():
        return path
    for ext in extensions:
        alt = path.with_suffix(ext)
        if alt.is_file():
            return alt
    raise FileNotFoundError(f"no such file: {path} (also tried {', '.join(extensions)})")


_Row = tuple[Path, Path, Path, Path | None]


def _unreal_scan(root: Path, image_exts: Sequence[str]) -> list[_Row]:
    out = []
    for scene in sorted(p for p in root.iterdir() if p.is_dir() and (p / "Image0").is_dir()):
        for left in sorted(f for f in (scene / "Image0").iterdir() if f.suffix.lower() in image_exts):
            right = _with_fallback(scene / "Image1" / left.name, image_exts)
            disp_l, disp_r = (scene / folder / f"{left.stem}.npy" for folder in ("Disp0", "Disp1"))
            if not disp_l.is_file():
                raise FileNotFoundError(f"UnrealStereo4K frame {left}: missing {disp_l}")
            out.append((left, right, disp_l, disp_r if disp_r.is_file() else None))
    return out


def _unreal_split(root: Path, split_file: Path, image_exts: Sequence[str]) -> list[_Row]:
    if not split_file.is_file():
        raise FileNotFoundError(f"split file not found: {split_file}")
    out = []
    for lineno, raw in enumerate(split_file.read_text().splitlines(), start=1):
        cols = raw.split("#", 1)[0].split()
        if not cols:
            continue
        if len(cols) not in (3, 4):
            raise ValueError(f"{split_file}:{lineno}: expected 'Image0 Image1 Disp0 [Disp1]' paths, got {len(cols)}")
        left, right = _with_fallback(root / cols[0], image_exts), _with_fallback(root / cols[1], image_exts)
        disps = [root / c for c in cols[2:]]
        for q in disps:
            if not q.is_file():
                raise FileNotFoundError(f"{split_file}:{lineno}: no such file {q}")
        out.append((left, right, disps[0], disps[1] if len(disps) == 2 else None))
    return out


def _unreal_entries(root: Path, split_file: str | Path | None, image_exts: Sequence[str]) -> list[FrameEntry]:
    if not root.is_dir():
        raise FileNotFoundError(f"UnrealStereo4K root not found: {root}")
    rows = _unreal_split(root, Path(split_file), image_exts) if split_file else _unreal_scan(root, image_exts)
    return [FrameEntry(left, right, disp_l, disp_r, f"{left.parent.parent.name}/{left.stem}")
            for left, right, disp_l, disp_r in rows]


class UnrealStereo4KDataset(FrameDataset):
    """Full-resolution UnrealStereo4K (3840x2160 PNG or `.raw`, NPY disparity at 4K scale)."""

    def __init__(self, root: str | Path, *, split_file: str | Path | None = None, limit: int = 0,
                 raw_shape: tuple[int, int] | None = None) -> None:
        super().__init__(_unreal_entries(Path(root), split_file, (".png", ".raw")), limit=limit, raw_shape=raw_shape)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY).astype(np.float32)


def detect_disparity_scale(left: np.ndarray, right: np.ndarray, disp: np.ndarray,
                           candidates: Sequence[float] = (1.0, 0.25), *, max_points: int = 50000,
                           seed: int = 0) -> float:
    """The factor s among `candidates` for which right(x - s * disp, y) best matches left(x, y): the median
    absolute grey-level difference (robust to occlusions) at up to `max_points` valid pixels whose match stays
    inside the image for every candidate; disp (H, W) on the images' grid, 0 = invalid."""
    if not candidates:
        raise ValueError("candidates must not be empty")
    d = sanitize_disparity(disp)
    if d.shape != left.shape[:2] or d.shape != right.shape[:2]:
        raise ValueError(f"images {left.shape[:2]}, {right.shape[:2]} and disparity {d.shape} must share a grid")
    H, W = d.shape
    ys, xs = np.nonzero(d > 0)
    vals = d[ys, xs]
    keep = np.ones(xs.size, bool)
    for s in candidates:
        xr = xs - s * vals
        keep &= (xr >= 0) & (xr <= W - 1)
    ys, xs, vals = ys[keep], xs[keep], vals[keep]
    if xs.size == 0:
        raise ValueError("no valid disparity whose match lies inside the image for every candidate scale")
    if xs.size > max_points:
        pick = np.random.default_rng(seed).choice(xs.size, max_points, replace=False)
        ys, xs, vals = ys[pick], xs[pick], vals[pick]
    gl, gr = _grey(left), _grey(right)
    ref = gl[ys, xs]
    costs = []
    for s in candidates:
        xr = xs - s * vals
        x0 = np.clip(np.floor(xr).astype(np.intp), 0, W - 2)
        f = (xr - x0).astype(np.float32)
        warped = gr[ys, x0] * (1 - f) + gr[ys, x0 + 1] * f
        costs.append(float(np.median(np.abs(warped - ref))))
    return float(candidates[int(np.argmin(costs))])


class UnrealStereo4KQuarterDataset(FrameDataset):
    """Quarter-resolution UnrealStereo4K (module docstring)."""

    def __init__(self, root: str | Path, *, split_file: str | Path | None = None, limit: int = 0,
                 disparity_scale: float | None = None) -> None:
        super().__init__(_unreal_entries(Path(root), split_file, (".jpg", ".jpeg", ".png")), limit=limit)
        if disparity_scale is not None and not disparity_scale > 0:
            raise ValueError(f"disparity_scale must be > 0, got {disparity_scale}")
        self.disparity_scale = disparity_scale
        if disparity_scale is None:
            frame, ratio = self._load(0)
            candidates = (1.0 / ratio, 1.0) if ratio > 1 else (1.0, 0.25)
            self.disparity_scale = detect_disparity_scale(frame["left"], frame["right"], frame["disp_left"], candidates)

    def _load(self, index: int) -> tuple[dict[str, Any], int]:
        """Images, raw disparities resampled to the image grid, and the grid ratio k (disp width / image width)."""
        e = self.entries[index]
        left, right = read_image(e.left), read_image(e.right)
        h, w = left.shape[:2]
        frame: dict[str, Any] = {"left": left, "right": right}
        ratio = 1
        for key, path in (("disp_left", e.disp_left), ("disp_right", e.disp_right)):
            if key == "disp_right" and not self.has_right_disparity:
                continue
            assert path is not None
            d = read_disparity(path)
            dh, dw = d.shape
            if (dh, dw) != (h, w):
                k = dw / w
                if abs(k - round(k)) > 1e-6 or round(k) < 1 or dh != round(k) * h:
                    raise ValueError(f"{e.name}: disparity {d.shape} is not an integer multiple of image {(h, w)}")
                ratio = int(round(k))
                # Nearest neighbour: never blends disparities across depth edges.
                d = cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST)
            frame[key] = d
        frame["name"] = e.name
        return frame, ratio

    def frame(self, index: int, *, lazy: bool = False) -> dict[str, Any]:
        frame, _ = self._load(index)
        s = float(self.disparity_scale or 1.0)
        for key in ("disp_left", "disp_right"):
            if key in frame and s != 1.0:
                frame[key] = frame[key] * np.float32(s)
        self._check_shapes(frame, self.entries[index])
        return frame
