"""Model speed: backbone (SGBM included for sgbm_guided) + dense SMD head through the real `Predictor`.

    python bench/bench_model.py [--size 480 640] [--threads 2] [--repeats 5] [--presets guided light ...]
                                [--scales 1 0.5] [--bf16] [--checkpoint CKPT] [--device cpu]

For each preset (or `--checkpoint`) it builds a randomly initialised model (speed does not depend on the
weights), runs `Predictor.predict(left, right, scale=s)` on a rendered synthetic 640x480 scene (dense: one
query per output pixel) and prints the median of `--repeats` runs: parameters, head input channels C,
encode (SGBM + network) / query / total wall time, frames per second, and the single-thread CPU time per
frame, which barely moves when other processes share the cores (the 1-minute load average is printed).
`--bf16` runs the Predictor with bfloat16 autocast on the CPU. The node's threads and OpenMP wait policy,
idle and with one core busy, are measured by bench/bench_threads.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from smd_core import ModelConfig, Predictor, build_model, load_model
from smd_core.data.synthetic.render import render_scene

# name -> ModelConfig keyword arguments. "guided" is the default model (configs/guided_synthetic.yaml with
# the later stages' full_res_width and anchor_range, scripts/train_guided.sh), "guided-linear-full-res" the
# previous default, "light" configs/light_synthetic.yaml (the one before).
PRESETS: dict[str, dict] = {
    "guided": {"backbone": "sgbm_guided", "max_disp": 128, "head_widths": (32, 16), "anchor_range": 1.0,
               "backbone_options": {"full_res_width": 16}},
    "guided-linear-full-res": {"backbone": "sgbm_guided", "max_disp": 128, "head_widths": (32, 16),
                               "backbone_options": {}},
    "guided-4level": {"backbone": "sgbm_guided", "max_disp": 128, "head_widths": (32, 16),
                      "backbone_options": {"widths": [16, 24, 32, 48]}},
    "guided-head64": {"backbone": "sgbm_guided", "max_disp": 128, "head_widths": (64, 32), "backbone_options": {}},
    "light": {"backbone": "light", "max_disp": 128, "head_widths": (48, 24, 12), "backbone_options": {}},
    "light-no-half": {"backbone": "light", "max_disp": 128, "head_widths": (48, 24, 12),
                      "backbone_options": {"image_features": [8, 0]}},
}


def measure(model: torch.nn.Module, *, size: tuple[int, int], device: str, chunk: int, repeats: int,
            scale: float = 1.0, bf16: bool = False) -> dict:
    params = sum(p.numel() for p in model.parameters())
    frame = render_scene(9000, height=size[0], width=size[1])
    left, right = frame.left, frame.right
    predictor = Predictor(model, device=torch.device(device), chunk_points=chunk,
                          autocast_dtype=torch.bfloat16 if bf16 else None)
    predictor.predict(left, right, scale=scale)  # warm-up: allocator, oneDNN primitive caches
    runs = [predictor.predict(left, right, scale=scale).timings for _ in range(repeats)]
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    # Single-thread CPU time: unlike wall time it hardly changes when other processes share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu1 = float("inf")
        for _ in range(max(1, repeats // 2)):
            c0 = time.process_time()
            predictor.predict(left, right, scale=scale)
            cpu1 = min(cpu1, time.process_time() - c0)
    finally:
        torch.set_num_threads(threads)
    return {"params_m": params / 1e6, "C": int(model.stereo_network.feature_channels),
            "points": int(left.shape[0] * left.shape[1] * scale * scale), **median,
            "fps": 1.0 / median["total_s"], "cpu1_s": cpu1}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", nargs=2, type=int, default=[480, 640], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the target is 2 cores)")
    ap.add_argument("--chunk-points", type=int, default=200_000, help="the node's default")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--presets", nargs="+", default=["guided", "light"], choices=sorted(PRESETS))
    ap.add_argument("--checkpoint", default=None, help="time this checkpoint instead of the presets")
    ap.add_argument("--scales", nargs="+", type=float, default=[1.0], help="output scales (1 = one query per pixel)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast on the CPU")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device={args.device} threads={args.threads} input={args.size[0]}x{args.size[1]} dense "
          f"chunk={args.chunk_points} bf16={args.bf16} load_avg_1min={load:.2f} cores={os.cpu_count()} "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} (median of {args.repeats})")
    header = (f"{'model':<18} {'params':>7} {'C':>4} {'encode ms':>10} {'query ms':>9} {'total ms':>9} "
              f"{'fps':>6} {'1-thread CPU ms':>16}")
    print(header)
    print("-" * len(header))
    models = ({args.checkpoint: None} if args.checkpoint else {n: PRESETS[n] for n in args.presets})
    rows = []
    for name, scale in [(n, s) for n in models for s in args.scales]:
        torch.manual_seed(0)
        preset = models[name]
        model = load_model(name) if preset is None else build_model(ModelConfig(output="bimodal", **preset))
        r = measure(model, size=tuple(args.size), device=args.device, chunk=args.chunk_points,
                    repeats=args.repeats, scale=scale, bf16=args.bf16)
        r["model"], r["scale"] = name, scale
        rows.append(r)
        label = os.path.basename(name) if scale == 1.0 else f"{os.path.basename(name)}@{scale:g}"
        print(f"{label:<18} {r['params_m']:>6.2f}M {r['C']:>4} {1e3 * r['encode_s']:>10.1f} "
              f"{1e3 * r['query_s']:>9.1f} {1e3 * r['total_s']:>9.1f} {r['fps']:>6.2f} {1e3 * r['cpu1_s']:>16.1f}",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load_avg": load, "threads": args.threads, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
