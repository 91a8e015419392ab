"""Procedural stereo generator: exact ground truth (checked by warping), determinism, sizes, sequences, CLI."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch

from smd_core.data.synthetic import cli as synth_cli
from smd_core.data.synthetic.dataset import SyntheticDataset, write_dataset
from smd_core.data.synthetic.render import SyntheticFrame, render_scene, render_sequence
from smd_core.data.synthetic.scene import weighted_choice
from smd_core.data.synthetic.shapes import Lattice, Perforated, Shape, Wheel, random_shape
from smd_core.data.synthetic.textures import TEXTURE_KINDS, TEXTURE_WEIGHTS

H, W, MAXD = 96, 128, 20.0


def _near_edges(ids: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels within `radius` of a change of visible layer (anti-aliased, mixed pixels)."""
    e = np.zeros(ids.shape, bool)
    dx = ids[:, 1:] != ids[:, :-1]
    dy = ids[1:] != ids[:-1]
    e[:, 1:] |= dx
    e[:, :-1] |= dx
    e[1:] |= dy
    e[:-1] |= dy
    return cv2.dilate(e.astype(np.uint8), np.ones((2 * radius + 1,) * 2, np.uint8)) > 0


def _warp(image: np.ndarray, x: np.ndarray) -> np.ndarray:
    """image sampled (bilinear) at (x, row) for every pixel."""
    ys = np.broadcast_to(np.arange(x.shape[0], dtype=np.float32)[:, None], x.shape)
    return cv2.remap(image.astype(np.float32), x.astype(np.float32), ys, cv2.INTER_LINEAR)


def _clean_match_mask(f: SyntheticFrame) -> np.ndarray:
    """Left pixels visible in the right view, away from layer edges in BOTH views (mixed, anti-aliased pixels:
    behind a fence the right-view match of a background pixel is often next to a bar)."""
    h, w = f.disp_left.shape
    x_r = np.arange(w)[None, :] - f.disp_left
    x0 = np.clip(np.floor(x_r).astype(int), 0, w - 2)
    rows = np.arange(h)[:, None]
    edges_r = _near_edges(f.instance_right)
    clean_r = ~edges_r[rows, x0] & ~edges_r[rows, x0 + 1]
    return ~f.occlusion_left & ~_near_edges(f.instance_left) & clean_r & (x_r >= 0) & (x_r <= w - 1)


def _warp_errors(f: SyntheticFrame, mask: np.ndarray) -> tuple[float, float]:
    """Mean |left - right warped by disp_left| on `mask`, and the same with the disparity 1 px off."""
    x_r = np.arange(f.disp_left.shape[1])[None, :] - f.disp_left
    left = f.left.astype(np.float32)
    e = np.abs(_warp(f.right, x_r) - left).mean(axis=2)[mask]
    e1 = np.abs(_warp(f.right, x_r - 1.0) - left).mean(axis=2)[mask]
    return float(e.mean()), float(e1.mean())


def test_right_view_warped_by_left_disparity_reproduces_left_view() -> None:
    errors, shifted = [], []
    for seed in range(8):
        f = render_scene(seed, height=H, width=W, max_disparity=MAXD, photometric=False)
        x_r = np.arange(W)[None, :] - f.disp_left
        mask = _clean_match_mask(f)
        assert mask.mean() > 0.2
        left = f.left.astype(np.float32)
        e = np.abs(_warp(f.right, x_r) - left).mean(axis=2)[mask]
        # Control: a disparity 1 px off must match clearly worse.
        e1 = np.abs(_warp(f.right, x_r - 1.0) - left).mean(axis=2)[mask]
        # Only bilinear resampling of the texture separates the views (no photometric changes).
        assert e.mean() < 3.0, (seed, e.mean())
        errors.append(e.mean())
        shifted.append(e1.mean())
    assert np.mean(errors) < 0.5 * np.mean(shifted)


def test_left_view_warped_by_right_disparity_reproduces_right_view() -> None:
    for seed in range(4):
        f = render_scene(seed, height=H, width=W, max_disparity=MAXD, photometric=False, textures=("gradient",))
        x_l = np.arange(W)[None, :] + f.disp_right
        inside = x_l <= W - 1
        # Right pixels whose left match shows the same layer (not occluded in the left view).
        xn = np.clip(np.rint(x_l), 0, W - 1).astype(int)
        same = f.instance_left[np.arange(H)[:, None], xn] == f.instance_right
        mask = inside & same & ~_near_edges(f.instance_right)
        e = np.abs(_warp(f.left, x_l) - f.right.astype(np.float32)).mean(axis=2)[mask]
        assert e.mean() < 2.0, (seed, e.mean())


