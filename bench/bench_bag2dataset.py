"""Speed and size of `smd bag2dataset` on synthetic 640x480 recordings; prints a table.

    python bench/bench_bag2dataset.py [--frames 40] [--height 480] [--width 640]

Per storage / transport variant: bag size, conversion time and throughput (frames per second, pass 1 scan
included), and the largest disparity error against the generator's truth. Also the size of a sample bag as
the demo ships it (20 JPEG frames, mcap).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]  # the bag writer is a test fixture, not part of the package

from bag_fixtures import write_stereo_bag  # noqa: E402

from smd_core.data.synthetic.render import render_sequence  # noqa: E402
from smd_ros.bags.convert import convert  # noqa: E402
from smd_ros.bags.options import Bag2DatasetOptions  # noqa: E402

VARIANTS = [
    # name, write_stereo_bag keyword arguments, ground-truth option
    ("mcap raw + 32FC1 depth", {"storage": "mcap", "depth": "32FC1"}, {"depth": "/left/depth"}),
    ("sqlite3 raw + 32FC1 depth", {"storage": "sqlite3", "depth": "32FC1"}, {"depth": "/left/depth"}),
    ("mcap png + compressedDepth", {"storage": "mcap", "compressed": "png", "depth": "16UC1",
                                    "depth_compressed": True}, {"depth": "/left/depth"}),
    ("mcap jpeg + DisparityImage", {"storage": "mcap", "compressed": "jpeg", "disparity": True},
     {"disparity": "/disparity"}),
    ("mcap raw, split every 10", {"storage": "mcap", "depth": "32FC1", "split_every": 10}, {"depth": "/left/depth"}),
]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    t0 = time.perf_counter()
    frames = list(render_sequence(0, args.frames, height=args.height, width=args.width, max_disparity=64.0))
    print(f"rendered {len(frames)} {args.width}x{args.height} frames in {time.perf_counter() - t0:.1f} s\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, write_kwargs, gt in VARIANTS:
            bag = Path(tmp) / name.replace(" ", "_").replace(",", "").replace("+", "")
            t0 = time.perf_counter()
            write_stereo_bag(bag, frames, **write_kwargs)
            t_write = time.perf_counter() - t0
            out = Path(tmp) / f"{bag.name}_ds"
            t0 = time.perf_counter()
            report = convert([bag], out, Bag2DatasetOptions(progress=False, check_rectification=False, **gt))
            t_convert = time.perf_counter() - t0
            t0 = time.perf_counter()
            resumed = convert([bag], out, Bag2DatasetOptions(progress=False, check_rectification=False, **gt))
            t_resume = time.perf_counter() - t0
            assert resumed.written == 0
            err = max(float(np.abs(np.load(out / "disp" / f"{i:06d}.npy") - f.disp_left).max())
                      for i, f in enumerate(frames))
            rows.append((name, folder_size(bag) / 2**20, t_write, t_convert, report.frames / t_convert, t_resume,
                         folder_size(out) / 2**20, err))
        sample = Path(tmp) / "sample"
        write_stereo_bag(sample, frames[:20], storage="mcap", compressed=True, jpeg_quality=92)
        sample_mb = folder_size(sample) / 2**20
    header = (f"{'variant':<30} {'bag MB':>8} {'write s':>8} {'convert s':>10} {'frames/s':>9} {'rerun s':>8} "
              f"{'out MB':>7} {'max |d err| px':>15}")
    print(header)
    print("-" * len(header))
    for name, size, tw, tc, fps, tr, out_mb, err in rows:
        print(f"{name:<30} {size:>8.1f} {tw:>8.2f} {tc:>10.2f} {fps:>9.1f} {tr:>8.2f} {out_mb:>7.1f} {err:>15.4g}")
    print(f"\nsample bag (20 frames, JPEG q92, mcap): {sample_mb:.1f} MB")


if __name__ == "__main__":
    main()
