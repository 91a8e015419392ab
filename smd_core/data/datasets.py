"""Stereo datasets on disk, as frame sources: item i is the full frame `frame(i)` (`smd_core.data` docstring);
`frame(i, lazy=True)` may return memory maps (`.raw` images, `.npy` disparities) and unsanitised disparity so
that a training crop reads only its box (`sampling.make_training_sample` cleans it).

Layouts:

- `ListDataset`: a text file with lines `left right disp_left [disp_right]`, paths relative to the
  list file's folder (or to `root` when given), absolute paths allowed; disparity `.npy` (float32 px),
  `.pfm` or `.png` (16-bit KITTI, /256); blank lines and `#` comments ignored.
- `KITTI2015Dataset`: `root/[training/]image_2/XXXXXX_10.png`, `image_3/`, `disp_occ_0/` (or `disp_noc_0/`
  with `disparity="noc"`); KITTI 2012's `colored_0/colored_1/disp_occ` layout is accepted too.
- `MiddleburyDataset`: scene folders with `im0.png`, `im1.png`, `disp0.pfm` (or MiddEval3's
  `disp0GT.pfm`) and, when present in all scenes, `disp1.pfm`; inf marks invalid pixels.
- `SceneFlowDataset`: `.../frames_cleanpass/.../left/XXXX.png` (or `frames_finalpass`) with
  `.../disparity/.../left/XXXX.pfm` beside it, and `right/` for both; FlyingThings3D, Monkaa and Driving
  all follow this; `split` keeps paths containing that folder name (e.g. "TRAIN", "TEST").
- UnrealStereo4K: `unreal4k`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from smd_core.data.io import read_disparity, read_image


@dataclasses.dataclass(frozen=True)
class FrameEntry:
    left: Path
    right: Path
    disp_left: Path
    disp_right: Path | None
    name: str


class FrameDataset(Dataset):
    """Base class: a fixed list of `FrameEntry`; item i is `frame(i)`."""

    def __init__(self, entries: Sequence[FrameEntry], *, limit: int = 0, raw_shape: tuple[int, int] | None = None):
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.entries = list(entries)[: limit or None]
        if not self.entries:
            raise ValueError(f"{type(self).__name__}: no frames found")
        self.raw_shape = tuple(raw_shape) if raw_shape else None
        self.has_right_disparity = all(e.disp_right is not None for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.frame(index)

    def frame(self, index: int, *, lazy: bool = False) -> dict[str, Any]:
        e = self.entries[index]
        out: dict[str, Any] = {"left": read_image(e.left, raw_shape=self.raw_shape, mmap=lazy),
                               "right": read_image(e.right, raw_shape=self.raw_shape, mmap=lazy),
                               "disp_left": read_disparity(e.disp_left, mmap=lazy, sanitize=not lazy)}
        if self.has_right_disparity:
            assert e.disp_right is not None
            out["disp_right"] = read_disparity(e.disp_right, mmap=lazy, sanitize=not lazy)
        out["name"] = e.name
        self._check_shapes(out, e)
        return out

    @staticmethod
    def _check_shapes(frame: dict[str, Any], e: FrameEntry) -> None:
        shape = frame["disp_left"].shape[:2]
        for key in ("left", "right", "disp_right"):
            if key in frame and frame[key].shape[:2] != shape:
                raise ValueError(f"{e.name}: {key} has size {frame[key].shape[:2]} but disp_left has {shape} "
                                 f"({e.left}, {e.disp_left})")


def _name_from(path: Path, base: Path) -> str:
    """`path` relative to `base` without extension ("scene/left/0006"), or its stem if outside `base`."""
    rel = Path(os.path.relpath(os.path.normpath(path), os.path.normpath(base)))
    if rel.parts and rel.parts[0] == os.pardir:
        rel = Path(path.name)
    return str(rel.with_suffix("")).replace(os.sep, "/")


def read_list_file(path: str | Path, *, root: str | Path | None = None) -> list[FrameEntry]:
    """Parse `left right disp_left [disp_right]` lines; relative paths are resolved against `root`
    (default: the list file's folder). Files must exist."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"list file not found: {p}")
    base = Path(root) if root else p.parent
    entries = []
    for lineno, raw in enumerate(p.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        cols = line.split()
        if len(cols) not in (3, 4):
            raise ValueError(f"{p}:{lineno}: expected 'left right disp_left [disp_right]', got {len(cols)} columns")
        paths = [Path(os.path.normpath(c if Path(c).is_absolute() else base / c)) for c in cols]
        for q in paths:
            if not q.is_file():
                raise FileNotFoundError(f"{p}:{lineno}: no such file {q}")
        entries.append(FrameEntry(paths[0], paths[1], paths[2], paths[3] if len(paths) == 4 else None,
                                  _name_from(paths[0], base)))
    if not entries:
        raise ValueError(f"{p}: no entries")
    return entries


class ListDataset(FrameDataset):
    """Frames listed in a text file (see `read_list_file`)."""

    def __init__(self, list_file: str | Path, *, root: str | Path | None = None, limit: int = 0,
                 raw_shape: tuple[int, int] | None = None) -> None:
        super().__init__(read_list_file(list_file, root=root), limit=limit, raw_shape=raw_shape)


class KITTI2015Dataset(FrameDataset):
    """KITTI stereo 2015 (or 2012) frames with ground truth: the `_10` pairs of `split` ("training")."""

    def __init__(self, root: str | Path, *, split: str = "training", disparity: str = "occ", limit: int = 0) -> None:
        r = Path(root)
        if disparity not in ("occ", "noc"):
            raise ValueError(f"KITTI disparity must be 'occ' or 'noc', got {disparity!r}")
        folder = r / split if split and (r / split).is_dir() else r
        if (folder / "image_2").is_dir():
            left_dir, right_dir, disp_dir = "image_2", "image_3", f"disp_{disparity}_0"
        elif (folder / "colored_0").is_dir():  # KITTI 2012
            left_dir, right_dir, disp_dir = "colored_0", "colored_1", f"disp_{disparity}"
        else:
            raise FileNotFoundError(f"{folder}: no KITTI image_2/ (2015) or colored_0/ (2012) folder")
        if not (folder / disp_dir).is_dir():
            raise FileNotFoundError(f"{folder / disp_dir}: no ground-truth folder (the testing split has none)")
        entries = []
        for left in sorted((folder / left_dir).glob("*_10.png")):
            right, disp = folder / right_dir / left.name, folder / disp_dir / left.name
            if not right.is_file() or not disp.is_file():
                raise FileNotFoundError(f"KITTI frame {left.stem}: missing {right if not right.is_file() else disp}")
            entries.append(FrameEntry(left, right, disp, None, left.stem))
        super().__init__(entries, limit=limit)


class MiddleburyDataset(FrameDataset):
    """Middlebury scenes: every folder under `root` (or `root` itself) holding im0.png, im1.png, disp0*.pfm."""

    def __init__(self, root: str | Path, *, limit: int = 0) -> None:
        r = Path(root)
        if not r.is_dir():
            raise FileNotFoundError(f"Middlebury root not found: {r}")
        scenes = [r] if (r / "im0.png").is_file() else sorted(p.parent for p in r.glob("*/im0.png"))
        entries = []
        for scene in scenes:
            disp = next((scene / n for n in ("disp0.pfm", "disp0GT.pfm") if (scene / n).is_file()), None)
            if disp is None or not (scene / "im1.png").is_file():
                continue  # a scene without ground truth (e.g. MiddEval3 test) is not usable here
            disp1 = next((scene / n for n in ("disp1.pfm", "disp1GT.pfm") if (scene / n).is_file()), None)
            entries.append(FrameEntry(scene / "im0.png", scene / "im1.png", disp, disp1, scene.name))
        if not entries:
            raise FileNotFoundError(f"{r}: no Middlebury scene with im0.png, im1.png and disp0.pfm / disp0GT.pfm")
        super().__init__(entries, limit=limit)


class SceneFlowDataset(FrameDataset):
    """SceneFlow (FlyingThings3D / Monkaa / Driving): frames_<pass>pass/.../left/*.png + disparity/.../*.pfm."""

    def __init__(self, root: str | Path, *, pass_name: str = "clean", split: str = "", limit: int = 0) -> None:
        r = Path(root)
        if pass_name not in ("clean", "final"):
            raise ValueError(f"SceneFlow pass must be 'clean' or 'final', got {pass_name!r}")
        if not r.is_dir():
            raise FileNotFoundError(f"SceneFlow root not found: {r}")
        frames_dir = f"frames_{pass_name}pass"
        entries = []
        for dirpath, dirnames, filenames in os.walk(r):
            dirnames.sort()
            d = Path(dirpath)
            if d.name != "left" or frames_dir not in d.parts:
                continue
            if split and split not in d.relative_to(r).parts:
                continue
            parts = list(d.parts)
            k = len(parts) - 1 - parts[::-1].index(frames_dir)
            disp_dir = Path(*parts[:k], "disparity", *parts[k + 1 :])
            for fname in sorted(f for f in filenames if f.lower().endswith((".png", ".webp"))):
                left = d / fname
                right = d.parent / "right" / fname
                stem = Path(fname).stem
                disp_l = disp_dir / f"{stem}.pfm"
                disp_r = disp_dir.parent / "right" / f"{stem}.pfm"
                missing = right if not right.is_file() else disp_l
                if not missing.is_file():
                    raise FileNotFoundError(f"SceneFlow frame {left}: missing {missing}")
                entries.append(FrameEntry(left, right, disp_l, disp_r if disp_r.is_file() else None,
                                          _name_from(left, r)))
        if not entries:
            raise FileNotFoundError(f"{r}: no SceneFlow frames under {frames_dir}/.../left/"
                                    + (f" in split {split!r}" if split else ""))
        super().__init__(entries, limit=limit)