def test_disparity_maps_are_mutually_consistent_and_in_range() -> None:
    for seed in range(6):
        f = render_scene(seed, height=H, width=W, max_disparity=MAXD, min_disparity=2.0)
        for d in (f.disp_left, f.disp_right):
            assert d.dtype == np.float32 and d.shape == (H, W)
            assert d.min() >= 2.0 - 1e-4 and d.max() <= MAXD + 1e-4
        # Left pixel x sees the same surface point as right pixel x - d: where both right neighbours
        # of that sub-pixel position show the same (planar) layer, the interpolated right disparity is exact.
        x_r = np.arange(W)[None, :] - f.disp_left.astype(np.float64)
        x0 = np.floor(x_r).astype(int)
        ok = (x0 >= 0) & (x0 + 1 <= W - 1) & ~f.occlusion_left
        x0c = np.clip(x0, 0, W - 2)
        rows = np.arange(H)[:, None]
        ids = f.instance_left
        same = ok & (f.instance_right[rows, x0c] == ids) & (f.instance_right[rows, x0c + 1] == ids)
        assert same.mean() > 0.4
        t = x_r - x0c
        d_r = f.disp_right[rows, x0c] * (1 - t) + f.disp_right[rows, x0c + 1] * t
        assert np.abs(d_r - f.disp_left)[same].max() < 1e-3


def test_occlusion_mask_marks_hidden_and_out_of_view_pixels() -> None:
    f = render_scene(3, height=H, width=W, max_disparity=MAXD)
    x_r = np.arange(W)[None, :] - f.disp_left
    # Everything that leaves the right image is occluded.
    assert f.occlusion_left[x_r < -0.5].all()
    # Inside the image, an occluded pixel has a nearer surface at its match in the right view.
    inside = f.occlusion_left & (x_r > 0.5) & (x_r < W - 1.5)
    assert inside.any()
    xn = np.clip(np.rint(x_r), 0, W - 1).astype(int)
    nearer = f.disp_right[np.arange(H)[:, None], xn] > f.disp_left + 0.5
    assert nearer[inside].all()
    assert f.occlusion_left.dtype == bool and 0.0 < f.occlusion_left.mean() < 0.6


def test_same_seed_same_frame_and_different_seed_differs() -> None:
    a = render_scene(11, height=48, width=64, max_disparity=12)
    b = render_scene(11, height=48, width=64, max_disparity=12)
    c = render_scene(12, height=48, width=64, max_disparity=12)
    for key, value in vars(a).items():
        assert np.array_equal(value, getattr(b, key)), key
    assert not np.array_equal(a.left, c.left)
    # Tuple seeds (base seed, index) are distinct streams.
    one, two = render_scene((1, 2), height=32, width=48), render_scene((2, 1), height=32, width=48)
    assert not np.array_equal(one.left, two.left)


@pytest.mark.parametrize("size", [(33, 47), (64, 200), (120, 90)])
def test_any_size(size: tuple[int, int]) -> None:
    h, w = size
    f = render_scene(5, height=h, width=w, max_disparity=16)
    assert f.left.shape == f.right.shape == (h, w, 3)
    assert f.left.dtype == f.right.dtype == np.uint8
    for arr in (f.disp_left, f.disp_right, f.occlusion_left, f.instance_left, f.instance_right):
        assert arr.shape == (h, w)
    assert (f.disp_left > 0).all() and (f.disp_right > 0).all()


def test_options_shape_the_scene() -> None:
    bare = render_scene(0, height=H, width=W, num_objects=0, num_thin=0, ground_plane=False)
    assert np.unique(bare.instance_left).tolist() == [0]  # the wall only
    busy = render_scene(0, height=H, width=W, num_objects=12, num_thin=3)
    assert np.unique(busy.instance_left).size > 4
    for kind in TEXTURE_KINDS:
        f = render_scene(1, height=40, width=56, textures=(kind,))
        assert f.left.std() > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"height": 4},
        {"max_disparity": 0.0},
        {"min_disparity": 30.0, "max_disparity": 20.0},
        {"min_disparity": 0.0},
        {"num_objects": -1},
        {"num_thin": -2},
        {"textures": ("marble",)},
        {"textures": ()},
        {"max_slope": 0.95},
    ],
)
def test_bad_options_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        render_scene(0, **{"height": 32, "width": 32, **kwargs})


