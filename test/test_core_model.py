"""SMDNet, checkpoint I/O and the dense Predictor, on a tiny stand-in backbone (fast, no fixtures needed)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import smd_core
from smd_core.config import Deployment, ModelConfig
from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE
from smd_core.infer.confidence import EDGE_GAP_WEIGHT
from smd_core.infer.dense import DensePredictor, fill_speckles, normalize_coords
from smd_core.infer.torch_backend import Predictor, single_threaded_workers
from smd_core.model import backbones
from smd_core.model.head import SMDHead, flatten_maps, gather_bilinear, gather_grid, normalize_points
from smd_core.model.network import SMDNet, load_model, save_checkpoint


def sample_maps(maps: list[torch.Tensor], grid: torch.Tensor) -> torch.Tensor:
    """The reference's sampling: F.grid_sample (bilinear, zeros, align_corners=False) of each map, concatenated."""
    return torch.cat([F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
                      for m in maps], dim=1).squeeze(2)


class TinyBackbone(nn.Module):
    """Two maps at 1/4 and 1/8 resolution, enough to exercise sampling and padding."""

    def __init__(self, *, max_disp: int = 64) -> None:
        super().__init__()
        self.a = nn.Conv2d(6, 8, 4, stride=4)
        self.b = nn.Conv2d(6, 4, 8, stride=8)
        self.feature_channels = 12

    def forward(self, left, right):
        x = torch.cat([left, right], 1) / 255.0
        return [self.a(x), self.b(x)]


@pytest.fixture
def tiny(monkeypatch):
    module = type("M", (), {"TinyBackbone": TinyBackbone})
    monkeypatch.setitem(backbones._REGISTRY, "light", ("tiny_test_module", "TinyBackbone"))
    monkeypatch.setattr(backbones.importlib, "import_module", lambda name: module)
    torch.manual_seed(0)
    return ModelConfig(backbone="light", output="bimodal", max_disp=64, head_widths=(32, 16))


def pair(h=50, w=70, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8), rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_head_layer_names_and_points_major_path_equivalence():
    head = SMDHead(96, (1024, 512, 256, 128), 5)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["conv0.weight"] == (1024, 96, 1) and shapes["conv1.weight"] == (512, 1120, 1)
    assert shapes["conv4.weight"] == (5, 224, 1)
    maps = [torch.randn(2, 64, 8, 16), torch.randn(2, 32, 4, 8)]
    pts = torch.rand(2, 2, 300) * torch.tensor([[[63.0], [31.0]]])
    grid = normalize_points(pts, (32, 64))
    direct = head(sample_maps(maps, grid))
    gathered = gather_bilinear(flatten_maps(maps), grid)  # (B, N, C)
    assert torch.allclose(gathered.transpose(1, 2), sample_maps(maps, grid), atol=1e-5)
    fast = head.forward_points(gathered).transpose(1, 2)
    assert torch.allclose(direct, fast, atol=1e-4)
    # Points outside the map read zeros, as grid_sample's zero padding.
    edge = torch.tensor([[[-0.7, 63.5, 30.0], [5.0, 31.2, -0.6]]]).repeat(2, 1, 1)
    g = normalize_points(edge, (32, 64))
    assert torch.allclose(gather_bilinear(flatten_maps(maps), g).transpose(1, 2), sample_maps(maps, g), atol=1e-5)


def test_grid_sampling_equals_pointwise_sampling():
    """gather_grid on columns x rows = gather_bilinear on every (x, y) of that grid, borders and outside included."""
    maps = [torch.randn(2, 24, 8, 16), torch.randn(2, 8, 16, 32)]
    xs = torch.tensor([-3.0, 0.0, 0.4, 17.5, 62.9, 63.0, 70.0])
    ys = torch.tensor([0.0, 0.3, 15.5, 31.0, 31.7, -1.0])
    size = (32, 64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)]).unsqueeze(0).repeat(2, 1, 1)
    flat = flatten_maps(maps)
    pointwise = gather_bilinear(flat, normalize_points(pts, size))
    grid = gather_grid(flat, normalize_coords(xs, size[1]), normalize_coords(ys, size[0]))
    assert grid.shape == pointwise.shape == (2, len(ys) * len(xs), 32)
    assert torch.allclose(grid, pointwise, atol=1e-5)
    with pytest.raises(ValueError, match="1-D"):
        gather_grid(flat, xs[None], ys)
    with pytest.raises(ValueError, match="larger than 1"):
        normalize_coords(xs, 1)


