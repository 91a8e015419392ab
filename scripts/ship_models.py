"""Last step of scripts/train_guided.sh / train_light.sh: ship a model family and write its model card.

    python scripts/ship_models.py {guided,light} [--frames 50] [--bimodal-run DIR] [--standard-run DIR]
                                  [--previous CKPT] [--no-ship]

Takes the newest checkpoint of the family's two runs (bimodal and standard head; default
runs/<family>_synthetic[_standard]), writes slim copies (weights + model and training config, no optimizer
state) to smd_core/weights/<family>_{bimodal,standard}.pt, evaluates both, SGBM and SGBM+fill (the one
`smd_core.classical` matcher with the guided model's own SGBM parameters) and optionally a previous model
on the held-out synthetic set (seed 9000, never used in training), and writes heldout.json and
MODEL_CARD.md beside the weights.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from smd_core.classical import SGBMConfig
from smd_core.data.sample_config import SampleConfig
from smd_core.eval.baselines import BASELINES
from smd_core.eval.calibrate import calibrate_cloud_threshold
from smd_core.eval.cli import HELD_OUT_SEED
from smd_core.eval.curve import format_edges
from smd_core.eval.data import load_frames
from smd_core.eval.loop import evaluate
from smd_core.infer.export import export, is_guided
from smd_core.metrics import METRIC_KEYS as KEYS
from smd_core.model.network import deployment_for, load_model, read_checkpoint, save_checkpoint
from smd_core.train.checkpoints import list_checkpoints
from smd_core.weights import WEIGHTS_DIR

HELD_OUT = f"synthetic:{HELD_OUT_SEED}:{{n}}"
REAL = "motorcycle"  # smd_core.data.real_sample: a real Middlebury scene with ground truth
NETWORK = {
    "guided": "SGBM-guided backbone (`sgbm_guided`: OpenCV SGBM, parameters stored in the checkpoint, + a "
              "5-level 2D U-Net over the left image, the filled SGBM disparity, its foreground/background "
              "candidates in two windows, validity and photometric errors, with `cost_offsets` the matching costs "
              "at -k..k px around both anchors, and a full-resolution branch) + SMD head whose modes are offsets "
              "from two anchors sampled nearest-neighbour (never blended across an edge): SGBM's filled "
              "disparity and the wide window's farther candidate (`anchor_range`: the second mode stays that "
              "close to it); a standard head refines the first. The default uncertainty (\"edge\") adds twice the "
              "distance to the nearer of the small window's foreground / background candidates where a "
              "disparity lies between them at a jump",
    "light": "LightStereo backbone (feature pyramid, group-wise correlation at 1/4, 2D aggregation U-Net)",
}


def ship(run: Path, name: str, copy: bool, frames: Iterable[Mapping[str, Any]] = ()) -> tuple[Path, dict]:
    """Slim copy of `run`'s newest checkpoint (or of `run` itself, a checkpoint file, e.g. a shipped model
    to re-evaluate) as WEIGHTS_DIR/name, with its training stages stored in it and, for a model with a cloud
    threshold, that threshold calibrated on `frames` (held-out frames with ground truth,
    `calibrate_cloud_threshold`); returns (path, info)."""
    if run.is_file():
        step, path = int(read_checkpoint(run).get("step", 0)), run
    else:
        ckpts = list_checkpoints(run / "checkpoints")
        if not ckpts:
            raise FileNotFoundError(f"no checkpoints in {run / 'checkpoints'}")
        step, path = ckpts[-1]
    ckpt = read_checkpoint(path)
    tc = ckpt.get("train_config", {})
    # Before the copy: a later stage may have started from the very file the copy replaces.
    info = {"step": int(step), "source": str(ckpt.get("source", path)), "train_config": tc,
            "stages": stages(ckpt, path)}
    out = path
    if copy:
        model = load_model(path)
        model.deployment = deployment_for(model.config)  # today's deployment defaults, whatever the file had
        if model.deployment.cloud_max_uncertainty > 0:
            cal = calibrate_cloud_threshold(model, frames)
            model.deployment = replace(model.deployment, cloud_max_uncertainty=cal.max_uncertainty)
            info["calibration"] = asdict(cal)
        out = save_checkpoint(WEIGHTS_DIR / name, model, train_config=tc, step=int(step),
                              stages=info["stages"], source=info["source"])
        if is_guided(model):  # the onnxruntime backend's copy (a runtime install runs it): from this very file
            export(out, out.with_suffix(".onnx"))
    return out, info


def stages(ckpt: dict, path: Path | None = None, seen: frozenset[str] = frozenset()) -> list[dict]:
    """The training stages behind checkpoint `ckpt` (read from `path`), oldest first: each {steps, lr, changes}.
    A shipped copy stores them ("stages", and its "source"); otherwise they follow its train config's `init`
    back, stopping at a file already visited, and taking as they are the stages of a shipped copy of `path`
    itself (a run that started from the file its own copy later replaced)."""
    if ckpt.get("stages"):
        return list(ckpt["stages"])
    tc = ckpt.get("train_config", {})
    init = tc.get("init")
    if init and path is not None and Path(init).is_file():
        parent = read_checkpoint(init)
        if parent.get("stages") and _same(parent.get("source"), path):
            return list(parent["stages"])
    changes = {k: tc[k] for k in ("selection_weight", "init_skip") if tc.get(k)}
    if tc.get("selection_weight") and tc.get("selection_target", "closer") != "closer":
        changes["selection_target"] = tc["selection_target"]
    changes.update({k: v for k, v in tc.get("model", {}).items() if k == "anchor_range" and v})
    options = tc.get("model", {}).get("backbone_options", {})
    changes.update({k: options[k] for k in ("full_res_width", "cost_offsets") if options.get(k)})
    sample = tc.get("data", {}).get("sample", {})
    if sample.get("dilation", SampleConfig.dilation) != SampleConfig.dilation:  # a narrower edge band
        changes["dilation"] = sample["dilation"]
    out = [{"steps": tc.get("steps"), "lr": tc.get("optim", {}).get("lr"), "changes": changes}]
    if init and not Path(init).is_file():
        out = [{"missing": str(init)}] + out
    elif init and str(Path(init).resolve()) not in seen:
        out = stages(read_checkpoint(init), Path(init), seen | {str(Path(init).resolve())}) + out
    return out


def _same(a: object, b: object) -> bool:
    return a is not None and b is not None and Path(str(a)).resolve() == Path(str(b)).resolve()


def flat(summary: dict) -> dict:
    """Frame-mean metrics plus timing of an `evaluate` summary."""
    out = {k: summary["metrics"].get(k) for k in KEYS}
    out["time_s"] = summary.get("timing", {}).get("mean_s")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", choices=sorted(NETWORK))
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--bimodal-run", type=Path)
    ap.add_argument("--standard-run", type=Path)
    ap.add_argument("--previous", type=Path, help="also score this checkpoint (e.g. the previous default)")
    ap.add_argument("--no-ship", action="store_true", help="evaluate the runs' checkpoints, copy nothing")
    args = ap.parse_args()
    fam = args.family
    runs = {"bimodal": args.bimodal_run or Path(f"runs/{fam}_synthetic"),
            "standard": args.standard_run or Path(f"runs/{fam}_synthetic_standard")}
    frames = HELD_OUT.format(n=args.frames)
    rows: dict[str, dict] = {}
    real: dict[str, dict] = {}
    results: dict[str, dict] = {}
    models: dict[str, torch.nn.Module] = {}
    for label, run in runs.items():
        path, info = ship(run, f"{fam}_{label}.pt", not args.no_ship, load_frames(frames))
        models[f"{fam} {label}"] = model = load_model(path)
        sgbm = getattr(model.stereo_network, "sgbm", SGBMConfig())
        # SGBM beside every model (for its rows at SGBM's density); its own rows once, after the default's.
        # Pictures beside the run (never inside the package when re-shipping a bundled file).
        pictures = (Path("runs") if run.is_file() else run.parent) / f"heldout_{fam}_{label}"
        report = evaluate(model, load_frames(frames), out_dir=pictures, images=4, baselines=BASELINES, sgbm=sgbm,
                          max_uncertainty=cloud_threshold(model), extra={"data": f"held-out {frames}"})
        results[label] = {"file": Path(path).name, "size_mb": Path(path).stat().st_size / 2**20, **info,
                          "summary": report["summary"],
                          "summary_at_sgbm_density": report.get("summary_at_sgbm_density"),
                          "edges": format_edges(report), "density_curve": report.get("density_curve"),
                          "flying_breakdown": report.get("flying_breakdown")}
        add_model(rows, f"{fam} {label}", report, baselines=label == "bimodal")
        results.setdefault("baselines", report["baselines"])
    if args.previous:
        name = f"previous ({args.previous.name})"
        models[name] = load_model(args.previous)
        report = evaluate(models[name], load_frames(frames), images=0, baselines=("sgbm_fill",),
                          max_uncertainty=cloud_threshold(models[name]))
        add_model(rows, name, report, baselines=False)
        results["previous"] = {"file": str(args.previous), "summary": report["summary"],
                               "edges": format_edges(report)}
    # The real scene: what carries over from the synthetic training set (nothing trains on it).
    for name, model in models.items():
        pictures = Path("runs") / f"real_{name.replace(' ', '_').replace('(', '').replace(')', '')}"
        report = evaluate(model, load_frames(REAL), out_dir=pictures, images=1, baselines=BASELINES,
                          sgbm=getattr(model.stereo_network, "sgbm", SGBMConfig()),
                          max_uncertainty=cloud_threshold(model), extra={"data": REAL})
        add_model(real, name, report, baselines=not real)
        results.setdefault("real_edges", {})[name] = format_edges(report)
    for title, table in (("held-out", rows), (REAL, real)):
        print(title)
        for name, row in table.items():
            print(f"  {name:<32}", json.dumps(row))
    if not args.no_ship:
        (WEIGHTS_DIR / "heldout.json").write_text(json.dumps({"family": fam, "rows": rows, "real_rows": real,
                                                              **results}, indent=2, default=str))
        write_card(fam, results, rows, real, args.frames)
    return 0


def cloud_threshold(model: torch.nn.Module) -> float:
    """The threshold of the node's default cloud for this model (`max_uncertainty` -1: its checkpoint's
    `Deployment.cloud_max_uncertainty`); 0, no extra row, where it keeps every point (a standard head)."""
    return model.deployment.cloud_max_uncertainty


def add_model(rows: dict[str, dict], name: str, report: dict, *, baselines: bool) -> None:
    """Table rows of an `evaluate` report: the model, dense, in the node's default cloud and at BM's and SGBM's
    density, and with `baselines` the classical ones (raw BM and SGBM also on their valid pixels)."""
    rows[name] = flat(report["summary"])
    if "summary_below_max_uncertainty" in report:
        key = f"{name} (node's cloud: max_uncertainty {report['max_uncertainty']:.1f} px)"
        rows[key] = flat(report["summary_below_max_uncertainty"])
    for sparse in ("bm", "sgbm"):
        if f"summary_at_{sparse}_density" in report:
            rows[f"{name} (at {sparse.upper()}'s density)"] = flat(report[f"summary_at_{sparse}_density"])
    if not baselines:
        return
    for baseline, base in report.get("baselines", {}).items():
        rows[baseline] = flat(base["summary"])
        if "valid_pixels" in base:
            rows[f"{baseline} (valid pixels)"] = flat(base["valid_pixels"])


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def recipe_steps(stage_list: list[dict]) -> str:
    """'3600 steps (peak lr 0.001)', then '... N steps from those weights (...)' for later stages, each with
    what it changed (e.g. anchor_range=4)."""
    parts = [f"the stages behind `{Path(s['missing']).name}` (not on this machine; see the training script)"
             if "missing" in s else f"{s['steps']} steps (peak lr {s['lr']}"
             + "".join(f", {k}={v}" for k, v in s.get("changes", {}).items()) + ")" for s in stage_list]
    return ", then ".join(parts[:1] + [p.replace(" steps", " steps from those weights", 1) for p in parts[1:]])


def calibration_text(cal: dict | None) -> str:
    """The card's sentence on the default's calibrated cloud threshold ('' without one)."""
    if not cal:
        return ""
    return (f". The default's threshold, {cal['max_uncertainty']:.2f} px, is {cal['factor']:g} x its uncertainty "
            f"floor, calibrated when shipped (`smd_core.eval.calibrate`): the smallest multiple whose cloud keeps "
            f"at least SGBM's density on these {cal['frames']} frames ({cal['density']:.2f} % vs "
            f"{cal['sgbm_density']:.2f} %)")


def markdown_table(rows: dict[str, dict]) -> str:
    header = "| method | " + " | ".join(KEYS) + " | time s |\n|---|" + "---|" * (len(KEYS) + 1)
    return header + "\n" + "\n".join(f"| {name} | " + " | ".join(_fmt(r.get(k)) for k in (*KEYS, "time_s"))
                                     + " |" for name, r in rows.items())


def write_card(fam: str, results: dict, rows: dict, real: dict, frames: int) -> None:
    b, s = rows[f"{fam} bimodal"], rows[f"{fam} standard"]
    rb, rs = real[f"{fam} bimodal"], real[f"{fam} standard"]
    tc = results["bimodal"]["train_config"]
    model, data = tc.get("model", {}), tc.get("data", {})
    sample = data.get("sample", data)  # nested since DataConfig.sample; flat in older checkpoints
    files = "\n".join(f"| `{results[k]['file']}` | {k} | {results[k]['size_mb']:.2f} MB | {results[k]['step']} |"
                      for k in ("bimodal", "standard"))
    card = f"""# Bundled models (smd_core/weights)

