"""The real Middlebury scene bundled with scikit-image (`--data motorcycle`): frame layout, ground truth
that agrees with the images, and the bundled default against stereo_image_proc's SGBM on it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from smd_core.data import DataConfig, build_dataset
from smd_core.data.real_sample import NAME, MotorcycleDataset
from smd_core.eval.data import parse_data_spec


def test_frame_layout_and_ground_truth_matches_the_images() -> None:
    frames = build_dataset(parse_data_spec("motorcycle"), train=False)
    assert isinstance(frames, MotorcycleDataset) and len(frames) == 1
    f = frames[0]
    assert f["name"] == NAME and f["left"].shape == f["right"].shape == (500, 741, 3)
    assert f["left"].dtype == np.uint8 and f["disp_left"].dtype == np.float32 and "disp_right" not in f
    d = f["disp_left"]
    valid = d > 0
    assert np.isfinite(d).all() and 0.85 < valid.mean() < 0.99 and 5 < d[valid].min() and d.max() < 80
    # Disparity convention: left (x, y) shows what right shows at (x - d, y); the other sign, or a
    # channel order mistake, would not match.
    gl, gr = (cv2.cvtColor(f[k], cv2.COLOR_BGR2GRAY).astype(np.float32) for k in ("left", "right"))
    ys, xs = np.nonzero(valid)
    def photo_error(sign: int) -> float:
        xr = np.round(xs - sign * d[ys, xs]).astype(int)
        m = (xr >= 0) & (xr < d.shape[1])
        return float(np.abs(gl[ys[m], xs[m]] - gr[ys[m], xr[m]]).mean())
    assert photo_error(1) < 12 and photo_error(-1) > 3 * photo_error(1)
    # BGR like every other dataset: the bike's tank is red, i.e. the last channel is the largest there.
    tank = f["left"][150:200, 400:450].reshape(-1, 3).mean(0)
    assert tank[2] > tank[0] + 30, tank
    # Callers get copies.
    f["left"][:] = 0
    assert frames[0]["left"].any()
    with pytest.raises(IndexError, match="one frame"):
        frames.frame(1)


def test_spec_takes_no_root() -> None:
    assert parse_data_spec("motorcycle").kind == "motorcycle"
    with pytest.raises(ValueError, match="no root"):
        parse_data_spec("motorcycle:/data/x")


def test_training_samples_come_from_it_too() -> None:
    cfg = DataConfig(kind="motorcycle")
    sample = build_dataset(cfg, train=True)[0]
    assert set(sample) >= {"left", "right"} and len(build_dataset(cfg, train=True)) == 1


def test_default_model_beats_sgbm_fill_on_the_real_scene(tmp_path: Path) -> None:
    """The bundled default vs the classical baselines on real images (what users compare it with)."""
    import smd_core
    from smd_core.cli import main
    from smd_core.weights import default_checkpoint

    if not default_checkpoint().is_file():
        pytest.skip("the bundled weights are not in this checkout")
    assert smd_core.load_model(default_checkpoint()).config.backbone == "sgbm_guided"
    out = tmp_path / "eval"
    assert main(["eval", "--data", "motorcycle", "--baseline", "sgbm,sgbm_fill", "--device", "cpu", "--out",
                 str(out), "--images", "1", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    model = report["summary"]["metrics"]
    sgbm, fill = (report["baselines"][k]["summary"]["metrics"] for k in ("sgbm", "sgbm_fill"))
    valid = report["baselines"]["sgbm"]["valid_pixels"]["metrics"]
    # Dense, and fewer bad pixels and a lower EPE than SGBM + background fill; SGBM's holes are its errors.
    assert model["density"] == 100.0 and model["bad2"] < fill["bad2"] and model["epe"] < fill["epe"]
    assert model["bad2"] < sgbm["bad2"] and model["see"] < fill["see"]
    # Sanity of the baselines on a real scene: SGBM's matches are mostly right where it keeps them.
    assert valid["bad2"] < 10 and 80 < report["baselines"]["sgbm"]["valid_fraction"] < 100
    # Like for like: on as many pixels as SGBM keeps, its least uncertain ones, the model is the more accurate.
    at = report["summary_at_sgbm_density"]["metrics"]
    assert at["density"] == pytest.approx(valid["density"], abs=0.05)
    assert at["bad2"] < valid["bad2"] and at["epe"] < valid["epe"] and at["see"] < valid["see"]
    assert (out / "overview.png").is_file()
