"""Torch threads x OpenMP wait policy, on an idle machine and with one core kept busy by another process.

    python bench/bench_threads.py [--checkpoint PATH] [--size 480 640] [--repeats 5] [--rounds 2]
                                  [--threads 1 2] [--policies default passive spin1k spin10k]
                                  [--precision auto|float32|bfloat16] [--json out.json]

Each cell runs in a fresh Python process (the OpenMP runtime reads its environment once, when torch loads):
it loads the model the node would load (default: the bundled one) at the node's precision (`--precision`,
the node's `cpu_precision`), runs `Predictor.predict` once to warm up,
then `--repeats` times. The grid is run `--rounds` times, interleaved; each cell reports the median of its
frames and the best frame over all rounds (on a shared machine the best is the least disturbed; the load
average is printed). "busy" starts one extra process that spins on one core for the whole cell (what another
node on a robot does). Policies:
- default:  nothing set (libgomp spins up to 300k iterations, then sleeps);
- passive:  OMP_WAIT_POLICY=PASSIVE (idle threads sleep at once);
- spin1k, spin10k:  GOMP_SPINCOUNT=1000 / 10000 (spin briefly, then sleep).
The node's defaults (`threads` 0 = every usable core, `smd_ros.runtime.WAIT_POLICY_ENV` = PASSIVE) come from
this table: on the shared 2-core machine (load average 6-10 from other jobs) PASSIVE with 2 threads was the
fastest cell with and without the extra busy core, libgomp's default the slowest by 5-10x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from timing import TIMED_LOOP, busy_core
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
POLICIES = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin1k": {"GOMP_SPINCOUNT": "1000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
}
_OPENMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "SMD_ROS_WAIT_POLICY")

_CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
import smd_core
from smd_core.infer.torch_backend import cpu_has_bfloat16
from smd_ros.runtime import cpu_bfloat16
threads, repeats, h, w, ckpt = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
model = smd_core.load_model(ckpt, device="cpu")
# The node's cpu_precision rule.
bf16 = cpu_bfloat16(sys.argv[6], model.deployment.cpu_bfloat16, cpu_has_bfloat16())
predictor = smd_core.Predictor(model, device="cpu", autocast_dtype=torch.bfloat16 if bf16 else None)
print(json.dumps(bf16))
rng = np.random.default_rng(0)
left = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
right = np.roll(left, -8, axis=1)
warmup = 1
""" + TIMED_LOOP


def run_cell(policy: str, threads: int, busy: bool, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _OPENMP_VARS}
    env.update(POLICIES[policy])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    spinner = busy_core() if busy else None
    try:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(threads), str(args.repeats), str(args.size[0]),
                              str(args.size[1]), str(args.checkpoint), args.precision], env=env,
                             capture_output=True, text=True, check=True, timeout=1800)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    bf16, times = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    return {"times_ms": [1e3 * t for t in times], "bfloat16": bf16}


def default_checkpoint() -> Path:
    from smd_core.weights import default_checkpoint as bundled

    return Path(bundled())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model (default: the bundled one, as the node)")
    ap.add_argument("--size", nargs=2, type=int, default=[480, 640], metavar=("H", "W"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    ap.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                    help="the node's cpu_precision (auto: bfloat16 for sgbm_guided models on CPUs that have it)")
    ap.add_argument("--json", default=None, help="also write the cells to this JSON file")
    args = ap.parse_args()
    args.checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
    load = os.getloadavg()[0]
    print(f"model {args.checkpoint.name}, input {args.size[1]}x{args.size[0]}, cores {os.cpu_count()}, "
          f"load_avg_1min at start {load:.2f}; median of {args.repeats} frames (ms)")
    cells = [(p, t, b) for p in args.policies for t in args.threads for b in (False, True)]
    times: dict[tuple, list[float]] = {c: [] for c in cells}
    bf16 = False
    for _, cell in tqdm([(r, c) for r in range(args.rounds) for c in cells], desc="cells", file=sys.stderr):
        result = run_cell(*cell, args)
        times[cell] += result["times_ms"]
        bf16 = result["bfloat16"]
    rows = [{"policy": p, "threads": t, "busy": b, "median_ms": statistics.median(v), "best_ms": min(v),
             "times_ms": v} for (p, t, b), v in times.items()]
    header = (f"{'policy':<9} {'threads':>7} {'idle median':>12} {'idle best':>10} {'busy median':>12} "
              f"{'busy best':>10}   (ms per frame; busy = one core kept busy)")
    print(header)
    print("-" * len(header))
    for policy in args.policies:
        for threads in args.threads:
            idle, busy = (next(r for r in rows if (r["policy"], r["threads"], r["busy"]) == (policy, threads, b))
                          for b in (False, True))
            print(f"{policy:<9} {threads:>7} {idle['median_ms']:>12.0f} {idle['best_ms']:>10.0f} "
                  f"{busy['median_ms']:>12.0f} {busy['best_ms']:>10.0f}")
    print(f"precision {'bfloat16 autocast' if bf16 else 'float32'} (--precision {args.precision}); "
          f"load_avg_1min at end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
