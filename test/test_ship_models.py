"""scripts/ship_models.py: the training stages a shipped model records, and re-shipping a shipped file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from smd_core import ModelConfig, build_model, save_checkpoint
from smd_core.model.network import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ModelConfig(backbone="light", output="bimodal", max_disp=32, head_widths=(8,),
                   backbone_options={"widths": [8, 16], "agg_widths": [8, 8, 8], "image_features": [4, 4],
                                     "cost_channels": 4})


@pytest.fixture
def ship_models(tmp_path: Path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ship_models", REPO / "scripts" / "ship_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WEIGHTS_DIR", tmp_path / "weights")
    (tmp_path / "weights").mkdir()
    return module


def _run(root: Path, name: str, step: int, tc: dict) -> Path:
    torch.manual_seed(step)
    path = root / name / "checkpoints" / f"step_{step:08d}.pth"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, build_model(TINY), train_config=tc, step=step)
    return path


def test_stages_follow_init_and_are_stored_in_the_shipped_copy(ship_models, tmp_path: Path) -> None:
    first = _run(tmp_path, "stage1", 30, {"steps": 30, "optim": {"lr": 1e-3}})
    _run(tmp_path, "stage2", 20, {"steps": 20, "optim": {"lr": 5e-4}, "init": str(first), "selection_weight": 1.0,
                                  "selection_target": "right", "model": {"anchor_range": 1.0},
                                  "data": {"sample": {"dilation": 4}}})
    out, info = ship_models.ship(tmp_path / "stage2", "m.pt", True)
    want = [{"steps": 30, "lr": 1e-3, "changes": {}},
            {"steps": 20, "lr": 5e-4, "changes": {"selection_weight": 1.0, "selection_target": "right",
                                                  "anchor_range": 1.0, "dilation": 4}}]
    assert info["stages"] == want and info["step"] == 20 and read_checkpoint(out)["stages"] == want
    # The earlier runs gone (a fresh checkout), the shipped file still knows its recipe; shipping it again
    # (a file instead of a run folder) keeps it, its weights and its step.
    first.unlink()
    again, info2 = ship_models.ship(out, "m.pt", True)
    assert info2["stages"] == want and info2["step"] == 20 and read_checkpoint(again)["stages"] == want
    a, b = read_checkpoint(again)["state_dict"], read_checkpoint(_run(tmp_path, "x", 20, {}))["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A later stage that starts from the shipped file inherits its stages.
    _run(tmp_path, "stage3", 10, {"steps": 10, "optim": {"lr": 3e-4}, "init": str(again)})
    assert ship_models.ship(tmp_path / "stage3", "n.pt", False)[1]["stages"] == [
        *want, {"steps": 10, "lr": 3e-4, "changes": {}}]


def test_shipping_a_run_again_after_its_copy_replaced_its_init(ship_models, tmp_path: Path) -> None:
    """Stage B started from the shipped file W; shipping B overwrites W; shipping B again must not count B twice."""
    _run(tmp_path, "a", 30, {"steps": 30, "optim": {"lr": 1e-3}})
    weights, _ = ship_models.ship(tmp_path / "a", "w.pt", True)
    _run(tmp_path, "b", 20, {"steps": 20, "optim": {"lr": 5e-4}, "init": str(weights)})
    want = [{"steps": 30, "lr": 1e-3, "changes": {}}, {"steps": 20, "lr": 5e-4, "changes": {}}]
    assert ship_models.ship(tmp_path / "b", "w.pt", True)[1]["stages"] == want
    again, info = ship_models.ship(tmp_path / "b", "w.pt", True)
    assert info["stages"] == want and read_checkpoint(again)["stages"] == want
    assert read_checkpoint(again)["source"] == str(tmp_path / "b" / "checkpoints" / "step_00000020.pth")


def test_missing_init_and_cycles(ship_models, tmp_path: Path) -> None:
    gone = tmp_path / "gone.pth"
    _run(tmp_path, "a", 5, {"steps": 5, "optim": {"lr": 1e-3}, "init": str(gone)})
    assert ship_models.ship(tmp_path / "a", "a.pt", False)[1]["stages"] == [
        {"missing": str(gone)}, {"steps": 5, "lr": 1e-3, "changes": {}}]
    # A checkpoint whose init names itself (a run that started from the file it later replaced) stops.
    path = tmp_path / "self.pt"
    save_checkpoint(path, build_model(TINY), train_config={"steps": 1, "optim": {"lr": 1.0}, "init": str(path)})
    assert len(ship_models.stages(read_checkpoint(path))) == 2
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        ship_models.ship(tmp_path / "empty", "e.pt", False)


@pytest.mark.skipif(not (REPO / "smd_core" / "weights" / "guided_bimodal.pt").is_file(), reason="no bundled model")
def test_a_guided_mixture_model_ships_with_its_cloud_threshold_calibrated(ship_models, tmp_path: Path) -> None:
    """The threshold stored in the copy is the calibration's, not the fixed default's, and the card says it."""
    from smd_core.eval.calibrate import FACTORS
    from smd_core.eval.data import load_frames
    from smd_core.infer.confidence import uncertainty_floor
    from smd_core.model.network import load_model

    frames = load_frames("synthetic:9000:1", ["height=120", "width=200"])
    bundled = REPO / "smd_core" / "weights" / "guided_bimodal.pt"
    out, info = ship_models.ship(bundled, "g.pt", True, frames)
    cal = info["calibration"]
    assert cal["frames"] == 1 and cal["factor"] in FACTORS and cal["density"] >= cal["sgbm_density"] > 0
    model = load_model(out)
    floor = uncertainty_floor(model.config.max_disp)
    assert model.deployment.cloud_max_uncertainty == pytest.approx(cal["factor"] * floor)
    assert "calibrated when shipped" in ship_models.calibration_text(cal)
    assert ship_models.calibration_text(None) == ""
    # A model without a cloud threshold (the tiny light model has none) is shipped without a calibration.
    _run(tmp_path, "light", 3, {"steps": 3, "optim": {"lr": 1e-3}})
    assert "calibration" not in ship_models.ship(tmp_path / "light", "l.pt", True, frames)[1]
