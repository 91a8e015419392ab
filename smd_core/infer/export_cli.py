"""`smd export CKPT --out model.onnx` (see `smd_core.infer.export`); torch is imported only when it runs."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="smd_ros or published SMD-Nets checkpoint (.pt/.pth)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="pin the network input size (multiples of the backbone's pad multiple); default dynamic")
    parser.add_argument("--backbone", default=None, help="psmnet|hsmnet (published checkpoints; default: inferred)")
    parser.add_argument("--output", dest="output_repr", default=None,
                        help="standard|unimodal|bimodal (default: inferred)")


def run(args: argparse.Namespace) -> int:
    try:
        from smd_core.infer.export import export
    except ImportError as exc:
        raise ValueError(f"smd export needs torch and onnx ({exc}): pip install '.[export]'") from exc

    path = export(args.checkpoint, args.out, image_size=tuple(args.size) if args.size else None,
                  backbone=args.backbone, output=args.output_repr)
    print(f"{args.checkpoint} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
