"""The synchronizer the node subscribes through: ROS's `message_filters` where installed, else the stand-in here.

The PyPI wheels of rclpy and the message packages come without message_filters. The stand-in holds what the node
uses (`Subscriber`, `TimeSynchronizer`, `ApproximateTimeSynchronizer`, `registerCallback`) and pairs messages as
message_filters 6.x does; `message_filters.__name__` says which one runs.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from smd_ros.sensors import stamp_ns


class _Filter:
    """Calls every registered callback with its outputs, followed by the extra args it was registered with."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802 (message_filters' name)
        self._callbacks.append((cb, args))
        return len(self._callbacks) - 1

    def signalMessage(self, *msgs: Any) -> None:  # noqa: N802 (message_filters' name)
        for cb, args in list(self._callbacks):
            cb(*msgs, *args)


class Subscriber(_Filter):
    """One subscription as a filter; `sub` is the rclpy subscription (QoS: message_filters' default, see the node)."""

    def __init__(self, node: Any, msg_type: type, topic: str, qos_profile: Any = 10, **kwargs: Any) -> None:
        super().__init__()
        self.sub = node.create_subscription(msg_type, topic, self.signalMessage, qos_profile, **kwargs)


class TimeSynchronizer(_Filter):
    """Emits one message per input for each header stamp that every input holds, oldest stamp first.

    Each input keeps its `queue_size` newest stamps; emitted messages leave the queues.
    """

    def __init__(self, fs: Sequence[_Filter], queue_size: int) -> None:
        super().__init__()
        self.queue_size = queue_size
        self.lock = threading.Lock()
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        for index, f in enumerate(fs):
            f.registerCallback(self.add, index)

    def _store(self, msg: Any, index: int) -> int:
        queue, stamp = self.queues[index], stamp_ns(msg)
        queue[stamp] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
        return stamp

    def _emit(self, stamps: Sequence[int]) -> None:
        self.signalMessage(*(queue.pop(stamp) for queue, stamp in zip(self.queues, stamps, strict=True)))

    def add(self, msg: Any, index: int) -> None:
        with self.lock:
            self._store(msg, index)
            for stamp in sorted(set(self.queues[0]).intersection(*self.queues[1:])):
                self._emit([stamp] * len(self.queues))


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Emits sets whose stamps span strictly less than `slop` seconds, chosen as message_filters 6.x does.

    At each arrival, every other input lists its messages within `slop` of the new stamp, nearest first; the first
    combination of those lists (`itertools.product` order) that spans less than `slop` is emitted with the new
    message. So a set is not always each input's nearest message. Messages must have a header.
    """

    def __init__(self, fs: Sequence[_Filter], queue_size: int, slop: float) -> None:
        super().__init__(fs, queue_size)
        self.slop_ns = int(slop * 1e9)  # truncated, as rclpy's Duration(seconds=slop) that the original compares

    def add(self, msg: Any, index: int) -> None:
        with self.lock:
            stamp = self._store(msg, index)
            if stamp not in self.queues[index]:  # older than the whole full queue
                return
            near = [sorted((s for s in queue if abs(s - stamp) <= self.slop_ns), key=lambda s: abs(s - stamp))
                    for i, queue in enumerate(self.queues) if i != index]
            for others in itertools.product(*near):
                stamps = [*others[:index], stamp, *others[index:]]
                if max(stamps) - min(stamps) < self.slop_ns:
                    self._emit(stamps)
                    return


try:
    import message_filters  # noqa: E402 (ROS's own, where installed)
except ImportError:
    message_filters = sys.modules[__name__]
