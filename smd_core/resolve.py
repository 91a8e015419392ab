"""Where a run's device and weights come from, for the CLI, training and the ROS node alike.

`resolve_device` decides what a `device` setting (auto, cpu, cuda, cuda:N) means on this machine, with an
optional fallback to the CPU; `select_device` is its strict torch.device form. `resolve_checkpoint` turns a
checkpoint setting ("" or None = the bundled model) into a file. torch is imported only when needed.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class DeviceUnavailableError(ValueError, RuntimeError):
    """A CUDA device was requested, is absent, and falling back to the CPU was not allowed: a setting to change
    (ValueError: the CLI prints one line) and a failure of the environment (RuntimeError, for the node)."""


# How a caller of `resolve_device` without fallback turns it on: the ROS node's parameter by default.
NODE_FALLBACK_HINT = "device_fallback is false"
# ... and a command's (`--device` / `device=`): commands have no fallback setting.
COMMAND_HINT = "choose device cpu or auto on this machine"


def device_setting(value: str) -> str:
    """A `device` setting normalised (auto, cpu, cuda or cuda:N); ValueError for anything else."""
    value = str(value).strip().lower()
    if not DEVICE_PATTERN.match(value):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def resolve_device(requested: str, *, fallback: bool = False, cuda_available: bool | None = None,
                   hint: str = NODE_FALLBACK_HINT) -> tuple[str, str]:
    """(torch device string, warning or "") for a `device` setting.

    auto -> cuda when available, else cpu. cuda / cuda:N when CUDA is absent (or N out of range): cpu with a
    warning if `fallback`, else DeviceUnavailableError ending with `hint` (what the caller's user can do).
    `cuda_available` overrides the check (tests).
    """
    requested = device_setting(requested)
    count = 0
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
        count = torch.cuda.device_count() if cuda_available else 0
    elif cuda_available:
        count = 1 << 16  # the caller only says "available"; do not check the index
    if requested == "cpu":
        return "cpu", ""
    if requested == "auto":
        return ("cuda", "") if cuda_available else ("cpu", "")
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if cuda_available and index < count:
        return requested, ""
    why = "CUDA is not available" if not cuda_available else f"there is no CUDA device {index} ({count} found)"
    if not fallback:
        raise DeviceUnavailableError(f"device={requested!r} requested but {why} ({hint})")
    return "cpu", f"device={requested!r} requested but {why}: running on the CPU (set device_fallback:=false to fail)"


def select_device(requested: str) -> torch.device:
    """`resolve_device` without fallback, as a torch.device (the commands' `--device` / `device=`: they have no
    fallback setting, so the error says what to choose instead)."""
    import torch

    return torch.device(resolve_device(requested, hint=COMMAND_HINT)[0])


def resolve_checkpoint(value: str | Path | None, *, hint: str = "pass a checkpoint file") -> Path:
    """The checkpoint file for a setting `value` ("" or None = the bundled model); FileNotFoundError if none. `hint`
    ends the error messages with how to name a file in the caller's terms ("pass --checkpoint", "set the `checkpoint`
    parameter to a file")."""
    if value is None or str(value) == "":
        try:
            weights = importlib.import_module("smd_core.weights")
        except ImportError as exc:
            raise FileNotFoundError("checkpoint is empty (meaning the bundled model) but smd_core.weights is not "
                                    f"importable; {hint}") from exc
        try:
            return Path(weights.default_checkpoint())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"checkpoint is empty (meaning the bundled model) but no model is bundled "
                                    f"with this install ({exc}); {hint}") from exc
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    return path
