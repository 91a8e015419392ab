"""Training loop: loss goes down, exact resume, checkpoints, configs, --init, CLI, logging, validation.

Everything runs on the CPU with a tiny light-backbone model on 32x64 synthetic crops, so each test
takes a few seconds. The 2-process torchrun test lives in test_train_distributed.py.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from smd_core import cli, load_model
from smd_core.config import from_dict, to_dict
from smd_core.data import DataConfig
from smd_core.train.checkpoints import get_rng_state, list_checkpoints, load_init_weights, resolve_resume, set_rng_state
from smd_core.train.config import OptimConfig, TrainConfig, config_from_dict, load_config
from smd_core.train.data import ResumableSampler, collate, sample_seed
from smd_core.train.loop import train
from smd_core.train.schedule import lr_factor

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))

TINY_MODEL = {
    "backbone": "light",
    "output": "bimodal",
    "max_disp": 32,
    "head_widths": [16, 16],
    "backbone_options": {"widths": [8, 8], "groups": 4, "agg_widths": [8, 8, 8], "image_features": [4, 0]},
}
TINY_DATA = {
    "kind": "synthetic", "height": 48, "width": 96, "sample": {"crop_size": [32, 64], "num_points": 256},
    "num_samples": 5, "max_disparity": 16.0,
}


def tiny_dict(tmp_path: Path, **overrides: object) -> dict:
    base = {
        "model": dict(TINY_MODEL), "data": dict(TINY_DATA), "steps": 4, "batch_size": 2, "num_workers": 0,
        "threads": 1, "device": "cpu", "log_dir": str(tmp_path / "run"), "ckpt_every": 100, "keep_last": 3,
        "log_every": 1, "progress": False, "optim": {"lr": 1e-3},
    }
    base.update(overrides)
    return base


def tiny_config(tmp_path: Path, **overrides: object) -> TrainConfig:
    return from_dict(TrainConfig, tiny_dict(tmp_path, **overrides))


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_lowers_the_loss(tmp_path: Path) -> None:
    """Overfit one fixed scene: the mixture NLL falls clearly within 40 steps."""
    data = dict(TINY_DATA, num_samples=1, augment=False)
    cfg = tiny_config(tmp_path, data=data, steps=40, batch_size=1, optim={"lr": 3e-3})
    result = train(cfg)
    assert result.step == 40 and len(result.losses) == 40
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < first - 0.3, (first, last)
    assert all(np.isfinite(result.losses))


@pytest.mark.slow
def test_resume_is_bit_exact(tmp_path: Path) -> None:
    """6 steps == 3 steps + resume for 3 (mid-epoch: 5 samples / batch 2 = 2 steps per epoch), any workers."""
    full = train(tiny_config(tmp_path / "a", steps=6))
    part = train(tiny_config(tmp_path / "b", steps=4, ckpt_every=3))
    ckpt3 = tmp_path / "b" / "run" / "checkpoints" / "step_00000003.pth"
    assert ckpt3.is_file()
    # Resume from step 3 with a DataLoader worker: where a sample is loaded does not change it.
    rest = train(tiny_config(tmp_path / "b", steps=6, num_workers=1), resume=ckpt3)
    assert part.losses[:3] + rest.losses == full.losses
    assert state_equal(full.model.state_dict(), rest.model.state_dict())
    a = torch.load(full.checkpoint, weights_only=True)
    b = torch.load(rest.checkpoint, weights_only=True)
    assert a["step"] == b["step"] == 6
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


@pytest.mark.slow
def test_resume_from_folder_and_errors(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, steps=2, ckpt_every=1)
    train(cfg)
    assert resolve_resume(cfg.log_dir).name == "step_00000002.pth"  # run folder -> newest checkpoint
    assert resolve_resume(cfg.checkpoint_dir).name == "step_00000002.pth"
    done = train(dataclasses.replace(cfg, steps=3), resume=cfg.log_dir)
    assert done.step == 3 and len(done.losses) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no step_"):
        resolve_resume(empty)
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_resume(tmp_path / "missing.pth")
    # A weights-only file (no optimizer / step / RNG) cannot be resumed: it is an --init source.
    weights_only = tmp_path / "weights.pth"
    torch.save({"state_dict": done.model.state_dict()}, weights_only)
    with pytest.raises(ValueError, match="not a resumable"):
        train(cfg, resume=weights_only)


@pytest.mark.slow
def test_checkpoints_rotate_and_hold_the_config(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, steps=7, ckpt_every=2, keep_last=2)
    cfg.checkpoint_dir.mkdir(parents=True)
    stale = cfg.checkpoint_dir / ".step_00000004.pth.abc123.tmp"  # left by a killed run
    stale.write_bytes(b"partial")
    result = train(cfg)
    names = sorted(p.name for p in cfg.checkpoint_dir.iterdir())
    assert names == ["step_00000006.pth", "step_00000007.pth"]  # every 2 steps + the end, newest 2 kept
    assert result.checkpoint == cfg.checkpoint_dir / "step_00000007.pth"
    ckpt = torch.load(result.checkpoint, weights_only=True)
    assert {"format", "model_config", "state_dict", "train_config", "optimizer", "scheduler", "step", "rng",
            "data"} <= ckpt.keys()
    assert from_dict(TrainConfig, ckpt["train_config"]) == cfg
    assert config_from_dict(ckpt["train_config"], ["steps=9"]).steps == 9
    model = load_model(result.checkpoint)
    assert not model.training and state_equal(model.state_dict(), result.model.state_dict())
    assert (Path(cfg.log_dir) / "config.yaml").is_file()
    assert from_dict(TrainConfig, yaml.safe_load((Path(cfg.log_dir) / "config.yaml").read_text())) == cfg


@pytest.mark.slow
def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while writing leaves the previous checkpoint intact and no temp file behind."""
    cfg = tiny_config(tmp_path, steps=4, ckpt_every=2)
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            Path(f).write_bytes(b"half a checkpoint")  # type: ignore[arg-type]
            raise OSError("disk full")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        train(cfg)
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in cfg.checkpoint_dir.iterdir()] == ["step_00000002.pth"]
    assert torch.load(cfg.checkpoint_dir / "step_00000002.pth", weights_only=True)["step"] == 2
    assert [s for s, _ in list_checkpoints(cfg.checkpoint_dir)] == [2]