def test_sequence_moves_smoothly() -> None:
    frames = list(render_sequence(4, 6, height=H, width=W, max_disparity=MAXD, num_objects=6, photometric=False))
    assert len(frames) == 6
    steps = [np.abs(b.disp_left - a.disp_left).mean() for a, b in zip(frames, frames[1:], strict=False)]
    total = np.abs(frames[-1].disp_left - frames[0].disp_left).mean()
    assert total > 0  # things move
    assert max(steps) < 0.5 * total + 1e-6 or max(steps) < 0.05 * MAXD
    # Each object's centroid moves by a few pixels per frame at most.
    for ident in np.unique(frames[0].instance_left):
        if ident == 0:
            continue
        cents = []
        for f in frames:
            ys, xs = np.nonzero(f.instance_left == ident)
            if xs.size < 30:
                break
            cents.append((xs.mean(), ys.mean()))
        if len(cents) == len(frames):
            jumps = np.hypot(*np.diff(np.array(cents), axis=0).T)
            assert jumps.max() < 8.0
    # Background wall and camera are static.
    wall = (frames[0].instance_left == 0) & (frames[-1].instance_left == 0)
    assert np.allclose(frames[0].disp_left[wall], frames[-1].disp_left[wall])
    # Same seed, same sequence.
    again = list(render_sequence(4, 2, height=H, width=W, max_disparity=MAXD, num_objects=6, photometric=False))
    assert np.array_equal(again[1].left, frames[1].left)
    with pytest.raises(ValueError):
        list(render_sequence(0, 2, height=32, width=32, bogus=1))
    with pytest.raises(ValueError):
        list(render_sequence(0, -1))


def test_photometric_differences_between_views() -> None:
    plain = render_scene(7, height=H, width=W, photometric=False)
    photo = render_scene(7, height=H, width=W, photometric=True)
    assert np.array_equal(plain.disp_left, photo.disp_left)
    assert not np.array_equal(plain.right, photo.right)


def test_dataset_frames_and_samples() -> None:
    from smd_core.data.sample_config import SampleConfig
    from smd_core.data.sampling import TrainingDataset

    ds = SyntheticDataset(3, seed=5, height=48, width=64, max_disparity=12)
    assert len(ds) == 3
    f = ds[1]
    ref = render_scene((5, 1), height=48, width=64, max_disparity=12)
    assert np.array_equal(f["left"], ref.left) and np.array_equal(f["disp_left"], ref.disp_left)
    assert f["name"] == "synthetic_5_000001"
    with pytest.raises(IndexError):
        ds.frame(3)
    with pytest.raises(ValueError):
        SyntheticDataset(0)
    with pytest.raises(ValueError):
        SyntheticDataset(2, render_options={"textures": ("bogus",)})
    with pytest.raises(ValueError, match="unknown options"):
        SyntheticDataset(2, render_options={"num_object": 3})
    assert SyntheticDataset(1, height=32, width=48, render_options={"photometric": False, "shapes": "fence"})[0][
        "left"].shape == (32, 48, 3)
    torch.manual_seed(0)
    s = TrainingDataset(ds, SampleConfig(crop_size=(32, 48), num_points=100))[0]
    assert s["left"].shape == (3, 32, 48) and s["points"].shape == (2, 100) and s["labels"].shape == (100,)


