"""Parity with the SMD-Nets reference on the published checkpoint layout, for every fixture in ../shared/parity.

Each fixture holds the reference implementation's outputs for a 256 x 512 Middlebury crop at 4096 sub-pixel
points and over the dense grid. One encode per fixture (~10 s on 2 CPU cores) is shared by the point and the
dense comparisons. Sizes that are not multiples of 16 (which the fixtures lack) are checked against the
reference forward pass restated step by step in parity_walk.py, on the fixtures' weights. Backbone-specific
unit tests live in test_psmnet.py and test_hsmnet.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import load_parity_case
from parity_walk import FORWARD, head_raw

import smd_core
from smd_core.model.backbones.hsmnet import HSMNet
from smd_core.model.backbones.psmnet import PSMNet
from smd_core.model.mixture import activate

FIELDS = ("disparity", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1")  # = pred0 .. pred6
DISP_TOL_PX = 0.01
PROB_TOL = 1e-3  # sigma (units of max_disp) and pi
SELECTED_AGREEMENT = 0.995  # the selected mode may flip where pi0/sigma0 ~ pi1/sigma1


def psm_shapes(h: int, w: int, max_disp: int) -> list[tuple[int, ...]]:
    return [(1, max_disp // 4, h // 4, w // 4), (1, 32, h // 4, w // 4)]


def hsm_shapes(h: int, w: int, max_disp: int) -> list[tuple[int, ...]]:
    return [(1, max_disp // 16, h // 8, w // 8), (1, 32, h // 2, w // 2), (1, 64, h // 8, w // 8),
            (1, 128, h // 16, w // 16), (1, 128, h // 32, w // 32)]


# case, backbone class, feature maps, other backbone, odd crop (not a multiple of 64) for padding + 2x output
CASES = {
    "psm_bimodal_s1": (PSMNet, psm_shapes, "hsmnet", (100, 150)),
    "hsm_bimodal_s1": (HSMNet, hsm_shapes, "psmnet", (60, 100)),
}


def as_input(image_bgr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (1, 3, H, W) float32 0..255, the reference's network input."""
    return torch.from_numpy(image_bgr).permute(2, 0, 1).unsqueeze(0).float()


