"""GPU check of the backends, for a machine with an NVIDIA GPU (run by bench/gpu_check.sh).

For the bundled default model (dynamic-size .onnx) and a published-shape model (PSMNet + bimodal SMD head,
max_disp 256, random weights: the published checkpoints' shapes; its .onnx pinned to each padded size), at
640x480 and 960x540 dense output: median latency (ms, after warm-up) of onnxruntime with the CUDA and the
TensorRT execution providers, torch CUDA float32 and float16 autocast, and parity of each against torch CUDA
float32 (share of pixels within 0.01 px, largest difference, share with the same selected mode). A provider
that does not load is reported as such (onnxruntime's CPU fallback is not timed as a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = ((480, 640), (540, 960))


def timed(predictor, left, right, repeats: int) -> tuple[float, object]:
    for _ in range(2):
        pred = predictor.predict(left, right)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred = predictor.predict(left, right)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), pred


def parity(ref, pred) -> str:
    d = np.abs(ref.disparity - pred.disparity)
    same = "n/a"
    if ref.pi0 is not None:
        modes = [p.pi0 / p.sigma0 > p.pi1 / p.sigma1 for p in (ref, pred)]
        same = f"{np.mean(modes[0] == modes[1]):.5f}"
    return f"within 0.01 px {np.mean(d <= 0.01):.5f}  max {d.max():.4f}  same mode {same}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    from smd_core import weights
    from smd_core.config import ModelConfig
    from smd_core.data.synthetic.render import render_scene
    from smd_core.infer.export import export
    from smd_core.infer.ort_backend import OrtPredictor
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import build_model, load_model, save_checkpoint

    if not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA device")
        return 2
    print(f"GPU {torch.cuda.get_device_name(0)}; torch {torch.__version__}; onnxruntime {ort.__version__} "
          f"providers {ort.get_available_providers()}")
    cuda = torch.device("cuda")
    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    published = save_checkpoint(tmp / "psm.pt", build_model(ModelConfig(backbone="psmnet", max_disp=256)).eval())
    models = {"bundled sgbm_guided": weights.default_checkpoint(), "published-shape psmnet": published}
    for h, w in SIZES:
        scene = render_scene(9000, height=h, width=w)
        left, right = scene.left, scene.right
        for name, ckpt in models.items():
            net = load_model(ckpt, device=cuda)
            ref_ms, ref = timed(Predictor(net, device=cuda), left, right, args.repeats)
            print(f"\n{w}x{h} {name}")
            print(f"  torch cuda float32      {ref_ms:8.1f} ms")
            ms, pred = timed(Predictor(net, device=cuda, autocast_dtype=torch.float16), left, right, args.repeats)
            print(f"  torch cuda float16      {ms:8.1f} ms  {parity(ref, pred)}")
            mult = net.pad_multiple
            size = None if name.startswith("bundled") else (-(-h // mult) * mult, -(-w // mult) * mult)
            onnx_path = export(ckpt, tmp / f"{ckpt.stem}_{h}x{w}.onnx", image_size=size)
            for device in ("cuda", "tensorrt"):
                try:
                    predictor = OrtPredictor(onnx_path, device=device, fallback=False)
                except (ValueError, RuntimeError) as exc:
                    print(f"  onnxruntime {device:<10} not available: {str(exc).splitlines()[0]}")
                    continue
                t0 = time.perf_counter()
                predictor.predict(left, right)  # TensorRT builds its engines here
                first = time.perf_counter() - t0
                ms, pred = timed(predictor, left, right, args.repeats)
                print(f"  onnxruntime {device:<10} {ms:8.1f} ms  {parity(ref, pred)}  (first frame {first:.1f} s, "
                      f"providers {predictor.model.providers})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
