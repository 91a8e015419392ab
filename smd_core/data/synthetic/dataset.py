"""Scenes as a dataset: `SyntheticDataset` (rendered on the fly) and `write_dataset` (PNG + NPY + list file)."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from smd_core import viz
from smd_core.data.synthetic.render import render_scene
from smd_core.data.synthetic.scene import options_from


class SyntheticDataset(Dataset):
    """`num_samples` procedural scenes rendered on the fly: item i is the full frame of
    `render_scene((seed, i), ...)` (`smd_core.data` docstring) with "occlusion_left"."""

    def __init__(self, num_samples: int, *, seed: int = 0, height: int = 480, width: int = 640,
                 max_disparity: float = 64.0, render_options: Mapping[str, Any] | None = None) -> None:
        if num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {num_samples}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.render_kwargs: dict[str, Any] = dict(render_options or {})
        self.render_kwargs.update(height=int(height), width=int(width), max_disparity=float(max_disparity))
        options_from(height, width, max_disparity, render_options or {})  # bad options fail here, not in a worker

    def __len__(self) -> int:
        return self.num_samples

    def frame(self, index: int, *, lazy: bool = False) -> dict[str, Any]:
        """Full frame `index` (`lazy`, for the `FrameDataset` interface, changes nothing)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        f = render_scene((self.seed, index), **self.render_kwargs)
        return {"left": f.left, "right": f.right, "disp_left": f.disp_left, "disp_right": f.disp_right,
                "occlusion_left": f.occlusion_left, "name": f"synthetic_{self.seed}_{index:06d}"}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.frame(index)


def write_dataset(out_dir: str | Path, num: int, *, seed: int = 0, height: int = 480, width: int = 640,
                  max_disparity: float = 64.0, list_name: str = "train.txt", progress: bool = True, preview: int = 4,
                  jobs: int = 1, **render_options: Any) -> Path:
    """Write `num` scenes as left/, right/ PNG, disp_left/, disp_right/ NPY (float32 px) and a list file.

    List lines are `left/000000.png right/000000.png disp_left/000000.npy disp_right/000000.npy`
    (relative to `out_dir`), the format `kind: list` datasets read. Scene i equals
    `render_scene((seed, i), ...)`, whatever `jobs` (worker processes). With `preview` > 0 a contact sheet of
    the first frames is written to `preview.png`. Returns the list file's path.
    """
    from tqdm import tqdm

    if num <= 0:
        raise ValueError(f"num must be > 0, got {num}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = Path(out_dir)
    for sub in ("left", "right", "disp_left", "disp_right"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    dataset = SyntheticDataset(num, seed=seed, height=height, width=width, max_disparity=max_disparity,
                               render_options=render_options)
    write = functools.partial(_write_scene, dataset, out)
    sheet: list[np.ndarray] = []
    # Scenes are independent: worker processes write identical files, each scene rendered from its own seed.
    with multiprocessing.get_context("spawn").Pool(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
        names = pool.imap(write, range(num)) if pool is not None else map(write, range(num))
        lines = [f"left/{n}.png right/{n}.png disp_left/{n}.npy disp_right/{n}.npy"
                 for n in tqdm(names, total=num, desc="synth", unit="pair", disable=not progress)]
    for i in range(min(preview, num)):
        f = dataset.frame(i)
        sheet += [viz.label(f["left"], "left"), viz.label(f["right"], "right"),
                  *(viz.label(viz.colorize_disparity(f[k], vmin=0.0, vmax=max_disparity), k.replace("_", " "))
                    for k in ("disp_left", "disp_right"))]
    list_path = out / list_name
    list_path.write_text("\n".join(lines) + "\n")
    if sheet:
        viz.write_png(out / "preview.png", viz.contact_sheet(sheet, cols=4))
    return list_path


def _write_scene(dataset: SyntheticDataset, out: Path, index: int) -> str:
    """Render scene `index` of `dataset` into `out`'s subfolders; returns its file stem."""
    f = dataset.frame(index)
    name = f"{index:06d}"
    for key in ("left", "right"):
        viz.write_png(out / key / f"{name}.png", f[key])
    np.save(out / "disp_left" / f"{name}.npy", f["disp_left"])
    np.save(out / "disp_right" / f"{name}.npy", f["disp_right"])
    return name