def test_write_dataset_and_cli(tmp_path) -> None:
    from smd_core.data import DataConfig, build_dataset

    list_path = write_dataset(tmp_path / "set", 3, seed=2, height=40, width=56, max_disparity=10, progress=False,
                              preview=2)
    lines = list_path.read_text().split("\n")
    assert lines[0] == "left/000000.png right/000000.png disp_left/000000.npy disp_right/000000.npy"
    assert (tmp_path / "set" / "preview.png").is_file()
    ref = render_scene((2, 2), height=40, width=56, max_disparity=10)
    assert np.array_equal(cv2.imread(str(tmp_path / "set" / "left" / "000002.png")), ref.left)
    assert np.array_equal(np.load(tmp_path / "set" / "disp_right" / "000002.npy"), ref.disp_right)
    # The written set reads back as a list dataset.
    frames = build_dataset(DataConfig(kind="list", split=str(list_path)), train=False)
    assert len(frames) == 3 and np.array_equal(frames[2]["disp_left"], ref.disp_left)
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "bad", 0)
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        write_dataset(tmp_path / "bad", 1, jobs=0)
    # Worker processes write the very same files and list.
    two = write_dataset(tmp_path / "jobs", 3, seed=2, height=40, width=56, max_disparity=10, progress=False,
                        preview=0, jobs=2)
    assert two.read_text() == list_path.read_text()
    assert np.array_equal(np.load(tmp_path / "jobs" / "disp_right" / "000002.npy"), ref.disp_right)

    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "cli"), "--num", "2", "--height", "32", "--width", "48",
                              "--seed", "3", "--max-disparity", "8", "--no-photometric", "--preview", "0"])
    assert synth_cli.run(args) == 0
    assert len((tmp_path / "cli" / "train.txt").read_text().split()) == 8
    assert not (tmp_path / "cli" / "preview.png").exists()
    d = np.load(tmp_path / "cli" / "disp_left" / "000001.npy")
    assert d.shape == (32, 48) and d.max() <= 8.0 + 1e-4
    # --objects / --thin fix the layer counts: with none, only the wall (and a ground plane) are left.
    args = parser.parse_args(["--out", str(tmp_path / "bare"), "--num", "1", "--height", "32", "--width", "48",
                              "--seed", "3", "--max-disparity", "8", "--objects", "0", "--thin", "0", "--preview", "0"])
    assert synth_cli.run(args) == 0
    bare = np.load(tmp_path / "bare" / "disp_left" / "000000.npy")
    assert np.array_equal(bare, render_scene((3, 0), height=32, width=48, max_disparity=8, num_objects=0,
                                             num_thin=0).disp_left)
    assert not np.array_equal(bare, render_scene((3, 0), height=32, width=48, max_disparity=8).disp_left)


