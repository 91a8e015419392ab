"""What the bench scripts share: a spinning process for the "one core busy" cells, and the timed loop their child
processes run (`predictor`, `left`, `right`, `repeats` and `warmup` defined before it; prints the seconds per
frame as a JSON list on its last line)."""

from __future__ import annotations

import subprocess
import sys

TIMED_LOOP = r"""
for _ in range(warmup):
    predictor.predict(left, right)
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    predictor.predict(left, right)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def busy_core() -> subprocess.Popen:
    """A process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])
