"""The errors of the bag tools (no heavy imports, so the CLI can name them before it runs anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BagError", "BagReadError", "DamagedBagError", "DatasetExistsError"]


class BagError(ValueError):
    """A recording cannot be used as asked (missing topic, wrong type, unreadable file...)."""


class BagReadError(BagError):
    """The recording is damaged; every message before `last_time_ns` was delivered.

    Attributes: bag (path), messages_read (count delivered), last_time_ns (log time of the last delivered
    message, or None), reason (the underlying error text).
    """

    def __init__(self, bag: Path, messages_read: int, last_time_ns: int | None, reason: str) -> None:
        self.bag = bag
        self.messages_read = messages_read
        self.last_time_ns = last_time_ns
        self.reason = reason
        where = "before the first message" if last_time_ns is None else f"after log time {last_time_ns} ns"
        super().__init__(f"{bag}: recording is damaged ({reason}); read {messages_read} messages, stopped {where}")


class DatasetExistsError(BagError):
    """The output folder holds something this run must not overwrite or mix with."""


class DamagedBagError(BagError):
    """One or more recordings were damaged; the frames before the damage were written. `report` tells more."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report
