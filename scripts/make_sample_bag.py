"""Regenerate the demo recording bundled in smd_ros/data/ (deterministic):

    python scripts/make_sample_bag.py [--frames 20] [--out smd_ros/data]

Writes `sample_stereo/` (rosbag2, mcap, JPEG CompressedImage left/right rectified images + CameraInfo at
5 Hz, 640x480, objects moving across a slanted background) and `sample_gt.npz` (left ground-truth
disparity per frame as uint16 = disparity * 256, the KITTI convention, plus the bag's stamps).
The scene seed (7000) is outside the training seeds (1000-1799) of the bundled model.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]  # the bag writer is a test fixture, not part of the package

from bag_fixtures import StereoRig, write_stereo_bag  # noqa: E402

from smd_core.data.synthetic.render import render_sequence  # noqa: E402

SEED = 7000
FPS = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--out", type=Path, default=REPO / "smd_ros" / "data")
    args = ap.parse_args()
    frames = list(render_sequence(SEED, args.frames, height=480, width=640, max_disparity=64.0, speed=4.0))
    bag = args.out / "sample_stereo"
    if bag.exists():
        shutil.rmtree(bag)
    camera = StereoRig.default(640, 480, hfov_deg=70.0, baseline=0.12)
    summary = write_stereo_bag(bag, frames, storage="mcap", compressed=True, jpeg_quality=92, fps=FPS, camera=camera)
    gt = np.stack([np.round(f.disp_left * 256).astype(np.uint16) for f in frames])
    np.savez_compressed(args.out / "sample_gt.npz", disparity_x256=gt, fps=FPS, seed=SEED)
    size = sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())
    print(f"{bag}: {len(frames)} frames, {size / 2**20:.1f} MiB; ground truth "
          f"{(args.out / 'sample_gt.npz').stat().st_size / 2**20:.1f} MiB; {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
