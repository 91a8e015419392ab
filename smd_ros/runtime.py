"""The node process's CPU settings and input-size guard; no ROS and no torch imports at module level.

The OpenMP wait behaviour is written into the environment before torch loads (libgomp reads it once, when the
library is loaded). On a robot other processes always share the CPU: with libgomp's default (spin up to 300k
iterations) a thread waiting at a barrier burns the core that the busy neighbour needs. `WAIT_POLICY_ENV`
(PASSIVE: waiting threads sleep) is the choice of bench/bench_threads.py. A value the user set always wins.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping

from smd_core.infer.dense import scaled_size

WAIT_POLICY_ENV: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}
# Any of these set by the user means "the user chose": leave the environment alone.
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def set_openmp_defaults(environ: MutableMapping[str, str] | None = None) -> str:
    """Write `WAIT_POLICY_ENV` into `environ` (default os.environ) unless the user set a wait policy; returns the
    start-up log's line saying what is in force and why."""
    env = os.environ if environ is None else environ
    if user := {k: env[k] for k in OPENMP_VARIABLES if k in env}:
        return "OpenMP wait policy from the environment: " + ", ".join(f"{k}={v}" for k, v in user.items())
    if "torch" in sys.modules and environ is None:
        return ("OpenMP wait policy: libgomp's default (torch was loaded before smd_ros.stereo_node, too late to "
                f"set {WAIT_POLICY_ENV})")
    env.update(WAIT_POLICY_ENV)
    return "OpenMP wait policy: " + ", ".join(f"{k}={v}" for k, v in WAIT_POLICY_ENV.items()) + " (smd_ros default)"


def cpu_bfloat16(precision: str, model_safe: bool, supported: bool) -> bool:
    """Whether the node runs the network in bfloat16 on the CPU (the `cpu_precision` parameter): never without
    native support; `auto` where the model's checkpoint says it is safe (`Deployment.cpu_bfloat16`)."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"cpu_precision must be auto, float32 or bfloat16, got {precision!r}")
    return supported and (precision == "bfloat16" or (precision == "auto" and model_safe))


def cloud_max_uncertainty(value: float, model_default: float, disparity_scale: float) -> float:
    """The cloud's uncertainty threshold (output px; 0 = keep every point) for the `max_uncertainty` parameter:
    `value` when >= 0; -1 (auto): the model's own `Deployment.cloud_max_uncertainty` (network px) times
    `disparity_scale` (output px per network px)."""
    return float(value) if value >= 0 else float(model_default) * float(disparity_scale)


def default_threads() -> int:
    """The number of cores this process may run on (affinity mask, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def input_guard(width: int, height: int, input_scale: float, max_pixels: int) -> float:
    """The factor (<= 1) by which to downscale a frame so that its network input (images x `input_scale`) holds
    at most `max_pixels`; 1 when it fits or `max_pixels` is 0 (no limit).

    The node applies it to the whole frame, network input and output grid alike: the network's activations and
    the head's queries (one per output pixel) both grow with the pixels, so bounding only the network input
    still left a 4000x3000 frame minutes long (bench/bench_memory.py).
    """
    if max_pixels <= 0:
        return 1.0
    hn, wn = scaled_size(height, width, input_scale)
    if wn * hn <= max_pixels:
        return 1.0
    factor = math.sqrt(max_pixels / (wn * hn))
    for _ in range(100):  # rounding up can overshoot by a row or a column
        if math.prod(scaled_size(height, width, input_scale * factor)) <= max_pixels:
            break
        factor *= 0.999
    return factor
