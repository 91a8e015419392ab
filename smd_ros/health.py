"""The stereo node's health for /diagnostics: one level and message from the last report window (no ROS imports).

The level describes the *current* window and the worker's state, never the cumulative counters (those are
published as values beside it), so that a node recovers to OK once a problem is over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels


@dataclasses.dataclass(frozen=True)
class Health:
    level: int
    message: str


def window_counts(previous: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """What the cumulative counters `current` added since `previous` (keys of `current`)."""
    return {key: value - previous.get(key, 0) for key, value in current.items()}


def health(window: Mapping[str, int], *, worker_alive: bool, waiting_s: float, stall_timeout: float) -> Health:
    """The level for one report window.

    window: counters added in this window ("images": left images seen, "received": synchronized sets,
    "published", "rejected", "errors"). waiting_s: how long synchronized input has been waiting for an output
    (0 when nothing is waiting: the worker is idle and the slot empty).
    """
    if not worker_alive:
        return Health(ERROR, "the inference worker is not running: no outputs will be published (see the log)")
    errors, rejected = window.get("errors", 0), window.get("rejected", 0)
    if errors:
        return Health(ERROR, f"{errors} frame(s) failed in the last report period (see the log)")
    if waiting_s > stall_timeout:
        return Health(ERROR, f"synchronized input arrives but nothing was published for {waiting_s:.1f} s "
                             f"(stall_timeout {stall_timeout:g} s)")
    if rejected:
        return Health(WARN, f"{rejected} input set(s) skipped as bad input in the last report period "
                            "(see the rejected_* counters and the log)")
    if window.get("received", 0) == 0:
        if window.get("images", 0):
            return Health(WARN, "images arrive but no synchronized set forms (camera_info missing or stamped "
                                "differently?)")
        return Health(STALE, "no input in the last report period")
    return Health(OK, "ok")
