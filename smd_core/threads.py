"""Helper threads shared by a process (no torch here): one pool per name, made anew in a forked child.

The guide channels (`classical`) and the backends' concurrent query blocks (`infer.dense.DensePredictor`) split
their work with a few long-lived threads instead of starting threads per frame.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, tuple[int, int, ThreadPoolExecutor]] = {}  # name -> (pid, workers, pool)
_lock = threading.Lock()


def pool(name: str, workers: int, *, initializer: Callable[[], None] | None = None,
         started: Callable[[], None] | None = None) -> ThreadPoolExecutor:
    """This process's pool `name` of `workers` threads, every one of them started (and through `initializer`) before
    it is returned; `started` then runs in the caller, once per new pool. A forked child has its parent's pool
    objects but not their threads, so it gets a new pool; so does a call with another number of workers (the old
    pool finishes its work and ends)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with _lock:
        pid = os.getpid()
        known = _pools.get(name)
        if known is not None and known[:2] == (pid, workers):
            return known[2]
        if known is not None and known[0] == pid:
            known[2].shutdown(wait=False)
        executor = ThreadPoolExecutor(workers, thread_name_prefix=f"smd-{name}", initializer=initializer)
        # One task per worker that waits for all the others: every thread starts (and runs `initializer`) now.
        barrier = threading.Barrier(workers)
        for future in [executor.submit(barrier.wait) for _ in range(workers)]:
            future.result()
        if started is not None:
            started()
        _pools[name] = (pid, workers, executor)
        return executor
