"""smd_core.threads: one pool per name and process, every thread started through its initializer."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from smd_core import threads


def test_every_worker_is_initialized_before_the_pool_is_returned() -> None:
    seen: list[int] = []
    executor = threads.pool("test-init", 3, initializer=lambda: seen.append(threading.get_ident()),
                            started=lambda: seen.append(-len(seen)))
    assert len(set(seen[:3])) == 3  # three threads, each initialized once, all before any work
    assert seen[3:] == [-3]  # then `started`, once, in the caller
    assert threads.pool("test-init", 3, started=lambda: seen.append(0)) is executor  # the same pool
    assert len(seen) == 4
    idents = {executor.submit(threading.get_ident).result() for _ in range(20)}
    assert idents <= set(seen[:3])


def test_another_size_replaces_the_pool() -> None:
    old = threads.pool("test-size", 1)
    new = threads.pool("test-size", 2)
    assert new is not old and threads.pool("test-size", 2) is new
    with pytest.raises(RuntimeError):  # the replaced pool takes no more work
        old.submit(int)
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        threads.pool("test-size", 0)


def _in_child() -> tuple[int, int]:
    return threads.pool("test-fork", 1).submit(os.getpid).result(), os.getpid()


def test_a_forked_child_gets_its_own_threads() -> None:
    assert threads.pool("test-fork", 1).submit(os.getpid).result() == os.getpid()
    with multiprocessing.get_context("fork").Pool(1) as child:
        worker_pid, child_pid = child.apply_async(_in_child).get(timeout=60)  # the parent's pool would hang here
    assert worker_pid == child_pid != os.getpid()
