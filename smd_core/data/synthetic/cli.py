"""`smd synth --out DIR --num N`: write a procedural stereo dataset with exact disparity."""

from __future__ import annotations

import argparse

from smd_core.data.synthetic.shapes import SHAPE_KINDS
from smd_core.data.synthetic.textures import TEXTURE_KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=int, required=True, help="number of stereo pairs")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-disparity", type=float, default=64.0, help="largest disparity in pixels")
    parser.add_argument("--min-disparity", type=float, default=None, help="smallest disparity (default 5%% of max)")
    parser.add_argument("--textures", nargs="+", default=list(TEXTURE_KINDS), choices=TEXTURE_KINDS)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPE_KINDS), choices=SHAPE_KINDS,
                        help="foreground object kinds")
    parser.add_argument("--objects", type=int, default=None,
                        help="foreground objects per scene (default: 5..14 drawn per scene); fewer objects, fewer "
                             "occlusions")
    parser.add_argument("--thin", type=int, default=None,
                        help="thin structures (poles, wires) per scene (default: 1..4 drawn per scene)")
    parser.add_argument("--no-photometric", action="store_true", help="identical camera responses in both views")
    parser.add_argument("--list-name", default="train.txt", help="name of the list file written in --out")
    parser.add_argument("--preview", type=int, default=4, help="frames in preview.png (0: none)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes rendering scenes (same files whatever the number)")


def run(args: argparse.Namespace) -> int:
    import torch

    from smd_core.data.synthetic.dataset import write_dataset

    torch.set_num_threads(1)
    path = write_dataset(args.out, args.num, seed=args.seed, height=args.height, width=args.width,
                         max_disparity=args.max_disparity, min_disparity=args.min_disparity,
                         textures=tuple(args.textures), shapes=tuple(args.shapes), photometric=not args.no_photometric,
                         num_objects=args.objects, num_thin=args.thin,
                         list_name=args.list_name, preview=args.preview, jobs=args.jobs)
    print(f"wrote {args.num} pairs; list file: {path}")
    return 0
