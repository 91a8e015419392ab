"""`smd export` and the onnxruntime backend against PyTorch: the bundled models (dynamic sizes, parity on the
bundled recording and a synthetic scene), the published layouts on the parity fixtures, backend resolution and
the errors a user meets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from conftest import load_parity_case  # noqa: E402

from smd_core import classical, weights  # noqa: E402
from smd_core.infer.backend import load_predictor, model_config, resolve_model  # noqa: E402
from smd_core.infer.ort_backend import OnnxModel, OrtPredictor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DISP_TOL_PX = 0.01
AGREEMENT = 0.999  # of pixels within DISP_TOL_PX (the target)


@pytest.fixture(scope="module")
def frames():
    from smd_ros.demo import read_recording

    recorded = read_recording(REPO / "smd_ros" / "data" / "sample_stereo", 6)
    from smd_core.data.synthetic.render import render_scene

    scene = render_scene(11, height=203, width=301, max_disparity=40.0)
    pairs = [(f["left"], f["right"]) for f in recorded[::5]]
    try:  # a real scene (Middlebury 2014 Motorcycle, 741x500), where scikit-image is installed
        from smd_core.data.real_sample import load_motorcycle

        real = load_motorcycle()
        pairs.append((real["left"], real["right"]))
    except ImportError:
        pass
    return [*pairs, (scene.left, scene.right)]


def torch_predictor(path: Path):
    import torch

    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import load_model

    torch.set_num_threads(2)
    return Predictor(load_model(path, device="cpu"))  # float32: no autocast


def selection(pred) -> np.ndarray:
    return pred.pi0 / pred.sigma0 > pred.pi1 / pred.sigma1


@pytest.mark.slow  # four frames up to 741x500, three output grids, both backends (fast lane: the next test, one frame)
@pytest.mark.parametrize("kwargs", [{}, {"scale": 1.5}, {"output_size": (250, 333)}])
def test_bundled_default_onnx_matches_torch_float32(frames, kwargs):
    ort_pred = OrtPredictor(weights.default_onnx(), threads=2)
    torch_pred = torch_predictor(weights.default_checkpoint())
    for left, right in frames:
        a, b = torch_pred.predict(left, right, **kwargs), ort_pred.predict(left, right, **kwargs)
        assert a.disparity.shape == b.disparity.shape and b.disparity.dtype == np.float32
        assert b.disparity_scale == a.disparity_scale
        close = np.abs(a.disparity - b.disparity) <= DISP_TOL_PX
        assert close.mean() >= AGREEMENT, f"{close.mean():.5f} of pixels within {DISP_TOL_PX} px"
        np.testing.assert_array_equal(selection(a), selection(b))
        np.testing.assert_allclose(b.uncertainty, a.uncertainty, atol=2e-3, rtol=1e-4)
        for name in ("mu0", "mu1", "sigma0", "sigma1", "pi0", "pi1"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=2e-3, rtol=1e-4, err_msg=name)


def test_uncertainty_kinds_and_standard_head_match_torch(frames):
    left, right = frames[-1]
    for kind in ("sigma", "std"):
        a = torch_predictor(weights.default_checkpoint())
        a.uncertainty_kind = kind
        b = OrtPredictor(weights.default_onnx(), threads=2, uncertainty_kind=kind)
        np.testing.assert_allclose(b.predict(left, right).uncertainty, a.predict(left, right).uncertainty,
                                   atol=2e-3, rtol=1e-4)
    a = torch_predictor(weights.standard_checkpoint()).predict(left, right)
    b = OrtPredictor(weights.standard_onnx(), threads=2).predict(left, right)
    assert b.mu0 is None and not b.uncertainty.any()
    assert (np.abs(a.disparity - b.disparity) <= DISP_TOL_PX).mean() >= AGREEMENT


def test_concurrent_query_blocks_equal_one_thread(frames):
    """threads=2 on the CPU: a single-threaded query session, two blocks at once; the same maps as one thread."""
    left, right = frames[-1]
    one, two = (OrtPredictor(weights.default_onnx(), threads=n) for n in (1, 2))
    assert (one.model.query_workers, two.model.query_workers) == (1, 2)
    assert OnnxModel(weights.default_onnx(), threads=0).query_workers == 1  # onnxruntime's own threads
    a, b = one.predict(left, right, scale=1.25), two.predict(left, right, scale=1.25)
    for name in ("disparity", "uncertainty", "mu0", "mu1", "pi0"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), atol=1e-5, err_msg=name)


def test_shipped_onnx_files_are_exports_of_the_shipped_checkpoints():
    total = 0
    for pt, onnx_path in ((weights.default_checkpoint(), weights.default_onnx()),
                          (weights.standard_checkpoint(), weights.standard_onnx())):
        model = OnnxModel(onnx_path)
        ckpt = model.metadata["checkpoint"]
        assert ckpt["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest(), \
            f"{onnx_path.name} is stale: smd export {pt} --out {onnx_path}"
        assert model.config == model_config(pt, "torch")
        total += pt.stat().st_size + onnx_path.stat().st_size
    assert total <= 10e6, f"both formats of the bundled models take {total / 1e6:.1f} MB"


def test_export_metadata_rebuilds_the_pipeline(tmp_path):
    from smd_core.infer.export import export
    from smd_core.model.network import load_model, read_checkpoint

    src = weights.default_checkpoint()
    out = export(src, tmp_path / "m.onnx")
    model = OnnxModel(out)
    meta = model.metadata
    net = load_model(src)
    assert model.config == net.config and meta["model_config"]["backbone_options"]["sgbm"]["mode"] == "3way"
    assert model.sgbm == net.stereo_network.sgbm and model.config.anchor_range == net.config.anchor_range
    assert meta["guide_options"] == {"cost_offsets": net.stereo_network.cost_offsets}
    assert meta["guide_channels"] == classical.guide_channel_count(**meta["guide_options"])
    assert meta["guide_channels"] == net.stereo_network.guide_channels - 3
    assert meta["pad_multiple"] == net.stereo_network.size_multiple and meta["image_size"] is None
    assert meta["encode_inputs"] == ["left", "sgbm_guide"]
    assert meta["query_outputs"][:3] == ["disparity", "mu0", "mu1"] and "uncertainty_peak" in meta["query_outputs"]
    assert meta["checkpoint"]["step"] == read_checkpoint(src)["step"] and meta["checkpoint"]["file"] == src.name
    # The checkpoint's deployment properties travel with the file (the node's cloud threshold, CPU precision).
    assert model.deployment == net.deployment and model.deployment.cloud_max_uncertainty > 0
    # One connected graph (left, guide, grid -> maps, fields), for trtexec and any ONNX tool.
    import onnx

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["left", "sgbm_guide", "gx", "gy"]
    assert {"map0", "disparity", "uncertainty_std"} <= {o.name for o in graph.output}


def test_export_cli(tmp_path, capsys):
    from smd_ros.cli import main

    assert main(["export", str(weights.standard_checkpoint()), "--out", str(tmp_path / "s.onnx")]) == 0
    assert (tmp_path / "s.onnx").is_file() and "s.onnx" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_stale_guide_channels_and_foreign_files_are_clear_errors(tmp_path):
    import onnx

    model = onnx.load(str(weights.default_onnx()))
    for prop in model.metadata_props:
        if prop.key == "guide_channels":
            prop.value = json.dumps(classical.guide_channel_count() + 6)
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(ValueError, match=r"old.onnx takes \d+ SGBM guide channels .* export it again"):
        OnnxModel(tmp_path / "old.onnx")
    for prop in model.metadata_props:
        if prop.key == "deployment":
            prop.value = "null"
    onnx.save(model, str(tmp_path / "older.onnx"))
    with pytest.raises(ValueError, match="older.onnx: no deployment metadata"):
        OnnxModel(tmp_path / "older.onnx")
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="foreign.onnx: not written by `smd export`"):
        OnnxModel(tmp_path / "foreign.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX file"):
        OnnxModel(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxModel(tmp_path / "missing.onnx")


def test_resolve_model_picks_the_backend_by_file_type(tmp_path):
    assert resolve_model(weights.default_onnx()) == (weights.default_onnx(), "onnxruntime")
    assert resolve_model(weights.default_checkpoint()) == (weights.default_checkpoint(), "torch")
    assert resolve_model("", "onnxruntime") == (weights.default_onnx(), "onnxruntime")
    assert resolve_model("", "torch") == (weights.default_checkpoint(), "torch")
    assert resolve_model("", "auto") == (weights.default_checkpoint(), "torch")  # torch is installed here
    with pytest.raises(ValueError, match="backend=torch cannot run the ONNX file"):
        resolve_model(weights.default_onnx(), "torch")
    with pytest.raises(ValueError, match="backend=onnxruntime needs an .onnx file.*smd export"):
        resolve_model(weights.default_checkpoint(), "onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_model("", "tensorflow")
    with pytest.raises(ValueError, match=r"\['backbone'\] apply to checkpoints only"):
        load_predictor(weights.default_onnx(), "onnxruntime", backbone="psmnet")


def test_dynamic_export_of_a_published_backbone_asks_for_a_size(parity_dir):
    from smd_core.infer.export import build_graphs
    from smd_core.model.network import load_model

    net = load_model(parity_dir / "psm_bimodal_s1" / "checkpoint.pth")
    with pytest.raises(ValueError, match="psmnet model exports for one input size.*--size H W"):
        build_graphs(net)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["psm_bimodal_s1", "hsm_bimodal_s1"])
def test_published_layouts_export_and_match_the_reference(name, tmp_path):
    """Encode and query graphs of the published PSMNet / HSMNet + SMD layouts, pinned to the fixture's size,
    against the reference's dense disparity (as test_parity checks the torch path); a pinned file refuses
    other sizes with a clear error."""
    from smd_core.infer.export import export

    ckpt, case = load_parity_case(name)
    h, w = case["left_bgr"].shape[:2]
    out = export(ckpt, tmp_path / f"{name}.onnx", image_size=(h, w))
    predictor = load_predictor(*resolve_model(out), threads=2)
    assert predictor.config.backbone == name[:3] + "net" and predictor.model.metadata["image_size"] == [h, w]
    dense = predictor.predict(case["left_bgr"], case["right_bgr"])
    ref = case["full_disp"][0]
    agree = (np.abs(dense.disparity / dense.disparity_scale - ref) <= DISP_TOL_PX).mean()
    assert agree >= AGREEMENT, f"{agree:.5f}"
    with pytest.raises(ValueError, match=rf"exported for {h}x{w} network inputs, got"):
        predictor.predict(case["left_bgr"][:, : w - 64], case["right_bgr"][:, : w - 64])


def test_guide_options_travel_with_the_file(tmp_path, frames):
    """A guided model with matching-cost channels (cost_offsets): the runtime computes the same guide channels
    from the file's guide_options and agrees with torch."""
    import torch

    from smd_core.config import ModelConfig
    from smd_core.infer.export import export
    from smd_core.infer.torch_backend import Predictor
    from smd_core.model.network import build_model, save_checkpoint

    torch.manual_seed(0)
    config = ModelConfig(backbone="sgbm_guided", output="bimodal", max_disp=64, head_widths=(16,), anchor_range=1.0,
                         backbone_options={"widths": [8, 16, 16], "features": [8, 4, 4], "cost_offsets": 2})
    net = build_model(config).eval()
    ckpt = save_checkpoint(tmp_path / "costs.pt", net)
    model = OnnxModel(export(ckpt, tmp_path / "costs.onnx"))
    assert model.guide_options == {"cost_offsets": 2}
    assert model.guide_channels == classical.guide_channel_count(2) == net.stereo_network.guide_channels - 3
    left, right = frames[-1]
    a = Predictor(net).predict(left, right)
    b = OrtPredictor(model).predict(left, right)
    assert (np.abs(a.disparity - b.disparity) <= DISP_TOL_PX).mean() >= AGREEMENT
