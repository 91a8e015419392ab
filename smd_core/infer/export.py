"""`smd export CKPT --out model.onnx`: an SMD-Nets checkpoint as one ONNX file for ONNX Runtime and TensorRT.

One graph, encode -> query, which `ort_backend` splits at the encoder's outputs (encode once, query in row
blocks):
- encode: `left` (1, 3, H, W) float BGR 0..255 and `right`, or for sgbm_guided models `sgbm_guide`
  (`classical.guide_channels` of the same uint8 pair, OpenCV/NumPy code both backends share) -> `map0..`,
  the backbone's maps channels-last (1, h_i, w_i, C_i);
- query: the maps and normalized grid coordinates `gx` (W,), `gy` (R,) -> `disparity`, the mixture fields and
  `uncertainty_<kind>` for every `dense.PIXEL_UNCERTAINTIES` kind, each (1, R * W) (`SMDNet.query_normalized`
  and `mixture.uncertainty`, traced).
H and W are dynamic unless `image_size` pins them; `metadata` carries what rebuilds the pipeline.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smd_core import classical
from smd_core.config import to_dict
from smd_core.files import atomic_write
from smd_core.infer.dense import MIXTURE_FIELDS, PIXEL_UNCERTAINTIES
from smd_core.infer.ort_backend import ONNX_FORMAT
from smd_core.model.head import FlatMaps
from smd_core.model.mixture import uncertainty
from smd_core.model.network import SMDNet, load_model, read_checkpoint

ONNX_VERSION = 1
OPSET = 18
# Checkpoint entries copied into the metadata (how the weights were made; the node logs them).
CHECKPOINT_KEYS = ("format", "version", "step", "source", "stages")


def is_guided(net: SMDNet) -> bool:
    """Whether the backbone takes SGBM guide channels instead of the right image."""
    return hasattr(net.stereo_network, "forward_guided")


class EncodeGraph(nn.Module):
    """(left, right or sgbm_guide) -> the backbone's maps, channels-last (1, h_i, w_i, C_i)."""

    def __init__(self, net: SMDNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, left: Tensor, second: Tensor) -> tuple[Tensor, ...]:
        backbone = self.net.stereo_network
        maps = backbone.forward_guided(left, second) if is_guided(self.net) else self.net.encode(left, second)
        return tuple(m.permute(0, 2, 3, 1) for m in maps)