@pytest.mark.parametrize("kind", ["ring", "wheel", "fence", "perforated"])
def test_see_through_shapes_show_the_background_and_warp_exactly(kind: str) -> None:
    """Each see-through shape shows the wall through its holes, and both the shape and what is seen through it
    obey the ground truth: the right view warped by disp_left reproduces the left view, disp_right agrees."""
    h, w = 120, 160
    seen_through, errors, shifted = 0, [], []
    for seed in range(4):
        f = render_scene(seed, height=h, width=w, max_disparity=MAXD, photometric=False, shapes=(kind,),
                         num_objects=2, num_thin=0, ground_plane=False)
        ids = f.instance_left
        for ident in (1, 2):
            ys, xs = np.nonzero(ids == ident)
            if xs.size < 50:
                continue
            box = np.zeros(ids.shape, bool)
            box[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
            # Wall pixels inside the shape's own extent and bordered by it on both sides of a row: holes.
            inner = box & (ids == 0)
            rows_with_shape = [(ids[y, : x] == ident).any() and (ids[y, x + 1:] == ident).any()
                               for y, x in zip(*np.nonzero(inner), strict=True)]
            seen_through += int(np.sum(rows_with_shape))
            mask = _clean_match_mask(f) & box
            if mask.sum() < 30:
                continue
            e, e1 = _warp_errors(f, mask)
            assert e < 3.0, (kind, seed, ident, e)
            errors.append(e)
            shifted.append(e1)
        # Disparity of the two views agrees at the match wherever both right neighbours show the same layer.
        x_r = np.arange(w)[None, :] - f.disp_left.astype(np.float64)
        x0 = np.clip(np.floor(x_r).astype(int), 0, w - 2)
        rows = np.arange(h)[:, None]
        same = (~f.occlusion_left & (x_r >= 0) & (x_r <= w - 2) & (f.instance_right[rows, x0] == ids)
                & (f.instance_right[rows, x0 + 1] == ids))
        t = x_r - x0
        d_r = f.disp_right[rows, x0] * (1 - t) + f.disp_right[rows, x0 + 1] * t
        assert np.abs(d_r - f.disp_left)[same].max() < 1e-3
    assert seen_through > 100, kind
    assert errors and np.mean(errors) < 0.5 * np.mean(shifted), (kind, errors, shifted)


@pytest.mark.parametrize("kind", ["pink", "wood", "fabric", "image"])
def test_natural_textures_warp_exactly(kind: str) -> None:
    errors, shifted = [], []
    for seed in range(4):
        f = render_scene(seed, height=H, width=W, max_disparity=MAXD, photometric=False, textures=(kind,),
                         num_objects=4, num_thin=1)
        mask = _clean_match_mask(f)
        assert mask.mean() > 0.2
        e, e1 = _warp_errors(f, mask)
        assert e < 3.0, (kind, seed, e)
        errors.append(e)
        shifted.append(e1)
    # Textured enough that a disparity 1 px off is clearly visible.
    assert np.mean(errors) < 0.5 * np.mean(shifted), (kind, errors, shifted)


def test_thin_structures_are_thin() -> None:
    """Poles and wires are a few pixels wide at 240 px height."""
    widths = []
    for seed in range(3):
        f = render_scene(seed, height=240, width=320, num_objects=0, num_thin=3, ground_plane=False,
                         photometric=False)
        for ident in range(1, 4):
            m = f.instance_left == ident
            if m.sum() < 20:
                continue
            # Width across the structure: pixels per row (poles) or per column (wires), whichever is smaller.
            per_row = m.sum(axis=1)[m.any(axis=1)]
            per_col = m.sum(axis=0)[m.any(axis=0)]
            widths.append(min(np.median(per_row), np.median(per_col)))
    assert widths and max(widths) <= 6, widths


def test_texture_and_shape_mix() -> None:
    """Weighted choice follows the weights; natural textures dominate, periodic / textureless are a minority."""
    rng = np.random.default_rng(0)
    draws = [weighted_choice(rng, TEXTURE_WEIGHTS) for _ in range(20000)]
    total = sum(TEXTURE_WEIGHTS.values())
    for kind, weight in TEXTURE_WEIGHTS.items():
        assert abs(draws.count(kind) / len(draws) - weight / total) < 0.015, kind
    natural = sum(draws.count(k) for k in ("image", "pink", "wood", "fabric", "noise")) / len(draws)
    assert natural > 0.75
    assert 0.03 < draws.count("stripes") / len(draws) < 0.15 and 0.03 < draws.count("gradient") / len(draws) < 0.15
    assert weighted_choice(rng, {"fence": 1.0}) == "fence"
    with pytest.raises(ValueError, match="unknown shape kind"):
        random_shape(rng, "blob", 0.0, 0.0, 32, 32, 8.0)
    with pytest.raises(ValueError, match="shapes must be"):
        render_scene(0, height=32, width=32, shapes=("blob",))
    with pytest.raises(ValueError, match="shapes must be"):
        render_scene(0, height=32, width=32, shapes=())


@pytest.mark.parametrize("shape", [
    Lattice(0.0, 0.0, 30.0, 20.0, 0.3, 8.0, 1.0, 10.0, 1.5, 2.0),
    Lattice(0.0, 0.0, 30.0, 20.0, -0.1, 6.0, 1.2),
    Perforated(0.0, 0.0, 30.0, 20.0, 0.5, 9.0, 0.0, hole=3.0),
    Wheel(0.0, 0.0, 25.0, 2.0, 7, 1.0, 3.0, 0.4),
])
def test_new_shape_sdfs_are_distance_like(shape: Shape) -> None:
    """Anti-aliasing takes coverage from the signed distance: it must be 1-Lipschitz (never steeper than a
    true distance), negative on the material, positive in the holes, and inside the bounds."""
    x0, y0, x1, y1 = shape.bounds()
    ys, xs = np.mgrid[y0 - 5:y1 + 5:0.25, x0 - 5:x1 + 5:0.25].astype(np.float32)
    d = shape.sdf(xs, ys)
    assert d.dtype == np.float32 and d.shape == xs.shape
    inside = d <= 0
    assert 0.05 < inside.mean() < 0.9  # material and holes (or outside) both present
    assert (xs[inside] >= x0 - 1e-3).all() and (xs[inside] <= x1 + 1e-3).all()
    assert (ys[inside] >= y0 - 1e-3).all() and (ys[inside] <= y1 + 1e-3).all()
    # Holes: points inside the bounds' interior with positive distance.
    core = (np.abs(xs - (x0 + x1) / 2) < 0.3 * (x1 - x0)) & (np.abs(ys - (y0 + y1) / 2) < 0.3 * (y1 - y0))
    assert (d[core] > 0.5).any()
    grad = max(np.abs(np.diff(d, axis=0)).max(), np.abs(np.diff(d, axis=1)).max()) / 0.25
    assert grad <= 1.0 + 1e-2, grad