def test_rng_state_round_trip_is_weights_only(tmp_path: Path) -> None:
    import random

    device = torch.device("cpu")
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    np.random.normal()  # leaves a cached Gaussian in NumPy's state
    state = get_rng_state(device)
    torch.save(state, tmp_path / "rng.pth")
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.normal())
    set_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True), device)
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.normal())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2] and expected[3] == got[3]


def test_sampler_shards_skips_and_seeds() -> None:
    data = list(range(10))
    shards = [ResumableSampler(data, num_replicas=2, rank=r, seed=7) for r in (0, 1)]
    for s in shards:
        s.set_epoch(3)
    a, b = list(shards[0]), list(shards[1])
    assert sorted(i for i, _ in a + b) == data  # disjoint shards covering the set
    assert all(seed == sample_seed(7, 3, i) for i, seed in a + b)
    shards[0].set_epoch(3, skip=2)
    assert list(shards[0]) == a[2:] and len(shards[0]) == len(a) - 2
    shards[0].set_epoch(4)
    assert [i for i, _ in shards[0]] != [i for i, _ in a]  # a new order each epoch
    assert sample_seed(7, 3, 1) != sample_seed(7, 4, 1)


def test_collate_pads_points_with_invalid_labels() -> None:
    samples = [
        {"left": torch.zeros(3, 2, 2), "points": torch.ones(2, 3), "labels": torch.full((3,), 5.0),
         "output_size": torch.tensor([2, 2]), "name": "a"},
        {"left": torch.ones(3, 2, 2), "points": torch.ones(2, 5), "labels": torch.full((5,), 6.0),
         "output_size": torch.tensor([2, 2]), "name": "b"},
    ]
    batch = collate(samples)
    assert batch["points"].shape == (2, 2, 5) and batch["labels"].shape == (2, 5)
    assert batch["labels"][0].tolist() == [5, 5, 5, 0, 0]  # 0 = invalid for the loss
    assert batch["left"].shape == (2, 3, 2, 2) and batch["name"] == ["a", "b"]
    with pytest.raises(ValueError, match="empty"):
        collate([])


