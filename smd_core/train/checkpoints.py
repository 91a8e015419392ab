"""Training checkpoints: RNG states as tensors, lists and scalars (so `torch.load(weights_only=True)` reads
them), step files, rotation, resume, --init."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from smd_core.model.network import SMDNet, load_state_dict_checked, read_checkpoint, state_dict_of

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.pth$")
RESUME_KEYS = ("state_dict", "optimizer", "scheduler", "step", "rng")  # entries `train` writes and `--resume` needs


def get_rng_state(device: torch.device) -> dict[str, Any]:
    """torch / NumPy / Python (and CUDA) generator states as tensors, lists and scalars."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "internal": torch.tensor(py_state[1], dtype=torch.int64),
                   "gauss_next": py_state[2]},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Inverse of `get_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def checkpoint_path(ckpt_dir: Path, step: int) -> Path:
    return ckpt_dir / f"step_{step:08d}.pth"


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the `step_XXXXXXXX.pth` files in `ckpt_dir`, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name)))


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint file, or the newest `step_*.pth` in a folder (or in its `checkpoints/` subfolder)."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        found = list_checkpoints(p) or list_checkpoints(p / "checkpoints")
        if not found:
            raise FileNotFoundError(f"no step_*.pth checkpoint in {p} (or {p / 'checkpoints'})")
        return found[-1][1]
    raise FileNotFoundError(f"resume checkpoint not found: {p}")


def rotate_checkpoints(ckpt_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` step checkpoints and stale temp files; returns deleted paths."""
    found = list_checkpoints(ckpt_dir)
    doomed = [p for _, p in found[: max(len(found) - keep_last, 0)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """Temp files of `save_checkpoint` left by a killed run (`.step_*.pth.*.tmp`)."""
    if ckpt_dir.is_dir():
        for p in ckpt_dir.glob(".step_*.pth.*.tmp"):
            p.unlink(missing_ok=True)


def load_init_weights(model: SMDNet, path: str | Path, *, strict: bool = True, skip: Sequence[str] = ()) -> list[str]:
    """Copy weights from a published SMD-Nets checkpoint or one of ours into `model`; returns the names of the
    tensors that keep their fresh initialisation.

    strict: every tensor must match by name and shape (else ValueError listing the differences). Not strict:
    the tensors with matching name and shape (and widened convolutions, `widened`) are loaded, the rest kept.
    skip: name prefixes never copied; one that names no tensor of the model is a ValueError.
    """
    path = Path(path)
    sd = state_dict_of(read_checkpoint(path), path)
    own = model.state_dict()
    if unknown := [p for p in skip if not any(k.startswith(p) for k in own)]:
        raise ValueError(f"init_skip {unknown} names no parameter of the model (e.g. {sorted(own)[:3]})")
    prefixes = tuple(skip)
    fresh = {k: v for k, v in own.items() if prefixes and k.startswith(prefixes)}
    # Checked like any other load, with the skipped tensors' fresh values standing in.
    sd = {**{k: v for k, v in sd.items() if not (prefixes and k.startswith(prefixes))}, **fresh}
    if strict:
        load_state_dict_checked(model, sd, path=path)
        return sorted(fresh)
    usable = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    usable.update({k: widened(v, own[k]) for k, v in sd.items() if k in own and is_widening(v, own[k])})
    if not usable:
        raise ValueError(f"{path}: no tensor of the checkpoint matches the model by name and shape")
    model.load_state_dict(usable, strict=False)
    return sorted((set(own) - set(usable)) | set(fresh))


def is_widening(old: Tensor, new: Tensor) -> bool:
    """A conv weight (out, in, k...) whose model counterpart has more input channels and is otherwise alike."""
    return (old.dim() >= 3 and old.dim() == new.dim() and new.shape[1] > old.shape[1]
            and old.shape[:1] == new.shape[:1] and old.shape[2:] == new.shape[2:])


def widened(old: Tensor, new: Tensor) -> Tensor:
    """`old` in the first input channels of `new`'s shape, zeros after: the layer computes what it did on the
    old inputs, so a model given new input channels (appended last) starts where the checkpoint was."""
    out = torch.zeros_like(new)
    out[:, : old.shape[1]] = old.to(new.dtype)
    return out


def read_resume_state(resume: str | Path) -> tuple[Path, dict[str, Any]]:
    """(file, contents) of a resumable checkpoint; ValueError naming what a plain weights file lacks."""
    path = resolve_resume(resume)
    state = read_checkpoint(path)
    if missing := [k for k in RESUME_KEYS if k not in state]:
        raise ValueError(f"{path}: not a resumable training checkpoint (missing {missing}); "
                         "use --init to start from its weights instead")
    return path, state
