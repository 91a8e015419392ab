"""Light model speed: backbone + dense SMD head through the real `Predictor`, per configuration.

    python bench/bench_light.py [--size 480 640] [--threads 2] [--chunk-points 16384] [--repeats 3]
                                [--presets recommended small no-half wide-head] [--device cpu]

For each preset it builds a randomly initialised light model (speed does not depend on the weights), runs
`Predictor.predict(left, right, scale=1)` (dense: one query per output pixel) and prints the best of
`--repeats` runs: parameters, head input channels C, encode / query / total wall time, frames per second,
and the single-thread CPU time per frame. That last figure is printed because shared machines distort
wall time (the 1-minute load average is printed too): it barely moves under load, and on an idle
machine 2 threads run a frame in a bit more than half of it.
Finally it prints the recommended `model:` section for a training config.

OpenMP wait policy. With the default (spinning) policy, on a busy machine (load above the core count) two
threads were 20x SLOWER than one (8.3 s vs 0.40 s per frame): every parallel region waits for a descheduled
spinning thread. OMP_WAIT_POLICY=PASSIVE removes that (0.43 s under the same load). This script therefore
sets OMP_WAIT_POLICY=PASSIVE unless the environment already sets it (it must be set before torch is
imported); the header prints the policy in force. Anything that runs the model beside other busy
processes (the ROS node, the demo, CI) wants the same setting.

The Predictor's `chunk_points` matters a lot on CPUs: 16k-point chunks keep the head's intermediate
activations in cache and run about twice as fast as 200k-point chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# Must precede the first torch import (the OpenMP runtime reads it once); see the module docstring.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from smd_core import ModelConfig, Predictor, build_model  # noqa: E402

# name -> (ModelConfig keyword arguments). "recommended" is the one documented in
# smd_core/model/backbones/light.py and configs/light_synthetic.yaml.
PRESETS: dict[str, dict] = {
    "recommended": {"max_disp": 128, "head_widths": (48, 24, 12), "backbone_options": {}},
    "head-64": {"max_disp": 128, "head_widths": (64, 32, 16), "backbone_options": {}},
    "full-dist": {"max_disp": 128, "head_widths": (64, 32, 16), "backbone_options": {"cost_channels": 0}},
    "no-half": {"max_disp": 128, "head_widths": (48, 24, 12), "backbone_options": {"image_features": [8, 0]}},
    "max192": {"max_disp": 192, "head_widths": (48, 24, 12), "backbone_options": {}},
    "wide-head": {"max_disp": 128, "head_widths": (128, 64, 32), "backbone_options": {}},
}


def measure(preset: dict, *, size: tuple[int, int], device: str, chunk: int, repeats: int,
            scale: float = 1.0) -> dict:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="light", output="bimodal", **preset)
    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    backbone_params = sum(p.numel() for p in model.stereo_network.parameters())
    rng = np.random.default_rng(0)
    h, w = size
    left = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    right = np.roll(left, -8, axis=1)
    predictor = Predictor(model, device=torch.device(device), chunk_points=chunk)
    predictor.predict(left, right, scale=scale)  # warm-up: allocator, oneDNN primitive caches
    best: dict | None = None
    for _ in range(repeats):
        out = predictor.predict(left, right, scale=scale)
        if best is None or out.timings["total_s"] < best["total_s"]:
            best = dict(out.timings)
    assert best is not None
    # Single-thread CPU time: unlike wall time (and multi-thread CPU time, which counts OpenMP spinning)
    # it hardly changes when other processes share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu1 = enc1 = float("inf")
        pad_h = (-h) % predictor.pad_multiple
        x = torch.zeros(2, 3, h + pad_h, w + (-w) % predictor.pad_multiple, device=predictor.device)
        for _ in range(repeats):
            c0 = time.process_time()
            predictor.predict(left, right, scale=scale)
            cpu1 = min(cpu1, time.process_time() - c0)
            with torch.inference_mode():
                c0 = time.process_time()
                model.encode(x[:1], x[1:])
                enc1 = min(enc1, time.process_time() - c0)
    finally:
        torch.set_num_threads(threads)
    best["cpu1_s"] = cpu1
    best["cpu1_backbone_s"] = enc1
    return {
        "params_m": params / 1e6,
        "backbone_params_m": backbone_params / 1e6,
        "C": int(model.stereo_network.feature_channels),
        "points": int(out.disparity.size),
        **best,
        "fps": 1.0 / best["total_s"],
        "model": {"backbone": "light", "output": "bimodal", "max_disp": cfg.max_disp,
                  "head_widths": list(cfg.head_widths), "backbone_options": dict(cfg.backbone_options)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", nargs=2, type=int, default=[480, 640], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the target is 2 cores)")
    ap.add_argument("--chunk-points", type=int, default=16384)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", nargs="+", default=["recommended", "head-64", "full-dist", "no-half"],
                    choices=sorted(PRESETS))
    ap.add_argument("--scales", nargs="+", type=float, default=[1.0], help="output scales (1 = one query per pixel)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device={args.device} threads={args.threads} input={args.size[0]}x{args.size[1]} "
          f"(dense bimodal) chunk={args.chunk_points} load_avg_1min={load:.2f} cores={os.cpu_count()} "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    header = (f"{'preset':<16} {'params':>7} {'C':>4} {'encode ms':>10} {'query ms':>9} {'total ms':>9} "
              f"{'fps':>6} {'1-thread CPU ms':>16} {'of which backbone':>18}")
    print(header)
    print("-" * len(header))
    rows = []
    for name, scale in [(n, s) for n in args.presets for s in args.scales]:
        r = measure(PRESETS[name], size=tuple(args.size), device=args.device, chunk=args.chunk_points,
                    repeats=args.repeats, scale=scale)
        r["preset"], r["scale"] = name, scale
        rows.append(r)
        label = name if scale == 1.0 else f"{name}@{scale:g}"
        print(f"{label:<16} {r['params_m']:>6.2f}M {r['C']:>4} {1e3 * r['encode_s']:>10.1f} {1e3 * r['query_s']:>9.1f} "
              f"{1e3 * r['total_s']:>9.1f} {r['fps']:>6.2f} {1e3 * r['cpu1_s']:>16.1f} "
              f"{1e3 * r['cpu1_backbone_s']:>18.1f}", flush=True)
    print("\nRecommended model section (configs/light_synthetic.yaml):")
    rec = PRESETS["recommended"]
    section = {"backbone": "light", "output": "bimodal", "max_disp": rec["max_disp"],
               "head_widths": list(rec["head_widths"]), "backbone_options": rec["backbone_options"]}
    print(yaml.safe_dump({"model": section}, sort_keys=False, default_flow_style=None))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_avg": load, "threads": args.threads, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
