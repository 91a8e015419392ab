"""Training samples: crops, query points (random / DDA), augmentation, DataConfig and build_dataset."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from smd_core.config import from_dict, to_dict
from smd_core.data import DataConfig, build_dataset
from smd_core.data.augment import AugmentConfig, augment_pair, color_augment, flip_lr_swap, flip_ud
from smd_core.data.datasets import ListDataset
from smd_core.data.sample_config import SampleConfig
from smd_core.data.sampling import (
    TrainingDataset,
    crop,
    dilated_depth_edges,
    make_training_sample,
    random_crop_box,
    sample_points,
)
from smd_core.data.synthetic.render import render_scene


def _unique_grid(h: int, w: int) -> np.ndarray:
    return (1.0 + np.arange(h * w, dtype=np.float32)).reshape(h, w)


# ----------------------------------------------------------------------------------------------------
# Points
# ----------------------------------------------------------------------------------------------------


def test_random_points_carry_nearest_valid_labels() -> None:
    grid = _unique_grid(12, 20)
    grid[3:6, 4:9] = 0  # invalid block
    rng = np.random.default_rng(0)
    pts, labels = sample_points(grid, 150, rng, strategy="random")
    assert pts.shape == (2, 150) and labels.shape == (150,) and pts.dtype == labels.dtype == np.float32
    x, y = pts
    assert x.min() >= 0 and x.max() <= 19 and y.min() >= 0 and y.max() <= 11
    assert (np.abs(x - np.rint(x)) > 1e-3).any()  # sub-pixel positions
    nearest = grid[np.rint(y).astype(int), np.rint(x).astype(int)]
    assert np.array_equal(nearest, labels)
    assert (labels > 0).all()
    # Enough valid pixels: no pixel drawn twice.
    assert np.unique(labels).size == 150


def test_points_are_padded_by_resampling_when_few_pixels_are_valid() -> None:
    grid = np.zeros((8, 8), np.float32)
    grid[2, 3], grid[5, 6], grid[7, 0] = 4.0, 9.0, 2.5
    pts, labels = sample_points(grid, 40, np.random.default_rng(1), strategy="random")
    assert labels.shape == (40,) and set(labels.tolist()) == {4.0, 9.0, 2.5}
    nearest = grid[np.rint(pts[1]).astype(int), np.rint(pts[0]).astype(int)]
    assert np.array_equal(nearest, labels)
    # No valid pixel at all: uniform points with label 0 (ignored by the loss).
    pts, labels = sample_points(np.zeros((5, 7), np.float32), 10, np.random.default_rng(0), strategy="dda")
    assert pts.shape == (2, 10) and (labels == 0).all() and pts[0].max() <= 6 and pts[1].max() <= 4


def test_depth_edges() -> None:
    d = np.full((6, 12), 5.0, np.float32)
    d[:, 6:] = 9.0
    d[0, 0] = 6.0  # a jump of exactly the threshold is not an edge
    e = dilated_depth_edges(d, threshold=1.0, dilation=0)
    assert e.dtype == bool
    assert np.array_equal(np.nonzero(e.any(0))[0], [5, 6])
    assert not e[0, 0] and not e[0, 1]
    # A 4x4 square (OpenCV anchors an even kernel at its centre-right: 1 px left, 2 px right), as the reference.
    wide = dilated_depth_edges(d, threshold=1.0, dilation=4)
    assert np.array_equal(np.nonzero(wide.any(0))[0], [4, 5, 6, 7, 8])
    assert not dilated_depth_edges(d, threshold=10.0).any()
    with pytest.raises(ValueError):
        dilated_depth_edges(np.zeros((2, 2, 2)))
    # A jump into an invalid pixel (0) is a hole's rim, not a depth edge; between valid pixels it is.
    holes = np.full((5, 8), 5.0, np.float32)
    holes[:, 3] = 0.0
    holes[:, 6:] = 9.0
    cols = np.nonzero(dilated_depth_edges(holes, threshold=1.0, dilation=0).any(0))[0]
    assert cols.tolist() == [5, 6]


def test_dda_puts_half_of_the_points_on_dilated_depth_edges() -> None:
    grid = np.full((40, 60), 10.0, np.float32)
    grid[:, 30:] = 30.0
    edges = dilated_depth_edges(grid, 1.0, 10)
    pts, labels = sample_points(grid, 200, np.random.default_rng(2), strategy="dda", edge_threshold=1.0, dilation=10)
    on = edges[np.rint(pts[1]).astype(int), np.rint(pts[0]).astype(int)]
    assert on.sum() == 100
    # Random sampling puts about edge-area fraction (1/6) there.
    pts_r, _ = sample_points(grid, 2000, np.random.default_rng(2), strategy="random")
    frac = edges[np.rint(pts_r[1]).astype(int), np.rint(pts_r[0]).astype(int)].mean()
    assert 0.1 < frac < 0.25
    # Fewer edge pixels than half the points: all of them, the rest off the edges.
    small = np.full((30, 30), 10.0, np.float32)
    small[0, 0] = 20.0
    pts, _ = sample_points(small, 600, np.random.default_rng(3), strategy="dda", dilation=0)
    on = dilated_depth_edges(small, 1.0, 0)[np.rint(pts[1]).astype(int), np.rint(pts[0]).astype(int)]
    assert on.sum() == 3
    # No edges: everything from the flat region; only edges: everything from them.
    flat_pts, flat_labels = sample_points(np.full((10, 10), 3.0, np.float32), 50, np.random.default_rng(0),
                                          strategy="dda")
    assert flat_labels.shape == (50,) and (flat_labels == 3.0).all()
    _, edge_labels = sample_points(np.array([[1.0, 5.0], [5.0, 1.0]], np.float32), 8, np.random.default_rng(0),
                                   strategy="dda")
    assert edge_labels.shape == (8,)
    with pytest.raises(ValueError):
        sample_points(grid, 10, np.random.default_rng(0), strategy="edges")
    with pytest.raises(ValueError):
        sample_points(grid, 0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample_points(np.zeros(5), 3, np.random.default_rng(0))


# ----------------------------------------------------------------------------------------------------
# Crops and samples
# ----------------------------------------------------------------------------------------------------


def test_crop_and_crop_box() -> None:
    a = np.arange(20).reshape(4, 5)
    assert np.array_equal(crop(a, 1, 2, 2, 2), [[7, 8], [12, 13]])
    padded = crop(a, 3, 3, 3, 4, fill=-1)
    assert np.array_equal(padded, [[18, 19, -1, -1], [-1, -1, -1, -1], [-1, -1, -1, -1]])
    rng = np.random.default_rng(0)
    boxes = {random_crop_box(10, 12, 4, 5, rng) for _ in range(200)}
    assert min(b[0] for b in boxes) == 0 and max(b[0] for b in boxes) == 6
    assert min(b[1] for b in boxes) == 0 and max(b[1] for b in boxes) == 7
    assert random_crop_box(3, 3, 8, 8, rng) == (0, 0)


def _frame(h: int = 32, w: int = 48, *, right: bool = True) -> dict:
    f = render_scene(21, height=h, width=w, max_disparity=12.0)
    out = {"left": f.left, "right": f.right, "disp_left": f.disp_left.copy(), "name": "f"}
    if right:
        out["disp_right"] = f.disp_right
    return out


def test_training_sample_scales_images_and_labels_by_aspect_ratio() -> None:
    frame = _frame()
    frame["disp_left"][:4] = np.inf  # unsanitised invalid values are cleaned
    cfg = SampleConfig(crop_size=(32, 48), aspect_ratio=2.0, num_points=300, strategy="random", dense_labels=True)
    s = make_training_sample(frame, cfg, None, np.random.default_rng(0))
    assert s["left"].shape == s["right"].shape == (3, 16, 24) and s["left"].dtype == torch.float32
    expected = cv2.resize(frame["left"], (24, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.array_equal(s["left"].permute(1, 2, 0).numpy(), expected)
    assert s["output_size"].tolist() == [32, 48] and s["output_size"].dtype == torch.int64
    gt = np.where(np.isfinite(frame["disp_left"]), frame["disp_left"], 0) / 2.0
    assert np.allclose(s["disp"].numpy(), gt)
    pts = s["points"].numpy()
    nearest = gt[np.rint(pts[1]).astype(int), np.rint(pts[0]).astype(int)]
    assert np.allclose(nearest, s["labels"].numpy()) and (s["labels"] > 0).all()
    assert pts[0].max() <= 47 and pts[1].max() <= 31
    assert s["name"] == "f"


def test_training_sample_crops_and_pads() -> None:
    frame = _frame(20, 30, right=False)
    cfg = SampleConfig(crop_size=(24, 40), aspect_ratio=1.0, num_points=50, dense_labels=True)
    s = make_training_sample(frame, cfg, None, np.random.default_rng(0))
    assert s["left"].shape == (3, 24, 40)
    assert (s["left"][:, 20:] == 0).all() and (s["disp"][20:] == 0).all() and (s["disp"][:, 30:] == 0).all()
    assert np.array_equal(s["disp"][:20, :30].numpy(), frame["disp_left"])
    small = SampleConfig(crop_size=(8, 8), num_points=20, dense_labels=True)
    s = make_training_sample(frame, small, None, np.random.default_rng(5))
    assert s["disp"].shape == (8, 8)
    with pytest.raises(ValueError, match="same size"):
        make_training_sample({**frame, "right": frame["right"][:10]}, small, None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="disp_right"):
        make_training_sample({**frame, "disp_right": frame["disp_left"][:10]}, small, None, np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crop_size": (0, 8)},
        {"crop_size": (8,)},
        {"aspect_ratio": 0.0},
        {"crop_size": (30, 40), "aspect_ratio": 4.0},
        {"num_points": 0},
        {"strategy": "edges"},
        {"dilation": -1},
        {"crop_tries": 0},
    ],
)
def test_sample_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SampleConfig(**kwargs)


# ----------------------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------------------


def test_flip_lr_swap_yields_a_valid_stereo_pair() -> None:
    f = render_scene(6, height=48, width=64, max_disparity=10.0, photometric=False)
    left, right, dl, dr = flip_lr_swap(f.left.astype(np.float32), f.right.astype(np.float32), f.disp_left, f.disp_right)
    assert np.array_equal(left, f.right[:, ::-1]) and np.array_equal(dl, f.disp_right[:, ::-1])
    assert np.array_equal(right, f.left[:, ::-1]) and np.array_equal(dr, f.disp_left[:, ::-1])
    # The mirrored pair is geometrically a rectified pair: new right at x - new_disp_left shows new left.
    h, w = dl.shape
    xs = (np.arange(w)[None, :] - dl).astype(np.float32)
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    inside = (xs >= 0) & (xs <= w - 1)
    err = np.abs(cv2.remap(right, xs, ys, cv2.INTER_LINEAR) - left).mean(2)[inside]
    err_off = np.abs(cv2.remap(right, xs - 1, ys, cv2.INTER_LINEAR) - left).mean(2)[inside]
    assert np.median(err) < 0.5 * np.median(err_off) + 0.5
    with pytest.raises(ValueError):
        flip_lr_swap(left, right, dl, None)


def test_augment_pair_switches() -> None:
    f = render_scene(2, height=16, width=24)
    left, right = f.left.astype(np.float32), f.right.astype(np.float32)
    rng = np.random.default_rng(0)
    only_lr = AugmentConfig(color=False, flip_ud=False, flip_prob=1.0)
    out = augment_pair(left, right, f.disp_left, f.disp_right, rng, only_lr)
    assert np.array_equal(out[0], right[:, ::-1]) and np.array_equal(out[2], f.disp_right[:, ::-1])
    # Without the right disparity the left-right flip is skipped.
    out = augment_pair(left, right, f.disp_left, None, rng, only_lr)
    assert np.array_equal(out[0], left) and out[3] is None
    only_ud = AugmentConfig(color=False, flip_lr=False, flip_prob=1.0)
    out = augment_pair(left, right, f.disp_left, None, rng, only_ud)
    assert np.array_equal(out[0], left[::-1]) and np.array_equal(out[2], f.disp_left[::-1]) and out[3] is None
    assert np.array_equal(flip_ud(left, right, f.disp_left, f.disp_right)[3], f.disp_right[::-1])
    none = AugmentConfig(color=False, flip_lr=False, flip_ud=False)
    out = augment_pair(left, right, f.disp_left, f.disp_right, rng, none)
    assert all(np.array_equal(a, b) for a, b in zip(out, (left, right, f.disp_left, f.disp_right), strict=True))


def test_color_augment() -> None:
    rng = np.random.default_rng(0)
    left = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    right = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    fixed = AugmentConfig(color_prob=1.0, gamma=(1.0, 1.0), brightness=(2.0, 2.0), channel=(1.0, 1.0))
    a, b = color_augment(left, right, rng, fixed)
    assert np.allclose(a, np.clip(2 * left, 0, 255), atol=1e-3)
    assert np.allclose(b, np.clip(2 * right, 0, 255), atol=1e-3)
    # Gamma acts on 0..1 intensities: 255 stays 255, mid-grey darkens for gamma > 1.
    g = AugmentConfig(color_prob=1.0, gamma=(2.0, 2.0), brightness=(1.0, 1.0), channel=(1.0, 1.0))
    grey = np.array([[[255.0, 127.5, 0.0]]], np.float32)
    a, _ = color_augment(grey, grey, rng, g)
    assert np.allclose(a, [[[255.0, 63.75, 0.0]]], atol=1e-2)
    # Same transform for both views unless asymmetric.
    same = AugmentConfig(color_prob=1.0)
    a, b = color_augment(left, left.copy(), rng, same)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 255 and a.dtype == np.float32
    a, b = color_augment(left, left.copy(), rng, AugmentConfig(color_prob=1.0, asymmetric=0.1))
    assert not np.array_equal(a, b)
    a, _ = color_augment(left, right, rng, AugmentConfig(color_prob=0.0))
    assert a is left
    for bad in ({"gamma": (1.2, 0.8)}, {"brightness": (0.0, 1.0)}, {"channel": (1.0,)}, {"color_prob": 1.5},
                {"flip_prob": -0.1}, {"asymmetric": 1.0}):
        with pytest.raises(ValueError):
            AugmentConfig(**bad)


# ----------------------------------------------------------------------------------------------------
# DataConfig / build_dataset
# ----------------------------------------------------------------------------------------------------


def test_data_config_from_yaml_dict_and_validation() -> None:
    cfg = from_dict(DataConfig, {"kind": "Synthetic", "synthetic_options": {"num_thin": 0}, "min_disparity": None,
                                 "sample": {"crop_size": [64, 96], "aspect_ratio": 2, "strategy": "RANDOM"},
                                 "augment": {"flip_prob": 0.25, "flip_ud": False}})
    assert cfg.kind == "synthetic" and cfg.sample.crop_size == (64, 96) and cfg.sample.strategy == "random"
    assert cfg.sample.network_size == (32, 48)
    assert cfg.augment.flip_prob == 0.25 and not cfg.augment.flip_ud and cfg.augment.enabled
    assert from_dict(DataConfig, to_dict(cfg)) == cfg  # survives checkpoints / YAML
    # One set of defaults: DataConfig's sections are SampleConfig's and AugmentConfig's own.
    assert DataConfig().sample == SampleConfig() and DataConfig().augment == AugmentConfig()
    bad_dicts = ({"kind": "kitti"}, {"sample": {"strategy": "edges"}}, {"kind": "list"}, {"kind": "kitti2015"},
                 {"sample": {"crop_size": (30, 40), "aspect_ratio": 4}}, {"raw_shape": (1, 2, 3)}, {"limit": -1},
                 {"num_samples": 0}, {"augment": {"gamma": (2.0, 1.0)}}, {"sample": {"num_points": 0}},
                 {"augment": {"flip_prob": 1.5}}, {"sample": {"crop": 3}})
    for bad in bad_dicts:
        with pytest.raises(ValueError):
            from_dict(DataConfig, bad)


def test_data_config_reads_the_old_flat_keys() -> None:
    """Configs and checkpoints written before `sample` / `augment` were nested load into the same fields."""
    old = {"kind": "synthetic", "crop_size": [64, 96], "aspect_ratio": 2, "num_points": 123, "sampling": "random",
           "edge_threshold": 2.0, "dilation": 3, "dense_labels": True, "augment": False, "color_augment": False,
           "color_prob": 0.3, "gamma_range": [0.9, 1.0], "brightness_range": [0.7, 1.2],
           "channel_range": [0.9, 1.1], "asymmetric_color": 0.05, "flip_lr": False, "flip_ud": False}
    cfg = from_dict(DataConfig, old)
    assert cfg.sample == SampleConfig(crop_size=(64, 96), aspect_ratio=2.0, num_points=123, strategy="random",
                                      edge_threshold=2.0, dilation=3, dense_labels=True)
    assert cfg.augment == AugmentConfig(enabled=False, color=False, color_prob=0.3, gamma=(0.9, 1.0),
                                        brightness=(0.7, 1.2), channel=(0.9, 1.1), asymmetric=0.05,
                                        flip_lr=False, flip_ud=False)
    # A flat key beside its nested one: fine when they agree, an error naming the nested key otherwise.
    same = from_dict(DataConfig, {"num_points": 50, "sample": {"num_points": 50, "strategy": "random"}})
    assert same.sample.num_points == 50 and same.sample.strategy == "random"
    with pytest.raises(ValueError, match=r"num_points=50 .*contradicts sample\.num_points=60; set data\.sample"):
        from_dict(DataConfig, {"num_points": 50, "sample": {"num_points": 60}}, _where="data")
    with pytest.raises(ValueError, match="unknown keys"):
        from_dict(DataConfig, {"num_point": 50})
    assert from_dict(DataConfig, {"augment": True}).augment == AugmentConfig()
    with pytest.raises(ValueError, match="expected a mapping"):
        from_dict(DataConfig, {"sample": 3})


def test_disabled_augmentation_leaves_samples_alone(tmp_path) -> None:
    on = from_dict(DataConfig, {"kind": "list", "split": _list_of_one_frame(tmp_path, 1),
                                "sample": {"crop_size": [16, 32], "num_points": 8},
                                "augment": {"color_prob": 1.0, "flip_lr": False, "flip_ud": False}})
    off = dataclasses.replace(on, augment=dataclasses.replace(on.augment, enabled=False))
    on_set, off_set = build_dataset(on, train=True), build_dataset(off, train=True)
    assert off_set.augment_config is None and on_set.augment_config == on.augment
    frame = on_set.frames.frame(0, lazy=True)
    plain = make_training_sample(frame, on.sample, None, np.random.default_rng(5))
    a, b = on_set.sample(0, np.random.default_rng(5)), off_set.sample(0, np.random.default_rng(5))
    assert all(torch.equal(b[k], plain[k]) for k in ("left", "right", "points", "labels"))
    assert not torch.equal(a["left"], plain["left"])  # colour changed where enabled
    # The switch also holds where augment_pair is called with the config itself.
    images = (np.full((4, 4, 3), 100.0, np.float32),) * 2
    out = augment_pair(*images, np.ones((4, 4), np.float32), None, np.random.default_rng(0), off.augment)
    assert np.array_equal(out[0], images[0])


def test_build_synthetic_training_samples_collate_and_seed() -> None:
    cfg = DataConfig(kind="synthetic", num_samples=3, height=40, width=56, max_disparity=12.0, seed=4,
                     sample=SampleConfig(crop_size=(32, 48), aspect_ratio=2.0, num_points=64))
    ds = build_dataset(cfg, train=True)
    assert len(ds) == 3
    torch.manual_seed(0)
    a = ds[1]
    torch.manual_seed(0)
    b = ds[1]
    c = ds[1]
    assert torch.equal(a["points"], b["points"]) and torch.equal(a["left"], b["left"])
    assert not torch.equal(a["points"], c["points"])
    batch = default_collate([ds[0], ds[1]])
    assert batch["left"].shape == (2, 3, 16, 24) and batch["points"].shape == (2, 2, 64)
    assert batch["labels"].shape == (2, 64) and batch["output_size"].tolist() == [[32, 48], [32, 48]]
    assert (batch["labels"] > 0).all() and batch["labels"].max() <= 6.0 + 1e-4  # GT / aspect_ratio
    frames = build_dataset(cfg, train=False)
    f = frames[1]
    assert f["left"].shape == (40, 56, 3) and f["left"].dtype == np.uint8
    assert f["disp_left"].shape == (40, 56) and "disp_right" in f and "occlusion_left" in f
    small = DataConfig(num_samples=2, height=32, width=48, synthetic_options={"num_objects": 0},
                       sample=SampleConfig(crop_size=(32, 48)))
    assert build_dataset(small, train=False)[0]["left"].shape == (32, 48, 3)


def _list_of_one_frame(tmp_path, copies: int) -> str:
    f = render_scene(8, height=40, width=64, max_disparity=10.0)
    cv2.imwrite(str(tmp_path / "l.png"), f.left)
    cv2.imwrite(str(tmp_path / "r.png"), f.right)
    np.save(tmp_path / "dl.npy", f.disp_left)
    np.save(tmp_path / "dr.npy", f.disp_right)
    (tmp_path / "list.txt").write_text("l.png r.png dl.npy dr.npy\n" * copies)
    return str(tmp_path / "list.txt")


def test_dataloader_workers_draw_different_samples(tmp_path) -> None:
    cfg = DataConfig(kind="list", split=_list_of_one_frame(tmp_path, 4),
                     sample=SampleConfig(crop_size=(16, 32), num_points=32))
    ds = build_dataset(cfg, train=True)
    torch.manual_seed(0)
    loader = DataLoader(ds, batch_size=1, num_workers=2, shuffle=False)
    points = [b["points"] for b in loader]
    # Same frame everywhere; the crops / points differ between workers and items.
    assert len({tuple(p.flatten()[:8].tolist()) for p in points}) == 4


def test_lazy_frames_give_the_same_samples(tmp_path) -> None:
    frames = ListDataset(_list_of_one_frame(tmp_path, 1))
    cfg = SampleConfig(crop_size=(24, 32), aspect_ratio=2.0, num_points=40)
    aug = AugmentConfig()
    ds = TrainingDataset(frames, cfg, aug)
    lazy = ds.sample(0, np.random.default_rng(3))
    eager = make_training_sample(frames.frame(0), cfg, aug, np.random.default_rng(3))
    for key in ("left", "right", "points", "labels"):
        assert torch.equal(lazy[key], eager[key]), key
    with pytest.raises(ValueError):
        TrainingDataset([], cfg)
