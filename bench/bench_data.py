"""Data pipeline benchmark: procedural stereo generation and training-sample throughput (CPU, one process).

    python bench/bench_data.py [--repeats 5] [--sizes 240x320 480x640 720x1280]

Prints seconds per synthetic frame (render_scene, photometric on) per image size, and seconds per
training sample (crop, resize, augmentation, DDA points) from rendered frames and from frames on disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up (imports, texture cache)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.mean(ts)), float(np.max(ts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=["240x320", "480x640", "720x1280"])
    args = parser.parse_args()
    torch.set_num_threads(1)

    from smd_core.data import DataConfig, build_dataset
    from smd_core.data.sample_config import SampleConfig
    from smd_core.data.synthetic.dataset import write_dataset
    from smd_core.data.synthetic.render import render_scene

    print(f"{'what':<44} {'mean s':>8} {'max s':>8}")
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        seeds = iter(range(10_000))
        mean, worst = _time(lambda h=h, w=w, s=seeds: render_scene(next(s), height=h, width=w, max_disparity=w / 10),
                            args.repeats)
        print(f"{f'render_scene {h}x{w}':<44} {mean:8.3f} {worst:8.3f}")

    cfg = DataConfig(kind="synthetic", num_samples=1000, sample=SampleConfig(crop_size=(256, 512), strategy="dda"))
    ds = build_dataset(cfg, train=True)
    idx = iter(range(1000))
    mean, worst = _time(lambda: ds[next(idx)], args.repeats)
    print(f"{'train sample, synthetic 480x640 (incl. render)':<44} {mean:8.3f} {worst:8.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        lst = write_dataset(tmp, 4, height=480, width=640, progress=False, preview=0)
        for ar in (1.0, 2.0):
            cfg = DataConfig(kind="list", split=str(lst), sample=SampleConfig(crop_size=(256, 512), aspect_ratio=ar))
            ds = build_dataset(cfg, train=True)
            k = iter(range(10_000))
            mean, worst = _time(lambda ds=ds, k=k: ds[next(k) % len(ds)], args.repeats)
            print(f"{f'train sample, PNG+NPY list, aspect_ratio {ar:g}':<44} {mean:8.3f} {worst:8.3f}")


if __name__ == "__main__":
    main()