class QueryGraph(nn.Module):
    """(maps..., gx, gy) -> disparity, mixture fields, uncertainty per kind; each (1, R * W)."""

    def __init__(self, net: SMDNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        *maps, gx, gy = args
        flat = FlatMaps([m.reshape(m.shape[0], -1, m.shape[3]) for m in maps], [(m.shape[1], m.shape[2]) for m in maps])
        pred = self.net.query_normalized(flat, gx, gy)
        fields = pred.maps()
        max_disp = self.net.config.max_disp
        outs = [fields[name] for name in output_fields(self.net) if not name.startswith("uncertainty_")]
        outs += [uncertainty(pred, max_disp=max_disp, kind=kind) for kind in PIXEL_UNCERTAINTIES]
        return tuple(outs)


def output_fields(net: SMDNet) -> list[str]:
    """The query graph's outputs, in order: disparity, the head's mixture fields, uncertainty_<kind>."""
    present = {"standard": (), "unimodal": ("sigma0",), "bimodal": MIXTURE_FIELDS}[net.config.output]
    return ["disparity", *present, *(f"uncertainty_{k}" for k in PIXEL_UNCERTAINTIES)]


def _to_onnx(module: nn.Module, args: tuple[Tensor, ...], input_names: list[str], output_names: list[str],
             dynamic: dict[str, dict[int, str]]) -> Any:
    """torch.onnx.export -> onnx.ModelProto. With dynamic axes the TorchScript exporter (named dynamic axes over
    the guided backbone's and the head's shape arithmetic); without (the published backbones, whose pooling
    kernels follow the input size), the dynamo exporter, which decomposes PSMNet's cost-volume `unfold`."""
    import onnx

    if not dynamic:
        program = torch.onnx.export(module, args, input_names=input_names, output_names=output_names,
                                    opset_version=OPSET, dynamo=True, optimize=True, verbose=False)
        return program.model_proto
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints from shapes: the axes are dynamic
        torch.onnx.export(module, args, buffer, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def build_graphs(net: SMDNet, image_size: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """(encode, query) onnx.ModelProto for `net` (eval, CPU, float32). image_size (H, W): pin the encoder's
    input size (multiples of `pad_multiple`); None: dynamic."""
    net = net.to(torch.device("cpu")).float().eval()
    if image_size is None and not is_guided(net):
        raise ValueError(f"a {net.config.backbone} model exports for one input size (its pooling kernels follow the "
                         "image size): pass image_size / --size H W (multiples of 64, the padded network input)")
    mult = net.pad_multiple
    h, w = image_size or (2 * mult, 3 * mult)
    if h % mult or w % mult:
        raise ValueError(f"image_size must be multiples of {mult} for a {net.config.backbone} model, got {h}x{w}")
    left = torch.rand(1, 3, h, w) * 255
    if is_guided(net):
        second_name = "sgbm_guide"
        second = torch.rand(1, int(net.stereo_network.guide_channels) - 3, h, w) * 8
    else:
        second_name, second = "right", torch.rand(1, 3, h, w) * 255
    enc_in = ["left", second_name]
    with torch.no_grad():
        maps = EncodeGraph(net)(left, second)
    names = [f"map{i}" for i in range(len(maps))]
    dyn_img = {} if image_size else {2: "height", 3: "width"}
    encode = _to_onnx(EncodeGraph(net), (left, second), enc_in, names,
                      {"left": dyn_img, second_name: dyn_img, **{n: {1: f"{n}_h", 2: f"{n}_w"} for n in names}}
                      if dyn_img else {})
    gx, gy = torch.linspace(-1, 1, 7), torch.linspace(-1, 1, 5)
    outs = output_fields(net)
    dyn_q = {**{n: {1: f"{n}_h", 2: f"{n}_w"} for n in names}, "gx": {0: "columns"}, "gy": {0: "rows"},
             **{o: {1: "points"} for o in outs}}
    query = _to_onnx(QueryGraph(net), (*maps, gx, gy), [*names, "gx", "gy"], outs, dyn_q)
    return encode, query


def metadata(net: SMDNet, checkpoint: Path | None, encode: Any, query: Any,
             image_size: tuple[int, int] | None) -> dict[str, str]:
    """The file's metadata_props, each a JSON value: what `ort_backend` needs to rebuild the pipeline (model
    config, pad multiple, guide channels and options, the graph's split, image size (null: dynamic),
    deployment) and where the weights came from (checkpoint name, sha256 and training record)."""
    cfg = net.config
    ckpt: dict[str, Any] = {}
    if checkpoint is not None:
        data = read_checkpoint(checkpoint)
        ckpt = {k: data[k] for k in CHECKPOINT_KEYS if k in data}
        ckpt["file"] = checkpoint.name
        ckpt["sha256"] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    guide = int(net.stereo_network.guide_channels) - 3 if is_guided(net) else 0
    # The backbone's settings of classical.guide_channels' keyword arguments (cost_offsets), so the runtime
    # computes the same channels without the backbone.
    guide_params = list(inspect.signature(classical.guide_channels).parameters)[4:]
    guide_options = {p: getattr(net.stereo_network, p) for p in guide_params
                     if guide and hasattr(net.stereo_network, p)}
    meta = {"smd_format": ONNX_FORMAT, "smd_version": ONNX_VERSION, "model_config": to_dict(cfg),
            "pad_multiple": net.pad_multiple, "guide_channels": guide, "guide_options": guide_options,
            "encode_inputs": [i.name for i in encode.graph.input],
            "encode_outputs": [o.name for o in encode.graph.output],
            "query_inputs": [i.name for i in query.graph.input], "query_outputs": [o.name for o in query.graph.output],
            "image_size": list(image_size) if image_size else None, "checkpoint": ckpt,
            "deployment": to_dict(net.deployment)}
    return {k: json.dumps(to_dict(v)) for k, v in meta.items()}


def export(checkpoint: str | Path, out: str | Path, *, image_size: tuple[int, int] | None = None,
           backbone: str | None = None, output: str | None = None, max_disp: int | None = None) -> Path:
    """Write `checkpoint` as one ONNX file at `out` (see the module docstring); returns the path."""
    import onnx
    from onnx import compose

    checkpoint, out = Path(checkpoint), Path(out)
    net = load_model(checkpoint, backbone=backbone, output=output, max_disp=max_disp, device="cpu")
    encode, query = build_graphs(net, image_size)
    names = [o.name for o in encode.graph.output]
    # The dynamo exporter (pinned sizes) writes a newer IR version than the TorchScript one: merge at the newer.
    encode.ir_version = query.ir_version = max(encode.ir_version, query.ir_version)
    # The two exports name their internal values alike: prefix the query's (its inputs and outputs keep theirs).
    query = compose.add_prefix(query, "query/", rename_inputs=False, rename_outputs=False)
    combined = compose.merge_models(encode, query, io_map=[(n, n) for n in names],
                                    outputs=[*names, *(o.name for o in query.graph.output)])
    combined.producer_name = "smd_ros"
    del combined.metadata_props[:]
    for key, value in metadata(net, checkpoint, encode, query, image_size).items():
        combined.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(combined)
    return atomic_write(out, lambda tmp: onnx.save(combined, str(tmp)))
