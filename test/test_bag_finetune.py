"""End to end: rosbag2 recording -> `smd bag2dataset` -> `smd train` (configs/finetune_bag.yaml, --init) on the
CPU -> a checkpoint that the node's configuration path loads and that predicts; and the node itself running it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from bag_fixtures import write_stereo_bag

from smd_core.config import to_dict
from smd_core.data.synthetic.render import render_sequence

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "finetune_bag.yaml"
H, W, STEPS = 64, 96, 4
# A tiny light model keeps the CPU run to seconds; the YAML's model section is the bundled model's.
TINY_MODEL = ["model.max_disp=64", "model.head_widths=[16,8]", "model.backbone_options={}"]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """(dataset folder, initial checkpoint, fine-tuned checkpoint, frames) of one bag -> train run."""
    torch = pytest.importorskip("torch")
    try:
        import smd_core.train  # noqa: F401
    except ImportError as err:
        pytest.skip(f"smd train is not available yet: {err}")
    from smd_core import ModelConfig, build_model, save_checkpoint
    from smd_ros.cli import main as smd

    tmp = tmp_path_factory.mktemp("finetune")
    frames = list(render_sequence(21, 8, height=H, width=W, max_disparity=16.0))
    write_stereo_bag(tmp / "recording", frames, storage="mcap", compressed="png", depth="16UC1",
                     depth_compressed=True)
    dataset = tmp / "dataset"
    assert smd(["bag2dataset", str(tmp / "recording"), "--out", str(dataset), "--depth", "/left/depth",
                "--val-fraction", "0.25", "--val-blocks", "4", "--no-progress"]) == 0

    torch.manual_seed(0)
    init = save_checkpoint(tmp / "init.pth", build_model(ModelConfig(backbone="sgbm_guided", output="bimodal",
                                                                    max_disp=64, head_widths=(16, 8))))
    run = tmp / "run"
    # The documented command, `smd train --config configs/finetune_bag.yaml data.root=DIR --init CKPT`, plus
    # overrides that make it a few-second CPU run.
    code = smd(["train", "--config", str(CONFIG), f"data.root={dataset}", *TINY_MODEL, f"steps={STEPS}",
                "batch_size=2", "num_workers=0", "data.sample.crop_size=[64,96]", "data.sample.num_points=512",
                "device=cpu",
                f"log_dir={run}", f"ckpt_every={STEPS}", "progress=false",
                f"val_data={{kind: list, root: {dataset}, split: val.txt}}", f"val_every={STEPS}",
                "--init", str(init)])
    assert code == 0
    checkpoints = sorted((run / "checkpoints").glob("step_*.pth"))
    assert checkpoints, f"no checkpoint written in {run}"
    return dataset, init, checkpoints[-1], frames


def test_config_is_valid_and_targets_the_bundled_model():
    from smd_core.model.network import read_checkpoint
    from smd_core.train.config import load_config
    from smd_core.weights import default_checkpoint

    cfg = load_config(CONFIG, ["data.root=/some/dataset"])
    assert cfg.data.kind == "list" and cfg.data.split == "train.txt" and not cfg.data.augment.flip_lr
    # --init with the bundled default needs exactly its architecture.
    assert to_dict(cfg.model) == read_checkpoint(default_checkpoint())["model_config"]


@pytest.mark.slow
def test_finetuned_checkpoint_loads_through_the_node_config_and_predicts(finetuned):
    import cv2
    import torch

    import smd_core
    from smd_core.model.network import read_checkpoint
    from smd_core.resolve import resolve_checkpoint
    from smd_ros.params import config_from_mapping

    dataset, init, ckpt, frames = finetuned
    # What the node does with `checkpoint:=...` (smd_ros.stereo_node._load_model).
    cfg = config_from_mapping({"checkpoint": str(ckpt), "device": "cpu"})
    path = resolve_checkpoint(cfg.checkpoint)
    model = smd_core.load_model(path, backbone=cfg.backbone or None, output=cfg.output or None,
                                max_disp=cfg.max_disparity or None, device="cpu")
    assert (model.config.backbone, model.config.output, model.config.max_disp) == ("sgbm_guided", "bimodal", 64)
    # Training moved the weights away from --init.
    before = read_checkpoint(init)["state_dict"]
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k].cpu()) for k in before)
    saved = read_checkpoint(ckpt)
    assert saved["train_config"]["data"]["root"] == str(dataset)

    val = (dataset / "val.txt").read_text().split()
    left = cv2.imread(str(dataset / val[0]), cv2.IMREAD_COLOR)
    right = cv2.imread(str(dataset / val[1]), cv2.IMREAD_COLOR)
    with torch.inference_mode():
        pred = smd_core.Predictor(model, device="cpu").predict(left, right)
    assert pred.disparity.shape == (H, W) and np.isfinite(pred.disparity).all()
    assert np.isfinite(pred.uncertainty).all() and (pred.uncertainty >= 0).all()


@pytest.mark.ros
@pytest.mark.slow
def test_node_runs_the_finetuned_checkpoint(finetuned, ros_env, tmp_path):
    pytest.importorskip("rclpy")
    pytest.importorskip("stereo_msgs.msg")
    import cv2
    import torch
    from ros_helpers import answer_once

    import smd_core

    dataset, _, ckpt, _ = finetuned
    calib = yaml.safe_load((dataset / "calib.yaml").read_text())
    first = (dataset / "train.txt").read_text().split()
    left = cv2.imread(str(dataset / first[0]), cv2.IMREAD_COLOR)
    right = cv2.imread(str(dataset / first[1]), cv2.IMREAD_COLOR)
    # float32: the outputs are compared with an exact float32 Predictor below.
    out, log = answer_once({"checkpoint": str(ckpt), "device": "cpu", "cpu_precision": "float32"}, ros_env,
                           tmp_path / "node", left, right, t=50.0, topics=("disparity",), fx=calib["fx"],
                           cx=calib["cx"], cy=calib["cy"], baseline=calib["baseline"])
    img = out["disparity"].image
    disp = np.frombuffer(img.data, np.float32).reshape(img.height, img.width)
    model = smd_core.load_model(ckpt, device="cpu")
    with torch.inference_mode():
        pred = smd_core.Predictor(model, device="cpu").predict(left, right)
    valid = disp >= out["disparity"].min_disparity
    np.testing.assert_allclose(disp[valid], pred.disparity[valid], rtol=1e-4, atol=1e-3)
    assert str(ckpt) in log
