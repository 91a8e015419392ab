"""The errors of the bag tools (no heavy imports, so the CLI can name them before it runs anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class BagError(ValueError):
    """A recording cannot be used as asked (missing topic, wrong type, unreadable file...)."""


class BagReadError(BagError):
    """The recording is damaged: `messages_read` messages were delivered, the last at log time `last_time_ns`
    (None: none), then reading failed for `reason`."""

    def __init__(self, bag: Path, messages_read: int, last_time_ns: int | None, reason: str) -> None:
        self.bag, self.messages_read, self.last_time_ns, self.reason = bag, messages_read, last_time_ns, reason
        where = "before the first message" if last_time_ns is None else f"after log time {last_time_ns} ns"
        super().__init__(f"{bag}: recording is damaged ({reason}); read {messages_read} messages, stopped {where}")


class DatasetExistsError(BagError):
    """The output folder holds something this run must not overwrite or mix with."""


class DamagedBagError(BagError):
    """Recordings were damaged; the frames before the damage were written (`report`, a ConversionReport)."""

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report