| file | head | size | steps (last stage) |
|---|---|---|---|
{files}

`{fam}_bimodal.pt` is the default of the node, the demo and the CLI; `{fam}_standard.pt` has the same
backbone family and data with a standard (L1) head, for comparisons (each one's stages: Recipe below).

**Network.** {NETWORK[fam]}. Head widths {model.get('head_widths')}, max_disp {model.get('max_disp')},
backbone options `{json.dumps(model.get('backbone_options'))}`. Input BGR 0..255, any size.

**Data.** Procedural stereo scenes from `smd_core.data.synthetic` with exact disparity: natural textures
(1/f noise, wood, woven cloth, scikit-image photographs) on most surfaces, periodic and textureless ones a
minority, thin structures and see-through objects (wheels with spokes, fences and grids, perforated plates,
rings, wires), photometric differences between the views. See `scripts/train_{fam}.sh` for the exact sets.
Held-out: `{HELD_OUT.format(n=frames)}` ({frames} scenes of seed {HELD_OUT_SEED}, never seen in training).

**Recipe.** `bash scripts/train_{fam}.sh` on CPU, the two heads side by side with one thread each (stages
after the second, where the script has them, train the bimodal default alone on both cores): crops
{sample.get('crop_size')}, {sample.get('num_points')} points per crop
({sample.get('strategy', sample.get('sampling'))}), batch
{tc.get('batch_size')}, Adam with a cosine schedule down to lr {tc.get('optim', {}).get('min_lr')}; the default:
{recipe_steps(results["bimodal"]["stages"])}; the standard head:
{recipe_steps(results["standard"]["stages"])}.

**Held-out metrics** (`smd eval --checkpoint smd_core/weights/{fam}_bimodal.pt --baseline bm,sgbm,sgbm_fill
--data {HELD_OUT.format(n=frames)}`; EPE and SEE in px, bad-x, bleeding, flying and density in %, time per
640x480 frame in s on this machine's shared CPU; flying: among a method's points within 3 px of ground-truth
jumps over 2 px, the share more than 1 px from the ground truth and from both sides of the jump
(`metrics.flying_map`); BM is `stereo_image_proc`'s default matcher; BM's and SGBM's holes count as errors
except in their "valid pixels" rows; "at BM's / SGBM's density": a model on its least uncertain pixels, as
many per frame as that matcher matched; "node's cloud": the pixels the node keeps by default,
`max_uncertainty` -1, its threshold in the row's name, less the speckles among them (`speckle_size` 100,
`speckle_range` 2 px: `geometry.remove_speckles`)){calibration_text(results["bimodal"].get("calibration"))}:

{markdown_table(rows)}

Bimodal vs standard head: SEE x{b['see'] / s['see']:.2f}, bleeding rate x{b['bleeding'] / s['bleeding']:.2f}.

```
{results["bimodal"]["edges"]}
```

**A real scene** (`smd eval --data motorcycle --baseline bm,sgbm,sgbm_fill`: Middlebury 2014 Motorcycle at
741x500, bundled with scikit-image; real noise, lighting, wheels with spokes, a chair's lattice; nothing
trains on it, nothing is chosen by it):

{markdown_table(real)}

Bimodal vs standard head: SEE x{rb['see'] / rs['see']:.2f}, bleeding rate x{rb['bleeding'] / rs['bleeding']:.2f}.

```
{results["real_edges"][f"{fam} bimodal"]}
```

**Limits.** Trained on synthetic scenes only; SGBM's matches carry over to real cameras, the network's
refinement may not everywhere: fine-tune on your own recordings (README, "Fine-tuning on your recordings").

The `.onnx` files beside the checkpoints are their `smd export` (the network after SGBM, for the onnxruntime
backend; their metadata name the `.pt` file and its sha256), written with each copy.
"""
    (WEIGHTS_DIR / "MODEL_CARD.md").write_text(card)


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raise SystemExit(main())
