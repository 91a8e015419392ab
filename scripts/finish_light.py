"""Last step of scripts/train_light.sh: ship the light models and write their model card.

    python scripts/finish_light.py [--frames 50] [--bimodal-run DIR] [--standard-run DIR]

Takes the newest checkpoint of the two runs (default runs/light_synthetic and runs/light_synthetic_standard;
scripts/train_light.sh passes its stage-2 runs), writes slim copies
(weights + model and training config, no optimizer state) to smd_core/weights/, evaluates both on the
held-out synthetic set (seed 9000, never used in training) and writes smd_core/weights/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from smd_core.evaluate import evaluate, load_frames
from smd_core.model.network import load_model, read_checkpoint, save_checkpoint
from smd_core.train import list_checkpoints
from smd_core.weights import DEFAULT_NAME, STANDARD_NAME, WEIGHTS_DIR

HELD_OUT = "synthetic:9000:{n}"
KEYS = ("epe", "bad1", "bad3", "see", "bleeding", "density")


def ship(run: Path, name: str) -> tuple[Path, dict]:
    ckpts = list_checkpoints(run / "checkpoints")
    if not ckpts:
        raise FileNotFoundError(f"no checkpoints in {run / 'checkpoints'}")
    step, path = ckpts[-1]
    data = read_checkpoint(path)
    model = load_model(path)
    tc = data.get("train_config", {})
    out = save_checkpoint(WEIGHTS_DIR / name, model, train_config=tc, step=int(step))
    return out, {"step": int(step), "source": str(path), "train_config": tc, "stages": stages(tc)}


def stages(tc: dict) -> list[dict]:
    """The training stages behind a train config, oldest first: each {steps, lr}, following `init` back."""
    out = [{"steps": tc.get("steps"), "lr": tc.get("optim", {}).get("lr")}]
    init = tc.get("init")
    if init and Path(init).is_file():
        out = stages(read_checkpoint(init).get("train_config", {})) + out
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--bimodal-run", type=Path, default=Path("runs/light_synthetic"))
    ap.add_argument("--standard-run", type=Path, default=Path("runs/light_synthetic_standard"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    for run, name, label in ((args.bimodal_run, DEFAULT_NAME, "bimodal"),
                             (args.standard_run, STANDARD_NAME, "standard")):
        path, info = ship(run, name)
        report = evaluate(load_model(path), load_frames(HELD_OUT.format(n=args.frames)),
                          out_dir=run.parent / f"heldout_{label}", images=4)
        results[label] = {"file": path.name, "size_mb": path.stat().st_size / 2**20, **info,
                          "summary": report["summary"]}
        print(label, json.dumps(flat(report["summary"])))
    (WEIGHTS_DIR / "heldout.json").write_text(json.dumps(results, indent=2, default=str))
    write_card(results, args.frames)
    return 0


def flat(summary: dict) -> dict:
    """Frame-mean metrics plus timing of an `evaluate` summary."""
    out = {k: summary["metrics"].get(k) for k in KEYS}
    out["time_s"] = summary.get("timing", {}).get("mean_s")
    return out


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def recipe_steps(stage_list: list[dict]) -> str:
    """'3600 steps' or '3600 steps (peak lr 0.001), then 4000 steps from those weights (peak lr 0.0005)'."""
    parts = [f"{s['steps']} steps (peak lr {s['lr']})" for s in stage_list]
    return ", then ".join(parts[:1] + [p.replace(" steps", " steps from those weights", 1) for p in parts[1:]])


def write_card(results: dict, frames: int) -> None:
    b, s = flat(results["bimodal"]["summary"]), flat(results["standard"]["summary"])
    rows = "\n".join(f"| {k} | {_fmt(b.get(k))} | {_fmt(s.get(k))} |" for k in (*KEYS, "time_s"))
    see_ratio = b["see"] / s["see"] if s.get("see") else float("nan")
    bleed_ratio = b["bleeding"] / s["bleeding"] if s.get("bleeding") else float("nan")
    tc = results["bimodal"]["train_config"]
    sample = tc.get("data", {}).get("sample") or tc.get("data", {})  # nested since DataConfig.sample
    files = "\n".join(
        f"| `{results[k]['file']}` | {what} | {results[k]['size_mb']:.2f} MB | {results[k]['step']} |"
        for k, what in (("bimodal", "bimodal Laplacian (default of the node and the CLI)"),
                        ("standard", "standard (L1), same backbone and budget, for comparison")))
    card = f"""# Bundled light models (smd_core/weights)

| file | head | size | steps (last stage) |
|---|---|---|---|
{files}

**Network.** LightStereo backbone (feature pyramid, group-wise correlation at 1/4, 2D aggregation U-Net;
about 0.2 M parameters) + SMD head with widths {tc.get('model', {}).get('head_widths')}, max_disp
{tc.get('model', {}).get('max_disp')}. Input BGR 0..255, any size (padded to multiples of 64).

**Data.** Procedural stereo scenes from `smd_core.data.synthetic` with exact disparity (slanted background,
polygons, ellipses, thin structures, textures from noise / gradients / periodic stripes and checkers /
scikit-image images, photometric
differences between the views): 800 scenes at 640x480, disparity up to 64 px, seeds (1000, i).
Held-out: `synthetic:9000:{frames}` ({frames} scenes of seed 9000, never seen in training).

**Recipe.** `bash scripts/train_light.sh` = `smd synth` + `smd train --config configs/light_synthetic.yaml`
(and `configs/light_synthetic_standard.yaml`) on CPU, the two runs side by side with one thread each:
crops {sample.get('crop_size')}, {sample.get('num_points')} DDA points per crop, batch
{tc.get('batch_size')}, Adam with cosine schedules down to lr {tc.get('optim', {}).get('min_lr')}:
{recipe_steps(results["bimodal"]["stages"])}.

**Held-out metrics** (`smd eval --checkpoint smd_core/weights/... --data synthetic:9000:{frames}`; EPE and SEE in
px, bad-x and bleeding in %, time per 640x480 frame in s on this machine's CPU):

| metric | bimodal | standard |
|---|---|---|
{rows}

Bimodal vs standard: SEE x{see_ratio:.2f}, bleeding rate x{bleed_ratio:.2f}.

**Limits.** Trained on synthetic scenes only: expect a domain gap on real cameras; fine-tune on your own
recordings (README, "Fine-tuning on your recordings"). Disparities above 64 px were not seen in training.
"""
    (WEIGHTS_DIR / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":
    raise SystemExit(main())
