"""The stereo node's thread plumbing, free of ROS: the one-slot mailbox between the executor and the worker,
the throttled log, the counters, and where an exception was raised."""

from __future__ import annotations

import collections
import threading
import time
import traceback
from typing import Any


def raised_at(exc: BaseException) -> str:
    """"file:line in function" of the innermost frame of `exc`'s traceback (where it was raised)."""
    last = (traceback.extract_tb(exc.__traceback__) or [None])[-1]
    return f"{last.filename}:{last.lineno} in {last.name}" if last else "unknown location"


class LatestSlot:
    """A one-item mailbox: `put` replaces (and returns) any item not yet taken; `take` waits for one."""

    def __init__(self) -> None:
        self._item: Any = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item: Any) -> Any:
        """Store `item`; returns the stale item it replaced (None if the slot was empty)."""
        with self._cond:
            old, self._item = self._item, item
            self._cond.notify()
            return old

    def take(self, timeout: float | None = None) -> Any:
        """The stored item (emptying the slot), or None on timeout or after `close`."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return int(self._item is not None)


class ThrottledLog:
    """At most one log line per `key` per `period` seconds; suppressed repeats are counted into the next line."""

    def __init__(self, logger: Any, period: float = 5.0, clock: Any = time.monotonic) -> None:
        self.logger, self.period, self.clock = logger, period, clock
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, level: str, key: str, message: str) -> bool:
        """Log `message` at `level` ("info"/"warning"/"error") unless `key` logged recently; True if logged."""
        if level not in ("info", "warning", "error"):
            raise ValueError(f"log level must be info, warning or error, got {level!r}")
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period:
                self._suppressed[key] += 1
                return False
            self._last[key] = now
            repeats = self._suppressed.pop(key, 0)
        text = message + (f" ({repeats} more since the last report)" if repeats else "")
        # rclpy allows one severity per calling line ("Logger severity cannot be changed between calls"): one
        # line per level.
        if level == "error":
            self.logger.error(text)
        elif level == "warning":
            self.logger.warning(text)
        else:
            self.logger.info(text)
        return True


class Stats:
    """Counters and the latencies of the current report window (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.window: list[tuple[float, float, float]] = []  # (latency s, model s, overhead s)
        self.window_start = time.monotonic()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def frame(self, latency: float, model: float, overhead: float) -> None:
        with self.lock:
            self.counts["published"] += 1
            self.window.append((latency, model, overhead))

    def snapshot(self) -> tuple[dict[str, int], list[tuple[float, float, float]], float]:
        """(counters, window entries, window seconds), starting a new window."""
        with self.lock:
            now = time.monotonic()
            out = dict(self.counts), self.window, now - self.window_start
            self.window, self.window_start = [], now
            return out
