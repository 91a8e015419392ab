"""Inference benchmark: encode time, query throughput and peak memory per backbone and output scale.

    python bench/bench_inference.py [--device cpu|cuda] [--backbones psmnet hsmnet] [--scales 1 2 4 8]
                                    [--size 256 512] [--checkpoint-dir ../shared/parity] [--repeats 2]

Weights are random unless a parity checkpoint folder is given (speed does not depend on them).
Each configuration runs in its own process so the peak resident memory (CPU) is its own; on CUDA the
peak allocated GPU memory is reported. Reference point (SMD-Nets code, this machine's 2 cores):
256x512 PSMNet bimodal, 131k points in 3.66 s = 35.8k points/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_POINTS_PER_S = 131072 / 3.66


def measure(backbone: str, scale: float, size: tuple[int, int], device: str, chunk: int, ckpt: str | None,
            repeats: int = 2) -> dict:
    import numpy as np
    import torch

    from smd_core import ModelConfig, Predictor, build_model, load_model

    torch.manual_seed(0)
    dev = torch.device(device)
    if ckpt:
        model = load_model(ckpt, device=dev)
    else:
        model = build_model(ModelConfig(backbone=backbone, output="bimodal", max_disp=256)).to(dev).eval()
    rng = np.random.default_rng(0)
    h, w = size
    left = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    right = np.roll(left, -8, axis=1)
    pred = Predictor(model, device=dev, chunk_points=chunk)
    pred.predict(left, right, scale=1.0)  # warm-up (allocator, kernels)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    best = None
    for _ in range(repeats):
        out = pred.predict(left, right, scale=scale)
        if best is None or out.timings["total_s"] < best["total_s"]:
            best = out.timings
    n = out.disparity.size
    peak = (torch.cuda.max_memory_allocated(dev) if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"backbone": backbone, "scale": scale, "points": n, "encode_s": best["encode_s"],
            "query_s": best["query_s"], "points_per_s": n / best["query_s"], "peak_mb": peak / 2**20}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backbones", nargs="+", default=["psmnet", "hsmnet"])
    ap.add_argument("--scales", nargs="+", type=float, default=[1, 2, 4, 8])
    ap.add_argument("--size", nargs=2, type=int, default=[256, 512])
    ap.add_argument("--chunk-points", type=int, default=200_000)
    ap.add_argument("--checkpoint-dir", default=None, help="folder with psm_bimodal_s1/ and hsm_bimodal_s1/")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per configuration (the best is kept)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        cfg = json.loads(args.one)
        print(json.dumps(measure(**cfg)))
        return 0
    rows = []
    print(f"device={args.device} input={args.size[0]}x{args.size[1]} chunk={args.chunk_points}", flush=True)
    for bb in args.backbones:
        ckpt = None
        if args.checkpoint_dir:
            ckpt = str(Path(args.checkpoint_dir) / f"{bb[:3]}_bimodal_s1" / "checkpoint.pth")
        for s in args.scales:
            cfg = {"backbone": bb, "scale": s, "size": args.size, "device": args.device,
                   "chunk": args.chunk_points, "ckpt": ckpt, "repeats": args.repeats}
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                return 1
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  {bb} x{s:g} done in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    print("| backbone | scale | points | encode s | query s | points/s | vs reference | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['scale']:g} | {r['points']:,} | {r['encode_s']:.2f} | {r['query_s']:.2f} | "
              f"{r['points_per_s']:,.0f} | {r['points_per_s'] / REFERENCE_POINTS_PER_S:.1f}x | {r['peak_mb']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