@pytest.mark.slow
def test_amp_is_ignored_on_cpu(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="amp=true is ignored on the CPU"):
        result = train(tiny_config(tmp_path, steps=1, amp=True))
    assert result.step == 1


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path: Path) -> None:
    cfg = load_config(path)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    assert from_dict(TrainConfig, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_standard_head_recipes_differ_from_their_bimodal_twin_in_the_head_only() -> None:
    """The bundled standard models are the comparison for the bimodal ones: same backbone, data and schedule."""
    pairs = [(p, p.with_name(p.name.replace("_standard", ""))) for p in CONFIGS if p.stem.endswith("_standard")]
    assert pairs
    for standard_path, bimodal_path in pairs:
        standard, bimodal = load_config(standard_path), load_config(bimodal_path)
        assert (standard.model.output, bimodal.model.output) == ("standard", "bimodal")
        same = dataclasses.replace(standard, model=bimodal.model, log_dir=bimodal.log_dir, ckpt_dir=bimodal.ckpt_dir)
        assert same == bimodal, standard_path.name


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_dict(tmp_path)))
    cfg = load_config(path, ["steps=11", "optim.lr=5e-4", "model.output=standard", "data.sample.crop_size=[64, 128]",
                             "val_data.kind=synthetic", "optim.milestones=[5, 8]"])
    assert cfg.steps == 11 and cfg.optim.lr == 5e-4 and cfg.model.output == "standard"
    assert cfg.data.sample.crop_size == (64, 128) and isinstance(cfg.val_data, DataConfig)
    assert cfg.optim.milestones == (5, 8)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "lrr"),
        ("stepz=3", "stepz"),
        ("steps", "key=value"),
        ("steps=abc", "steps"),
        ("steps=-1", "steps"),
        ("batch_size=0", "batch_size"),
        ("num_workers=-1", "num_workers"),
        ("amp_dtype=int8", "amp_dtype"),
        ("device=tpu9", "device"),
        ("optim.schedule=linear", "schedule"),
        ("optim.lr=0", "lr"),
        ("optim.betas=[0.9]", "betas"),
        ("optim.gamma=2", "gamma"),
        ("optim.milestones=[5, 3]", "milestones"),
        ("optim.grad_clip=-1", "grad_clip"),
        ("model.backbone=resnet", "backbone"),
        ("data.kind=imagenet", "kind"),
        ("optim.lr.x=1", "not a section"),
    ],
)
def test_bad_overrides_name_the_problem(tmp_path: Path, override: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_dict(tmp_path)))
    with pytest.raises(ValueError, match=message):
        load_config(path, [override])


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nope.yaml")


