"""`smd eval`: its options and the run; the scoring is `smd_core.eval.loop` (imported when the command runs,
so `smd eval --help` loads no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from smd_core import metrics as M
from smd_core.config import CHUNK_POINTS
from smd_core.eval.baselines import BASELINES
from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE

HELD_OUT_SEED = 9000  # the held-out synthetic scenes (`smd synth` training sets use other seeds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="published SMD-Nets or smd_ros checkpoint (default: bundled; 'none': baselines only)")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME[,NAME]",
                        help=f"also score a classical baseline on the same frames: {' | '.join(BASELINES)} "
                             "(repeatable or comma list)")
    parser.add_argument("--sgbm", action="append", default=[], metavar="KEY=VALUE",
                        help="SGBMConfig override for the baselines, e.g. block_size=7 (repeatable)")
    parser.add_argument("--max-disp", type=float, default=None,
                        help="scored range and SGBM's search range in image px, only with --checkpoint none "
                             "(default: the bundled model's max_disp)")
    parser.add_argument("--data", default=f"synthetic:{HELD_OUT_SEED}:50",
                        help="synthetic:SEED:N | motorcycle (a real scene) | LIST.txt | CONFIG.yaml | KIND:ROOT "
                             "(default: %(default)s)")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="DataConfig override, e.g. height=240 (repeatable)")
    parser.add_argument("--scale", type=float, default=1.0, help="output grid / image size (scored at GT size)")
    parser.add_argument("--input-scale", type=float, default=1.0, help="resize the images before the network")
    parser.add_argument("--out", default=None, help="write report.json, images/ and overview.png here")
    parser.add_argument("--images", type=int, default=8, help="frames to draw pictures of (with --out)")
    parser.add_argument("--backbone", default=None, help="psmnet|hsmnet for published checkpoints (default: inferred)")
    parser.add_argument("--output", dest="output_repr", default=None,
                        help="standard|unimodal|bimodal (default: inferred)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]")
    parser.add_argument("--chunk-points", type=int, default=CHUNK_POINTS, help="query points per chunk")
    parser.add_argument("--edge-threshold", type=float, default=M.EDGE_THRESHOLD_PX,
                        help="GT jump (px) that makes a depth edge")
    parser.add_argument("--band-radius", type=int, default=M.BAND_RADIUS,
                        help="edge band radius (px) for the bleeding rate")
    parser.add_argument("--tolerance", type=float, default=M.TOLERANCE_PX,
                        help="bleeding: distance (px) to either side")
    parser.add_argument("--max-uncertainty", type=float, default=0.0, metavar="PX",
                        help="also score the model on its pixels with uncertainty <= PX (output px), what the node's "
                             "max_uncertainty keeps in its cloud (default 0: off), less its speckles:")
    parser.add_argument("--speckle-size", type=int, default=SPECKLE_SIZE, metavar="PX",
                        help="with --max-uncertainty: drop regions of at most PX output pixels unlike all around "
                             "them, as the node's speckle_size (0: off)")
    parser.add_argument("--speckle-range", type=float, default=SPECKLE_RANGE_PX, metavar="PX",
                        help="largest disparity step within one speckle region, as the node's speckle_range")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from smd_core.eval.baselines import parse_baselines, sgbm_config
    from smd_core.eval.curve import format_edges
    from smd_core.eval.data import load_frames
    from smd_core.eval.loop import evaluate
    from smd_core.eval.report import format_summary
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model
    from smd_core.resolve import resolve_checkpoint, select_device

    baselines = parse_baselines(args.baseline)
    sgbm = sgbm_config(args.sgbm)
    if args.sgbm and not baselines:
        raise ValueError(f"--sgbm {args.sgbm} needs --baseline ({' | '.join(BASELINES)})")
    device = select_device(args.device)
    no_model = args.checkpoint is not None and args.checkpoint.lower() == "none"
    if no_model and not baselines:
        raise ValueError(f"--checkpoint none scores baselines only: give --baseline ({' | '.join(BASELINES)})")
    if args.max_disp is not None and not no_model:
        raise ValueError(f"--max-disp {args.max_disp:g} applies only with --checkpoint none; with a model the "
                         "range is its max_disp")
    predictor, checkpoint, max_disp = None, None, args.max_disp
    if no_model:
        if max_disp is None:
            max_disp = float(load_model(resolve_checkpoint(None), device="cpu").config.max_disp)
    else:
        checkpoint = resolve_checkpoint(args.checkpoint, hint="pass --checkpoint")
        model = load_model(checkpoint, backbone=args.backbone, output=args.output_repr, device=device)
        predictor = Predictor(model, device=device, chunk_points=args.chunk_points)
    frames = load_frames(args.data, args.data_option)
    with torch.inference_mode():
        report = evaluate(predictor, frames, scale=args.scale, input_scale=args.input_scale, out_dir=args.out,
                          images=args.images, progress=not args.no_progress,
                          metric_options={"edge_threshold": args.edge_threshold, "band_radius": args.band_radius,
                                          "tolerance": args.tolerance},
                          extra={"checkpoint": str(checkpoint) if checkpoint else None, "data": args.data,
                                 "data_options": list(args.data_option)},
                          baselines=baselines, sgbm=sgbm, max_disp=max_disp, max_uncertainty=args.max_uncertainty,
                          speckle_size=args.speckle_size, speckle_range=args.speckle_range)
    print(format_summary(report))
    if edges := format_edges(report):
        print(edges)
    if args.out:
        print(f"report: {Path(args.out) / 'report.json'}")
    return 0
