"""Backends at 640x480 on 2 threads: torch float32, torch bfloat16 autocast, onnxruntime; idle and with one core
busy; the node's memory and each install's size on disk.

    python bench/bench_onnx.py [--repeats 8] [--threads 2] [--runtime-python /work/rt-venv/bin/python]
                               [--envs .venv /work/rt-venv] [--no-busy]

Each cell is a fresh process with the node's settings (OMP_WAIT_POLICY=PASSIVE for torch, onnxruntime's
worker threads sleeping when idle: `spin` off; `--spin` adds a cell with onnxruntime's default spinning), the
bundled default model (.pt or its .onnx export), SGBM included, dense output at scale 1: median and best of
`--repeats` frames after two warm-up frames. "busy" starts one extra process spinning on one core for the
cell. The memory rows run what the node runs per frame (it imports smd_ros.stereo_node, loads the model with
`smd_ros.model_loading` from a NodeConfig, predicts and builds the messages of 5 frames) and print VmRSS after
them and the peak (VmHWM); with `--runtime-python` the onnxruntime rows run in that interpreter (a torch-free
runtime install). Sizes: `du` of each environment in `--envs`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import TIMED_LOOP, busy_core

REPO = Path(__file__).resolve().parents[1]

CELL = r'''
import json, os, sys, time
import numpy as np
backend, precision, threads, repeats, spin, frame = sys.argv[1:7]
threads, repeats, spin = int(threads), int(repeats), spin == "1"
z = np.load(frame)
left, right = z["left"], z["right"]
import cv2
cv2.setNumThreads(threads)
if backend == "torch":
    import torch
    from smd_core import weights
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model
    torch.set_num_threads(threads)
    predictor = Predictor(load_model(weights.default_checkpoint()),
                          autocast_dtype=torch.bfloat16 if precision == "bfloat16" else None)
else:
    from smd_core import weights
    from smd_core.infer.ort_backend import OrtPredictor
    predictor = OrtPredictor(weights.default_onnx(), threads=threads, spin=spin)
warmup = 2
''' + TIMED_LOOP

NODE = r'''
import json, sys
from smd_ros import runtime
runtime.set_openmp_defaults()
import smd_ros.stereo_node  # noqa: F401  (what the node process imports)
import numpy as np
from smd_ros import messages, model_loading
from smd_ros.params import NodeConfig
from smd_core.geometry import StereoCamera

class Log:
    def info(self, m): pass
    def warning(self, m): print(m, file=sys.stderr)

backend, frame = sys.argv[1:3]
predictor, _, _ = model_loading.load(NodeConfig(backend=backend, device="cpu", threads=2), Log())
z = np.load(frame)
left, right = z["left"], z["right"]
h, w = left.shape[:2]
camera = StereoCamera(fx=500.0, fy=500.0, cx=w / 2, cy=h / 2, baseline=0.1, width=w, height=h)
from std_msgs.msg import Header
for _ in range(5):
    pred = predictor.predict(left, right)
    messages.stereo_outputs(Header(), pred.disparity, pred.uncertainty, camera, max_disparity=128.0, left_bgr=left,
                            max_uncertainty=3.6)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
mib = lambda k: int(status[k].split()[0]) / 1024
print(json.dumps({"rss_mib": mib("VmRSS"), "peak_mib": mib("VmHWM"),
                  "torch_loaded": "torch" in sys.modules and sys.modules["torch"] is not None}))
'''


def env_for(python: str) -> dict[str, str]:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if python == sys.executable:  # the development venv: this checkout's code
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(python: str, code: str, args: list[str]) -> str:
    proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env_for(python),
                          cwd=tempfile.gettempdir(), timeout=900)
    if proc.returncode:
        raise RuntimeError(f"{python} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def du_mib(path: str) -> float:
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runtime-python", default=sys.executable,
                        help="interpreter of a torch-free runtime install for the onnxruntime rows")
    parser.add_argument("--envs", nargs="*", default=[str(Path(sys.prefix))], help="environments to size")
    parser.add_argument("--no-busy", action="store_true", help="skip the one-core-busy cells")
    parser.add_argument("--spin", action="store_true", help="also onnxruntime with spinning worker threads")
    args = parser.parse_args()

    from smd_core.data.synthetic.render import render_scene

    scene = render_scene(9000, height=480, width=640)
    frame = Path(tempfile.mkdtemp()) / "frame.npz"
    np.savez(frame, left=scene.left, right=scene.right)
    cells = [("torch", "float32", sys.executable, False), ("torch", "bfloat16", sys.executable, False),
             ("onnxruntime", "float32", args.runtime_python, False)]
    if args.spin:
        cells.append(("onnxruntime", "float32", args.runtime_python, True))
    print(f"640x480 dense, SGBM included, {args.threads} threads, median / best of {args.repeats} frames (ms); "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'backend':<26} {'idle median':>11} {'idle best':>9} {'busy median':>11} {'busy best':>9}")
    for backend, precision, python, spin in cells:
        row = []
        for busy in (False, True)[: 1 if args.no_busy else 2]:
            spinner = busy_core() if busy else None
            try:
                times = json.loads(run(python, CELL, [backend, precision, str(args.threads), str(args.repeats),
                                                      "1" if spin else "0", str(frame)]))
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            row += [1e3 * statistics.median(times), 1e3 * min(times)]
        name = f"{backend} {precision}" + (" (spin)" if spin else "") + ("" if python == sys.executable else " [rt]")
        print(f"{name:<26} " + " ".join(f"{v:>{11 if i % 2 == 0 else 9}.0f}" for i, v in enumerate(row)))
    print("\nnode memory (5 frames 640x480 with messages; MiB)")
    for backend, python in (("torch", sys.executable), ("onnxruntime", args.runtime_python)):
        mem = json.loads(run(python, NODE, [backend, str(frame)]))
        where = "" if python == sys.executable else f" [{python}]"
        print(f"{backend:<12} RSS {mem['rss_mib']:7.0f}  peak {mem['peak_mib']:7.0f}  torch loaded: "
              f"{mem['torch_loaded']}{where}")
    print("\nenvironment size on disk (MiB)")
    for env in args.envs:
        print(f"{du_mib(env):8.0f}  {env}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
