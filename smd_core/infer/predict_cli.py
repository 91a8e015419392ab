"""`smd predict`: dense disparity + uncertainty for one stereo pair, written as PNGs and .npy maps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from smd_core.config import CHUNK_POINTS

# OpenCV, NumPy, the backend and viz are imported in the functions that use them: `smd predict --help` loads none
# of them, and torch is imported only for the torch backend.


def uncertainty_floor_px(output: str, max_disp: float, disparity_scale: float = 1.0) -> float:
    """The smallest uncertainty (output px) a model with head `output` can give: where its uncertainty
    pictures start (`confidence.uncertainty_floor` scaled to the output grid; 0 for a standard head, which has
    none)."""
    if output == "standard":
        return 0.0
    from smd_core.infer.confidence import uncertainty_floor

    return uncertainty_floor(max_disp) * float(disparity_scale)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("left", help="left rectified image")
    parser.add_argument("right", help="right rectified image")
    parser.add_argument("--checkpoint", default=None,
                        help="published SMD-Nets or smd_ros checkpoint, or an `smd export` .onnx file "
                             "(default: bundled)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="auto: onnxruntime for .onnx files, torch otherwise (default auto)")
    parser.add_argument("--backbone", default=None, help="psmnet|hsmnet (published checkpoints; default: inferred)")
    parser.add_argument("--output", dest="output_repr", default=None,
                        help="standard|unimodal|bimodal (default: inferred)")
    parser.add_argument("--out", default="predict_out", help="output folder")
    parser.add_argument("--scale", type=float, default=None, help="output scale factor (any float > 0)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None, help="output size")
    parser.add_argument("--input-scale", type=float, default=1.0, help="resize the images before the network")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda[:N] (onnxruntime also tensorrt[:N])")
    parser.add_argument("--chunk-points", type=int, default=CHUNK_POINTS, help="query points per chunk (memory bound)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from smd_core import viz
    from smd_core.data.io import read_image
    from smd_core.infer.backend import load_predictor, resolve_model

    ckpt, backend = resolve_model(args.checkpoint, args.backend, hint="pass --checkpoint")
    predictor = load_predictor(ckpt, backend, device=args.device, chunk_points=args.chunk_points,
                               backbone=args.backbone, output=args.output_repr)
    device, config = predictor.device, predictor.config
    left, right = read_image(args.left), read_image(args.right)
    pred = predictor.predict(left, right, output_size=tuple(args.size) if args.size else None, scale=args.scale,
                             input_scale=args.input_scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("disparity", "uncertainty", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1"):
        value = getattr(pred, name)
        if value is not None:
            np.save(out / f"{name}.npy", value)
    # Colour bars in px; the uncertainty scale starts at the model's floor, so that confident pixels are dark.
    floor = uncertainty_floor_px(config.output, config.max_disp, pred.disparity_scale)
    viz.write_png(out / "disparity.png", viz.colorize_disparity(pred.disparity, unit="px"))
    viz.write_png(out / "uncertainty.png", viz.colorize_uncertainty(pred.uncertainty, vmin=floor, unit="px"))
    info = {"checkpoint": str(ckpt),
            "model": {"backbone": config.backbone, "output": config.output, "max_disp": config.max_disp},
            "backend": backend, "device": str(device), "input_size": list(left.shape[:2]),
            "output_size": list(pred.disparity.shape), "disparity_units": "output-grid pixels",
            "disparity_scale": pred.disparity_scale, "uncertainty_floor_px": floor, "timings_s": pred.timings}
    (out / "prediction.json").write_text(json.dumps(info, indent=2))
    h, w = pred.disparity.shape
    print(f"{ckpt.name}: {w}x{h} disparity {np.nanmin(pred.disparity):.2f}..{np.nanmax(pred.disparity):.2f} px "
          f"in {pred.timings['total_s']:.2f} s on {device} -> {out}/")
    return 0