def test_normalize_points_follows_reference_and_validates():
    pts = torch.tensor([[[0.0, 9.0, 20.0], [0.0, 4.0, -3.0]]])
    grid = normalize_points(pts, (5, 10))
    assert grid.shape == (1, 1, 3, 2)
    assert torch.allclose(grid[0, 0], torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]]))
    with pytest.raises(ValueError, match="points"):
        normalize_points(torch.zeros(1, 3, 4), (5, 10))
    with pytest.raises(ValueError, match="output_size"):
        normalize_points(pts, (1, 10))


def test_checkpoint_round_trip_rebuilds_from_file(tiny, tmp_path):
    model = SMDNet(tiny)
    path = save_checkpoint(tmp_path / "m.pt", model, step=3)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file
    loaded = load_model(path)
    assert loaded.config == tiny and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    with pytest.raises(ValueError, match="output='standard' was requested"):
        load_model(path, output="standard")


def test_bad_checkpoints_raise_errors_naming_the_file(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="corrupt.pt.*not a readable"):
        load_model(bad)
    path = save_checkpoint(tmp_path / "m.pt", SMDNet(tiny))
    data = torch.load(path, weights_only=True)
    data["state_dict"]["mlp.conv0.weight"] = torch.zeros(3, 3, 1)
    del data["state_dict"]["mlp.conv1.bias"]
    data["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match=r"mismatch.pt.*missing keys \[mlp.conv1.bias\].*unexpected.*shape"):
        load_model(tmp_path / "mismatch.pt")
    torch.save({"state_dict": {"foo": torch.zeros(1)}}, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match="unknown.pt: cannot tell the backbone"):
        load_model(tmp_path / "unknown.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a dict"):
        load_model(tmp_path / "list.pt")
    torch.save({"epoch": 1}, tmp_path / "nosd.pt")
    with pytest.raises(ValueError, match="no state_dict"):
        load_model(tmp_path / "nosd.pt")


@pytest.mark.parametrize("size", [(50, 70), (64, 128), (77, 131), (100, 140), (33, 41)])
def test_predictor_any_output_size(tiny, size):
    model = SMDNet(tiny)
    left, right = pair()
    pred = Predictor(model, chunk_points=999).predict(left, right, output_size=size)
    assert pred.disparity.shape == size and pred.uncertainty.shape == size and pred.pi0.shape == size
    assert np.isfinite(pred.disparity).all() and (pred.disparity >= 0).all()
    assert pred.disparity_scale == pytest.approx(size[1] / 70)
    assert np.allclose(pred.pi0 + pred.pi1, 1.0)
    assert ((pred.disparity == pred.mu0) | (pred.disparity == pred.mu1)).all()


@pytest.mark.slow
def test_predictor_matches_pointwise_query_and_is_chunk_invariant(tiny):
    model = SMDNet(tiny).eval()
    left, right = pair(64, 64)
    a = Predictor(model, chunk_points=100_000).predict(left, right, scale=2.0)
    b = Predictor(model, chunk_points=517).predict(left, right, scale=2.0)
    assert np.allclose(a.disparity, b.disparity, atol=1e-3)
    c = Predictor(model, chunk_points=50).predict(left, right, scale=2.0)  # blocks of a row's columns
    assert np.allclose(a.disparity, c.disparity, atol=1e-3) and np.allclose(a.uncertainty, c.uncertainty, atol=1e-3)
    # Direct query at the same pixel positions (no padding at 64x64): values / disparity_scale.
    t = torch.from_numpy(np.stack([left, right])).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        feats = model.encode(t[:1], t[1:])
        ys, xs = np.mgrid[0:128, 0:128]
        pts = torch.tensor(np.stack([xs.ravel(), ys.ravel()]), dtype=torch.float32)[None]
        ref = model.query(feats, pts, (128, 128)).disparity[0].numpy().reshape(128, 128)
    assert np.allclose(a.disparity / 2.0, ref, atol=1e-3)


def test_row_blocks_on_single_threaded_workers_equal_one_thread(tiny):
    """With 2 torch threads on the CPU the row blocks run concurrently on 2 single-threaded workers: the same
    maps as one thread; the caller's thread count, and the count threads started later take, stay as they were."""
    model = SMDNet(tiny).eval()
    left, right = pair(64, 96)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        predictor = Predictor(model, chunk_points=1000)
        assert predictor._query_workers() == 1
        one = predictor.predict(left, right, scale=1.5)
        torch.set_num_threads(2)
        assert predictor._query_workers() == 2
        two = predictor.predict(left, right, scale=1.5)
        assert torch.get_num_threads() == 2
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [2]
        workers = single_threaded_workers(2)
        assert set(workers.map(lambda _: torch.get_num_threads(), range(4))) == {1}
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(two.disparity, one.disparity, atol=1e-4)
    np.testing.assert_allclose(two.uncertainty, one.uncertainty, atol=1e-4)


class _Blocks(DensePredictor):
    """A backend that records its blocks (and answers each pixel with its row)."""

    config = ModelConfig(max_disp=64)
    deployment = Deployment()

    def __init__(self, workers: int, chunk_points: int) -> None:
        super().__init__(chunk_points=chunk_points, pad_multiple=1, uncertainty_kind="edge")
        self.workers, self.blocks = workers, []

    def _query_workers(self) -> int:
        return self.workers

    def _encode(self, pair):
        return None

    def _query_block(self, features, xs, ys, grid_size):
        self.blocks.append((int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1))
        rows = np.repeat(ys, len(xs)).astype(np.float32)
        return {"disparity": rows, "uncertainty": np.zeros_like(rows)}


@pytest.mark.parametrize(("workers", "chunk_points", "rows"), [(1, 250, [25] * 4), (3, 250, [17] * 5 + [15]),
                                                               (2, 10_000, [50, 50]), (2, 5, [1] * 100)])
def test_row_blocks_are_balanced_over_the_workers(workers, chunk_points, rows):
    backend = _Blocks(workers, chunk_points)
    pred = backend.predict(*pair(100, 10))
    assert [r1 - r0 for r0, r1, c0, _ in sorted(backend.blocks) if c0 == 0] == rows  # workers finish in any order
    np.testing.assert_array_equal(pred.disparity, np.repeat(np.arange(100, dtype=np.float32)[:, None], 10, 1))


def test_predictor_padding_matches_reference_depad(tiny):
    """Non-multiple-of-64 input: our output equals the padded-grid prediction with the padding cut off."""
    model = SMDNet(tiny).eval()
    left, right = pair(50, 70)
    pred = Predictor(model).predict(left, right)
    padded = [np.pad(im, ((14, 0), (0, 58), (0, 0)), mode="edge") for im in (left, right)]
    full = Predictor(model).predict(*padded)
    assert np.allclose(pred.disparity, full.disparity[14:, :70], atol=1e-4)


def test_predictor_input_validation(tiny):
    p = Predictor(SMDNet(tiny))
    left, right = pair()
    with pytest.raises(ValueError, match="differ in size"):
        p.predict(left, right[:-1])
    with pytest.raises(ValueError, match="uint8"):
        p.predict(left.astype(np.float32), right)
    with pytest.raises(ValueError, match="shape"):
        p.predict(left[..., :2], right[..., :2])
    with pytest.raises(ValueError, match="not both"):
        p.predict(left, right, output_size=(10, 10), scale=2.0)
    with pytest.raises(ValueError, match="scale"):
        p.predict(left, right, scale=float("nan"))
    with pytest.raises(ValueError, match="input_scale"):
        p.predict(left, right, input_scale=0)
    with pytest.raises(ValueError, match="at least 2x2"):
        p.predict(left, right, output_size=(1, 5))
    with pytest.raises(ValueError, match="chunk_points"):
        Predictor(SMDNet(tiny), chunk_points=0)
    gray = p.predict(left[..., 0], right[..., 0], input_scale=0.5)
    assert gray.disparity.shape == left.shape[:2]


def test_public_api_round_trip(tmp_path):
    """The documented top-level names are the implementations and work together: build, save, load, predict."""
    from smd_core.infer import torch_backend as inference
    from smd_core.model import network

    assert (smd_core.load_model, smd_core.build_model, smd_core.save_checkpoint, smd_core.Predictor) == (
        network.load_model, network.build_model, network.save_checkpoint, inference.Predictor)
    assert set(smd_core.__all__) >= {"load_model", "build_model", "save_checkpoint", "Predictor", "ModelConfig"}
    torch.manual_seed(0)
    cfg = smd_core.ModelConfig(backbone="light", output="bimodal", max_disp=32, head_widths=(8,),
                               backbone_options={"widths": [8, 8], "groups": 4, "agg_widths": [8, 8, 8],
                                                 "image_features": [4, 0]})
    path = smd_core.save_checkpoint(tmp_path / "m.pth", smd_core.build_model(cfg))
    model = smd_core.load_model(path)
    assert model.config == cfg and not model.training
    left, right = pair(64, 96)
    dense = smd_core.Predictor(model).predict(left, right)
    assert isinstance(dense, smd_core.DensePrediction) and dense.disparity.shape == (64, 96)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")
def test_predictor_on_cuda_matches_cpu(tiny):
    model = SMDNet(tiny).eval()
    left, right = pair(64, 96)
    cpu = Predictor(model, device="cpu").predict(left, right)
    gpu = Predictor(model, device="cuda").predict(left, right)
    assert np.abs(cpu.disparity - gpu.disparity).max() < 0.01
    half = Predictor(model, device="cuda", autocast_dtype=torch.float16).predict(left, right)
    assert np.isfinite(half.disparity).all()


def test_deployment_is_stored_in_the_checkpoint_and_defaults_by_model(tmp_path) -> None:
    from smd_core.config import Deployment
    from smd_core.infer.confidence import CLOUD_FLOOR_FACTOR, PSEUDO_FLOOR_FACTOR, uncertainty_floor
    from smd_core.model.network import deployment_for

    guided = ModelConfig(backbone="sgbm_guided", output="bimodal", max_disp=128, head_widths=(8,),
                         backbone_options={"widths": [8, 8], "features": [4, 4, 4]})
    auto = deployment_for(guided)
    floor = uncertainty_floor(128)
    assert auto.cloud_max_uncertainty == pytest.approx(CLOUD_FLOOR_FACTOR * floor) and auto.cpu_bfloat16
    assert auto.pseudo_max_uncertainty == pytest.approx(PSEUDO_FLOOR_FACTOR * floor)
    assert auto.speckle_size == SPECKLE_SIZE
    published = deployment_for(ModelConfig(backbone="psmnet", output="bimodal", max_disp=256))
    assert published == Deployment(0.0, False, PSEUDO_FLOOR_FACTOR * uncertainty_floor(256))
    l1 = deployment_for(ModelConfig(backbone="sgbm_guided", output="standard", max_disp=128))
    assert l1.pseudo_max_uncertainty == 0 == l1.cloud_max_uncertainty == l1.speckle_size
    # What a checkpoint stores is what loads, whatever the rule says.
    own = Deployment(cloud_max_uncertainty=5.0, cpu_bfloat16=False, pseudo_max_uncertainty=2.0)
    path = save_checkpoint(tmp_path / "m.pth", SMDNet(guided, own))
    assert load_model(path).deployment == own
    # A file written before deployments existed gets the rule's values.
    data = torch.load(path, weights_only=True)
    del data["deployment"]
    torch.save(data, tmp_path / "old.pth")
    assert load_model(tmp_path / "old.pth").deployment == auto
    data["deployment"] = {"cloud_max_uncertainty": -1.0}
    torch.save(data, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth: invalid deployment: deployment thresholds must be >= 0"):
        load_model(tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="speckle_size must be >= 0 px, got -1"):
        Deployment(speckle_size=-1)


def test_fill_speckles_refills_islands_from_the_background_and_marks_them_uncertain() -> None:
    disp = np.full((30, 40), 10.0, np.float32)
    disp[:, 20:] = 30.0  # foreground on the right: the island sits on the background's side of the edge
    disp[10:13, 14:17] = 22.0  # a 9-pixel island of neither surface
    unc = np.full((30, 40), 1.0, np.float32)
    filled, u = fill_speckles(disp, unc, max_size=20, max_diff=2.0)
    assert (filled[10:13, 14:17] == 10.0).all() and np.array_equal(np.delete(filled, np.s_[10:13], 0),
                                                                   np.delete(disp, np.s_[10:13], 0))
    np.testing.assert_allclose(u[10:13, 14:17], 1.0 + EDGE_GAP_WEIGHT * 12.0)
    assert (u[disp == filled] == 1.0).all()
    # Nothing to refill: the very arrays come back.
    clean = np.full((30, 40), 10.0, np.float32)
    out = fill_speckles(clean, unc, max_size=20, max_diff=2.0)
    assert out[0] is clean and out[1] is unc


def test_predictor_refills_speckles_as_its_deployment_says() -> None:
    from smd_core.config import Deployment
    from smd_core.eval.data import load_frames
    from smd_core.weights import default_checkpoint

    model = load_model(default_checkpoint())
    frame = load_frames("motorcycle")[0]
    left, right = frame["left"][150:310, 200:456], frame["right"][150:310, 200:456]  # the front wheel's spokes
    model.deployment = Deployment(speckle_size=0)
    raw = Predictor(model).predict(left, right, scale=2.0)
    model.deployment = Deployment(speckle_size=SPECKLE_SIZE)
    refilled = Predictor(model).predict(left, right, scale=2.0)
    # Sizes count network-input pixels: x4 on a grid twice as fine; steps scale with the disparity.
    want = fill_speckles(raw.disparity, raw.uncertainty, max_size=4 * SPECKLE_SIZE, max_diff=2 * SPECKLE_RANGE_PX)
    assert not np.array_equal(want[0], raw.disparity)
    np.testing.assert_array_equal(refilled.disparity, want[0])
    np.testing.assert_array_equal(refilled.uncertainty, want[1])
