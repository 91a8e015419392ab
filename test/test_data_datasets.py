"""Dataset readers on tiny files written in each dataset's real on-disk format."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from smd_core.data import DataConfig, build_dataset, io
from smd_core.data.datasets import (
    KITTI2015Dataset,
    ListDataset,
    MiddleburyDataset,
    SceneFlowDataset,
    read_list_file,
)
from smd_core.data.synthetic.render import render_scene
from smd_core.data.unreal4k import UnrealStereo4KDataset, UnrealStereo4KQuarterDataset, detect_disparity_scale

RNG = np.random.default_rng(0)


def _img(h: int = 6, w: int = 10) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _disp(h: int = 6, w: int = 10) -> np.ndarray:
    return RNG.uniform(1.0, 20.0, (h, w)).astype(np.float32)


def _write_png(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def _check_frame(frame: dict, left: np.ndarray, right: np.ndarray, disp: np.ndarray, atol: float = 0.0) -> None:
    assert frame["left"].dtype == np.uint8 and frame["left"].shape == left.shape
    assert np.array_equal(frame["left"], left) and np.array_equal(frame["right"], right)
    assert frame["disp_left"].dtype == np.float32
    assert np.allclose(frame["disp_left"], disp, atol=atol)


# ----------------------------------------------------------------------------------------------------
# List files
# ----------------------------------------------------------------------------------------------------


def test_list_dataset_mixed_formats(tmp_path) -> None:
    left, right = _img(), _img()
    d = _disp()
    _write_png(tmp_path / "l.png", left)
    _write_png(tmp_path / "r.png", right)
    np.save(tmp_path / "d.npy", d)
    io.write_pfm(tmp_path / "d.pfm", d)
    io.write_kitti_disparity(tmp_path / "d16.png", d)
    np.save(tmp_path / "dr.npy", d + 1)
    (tmp_path / "sub").mkdir()
    lst = tmp_path / "sub" / "list.txt"
    # Paths relative to the list's folder; absolute paths allowed; comments and blank lines ignored.
    lst.write_text(
        "# left right disp_left disp_right\n"
        "../l.png ../r.png ../d.npy ../dr.npy\n\n"
        f"{tmp_path / 'l.png'} ../r.png ../d.pfm ../dr.npy  # absolute\n"
        "../l.png ../r.png ../d16.png ../dr.npy\n"
    )
    ds = ListDataset(lst)
    assert len(ds) == 3 and ds.has_right_disparity
    for i in range(3):
        f = ds[i]
        _check_frame(f, left, right, d, atol=1 / 512 if i == 2 else 0.0)
        assert np.array_equal(f["disp_right"], d + 1)
    assert ds[0]["name"] == "l"
    # Three columns: no right disparity; `root` replaces the list's folder as base.
    lst3 = tmp_path / "three.txt"
    lst3.write_text("l.png r.png d.npy\n")
    ds3 = ListDataset(lst3, root=tmp_path)
    assert not ds3.has_right_disparity and "disp_right" not in ds3[0]
    assert len(ListDataset(lst, limit=2)) == 2
    lazy = ds.frame(0, lazy=True)
    assert isinstance(lazy["disp_left"], np.memmap)


def test_list_dataset_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_list_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no entries"):
        read_list_file(tmp_path / "empty.txt")
    (tmp_path / "cols.txt").write_text("a b\n")
    with pytest.raises(ValueError, match="cols.txt:1"):
        read_list_file(tmp_path / "cols.txt")
    (tmp_path / "gone.txt").write_text("a.png b.png c.npy\n")
    with pytest.raises(FileNotFoundError, match="a.png"):
        read_list_file(tmp_path / "gone.txt")
    # Image and disparity of different sizes are reported when read.
    _write_png(tmp_path / "l.png", _img(6, 10))
    _write_png(tmp_path / "r.png", _img(6, 10))
    np.save(tmp_path / "d.npy", _disp(5, 10))
    (tmp_path / "size.txt").write_text("l.png r.png d.npy\n")
    with pytest.raises(ValueError, match="size"):
        ListDataset(tmp_path / "size.txt")[0]
    with pytest.raises(ValueError):
        ListDataset(tmp_path / "size.txt", limit=-1)


# ----------------------------------------------------------------------------------------------------
# KITTI
# ----------------------------------------------------------------------------------------------------


def test_kitti2015(tmp_path) -> None:
    frames = []
    for i in range(2):
        left, right, d = _img(), _img(), _disp()
        d[0, :3] = 0  # KITTI marks missing ground truth with 0
        name = f"{i:06d}_10.png"
        _write_png(tmp_path / "training" / "image_2" / name, left)
        _write_png(tmp_path / "training" / "image_3" / name, right)
        io.write_kitti_disparity(tmp_path / "training" / "disp_occ_0" / name, d)
        io.write_kitti_disparity(tmp_path / "training" / "disp_noc_0" / name, d * (RNG.random(d.shape) > 0.5))
        # The second frame of each sequence has no ground truth and must be skipped.
        _write_png(tmp_path / "training" / "image_2" / f"{i:06d}_11.png", left)
        frames.append((left, right, d))
    ds = KITTI2015Dataset(tmp_path)
    assert len(ds) == 2 and not ds.has_right_disparity
    for (left, right, d), i in zip(frames, range(2), strict=True):
        f = ds[i]
        _check_frame(f, left, right, d, atol=1 / 512)
        assert (f["disp_left"][0, :3] == 0).all()
        assert f["name"] == f"{i:06d}_10"
    noc = KITTI2015Dataset(tmp_path / "training", split="", disparity="noc")
    assert (noc[0]["disp_left"] == 0).sum() > (ds[0]["disp_left"] == 0).sum()
    cfg = DataConfig(kind="kitti2015", root=str(tmp_path), limit=1)
    assert len(build_dataset(cfg, train=False)) == 1
    with pytest.raises(ValueError):
        KITTI2015Dataset(tmp_path, disparity="all")
    with pytest.raises(FileNotFoundError, match="image_2"):
        KITTI2015Dataset(tmp_path / "nowhere")
    (tmp_path / "testing" / "image_2").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="ground-truth"):
        KITTI2015Dataset(tmp_path, split="testing")
    (tmp_path / "training" / "image_3" / "000001_10.png").unlink()
    with pytest.raises(FileNotFoundError, match="000001_10"):
        KITTI2015Dataset(tmp_path)


def test_kitti2012_layout(tmp_path) -> None:
    left, right, d = _img(), _img(), _disp()
    _write_png(tmp_path / "colored_0" / "000007_10.png", left)
    _write_png(tmp_path / "colored_1" / "000007_10.png", right)
    io.write_kitti_disparity(tmp_path / "disp_occ" / "000007_10.png", d)
    ds = KITTI2015Dataset(tmp_path)
    _check_frame(ds[0], left, right, d, atol=1 / 512)


# ----------------------------------------------------------------------------------------------------
# Middlebury
# ----------------------------------------------------------------------------------------------------


def test_middlebury(tmp_path) -> None:
    scenes = {}
    for name, gt_name, with_right in (("Adirondack-perfect", "disp0.pfm", True), ("Motorcycle", "disp0GT.pfm", False)):
        left, right, d = _img(8, 12), _img(8, 12), _disp(8, 12)
        d_file = d.copy()
        d_file[2, 3] = np.inf  # Middlebury's invalid marker
        _write_png(tmp_path / name / "im0.png", left)
        _write_png(tmp_path / name / "im1.png", right)
        io.write_pfm(tmp_path / name / gt_name, d_file)
        if with_right:
            io.write_pfm(tmp_path / name / "disp1.pfm", d_file + 1)
        d[2, 3] = 0
        scenes[name] = (left, right, d)
    (tmp_path / "NoGT").mkdir()
    _write_png(tmp_path / "NoGT" / "im0.png", _img())  # test scene without GT: skipped
    ds = MiddleburyDataset(tmp_path)
    assert [e.name for e in ds.entries] == ["Adirondack-perfect", "Motorcycle"]
    assert not ds.has_right_disparity  # not every scene has disp1
    for i, (left, right, d) in enumerate(scenes.values()):
        _check_frame(ds[i], left, right, d)
    one = MiddleburyDataset(tmp_path / "Adirondack-perfect")
    assert one.has_right_disparity and one[0]["disp_right"][2, 3] == 0
    with pytest.raises(FileNotFoundError):
        MiddleburyDataset(tmp_path / "NoGT")
    with pytest.raises(FileNotFoundError):
        MiddleburyDataset(tmp_path / "missing")


# ----------------------------------------------------------------------------------------------------
# SceneFlow
# ----------------------------------------------------------------------------------------------------


def _sceneflow_frame(root, rel: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    left, right, d = _img(), _img(), _disp()
    _write_png(root / "frames_cleanpass" / rel / "left" / f"{name}.png", left)
    _write_png(root / "frames_cleanpass" / rel / "right" / f"{name}.png", right)
    io.write_pfm(root / "disparity" / rel / "left" / f"{name}.pfm", d)
    io.write_pfm(root / "disparity" / rel / "right" / f"{name}.pfm", d + 2)
    return left, right, d


def test_sceneflow(tmp_path) -> None:
    a = _sceneflow_frame(tmp_path, "TRAIN/A/0000", "0006")
    b = _sceneflow_frame(tmp_path, "TRAIN/B/0001", "0007")
    c = _sceneflow_frame(tmp_path, "TEST/A/0000", "0006")
    ds = SceneFlowDataset(tmp_path)
    assert len(ds) == 3 and ds.has_right_disparity
    names = [e.name for e in ds.entries]
    assert names == ["frames_cleanpass/TEST/A/0000/left/0006", "frames_cleanpass/TRAIN/A/0000/left/0006",
                     "frames_cleanpass/TRAIN/B/0001/left/0007"]
    train = SceneFlowDataset(tmp_path, split="TRAIN")
    assert len(train) == 2
    for frame, (left, right, d) in zip((train[0], train[1]), (a, b), strict=True):
        _check_frame(frame, left, right, d)
        assert np.array_equal(frame["disp_right"], d + 2)
    _check_frame(SceneFlowDataset(tmp_path, split="TEST")[0], *c)
    # Monkaa-style flat layout and a missing right disparity.
    _sceneflow_frame(tmp_path / "monkaa", "a_rain_of_stones_x2", "0000")
    (tmp_path / "monkaa" / "disparity" / "a_rain_of_stones_x2" / "right" / "0000.pfm").unlink()
    monkaa = SceneFlowDataset(tmp_path / "monkaa")
    assert len(monkaa) == 1 and not monkaa.has_right_disparity
    with pytest.raises(FileNotFoundError, match="frames_finalpass"):
        SceneFlowDataset(tmp_path / "monkaa", pass_name="final")
    with pytest.raises(ValueError):
        SceneFlowDataset(tmp_path, pass_name="dirty")
    with pytest.raises(FileNotFoundError):
        SceneFlowDataset(tmp_path / "missing")
    (tmp_path / "disparity" / "TEST" / "A" / "0000" / "left" / "0006.pfm").unlink()
    with pytest.raises(FileNotFoundError, match="0006.pfm"):
        SceneFlowDataset(tmp_path, split="TEST")


# ----------------------------------------------------------------------------------------------------
# UnrealStereo4K
# ----------------------------------------------------------------------------------------------------


def _unreal_frame(root, scene: str, idx: str, *, raw: bool, h: int = 9, w: int = 16):
    left, right, d = _img(h, w), _img(h, w), _disp(h, w) * 4  # disparities at full (4K) pixel scale
    for view, img in (("Image0", left), ("Image1", right)):
        path = root / scene / view / f"{idx}.png"
        if raw:
            path.parent.mkdir(parents=True, exist_ok=True)
            img.tofile(path.with_suffix(".raw"))
        else:  # the release's 4-channel PNGs
            _write_png(path, np.dstack([img, np.full((h, w), 255, np.uint8)]))
    (root / scene / "Disp0").mkdir(parents=True, exist_ok=True)
    (root / scene / "Disp1").mkdir(parents=True, exist_ok=True)
    np.save(root / scene / "Disp0" / f"{idx}.npy", d)
    np.save(root / scene / "Disp1" / f"{idx}.npy", d + 1)
    return left, right, d


def test_unreal4k_png_raw_and_split_file(tmp_path) -> None:
    a = _unreal_frame(tmp_path, "00000", "00000", raw=False)
    b = _unreal_frame(tmp_path, "00000", "00001", raw=False)
    c = _unreal_frame(tmp_path, "00001", "00000", raw=True)
    ds = UnrealStereo4KDataset(tmp_path)
    assert [e.name for e in ds.entries] == ["00000/00000", "00000/00001", "00001/00000"]
    assert ds.has_right_disparity
    for i, (left, right, d) in enumerate((a, b, c)):
        _check_frame(ds[i], left, right, d)
        assert np.array_equal(ds[i]["disp_right"], d + 1)
    lazy = ds.frame(2, lazy=True)
    assert isinstance(lazy["left"], np.memmap) and isinstance(lazy["disp_left"], np.memmap)
    # Official 4-column split file, relative to root; the listed .png of scene 00001 exists as .raw only.
    split = tmp_path / "test.txt"
    split.write_text("00001/Image0/00000.png 00001/Image1/00000.png 00001/Disp0/00000.npy 00001/Disp1/00000.npy\n"
                     "00000/Image0/00001.png 00000/Image1/00001.png 00000/Disp0/00001.npy 00000/Disp1/00001.npy\n")
    sd = UnrealStereo4KDataset(tmp_path, split_file=split)
    assert [e.name for e in sd.entries] == ["00001/00000", "00000/00001"]
    assert sd.entries[0].left.suffix == ".raw"
    _check_frame(sd[0], *c)
    cfg = DataConfig(kind="unreal4k", root=str(tmp_path), split=str(split))
    assert len(build_dataset(cfg, train=False)) == 2
    # Explicit raw shape for frames that are not 16:9.
    _unreal_frame(tmp_path / "odd", "00000", "00000", raw=True, h=6, w=10)
    with pytest.raises(ValueError, match="16:9"):
        UnrealStereo4KDataset(tmp_path / "odd")[0]
    assert UnrealStereo4KDataset(tmp_path / "odd", raw_shape=(6, 10))[0]["left"].shape == (6, 10, 3)
    bad = tmp_path / "bad.txt"
    bad.write_text("00000/Image0/00000.png 00000/Image1/00000.png\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        UnrealStereo4KDataset(tmp_path, split_file=bad)
    bad.write_text("00000/Image0/00009.png 00000/Image1/00009.png 00000/Disp0/00009.npy\n")
    with pytest.raises(FileNotFoundError, match="00009"):
        UnrealStereo4KDataset(tmp_path, split_file=bad)
    bad.write_text("00000/Image0/00000.png 00000/Image1/00000.png 00000/Disp0/00009.npy\n")
    with pytest.raises(FileNotFoundError, match="00009.npy"):
        UnrealStereo4KDataset(tmp_path, split_file=bad)
    bad.write_text("00000/Image0/00000.png 00000/Image1/00000.png 00000/Disp0/00000.npy 00000/Disp1/00009.npy\n")
    with pytest.raises(FileNotFoundError, match="00009.npy"):
        UnrealStereo4KDataset(tmp_path, split_file=bad)
    with pytest.raises(FileNotFoundError):
        UnrealStereo4KDataset(tmp_path, split_file=tmp_path / "none.txt")
    with pytest.raises(FileNotFoundError):
        UnrealStereo4KDataset(tmp_path / "nowhere")
    (tmp_path / "00000" / "Disp0" / "00000.npy").unlink()
    with pytest.raises(FileNotFoundError, match="Disp0"):
        UnrealStereo4KDataset(tmp_path)


def _quarter_set(root, variant: str, n: int = 2) -> list:
    """Quarter-resolution release lookalikes: 36x64 JPGs + NPY disparities in one of three encodings."""
    truths = []
    for i in range(n):
        f = render_scene((9, i), height=36, width=64, max_disparity=10.0, min_disparity=2.0)
        name = f"{i:05d}"
        for view, img in (("Image0", f.left), ("Image1", f.right)):
            (root / "00000" / view).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "00000" / view / f"{name}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        for view, d in (("Disp0", f.disp_left), ("Disp1", f.disp_right)):
            (root / "00000" / view).mkdir(parents=True, exist_ok=True)
            if variant == "quarter":  # quarter grid, quarter-resolution pixels
                stored = d
            elif variant == "full_values":  # quarter grid, but 4K pixel values
                stored = d * 4
            else:  # 4K grid and 4K values
                stored = cv2.resize(d * 4, (64 * 4, 36 * 4), interpolation=cv2.INTER_NEAREST)
            np.save(root / "00000" / view / f"{name}.npy", stored.astype(np.float32))
        truths.append(f)
    return truths


@pytest.mark.parametrize("variant,scale", [("quarter", 1.0), ("full_values", 0.25), ("full_grid", 0.25)])
def test_unreal4k_quarter_detects_disparity_encoding(tmp_path, variant: str, scale: float) -> None:
    truths = _quarter_set(tmp_path, variant)
    ds = UnrealStereo4KQuarterDataset(tmp_path)
    assert ds.disparity_scale == scale
    assert len(ds) == 2 and ds.has_right_disparity
    for i, truth in enumerate(truths):
        f = ds[i]
        assert f["left"].shape == (36, 64, 3) and f["disp_left"].shape == (36, 64)
        assert np.allclose(f["disp_left"], truth.disp_left, atol=1e-5)
        assert np.allclose(f["disp_right"], truth.disp_right, atol=1e-5)
    # An explicit scale wins over detection.
    forced = UnrealStereo4KQuarterDataset(tmp_path, disparity_scale=0.5)
    assert forced.disparity_scale == 0.5
    cfg = DataConfig(kind="unreal4k_quarter", root=str(tmp_path), disparity_scale=0.5)
    assert build_dataset(cfg, train=False).disparity_scale == 0.5
    with pytest.raises(ValueError):
        UnrealStereo4KQuarterDataset(tmp_path, disparity_scale=-1.0)


def test_quarter_rejects_non_integer_grid_ratio(tmp_path) -> None:
    _quarter_set(tmp_path, "quarter", n=1)
    np.save(tmp_path / "00000" / "Disp0" / "00000.npy", np.ones((50, 90), np.float32))
    with pytest.raises(ValueError, match="integer multiple"):
        UnrealStereo4KQuarterDataset(tmp_path)


def test_detect_disparity_scale_direct() -> None:
    f = render_scene(4, height=48, width=80, max_disparity=12.0, min_disparity=3.0)
    assert detect_disparity_scale(f.left, f.right, f.disp_left, (1.0, 0.25)) == 1.0
    assert detect_disparity_scale(f.left, f.right, f.disp_left * 4, (1.0, 0.25)) == 0.25
    assert detect_disparity_scale(f.left, f.right, f.disp_left / 2, (0.5, 1.0, 2.0), max_points=500) == 2.0
    with pytest.raises(ValueError):
        detect_disparity_scale(f.left, f.right, f.disp_left, ())
    with pytest.raises(ValueError, match="grid"):
        detect_disparity_scale(f.left, f.right, f.disp_left[:10], (1.0,))
    with pytest.raises(ValueError, match="no valid"):
        detect_disparity_scale(f.left, f.right, np.zeros_like(f.disp_left), (1.0,))