@pytest.fixture(scope="module", params=sorted(CASES))
def parity_run(request):
    """Load the checkpoint, run the dense Predictor once and keep the features its encode produced."""
    ckpt, case = load_parity_case(request.param)
    model = smd_core.load_model(ckpt)
    seen: list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]] = []
    encode = model.encode

    def recording_encode(left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        features = encode(left, right)
        seen.append((left.clone(), right.clone(), features))
        return features

    model.encode = recording_encode  # instance attribute: shadows the method for this model only
    s = int(case["superres_factor"])
    dense = smd_core.Predictor(model).predict(case["left_bgr"], case["right_bgr"], scale=float(s))
    del model.encode
    assert len(seen) == 1
    return request.param, model, case, seen[0], dense


@pytest.mark.parametrize("name", sorted(CASES))
def test_checkpoint_keys_match_strictly(name):
    cls = CASES[name][0]
    ckpt, _ = load_parity_case(name)
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    backbone_sd = {k.removeprefix("stereo_network."): v for k, v in sd.items() if k.startswith("stereo_network.")}
    net = cls(max_disp=256)
    own = net.state_dict()
    assert set(own) == set(backbone_sd)
    assert all(own[k].shape == v.shape for k, v in backbone_sd.items())
    net.load_state_dict(backbone_sd, strict=True)
    assert net.feature_channels == sd["mlp.conv0.weight"].shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("spelling", [str.lower, str.upper, lambda s: s[:3].upper() + "Net"])
def test_load_model_with_explicit_backbone_name(name, spelling):
    cls, _, other, _ = CASES[name]
    ckpt, _ = load_parity_case(name)
    model = smd_core.load_model(ckpt, backbone=spelling(cls.__name__), output="bimodal", max_disp=256)
    assert isinstance(model.stereo_network, cls) and model.config.backbone == cls.__name__.lower()
    assert not model.training
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    assert set(own) == set(sd)
    assert all(torch.equal(own[k], sd[k]) for k in sd)
    with pytest.raises(ValueError, match=cls.__name__.lower()):
        smd_core.load_model(ckpt, backbone=other)


@pytest.mark.slow
def test_point_queries_match_reference(parity_run):
    name, model, case, (left, right, features), _ = parity_run
    # The Predictor fed the network exactly the reference input (256 x 512 needs no padding).
    assert torch.equal(left, as_input(case["left_bgr"])) and torch.equal(right, as_input(case["right_bgr"]))
    h, w = case["left_bgr"].shape[:2]
    assert [tuple(f.shape) for f in features] == CASES[name][1](h, w, 256)
    s = int(case["superres_factor"])
    with torch.inference_mode():
        pred = model.query(features, torch.from_numpy(case["points"]), (h * s, w * s))
    for i, field in enumerate(FIELDS):
        ours = getattr(pred, field)[0].numpy()
        err = np.abs(ours - case[f"pred{i}"][0, 0])
        if field == "disparity":
            agree = float((err <= DISP_TOL_PX).mean())
            assert agree >= SELECTED_AGREEMENT, f"selected disparity agrees on {agree:.2%} of points"
        else:
            tol = DISP_TOL_PX if field.startswith("mu") else PROB_TOL
            assert err.max() <= tol, f"{field}: max abs error {err.max():.3g} > {tol}"


@pytest.mark.slow
def test_dense_prediction_matches_reference(parity_run):
    _, _, case, _, dense = parity_run
    ref = case["full_disp"][0]
    assert dense.disparity.shape == ref.shape and dense.disparity.dtype == np.float32
    # Our disparity is in output-grid pixels; the reference's stays in input pixels.
    ours = dense.disparity / dense.disparity_scale
    agree = float((np.abs(ours - ref) <= DISP_TOL_PX).mean())
    assert agree >= SELECTED_AGREEMENT, f"dense disparity agrees on {agree:.2%} of pixels"
    assert np.isfinite(dense.uncertainty).all() and (dense.uncertainty > 0).all()


@pytest.mark.slow
def test_odd_size_and_superresolution(parity_run):
    """Not a multiple of 64 (padded by the Predictor) and a 2x output grid."""
    name, model, case, _, _ = parity_run
    h, w = CASES[name][3]
    left, right = case["left_bgr"][:h, :w], case["right_bgr"][:h, :w]
    dense = smd_core.Predictor(model, chunk_points=10_000).predict(left, right, scale=2.0)
    assert dense.disparity.shape == (2 * h, 2 * w) and dense.disparity_scale == 2.0
    for field in ("disparity", "uncertainty", "mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1"):
        value = getattr(dense, field)
        assert value.shape == (2 * h, 2 * w) and np.isfinite(value).all(), field
    assert (dense.disparity >= 0).all() and (dense.disparity <= 2 * model.config.max_disp).all()
    assert np.allclose(dense.pi0 + dense.pi1, 1.0, atol=1e-6)


# Sizes the reference runs on that no fixture covers: 256 x 591 (ceil(591/4) = 148, a multiple of 4, so
# PSMNet's hourglasses round-trip; 591 = 16 * 37 - 1) and 250 x 505 for HSMNet (ceil(side/8) = 32 x 64).
UNEVEN = [
    pytest.param("psm_bimodal_s1", (256, 591), marks=pytest.mark.slow),  # ~15 s: two PSMNet passes
    pytest.param("hsm_bimodal_s1", (250, 505), marks=pytest.mark.slow),  # ~12 s
]


def uneven_pair(case: dict[str, np.ndarray], h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixture's crop, widened by its mirror image where w > 512, cut to h x w; as network input."""
    def cut(image: np.ndarray) -> torch.Tensor:
        wide = np.concatenate([image, image[:, ::-1]], axis=1) if w > image.shape[1] else image
        return as_input(np.ascontiguousarray(wide[:h, :w]))

    return cut(case["left_bgr"]), cut(case["right_bgr"])


@pytest.mark.parametrize(("name", "size"), UNEVEN)
def test_uneven_size_matches_reference_walk(name, size):
    """encode + query at a size that is not a multiple of 16 compute what the reference computes there."""
    h, w = size
    ckpt, case = load_parity_case(name)
    model = smd_core.load_model(ckpt)
    left, right = uneven_pair(case, h, w)
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(1, 2, 4096, generator=gen) * torch.tensor([[[w - 1.0], [h - 1.0]]])
    points[0, :, :4] = torch.tensor([[0.0, w - 1.0, 0.0, w - 1.0], [0.0, 0.0, h - 1.0, h - 1.0]])  # corners
    with torch.inference_mode():
        ours = model.encode(left, right)
        ref = FORWARD[model.config.backbone](model.stereo_network, left, right)
        pred = model.query(ours, points, (h, w))
        ref_pred = activate(head_raw(model.mlp, ref, points, h, w), "bimodal", 256)
    assert [f.shape for f in ours] == [f.shape for f in ref]
    # Maps at 1/s have ceil(side / s) pixels: the strided convolutions round up.
    stride = 4 if name.startswith("psm") else 8
    assert ours[0].shape[-2:] == (-(-h // stride), -(-w // stride))
    for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
        err = float((a - b).abs().max())
        assert err <= 1e-5 * float(b.abs().max()), f"map {i} {tuple(a.shape)}: max abs error {err:.3g}"
    for field in FIELDS[1:]:
        err = (getattr(pred, field) - getattr(ref_pred, field)).abs().max()
        tol = DISP_TOL_PX if field.startswith("mu") else PROB_TOL
        assert err <= tol, f"{field}: max abs error {err:.3g} > {tol}"
    agree = float(((pred.disparity - ref_pred.disparity).abs() <= DISP_TOL_PX).float().mean())
    assert agree >= SELECTED_AGREEMENT


def test_uneven_size_walk_on_random_weights():
    """Fast-lane form of the check above: HSMNet at 121 x 185 (ceil(side/8) = 16 x 24) with random weights.

    (PSMNet cannot go this small in the reference: its 64 x 64 pooling branch needs ceil(side/4) >= 64.)
    """
    torch.manual_seed(0)
    model = smd_core.build_model(smd_core.ModelConfig(backbone="hsmnet", max_disp=32, head_widths=(16,))).eval()
    left, right = torch.rand(1, 3, 121, 185) * 255, torch.rand(1, 3, 121, 185) * 255
    points = torch.rand(1, 2, 500) * torch.tensor([[[184.0], [120.0]]])
    with torch.inference_mode():
        ours = model.encode(left, right)
        ref = FORWARD["hsmnet"](model.stereo_network, left, right)
        raw, _ = model.query_raw(ours, points, (121, 185))
        ref_raw = head_raw(model.mlp, ref, points, 121, 185)
    assert [f.shape for f in ours] == [f.shape for f in ref]
    for a, b in zip(ours, ref, strict=True):
        assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    assert torch.allclose(raw, ref_raw, rtol=1e-4, atol=1e-4 * float(ref_raw.abs().max()))
