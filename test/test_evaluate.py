"""`smd eval` and `evaluate()`: data specs, scoring at ground-truth resolution, reports and pictures, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from smd_core import ModelConfig, Predictor, build_model, save_checkpoint
from smd_core.eval.data import load_frames, parse_data_spec
from smd_core.eval.loop import evaluate, score_frame, summarize
from smd_core.eval.report import format_summary
from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE, remove_speckles
from smd_core.infer.dense import DensePrediction

TINY = ModelConfig(backbone="light", output="bimodal", max_disp=32, head_widths=(8,),
                   backbone_options={"widths": [8, 16], "agg_widths": [8, 8, 8], "image_features": [4, 4],
                                     "cost_channels": 4})
SMALL = ["height=64", "width=96", "max_disparity=16"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TINY).eval()


class OraclePredictor(Predictor):
    """Returns the ground truth (looked up by the left image) times `factor`, at the requested output size."""

    def __init__(self, model: torch.nn.Module, frames: list[dict], factor: float = 1.0) -> None:
        super().__init__(model)
        self.lookup = {f["left"].tobytes(): f["disp_left"] for f in frames}
        self.factor = factor

    def predict(self, left_bgr, right_bgr, *, output_size=None, scale=None, input_scale=1.0) -> DensePrediction:
        gt = self.lookup[left_bgr.tobytes()] * self.factor
        h, w = gt.shape
        if scale is not None and scale != 1.0:
            import cv2

            gt = cv2.resize(gt, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_NEAREST_EXACT) * scale
        return DensePrediction(disparity=gt.astype(np.float32), uncertainty=np.ones_like(gt, np.float32),
                               disparity_scale=1.0, timings={"encode_s": 0.0, "query_s": 0.0, "total_s": 0.0})


def frames_small(n: int = 2) -> list[dict]:
    return [load_frames(f"synthetic:9000:{n}", SMALL).frame(i) for i in range(n)]


# ---------------------------------------------------------------------------------------------- data specs


def test_default_data_shares_no_scene_with_the_recipes_training_data() -> None:
    """Scene i of seed S is `render_scene((S, i))` wherever it is rendered: the default `smd eval` data must use a
    seed that no training set of the recipes (`smd synth --seed S` in scripts/, synthetic training data in
    configs/) uses."""
    import argparse
    import re

    from smd_core.eval.cli import add_arguments
    from smd_core.train.config import load_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    held_out = parse_data_spec(parser.parse_args([]).data)
    repo = Path(__file__).resolve().parents[1]
    seeds = {int(s) for p in (repo / "scripts").glob("*.sh") for s in re.findall(r"smd synth .*--seed (\d+)",
                                                                                  p.read_text())}
    seeds |= {c.data.seed for c in map(load_config, (repo / "configs").glob("*.yaml")) if c.data.kind == "synthetic"}
    assert held_out.kind == "synthetic" and seeds and held_out.seed not in seeds


def test_parse_synthetic_and_kinds(tmp_path: Path) -> None:
    cfg = parse_data_spec("synthetic:7:3", ["height=32", "width=64"])
    assert (cfg.kind, cfg.seed, cfg.num_samples, cfg.height, cfg.width) == ("synthetic", 7, 3, 32, 64)
    assert parse_data_spec("kitti2015:/data/kitti").root == "/data/kitti"
    lst = tmp_path / "val.txt"
    lst.write_text("")
    assert parse_data_spec(str(lst)).split == str(lst)
    assert parse_data_spec(f"list:{lst}").kind == "list"
    for bad in ("synthetic:1", "synthetic:a:2", "synthetic", "nonsense-without-file"):
        with pytest.raises(ValueError):
            parse_data_spec(bad)
    with pytest.raises(ValueError, match="empty"):
        parse_data_spec("  ")
    with pytest.raises(FileNotFoundError):
        parse_data_spec(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="num_samples"):
        parse_data_spec("synthetic:1:0")


def test_parse_yaml_sections(tmp_path: Path) -> None:
    train_cfg = tmp_path / "train.yaml"
    train_cfg.write_text("data: {kind: synthetic, seed: 0}\nval_data: {kind: synthetic, seed: 5, num_samples: 4}\n")
    cfg = parse_data_spec(str(train_cfg))
    assert (cfg.seed, cfg.num_samples) == (5, 4)
    only_data = tmp_path / "d.yaml"
    only_data.write_text("data: {kind: synthetic, seed: 3}\nval_data: null\n")
    assert parse_data_spec(str(only_data)).seed == 3
    plain = tmp_path / "p.yml"
    plain.write_text("kind: synthetic\nseed: 9\n")
    assert parse_data_spec(str(plain), ["num_samples=2"]).num_samples == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        parse_data_spec(str(bad))
    bad.write_text("data: 3\n")
    with pytest.raises(ValueError, match="data section"):
        parse_data_spec(str(bad))
    with pytest.raises(FileNotFoundError):
        parse_data_spec(str(tmp_path / "none.yaml"))


# ---------------------------------------------------------------------------------------------- scoring


def test_score_frame_resizes_to_gt_and_respects_range() -> None:
    gt = np.full((4, 8), 6.0, np.float32)
    gt[0, 0] = 40.0  # beyond a max_disp of 32: not scored
    half = np.full((2, 4), 3.0, np.float32)  # half-resolution prediction of 6 px -> 3 px in its own grid
    m = score_frame(half, gt, max_disp=32.0)
    assert m["epe"] == 0.0 and m["n_gt"] == 31 and m["density"] == 100.0
    m = score_frame(half + 0.5, gt)  # +0.5 at half width = +1 px at full width; all 32 pixels now
    assert m["epe"] == pytest.approx((31 * 1.0 + 33.0) / 32)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        score_frame(half, np.zeros((2, 2, 2)))


def test_summarize_mean_and_pooled() -> None:
    a = {"epe": 1.0, "bad1": 10.0, "bad2": 0.0, "bad3": 0.0, "see": 2.0, "bleeding": 50.0, "density": 100.0,
         "n_valid": 10, "n_gt": 10, "n_edges": 2, "n_band": 4, "n_flying": 2, "n_fly_band": 0, "n_fly": 0,
         "time_s": 0.5}
    b = {"epe": 3.0, "bad1": 40.0, "bad2": 20.0, "bad3": 0.0, "see": math.nan, "bleeding": math.nan,
         "density": 50.0, "n_valid": 30, "n_gt": 60, "n_edges": 0, "n_band": 0, "n_flying": 0, "n_fly_band": 0,
         "n_fly": 0, "time_s": 1.5}
    s = summarize([a, b])
    assert s["frames"] == 2
    assert s["metrics"]["epe"] == 2.0 and s["metrics"]["see"] == 2.0 and s["metrics"]["bleeding"] == 50.0
    assert s["metrics"]["density"] == 75.0
    assert s["pooled"]["epe"] == pytest.approx((10 * 1 + 30 * 3) / 40)
    assert s["pooled"]["bad1"] == pytest.approx((100 + 1200) / 40)
    assert s["pooled"]["bleeding"] == 50.0 and s["pooled"]["density"] == pytest.approx(100 * 40 / 70)
    assert s["timing"]["mean_s"] == 1.0 and s["timing"]["fps"] == 1.0
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


# ---------------------------------------------------------------------------------------------- evaluate()


def test_evaluate_oracle_is_perfect_and_writes_pictures(tiny_model, tmp_path: Path) -> None:
    frames = frames_small(2)
    report = evaluate(OraclePredictor(tiny_model, frames), frames, out_dir=tmp_path, images=1, progress=False)
    m = report["summary"]["metrics"]
    assert m["epe"] == 0.0 and m["bad1"] == 0.0 and m["see"] == 0.0 and m["bleeding"] == 0.0
    assert m["density"] == 100.0 and report["summary"]["frames"] == 2 and len(report["per_frame"]) == 2
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["summary"]["metrics"]["epe"] == 0.0 and saved["model_config"]["backbone"] == "light"
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert [n.split("_")[-1] for n in names] == ["bleeding.png", "disparity.png", "error.png", "gt.png",
                                                 "uncertainty.png"]
    assert names[0].startswith("0000_synthetic_9000_000000")
    import cv2

    from smd_core.eval.report import OVERVIEW_TILE_W

    # A grid, tiles at their drawn size: [left, ground truth], [disparity, error, bleeding, uncertainty]
    # (each map OVERVIEW_TILE_W wide plus its colour bar or legend).
    overview = cv2.imread(str(tmp_path / "overview.png"))
    tile_h = round(frames[0]["disp_left"].shape[0] * OVERVIEW_TILE_W / frames[0]["disp_left"].shape[1])
    assert overview is not None and overview.shape[0] == 2 * tile_h and overview.shape[1] > 4 * OVERVIEW_TILE_W


def test_evaluate_lower_output_scale_is_scored_at_gt_size(tiny_model) -> None:
    frames = frames_small(1)
    report = evaluate(OraclePredictor(tiny_model, frames), frames, scale=0.5, progress=False)
    # Nearest-neighbour halving then doubling keeps flat regions exact; only edges can move.
    assert report["summary"]["metrics"]["epe"] < 1.0 and report["summary"]["metrics"]["density"] == 100.0
    biased = evaluate(OraclePredictor(tiny_model, frames, factor=1.1), frames, progress=False)
    gt = frames[0]["disp_left"]
    valid = (gt > 0) & (gt <= 32)
    assert biased["summary"]["metrics"]["epe"] == pytest.approx(float(np.mean(0.1 * gt[valid])), rel=1e-5)


def test_evaluate_real_model_any_scale(tiny_model, tmp_path: Path) -> None:
    frames = load_frames("synthetic:9000:1", SMALL)
    report = evaluate(tiny_model, frames, scale=0.75, progress=False, out_dir=tmp_path, images=0)
    summary = report["summary"]
    assert set(summary["metrics"]) == {"epe", "bad1", "bad2", "bad3", "see", "bleeding", "flying", "density"}
    assert summary["metrics"]["density"] == 100.0 and summary["timing"]["mean_s"] > 0
    assert not (tmp_path / "images").exists() and (tmp_path / "report.json").is_file()
    # Strict JSON: NaN/inf become null.
    json.loads((tmp_path / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert "EPE" in format_summary(report) and format_summary(report) == format_summary(summary)


def test_evaluate_errors(tiny_model) -> None:
    frames = frames_small(1)
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate(tiny_model, [{"left": frames[0]["left"], "right": frames[0]["right"], "name": "x"}], progress=False)
    bad_size = dict(frames[0], disp_left=np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        evaluate(tiny_model, [bad_size], progress=False)
    with pytest.raises(ValueError, match="no frames"):
        evaluate(tiny_model, [], progress=False)
    with pytest.raises(ValueError, match="scale"):
        evaluate(tiny_model, frames, scale=0.0, progress=False)
    with pytest.raises(ValueError, match="input_scale"):
        evaluate(tiny_model, frames, input_scale=float("nan"), progress=False)
    with pytest.raises(ValueError, match="images"):
        evaluate(tiny_model, frames, images=-1, progress=False)
    with pytest.raises(TypeError, match="SMDNet or a Predictor"):
        evaluate(object(), frames, progress=False)  # type: ignore[arg-type]


def test_frame_pictures_plain_arrays() -> None:
    from smd_core.eval.report import frame_pictures

    gt = np.full((8, 12), 4.0, np.float32)
    gt[:, 6:] = 9.0
    pics = frame_pictures(np.full((4, 6), 3.0, np.float32), gt)  # half resolution, no image, no uncertainty
    assert sorted(pics) == ["bleeding", "disparity", "error", "gt"]
    # The map at ground-truth size, then a colour bar (or the bleeding legend) on its right.
    assert all(p.shape[0] == 8 and p.shape[1] > 12 and p.dtype == np.uint8 for p in pics.values())
    # Flying pixels (6 px at full resolution: neither 4 nor 9) are drawn red in the band.
    assert (pics["bleeding"][:, 5] == (0, 0, 255)).all()
    pics = frame_pictures(gt, gt, np.zeros((8, 12, 3), np.uint8), uncertainty=np.ones((4, 6), np.float32),
                          see_radius=1, band_radius=1)
    assert pics["uncertainty"].shape[:2] == (8, pics["uncertainty"].shape[1]) and pics["uncertainty"].shape[1] > 12
    assert not (pics["bleeding"][:, :12] == (0, 0, 255)).all(-1).any()
    # Drawn at a display width: every map resized to it, then its bar drawn at that height (legible text).
    shown = frame_pictures(gt, gt, uncertainty=np.ones((8, 12), np.float32), width=60)
    assert all(p.shape[0] == 40 and p.shape[1] > 60 for p in shown.values())


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_on_a_list_dataset(tiny_model, tmp_path: Path, capsys) -> None:
    from smd_core.cli import main
    from smd_core.data.synthetic.dataset import write_dataset

    ckpt = save_checkpoint(tmp_path / "tiny.pth", tiny_model)
    lst = write_dataset(tmp_path / "set", 1, seed=9000, height=64, width=96, max_disparity=16.0, progress=False,
                        preview=0)
    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", str(ckpt), "--data", str(lst), "--out", str(out), "--device", "cpu",
               "--no-progress", "--images", "1", "--band-radius", "2"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["frames"] == 1 and report["checkpoint"] == str(ckpt) and report["data"] == str(lst)
    assert report["metric_options"]["band_radius"] == 2
    assert (out / "overview.png").is_file()
    printed = capsys.readouterr().out
    assert "bleeding %" in printed and "report.json" in printed


def test_cli_reports_bad_input(tiny_model, tmp_path: Path, capsys) -> None:
    from smd_core.cli import main

    ckpt = save_checkpoint(tmp_path / "tiny.pth", tiny_model)
    assert main(["eval", "--checkpoint", str(ckpt), "--data", "bogus-spec", "--device", "cpu"]) == 2
    assert "cannot read --data 'bogus-spec'" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pth"), "--device", "cpu"]) == 2
    assert "missing.pth" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- baselines


def test_sgbm_baseline_counts_holes_as_errors_and_reports_its_valid_pixels() -> None:
    from smd_core.classical import SGBMConfig, sgbm_disparity
    from smd_core.metrics import compute_metrics, edge_band

    frames = frames_small(2)
    report = evaluate(None, frames, baselines=["sgbm"], max_disp=16, progress=False)
    assert "summary" not in report and report["model_config"] is None and report["max_disp_px"] == 16
    entry = report["baselines"]["sgbm"]
    assert entry["num_disparities"] == 16 and entry["sgbm_config"]["block_size"] == SGBMConfig().block_size
    assert entry["summary"]["metrics"]["density"] == 100.0  # every ground-truth pixel is scored
    assert 30.0 < entry["valid_fraction"] < 100.0
    assert entry["valid_fraction"] == entry["valid_pixels"]["pooled"]["density"]
    near_zero = 0
    for frame, row in zip(frames, entry["per_frame"], strict=True):
        gt = frame["disp_left"]
        d = sgbm_disparity(frame["left"], frame["right"], SGBMConfig(), 16)
        ok = (gt > 0) & (gt <= 16)
        holes = ok & ~np.isfinite(d)
        assert holes.any()
        # Valid-pixel figures: the metrics on SGBM's matched pixels only.
        valid = compute_metrics(d, gt, valid=ok)
        assert row["valid_pixels"]["epe"] == pytest.approx(valid["epe"])
        assert row["valid_pixels"]["n_valid"] == np.count_nonzero(ok & np.isfinite(d))
        # All-pixel figures: each hole is one more bad pixel, even where its ground truth is near 0 ...
        near_zero += np.count_nonzero(gt[holes] < 1)
        for key in ("bad1", "bad3"):
            n_bad_valid = valid[key] * valid["n_valid"] / 100
            assert row[key] * row["n_valid"] / 100 == pytest.approx(n_bad_valid + holes.sum())
        # ... one more flying pixel where it lies in the edge band, and disparity 0 in EPE.
        band_holes = np.count_nonzero(edge_band(gt, valid=ok) & holes)
        assert band_holes and row["n_flying"] == valid["n_flying"] + band_holes
        assert row["bleeding"] == pytest.approx(100 * row["n_flying"] / row["n_band"])
        both = ok & np.isfinite(d)
        assert row["epe"] == pytest.approx((np.abs(d - gt)[both].sum() + gt[holes].sum()) / ok.sum(), rel=1e-5)
        assert row["n_valid"] == ok.sum() and row["time_s"] > 0
    assert near_zero  # holes that disparity 0 alone would have scored as good pixels


def test_sgbm_fill_baseline_is_dense_and_keeps_sgbm_matches() -> None:
    from smd_core.classical import SGBMConfig, fill_background, sgbm_disparity
    from smd_core.metrics import compute_metrics

    frames = frames_small(1)
    report = evaluate(None, frames, baselines="sgbm_fill", max_disp=16, progress=False)
    entry = report["baselines"]["sgbm_fill"]
    assert list(report["baselines"]) == ["sgbm_fill"] and "valid_pixels" not in entry
    gt = frames[0]["disp_left"]
    filled = fill_background(sgbm_disparity(frames[0]["left"], frames[0]["right"], SGBMConfig(), 16))
    raw = sgbm_disparity(frames[0]["left"], frames[0]["right"], SGBMConfig(), 16)
    assert np.array_equal(filled[np.isfinite(raw)], raw[np.isfinite(raw)])
    expected = compute_metrics(filled, gt, valid=(gt > 0) & (gt <= 16))
    assert entry["summary"]["metrics"]["epe"] == pytest.approx(expected["epe"])
    assert entry["summary"]["metrics"]["density"] == 100.0


def test_model_and_baselines_side_by_side(tiny_model, tmp_path: Path) -> None:
    frames = frames_small(1)
    report = evaluate(tiny_model, frames, baselines=["sgbm,sgbm_fill", "sgbm"], progress=False, out_dir=tmp_path,
                      images=1)
    # The model's figures stay where scripts (ship_models.py) read them.
    assert report["summary"]["frames"] == 1 and len(report["per_frame"]) == 1
    assert list(report["baselines"]) == ["sgbm", "sgbm_fill"]
    # SGBM searches the model's range (max_disp 32 network px at input scale 1).
    assert report["baselines"]["sgbm"]["num_disparities"] == 32 and report["max_disp_px"] == 32
    table = format_summary(report).splitlines()
    assert table[0] == "1 frames" and table[1].split()[0] == "method"
    assert [r.split("  ")[0].strip() for r in table[2:]] == [
        "model", "model (at SGBM's density)", "sgbm (holes = errors)", "sgbm (valid pixels)", "sgbm_fill"]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["baselines"]["sgbm"]["valid_pixels"]["frames"] == 1
    # At SGBM's density: as large a share of the scored pixels as SGBM matched, the model's least uncertain.
    at = saved["summary_at_sgbm_density"]["metrics"]["density"]
    assert at == pytest.approx(saved["baselines"]["sgbm"]["valid_pixels"]["metrics"]["density"], abs=0.05)
    assert at < 100 and saved["per_frame"][0]["at_sgbm_density"]["density"] == at

    names = {p.name.split("_", 4)[-1] for p in (tmp_path / "images").iterdir()}
    assert {"sgbm_disparity.png", "sgbm_fill_bleeding.png", "disparity.png", "gt.png"} <= names
    import cv2

    from smd_core.eval.report import OVERVIEW_TILE_W

    # A grid: [left, gt], then a row per method: model (disparity, error, bleeding, uncertainty), sgbm and
    # sgbm_fill (disparity, error, bleeding).
    overview = cv2.imread(str(tmp_path / "overview.png"))
    tile_h = round(frames[0]["disp_left"].shape[0] * OVERVIEW_TILE_W / frames[0]["disp_left"].shape[1])
    assert overview.shape[0] == 4 * tile_h and 4 * OVERVIEW_TILE_W < overview.shape[1] < 6 * OVERVIEW_TILE_W


def test_max_uncertainty_row_keeps_what_the_node_keeps(tiny_model) -> None:
    frames = frames_small(1)
    dense = evaluate(tiny_model, frames, progress=False, images=0)
    assert "summary_below_max_uncertainty" not in dense
    pred = Predictor(tiny_model).predict(frames[0]["left"], frames[0]["right"])
    threshold = float(np.median(pred.uncertainty))
    # The node's cloud: below the threshold, less its speckles (default speckle_size / speckle_range).
    report = evaluate(tiny_model, frames, progress=False, images=0, max_uncertainty=threshold)
    row = report["per_frame"][0]["below_max_uncertainty"]
    below = pred.uncertainty <= threshold
    kept = remove_speckles(pred.disparity, below)
    assert kept.sum() < below.sum()  # this model's cloud has speckles to drop
    want = score_frame(np.where(kept, pred.disparity, np.nan), frames[0]["disp_left"], max_disp=report["max_disp_px"])
    assert row["density"] == pytest.approx(want["density"]) and 0 < row["density"] < 100
    assert row["epe"] == pytest.approx(want["epe"])
    assert report["speckles"] == {"size": SPECKLE_SIZE, "range": SPECKLE_RANGE_PX}
    plain = evaluate(tiny_model, frames, progress=False, images=0, max_uncertainty=threshold, speckle_size=0)
    want = score_frame(np.where(below, pred.disparity, np.nan), frames[0]["disp_left"], max_disp=report["max_disp_px"])
    assert plain["per_frame"][0]["below_max_uncertainty"]["density"] == pytest.approx(want["density"])
    assert f"model (uncertainty <= {threshold:.2f} px)" in format_summary(report)
    with pytest.raises(ValueError, match="max_uncertainty"):
        evaluate(tiny_model, frames, progress=False, max_uncertainty=-1.0)


def test_most_confident_keeps_an_exact_share_by_rank() -> None:
    from smd_core.eval.curve import most_confident

    disp = np.arange(12, dtype=np.float32).reshape(3, 4)
    unc = np.array([[0.5, 0.1, 0.1, 0.1], [0.9, 0.1, 0.3, 0.2], [0.1, 0.8, 0.7, 0.6]], np.float32)  # ties at 0.1
    kept = most_confident(disp, unc, 0.25)
    assert np.isfinite(kept).sum() == 3 and set(kept[np.isfinite(kept)]) <= {1.0, 2.0, 3.0, 5.0, 8.0}
    np.testing.assert_array_equal(np.isfinite(most_confident(disp, unc, 1.0)), np.ones((3, 4), bool))
    assert not np.isfinite(most_confident(disp, unc, 0.0)).any()
    within = np.zeros((3, 4), bool)
    within[1] = True
    # Half of row 1, its two least uncertain pixels (0.1 and 0.2); nothing outside `within`.
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(most_confident(disp, unc, 0.5, within))), [5, 7])
    with pytest.raises(ValueError, match="fraction"):
        most_confident(disp, unc, 1.5)
    with pytest.raises(ValueError, match="differ in size"):
        most_confident(disp, unc[:2], 0.5)


def test_baseline_errors(tiny_model) -> None:
    from smd_core.eval.baselines import parse_baselines, sgbm_config

    frames = frames_small(1)
    assert parse_baselines(["sgbm_fill, SGBM", "sgbm-fill"]) == ["sgbm_fill", "sgbm"]
    with pytest.raises(ValueError, match="unknown baseline 'sgm'; choose from bm, sgbm, sgbm_fill"):
        evaluate(tiny_model, frames, baselines=["sgm"], progress=False)
    with pytest.raises(ValueError, match="a model, at least one baseline"):
        evaluate(None, frames, progress=False)
    with pytest.raises(ValueError, match="max_disp"):
        evaluate(None, frames, baselines=["sgbm"], progress=False)
    with pytest.raises(ValueError, match="differs from the model's range"):
        evaluate(tiny_model, frames, baselines=["sgbm"], max_disp=64, progress=False)
    with pytest.raises(ValueError, match="without one they must be 1"):
        evaluate(None, frames, baselines=["sgbm"], max_disp=16, scale=0.5, progress=False)
    with pytest.raises(TypeError, match="or None with baselines"):
        evaluate("model", frames, progress=False)  # type: ignore[arg-type]
    assert sgbm_config(["block_size=7", "mode=hh"]).block_size == 7
    with pytest.raises(ValueError, match="unknown keys \\['blocksize'\\]"):
        sgbm_config(["blocksize=7"])
    with pytest.raises(ValueError, match="odd"):
        sgbm_config(["block_size=4"])


def test_cli_baselines_without_and_with_a_checkpoint(tiny_model, tmp_path: Path, capsys) -> None:
    from smd_core.cli import main
    from smd_core.data.synthetic.dataset import write_dataset

    lst = write_dataset(tmp_path / "set", 1, seed=9000, height=64, width=96, max_disparity=16.0, progress=False,
                        preview=0)
    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", "none", "--baseline", "sgbm", "--baseline", "sgbm_fill", "--data", str(lst),
               "--max-disp", "16", "--sgbm", "block_size=7", "--out", str(out), "--no-progress", "--images", "0"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["checkpoint"] is None and "summary" not in report
    assert report["baselines"]["sgbm"]["sgbm_config"]["block_size"] == 7
    assert report["baselines"]["sgbm_fill"]["num_disparities"] == 16
    printed = capsys.readouterr().out
    assert "sgbm (valid pixels)" in printed and "sgbm_fill" in printed and "model" not in printed

    ckpt = save_checkpoint(tmp_path / "tiny.pth", tiny_model)
    rc = main(["eval", "--checkpoint", str(ckpt), "--baseline", "sgbm_fill", "--data", str(lst), "--out", str(out),
               "--device", "cpu", "--no-progress", "--images", "0"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["frames"] == 1 and report["baselines"]["sgbm_fill"]["num_disparities"] == 32
    capsys.readouterr()
    for argv, message in (
        (["--baseline", "bogus"], "unknown baseline 'bogus'"),
        (["--sgbm", "block_size=7"], "needs --baseline"),
        (["--checkpoint", "none"], "baselines only"),
        (["--max-disp", "16", "--baseline", "sgbm"], "only with --checkpoint none"),
    ):
        assert main(["eval", "--data", str(lst), "--device", "cpu", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_cli_baselines_only_search_the_bundled_models_range(tmp_path: Path) -> None:
    from smd_core.cli import main
    from smd_core.data.synthetic.dataset import write_dataset
    from smd_core.weights import default_checkpoint

    if not default_checkpoint().is_file():
        pytest.skip("the bundled weights are not in this checkout")
    import smd_core

    max_disp = smd_core.load_model(default_checkpoint()).config.max_disp
    lst = write_dataset(tmp_path / "set", 1, seed=9000, height=64, width=96, max_disparity=16.0, progress=False,
                        preview=0)
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", "none", "--baseline", "sgbm", "--data", str(lst), "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["max_disp_px"] == max_disp and report["baselines"]["sgbm"]["num_disparities"] >= max_disp
