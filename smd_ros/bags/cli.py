"""`smd bag2dataset` and the `bag2dataset` console script: arguments -> `convert` -> summary and exit code."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from smd_ros.bags.options import Bag2DatasetOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `smd bag2dataset` (and the `bag2dataset` console script)."""
    d = Bag2DatasetOptions()
    parser.add_argument("bags", nargs="+", type=Path, metavar="BAG",
                        help="rosbag2 folders (sqlite3/mcap, split or not) or single .mcap/.db3 files")
    parser.add_argument("--out", required=True, type=Path, help="output dataset folder (new, empty or resumable)")
    topics = parser.add_argument_group("topics")
    topics.add_argument("--left-image", default=d.left_image, help="sensor_msgs/Image or CompressedImage")
    topics.add_argument("--right-image", default=d.right_image)
    topics.add_argument("--left-info", default=d.left_info, help="sensor_msgs/CameraInfo")
    topics.add_argument("--right-info", default=d.right_info)
    gt = topics.add_mutually_exclusive_group()
    gt.add_argument("--depth", metavar="TOPIC", help="depth registered to the left camera: 32FC1 m or 16UC1 mm")
    gt.add_argument("--disparity", metavar="TOPIC", help="stereo_msgs/DisparityImage ground truth")
    gt.add_argument("--pseudo-labels", metavar="CKPT", help="label with a model's confident, consistent pixels")
    sel = parser.add_argument_group("frame selection")
    sel.add_argument("--tolerance", type=float, default=d.tolerance, metavar="SEC",
                     help=f"largest stamp difference of paired messages (default {d.tolerance} s)")
    sel.add_argument("--stamp", choices=("header", "log"), default=d.stamp,
                     help="pair by header stamps (default) or by recording time")
    sel.add_argument("--stride", type=int, default=d.stride, help="keep every N-th pair")
    sel.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    sel.add_argument("--start", type=float, default=None, metavar="SEC",
                     help="skip the first SEC of each bag (from its first stereo pair)")
    sel.add_argument("--end", type=float, default=None, metavar="SEC",
                     help="stop SEC after each bag's first stereo pair")
    sel.add_argument("--val-fraction", type=float, default=d.val_fraction,
                     help=f"fraction of frames for val.txt, in whole time blocks (default {d.val_fraction})")
    sel.add_argument("--val-blocks", type=int, default=d.val_blocks,
                     help=f"number of time blocks the recording is cut into for the split (default {d.val_blocks})")
    geo = parser.add_argument_group("geometry and labels")
    geo.add_argument("--rectify", action="store_true", help="rectify raw images with camera_info K, D, R, P")
    geo.add_argument("--no-rectification-check", dest="check_rectification", action="store_false",
                     help="skip checking that matched points of the first pairs share rows (warns otherwise)")
    geo.add_argument("--image-bits", type=int, default=d.image_bits, metavar="N",
                     help="significant bits of 16-bit images (12 for a 12-bit sensor): shifted to 8 bits by N - 8; "
                          "0 (default): the smallest shift that fits each pair, as the node's image_bits")
    geo.add_argument("--min-depth", type=float, default=d.min_depth, metavar="M",
                     help="depth below this (metres) is invalid (default: only 0 / NaN are)")
    geo.add_argument("--max-depth", type=float, default=None, metavar="M",
                     help="depth beyond this (metres) is invalid (default: no limit)")
    geo.add_argument("--max-disparity", type=float, default=d.max_disparity, metavar="PX",
                     help=f"labels above this (the model's range, image px) are masked; 0: only labels >= the image "
                          f"width are (default {d.max_disparity:g})")
    geo.add_argument("--max-bad-labels", type=float, default=d.max_bad_labels, metavar="FRACTION",
                     help="a frame whose non-finite or >= image-width labels exceed this fraction of its pixels is "
                          f"left out of the lists (default {d.max_bad_labels:g}); fewer are masked")
    geo.add_argument("--pseudo-max-uncertainty", type=float, default=d.pseudo_max_uncertainty, metavar="PX",
                     help="keep pixels whose uncertainty (the model's, px) is below this; 0 (default): the "
                          "model's own threshold (its Deployment.pseudo_max_uncertainty)")
    geo.add_argument("--pseudo-lr-tolerance", type=float, default=d.pseudo_lr_tolerance, metavar="PX",
                     help=f"left-right consistency tolerance (default {d.pseudo_lr_tolerance})")
    geo.add_argument("--device", default=d.device, help="torch device for --pseudo-labels (default cpu)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--allow-truncated", action="store_true",
                           help="accept damaged recordings: convert their readable part and exit 0")
    run_group.add_argument("--overwrite", action="store_true",
                           help="replace a different bag2dataset dataset in --out (never foreign files)")
    run_group.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Exit codes: 0 done, 1 bad input (topics, encodings, sizes, output folder), 3 damaged recording
    (readable part converted and kept), 130 interrupted (rerun the same command to resume)."""
    # Deferred: `--help` needs none of the conversion code.
    from smd_ros.bags.convert import DamagedBagError, convert
    from smd_ros.bags.reader import BagError

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        fields = {f.name for f in dataclasses.fields(Bag2DatasetOptions)}
        options = Bag2DatasetOptions(**{k: v for k, v in vars(args).items() if k in fields})
        report = convert(args.bags, args.out, options)
    except DamagedBagError as err:
        print(err.report.summary())
        print(f"bag2dataset: error: {err}", file=sys.stderr)
        return 3
    except (BagError, FileNotFoundError, ValueError) as err:
        print(f"bag2dataset: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bag2dataset: interrupted; rerun the same command to resume into {args.out}", file=sys.stderr)
        return 130
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script `bag2dataset` (same arguments as `smd bag2dataset`)."""
    parser = argparse.ArgumentParser(prog="bag2dataset", description="turn rosbag2 recordings into a training set")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
