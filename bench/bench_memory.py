"""Memory and time of one frame vs input size, without and with the node's `max_input_pixels` guard.

    python bench/bench_memory.py [--checkpoint PATH] [--sizes 640x480 1280x720 1920x1080 2560x1440 4000x3000]
                                 [--max-input-pixels 2100000] [--unguarded-up-to 4000000]

Each cell runs in a fresh process, as the node's worker does a frame (with the node's OpenMP wait policy): the
frame is downscaled by `smd_ros.runtime.input_guard` (network input and output grid), then `Predictor.predict`
and `smd_ros.messages.stereo_outputs` (disparity, uncertainty, coloured organized cloud). It prints the RSS
after loading the model and a 64x64 warm-up, the peak RSS of the frame (ru_maxrss) and the wall time. Sizes
above --unguarded-up-to pixels are only run guarded (4000x3000 unguarded took 30 s and 3.6 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, resource, sys, time
from smd_ros import runtime
runtime.set_openmp_defaults()
import numpy as np, torch
import smd_core
from smd_core.infer.dense import scaled_size
from smd_core.geometry import StereoCamera
from smd_ros import messages
from std_msgs.msg import Header

ckpt, w, h, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
model = smd_core.load_model(ckpt, device="cpu")
pred = smd_core.Predictor(model, device="cpu")
rng = np.random.default_rng(0)
small = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
pred.predict(small, small)
base = rss_mib()
left = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
right = np.roll(left, -8, axis=1)
g = runtime.input_guard(w, h, 1.0, limit)
h_out, w_out = scaled_size(h, w, g)
t0 = time.perf_counter()
out = pred.predict(left, right, output_size=(h_out, w_out), input_scale=g)
cam = StereoCamera(fx=500.0, fy=500.0, cx=w / 2, cy=h / 2, baseline=0.1, width=w, height=h).scaled(w_out, h_out)
msgs = messages.stereo_outputs(Header(), out.disparity, out.uncertainty, cam, max_disparity=256.0, left_bgr=left)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"base_mib": base, "peak_mib": peak, "ms": dt * 1e3, "network": scaled_size(h, w, g)[::-1]}))
"""


def run_cell(checkpoint: Path, w: int, h: int, limit: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(checkpoint), str(w), str(h), str(limit)], env=env,
                         capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model (default: the bundled one, as the node)")
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1280x720", "1920x1080", "2560x1440", "4000x3000"])
    ap.add_argument("--max-input-pixels", type=int, default=2_100_000, help="the guard (the node's default)")
    ap.add_argument("--unguarded-up-to", type=int, default=4_000_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.checkpoint is None:
        from smd_core.weights import default_checkpoint

        args.checkpoint = default_checkpoint()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    cells = [(w, h, 0) for w, h in sizes if w * h <= args.unguarded_up_to]
    cells += [(w, h, args.max_input_pixels) for w, h in sizes if w * h > args.max_input_pixels]
    cells.sort(key=lambda c: (c[0] * c[1], c[2]))
    print(f"model {Path(args.checkpoint).name}, CPU, load_avg_1min at start {os.getloadavg()[0]:.2f}")
    rows = []
    for w, h, limit in tqdm(cells, desc="cells", file=sys.stderr):
        rows.append({"w": w, "h": h, "limit": limit, **run_cell(Path(args.checkpoint), w, h, limit)})
    header = (f"{'images':>10} {'Mpx':>5} {'max_input_pixels':>16} {'network':>10} {'RSS base MiB':>12} "
              f"{'frame peak MiB':>14} {'+MiB':>6} {'ms':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        wn, hn = r["network"]
        print(f"{r['w']:>5}x{r['h']:<4} {r['w'] * r['h'] / 1e6:>5.2f} {r['limit'] or 'none':>16} "
              f"{f'{wn}x{hn}':>10} {r['base_mib']:>12.0f} {r['peak_mib']:>14.0f} "
              f"{r['peak_mib'] - r['base_mib']:>6.0f} {r['ms']:>7.0f}")
    print(f"load_avg_1min at end {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