def test_lr_schedules() -> None:
    step = OptimConfig(lr=1.0, schedule="multistep", milestones=(10, 20), gamma=0.5)
    assert [lr_factor(s, step, 30) for s in (0, 9, 10, 19, 20, 29)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cos = OptimConfig(lr=1.0, schedule="cosine", min_lr=0.1)
    assert lr_factor(0, cos, 100) == pytest.approx(1.0)
    assert lr_factor(50, cos, 100) == pytest.approx(0.55)
    assert lr_factor(100, cos, 100) == pytest.approx(0.1)
    warm = OptimConfig(lr=1.0, schedule="constant", warmup_steps=4)
    assert [lr_factor(s, warm, 10) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]


@pytest.mark.slow
def test_scheduler_drives_the_optimizer(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, steps=3, optim={"lr": 1e-3, "milestones": [2], "gamma": 0.1})
    train(cfg)
    lines = [json.loads(x) for x in (Path(cfg.log_dir) / "metrics.jsonl").read_text().splitlines()]
    lrs = [x["train/lr"] for x in lines if "train/lr" in x]
    assert lrs == pytest.approx([1e-3, 1e-4, 1e-4])


def test_weight_decay_uses_adamw(tmp_path: Path) -> None:
    from smd_core.model.network import build_model
    from smd_core.train.schedule import build_optimizer

    cfg = tiny_config(tmp_path, optim={"lr": 1e-3, "weight_decay": 0.01})
    opt, _ = build_optimizer(build_model(cfg.model), cfg)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.01


# ----------------------------------------------------------------------------------------------------
# --init
# ----------------------------------------------------------------------------------------------------


PSM_MODEL = {"backbone": "psmnet", "output": "bimodal", "max_disp": 256}


@pytest.mark.slow
def test_init_from_the_published_layout(tmp_path: Path, parity_dir: Path) -> None:
    """The parity checkpoint (SMD-Nets' own layout) loads strictly into a configured PSMNet model."""
    ckpt = parity_dir / "psm_bimodal_s1" / "checkpoint.pth"
    reference = torch.load(ckpt, weights_only=True)["state_dict"]
    cfg = tiny_config(tmp_path, model=PSM_MODEL, steps=0, init=str(ckpt))
    result = train(cfg)
    assert result.step == 0 and result.checkpoint is not None
    saved = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    assert state_equal(saved, reference)

    # A model of another shape: strict init fails naming the mismatches ...
    other = tiny_config(tmp_path / "o", model=dict(PSM_MODEL, max_disp=128), steps=0, init=str(ckpt))
    with pytest.raises(ValueError, match="shape mismatches"):
        train(other)
    # ... non-strict init loads what fits and reports the rest.
    from smd_core.model.network import build_model

    model = build_model(other.model)
    skipped = load_init_weights(model, ckpt, strict=False)
    first_conv = next(k for k in reference if k.startswith("stereo_network.feature_extraction.firstconv"))
    assert "mlp.conv0.weight" in skipped and first_conv not in skipped
    assert torch.equal(model.state_dict()[first_conv], reference[first_conv])


def test_init_skip_keeps_fresh_weights_for_the_named_prefixes(tmp_path: Path) -> None:
    from smd_core.model.network import build_model, save_checkpoint

    cfg = tiny_config(tmp_path)
    source = build_model(cfg.model)
    for param in source.parameters():
        param.data.fill_(0.5)
    ckpt = save_checkpoint(tmp_path / "src.pt", source)
    model = build_model(cfg.model)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    last = sorted(k for k in fresh if k.startswith("mlp."))[-1].rsplit(".", 1)[0]  # the head's last layer
    skipped = load_init_weights(model, ckpt, skip=[last])
    assert skipped == sorted(k for k in fresh if k.startswith(last)) and skipped
    for name, value in model.state_dict().items():
        if name.startswith(last):
            assert torch.equal(value, fresh[name]), name
        elif value.is_floating_point() and "running" not in name:
            assert torch.all(value == 0.5), name
    with pytest.raises(ValueError, match="names no parameter"):
        load_init_weights(model, ckpt, skip=["mlp.nonexistent"])
    with pytest.raises(ValueError, match="selection_weight"):
        tiny_config(tmp_path, selection_weight=-1.0)
    with pytest.raises(ValueError, match="selection_target"):
        tiny_config(tmp_path, selection_target="nearest")


@pytest.mark.slow
def test_init_from_our_checkpoint(tmp_path: Path) -> None:
    first = train(tiny_config(tmp_path / "a", steps=2))
    assert first.checkpoint is not None
    again = train(tiny_config(tmp_path / "b", steps=0, init=str(first.checkpoint)))
    assert state_equal(again.model.state_dict(), first.model.state_dict())
    # Fine-tune into another output head: the head's last layer differs, the rest is reused.
    std = tiny_config(tmp_path / "c", steps=0, init=str(first.checkpoint), init_strict=False,
                      model=dict(TINY_MODEL, output="standard"))
    moved = train(std).model.state_dict()
    assert torch.equal(moved["mlp.conv0.weight"], first.model.state_dict()["mlp.conv0.weight"])
    with pytest.raises(ValueError, match="does not match"):
        train(dataclasses.replace(std, init_strict=True))


# ----------------------------------------------------------------------------------------------------
# CLI, logging, validation
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_train_resume_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_dict(tmp_path)))
    run_dir = tmp_path / "run"
    assert cli.main(["train", "--config", str(path), "steps=2"]) == 0
    assert "finished at step 2" in capsys.readouterr().out
    # Resume with the checkpoint's own config, extended by an override.
    assert cli.main(["train", "--resume", str(run_dir), "steps=3"]) == 0
    assert [s for s, _ in list_checkpoints(run_dir / "checkpoints")] == [2, 3]
    assert cli.main(["train", "--config", str(path), "optim.lrr=1"]) == 2
    assert "lrr" in capsys.readouterr().err
    assert cli.main(["train", "steps=1"]) == 2
    assert "--config is required" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(path), "--init", "x.pth", "--resume", str(run_dir)]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.slow
def test_validation_logs_scalars_and_images(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the [train] extra (tensorboard) is not installed")
    val = {"kind": "synthetic", "height": 32, "width": 64, "num_samples": 2, "max_disparity": 16.0, "seed": 9}
    cfg = tiny_config(tmp_path, steps=2, val_data=val, val_every=2, val_samples=2, val_images=1)
    result = train(cfg)
    assert {"epe", "bad1", "bad2", "bad3", "see", "bleeding"} <= set(result.validation)
    assert 0 < result.validation["epe"] < 32 and 0 <= result.validation["bad3"] <= 100
    assert 0 <= result.validation["bleeding"] <= 100
    lines = [json.loads(x) for x in (Path(cfg.log_dir) / "metrics.jsonl").read_text().splitlines()]
    assert any("val/epe" in x for x in lines) and any("train/loss" in x for x in lines)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(cfg.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"val_0/left", "val_0/disparity", "val_0/uncertainty", "val_0/error"} <= set(events.Tags()["images"])
    assert {"train/loss", "train/lr", "val/epe"} <= set(events.Tags()["scalars"])


@pytest.mark.slow
def test_runs_without_tensorboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now raises ImportError
    cfg = tiny_config(tmp_path, steps=1)
    train(cfg)
    assert "tensorboard is not installed" in capsys.readouterr().err
    assert (Path(cfg.log_dir) / "metrics.jsonl").read_text().strip()
    assert not list(Path(cfg.log_dir).glob("events.out.tfevents.*"))
