"""SMDNet = stereo backbone + SMD head; checkpoint reading and writing.

Checkpoints:
- published SMD-Nets files: `{"state_dict", ["optimizer", "epoch", "learning_rate"]}` or a bare state dict,
  keys `stereo_network.*` and `mlp.conv0..4`; backbone, output and max_disp are inferred from the keys and
  shapes unless given;
- ours: `{"format": "smd_ros", "version": 1, "model_config": {...}, "state_dict": ..., ...}` so the model
  rebuilds itself from the file alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from smd_core.config import BACKBONE_NAMES, OUTPUT_CHANNELS, Deployment, ModelConfig, from_dict, to_dict
from smd_core.files import atomic_write
from smd_core.geometry import SPECKLE_SIZE
from smd_core.infer.confidence import CLOUD_FLOOR_FACTOR, PSEUDO_FLOOR_FACTOR, uncertainty_floor
from smd_core.infer.dense import normalize_coords
from smd_core.model import head as H
from smd_core.model.backbones import build_backbone
from smd_core.model.head import FlatMaps, SMDHead
from smd_core.model.mixture import Prediction, activate

CHECKPOINT_FORMAT = "smd_ros"
CHECKPOINT_VERSION = 1
# Head input width C = base + max_disp / div of the published backbones (their `feature_channels`).
_PUBLISHED_WIDTH = {"psmnet": (32, 4), "hsmnet": (352, 16)}


def deployment_for(config: ModelConfig) -> Deployment:
    """The deployment defaults of a model, written into a checkpoint when it is shipped and used for files
    without one: SGBM-guided mixture models keep the points within CLOUD_FLOOR_FACTOR x their uncertainty floor
    and run bfloat16 on the CPU; the published models keep every point (their uncertainty on images unlike
    their training data can exceed any threshold everywhere); every mixture head has a pseudo-label threshold of
    PSEUDO_FLOOR_FACTOR x its floor; SGBM-guided mixture models refill their dense disparity's speckles (the
    published ones and L1 heads give their outputs unchanged)."""
    mixture = config.output != "standard"
    guided = config.backbone == "sgbm_guided"
    floor = uncertainty_floor(config.max_disp)
    return Deployment(cloud_max_uncertainty=CLOUD_FLOOR_FACTOR * floor if guided and mixture else 0.0,
                      cpu_bfloat16=guided, pseudo_max_uncertainty=PSEUDO_FLOOR_FACTOR * floor if mixture else 0.0,
                      speckle_size=SPECKLE_SIZE if guided and mixture else 0)


class SMDNet(nn.Module):
    """Backbone (`stereo_network`) + SMD head (`mlp`), the published state-dict layout; `deployment` says how
    the model is run (stored in its checkpoints)."""

    def __init__(self, config: ModelConfig, deployment: Deployment | None = None) -> None:
        super().__init__()
        self.config = config
        self.deployment = deployment or deployment_for(config)
        self.stereo_network = build_backbone(config.backbone, max_disp=config.max_disp, **config.backbone_options)
        self.mlp = SMDHead(int(self.stereo_network.feature_channels), config.head_widths, config.out_channels)
        # Residual backbones return their own disparities (B, A, H, W) px as the last map: not a head input,
        # sampled nearest-neighbour, and the head's modes are offsets from them (`mixture.activate`).
        self.residual = bool(getattr(self.stereo_network, "residual", False))
        # Inputs are padded to a multiple of this: the backbone's own, else the published test pipeline's 64.
        self.pad_multiple = int(getattr(self.stereo_network, "size_multiple", 64))

    def _split(self, features: list[Tensor] | FlatMaps) -> tuple[FlatMaps, FlatMaps | None]:
        flat = features if isinstance(features, FlatMaps) else H.flatten_maps(features)
        if not self.residual:
            return flat, None
        return FlatMaps(flat.maps[:-1], flat.sizes[:-1]), FlatMaps(flat.maps[-1:], flat.sizes[-1:])

    def encode(self, left: Tensor, right: Tensor) -> list[Tensor]:
        """left, right: (B, 3, H, W) float BGR in 0..255 of a size the backbone accepts (multiples of
        `pad_multiple` always work) -> feature maps (B, C_i, h_i, w_i)."""
        return list(self.stereo_network(left, right))

    def query_raw(self, features: list[Tensor] | FlatMaps, points: Tensor,
                  output_size: tuple[float, float]) -> tuple[Tensor, Tensor | None]:
        """Raw head outputs (B, K, N) at `points` (B, 2, N), (x, y) pixels of an (H_out, W_out) grid, and the
        residual anchors (B, A, N) px there (None for non-residual backbones)."""
        head_maps, base_map = self._split(features)
        grid = H.normalize_points(points, output_size)
        sampled = H.gather_bilinear(head_maps, grid)  # (B, N, C)
        base = None if base_map is None else H.gather_nearest(base_map, grid).float()
        return self.mlp.forward_points(sampled).transpose(1, 2), base

    def query(self, features: list[Tensor] | FlatMaps, points: Tensor, output_size: tuple[float, float]) -> Prediction:
        """Prediction (fields (B, N)) at `points` (B, 2, N) in an output grid `output_size` = (H_out, W_out)."""
        raw, base = self.query_raw(features, points, output_size)
        pred = activate(raw.float(), self.config.output, self.config.max_disp, base,
                        anchor_range=self.config.anchor_range)
        coarse = getattr(self.stereo_network, "coarse_disparity", None)
        if self.training and coarse is not None and not isinstance(features, FlatMaps):
            # Backbones with their own disparity estimate get it supervised too (see mixture.loss).
            grid = H.normalize_points(points, output_size)
            pred.coarse = H.gather_bilinear(H.flatten_maps([coarse(features)]), grid)[..., 0].float()
        return pred

    def query_grid(self, features: list[Tensor] | FlatMaps, xs: Tensor, ys: Tensor,
                   output_size: tuple[float, float]) -> Prediction:
        """`query` on the grid of columns xs (W,) x rows ys (R,) (pixels of `output_size`), fields (B, R * W)
        row-major; the dense path of `Predictor` (separable sampling, see `gather_grid`)."""
        return self.query_normalized(features, normalize_coords(xs, output_size[1]),
                                     normalize_coords(ys, output_size[0]))

    def query_normalized(self, features: list[Tensor] | FlatMaps, gx: Tensor, gy: Tensor) -> Prediction:
        """`query_grid` at normalized columns gx (W,) and rows gy (R,) in [-1, 1] (`dense.normalize_coords`):
        the query graph `smd export` writes."""
        head_maps, base_map = self._split(features)
        raw = self.mlp.forward_points(H.gather_grid(head_maps, gx, gy, split=True)).transpose(1, 2)
        base = None if base_map is None else H.gather_nearest_grid(base_map, gx, gy).float()
        return activate(raw.float(), self.config.output, self.config.max_disp, base,
                        anchor_range=self.config.anchor_range)

    def forward(self, left: Tensor, right: Tensor, points: Tensor, output_size: tuple[float, float]) -> Prediction:
        return self.query(self.encode(left, right), points, output_size)


def build_model(config: ModelConfig) -> SMDNet:
    return SMDNet(config)


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write an smd_ros checkpoint of `model` (or of the SMDNet a DDP wrapper holds) atomically; `extra` entries
    (optimizer state, step, train config, ...) must be plain tensors / containers for `weights_only` loads."""
    path = Path(path)
    net = model.module if hasattr(model, "module") else model
    if not isinstance(net, SMDNet):
        raise TypeError(f"save_checkpoint needs an SMDNet, got {type(net).__name__}")
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_config": to_dict(net.config),
               "deployment": to_dict(net.deployment), "state_dict": state, **extra}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """torch.load(weights_only=True) with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with path.open("rb") as f:
        head = f.read(8)
    # torch.save writes a zip archive (or, before torch 1.6, a pickle). Anything else (an image, a text file)
    # would reach the unpickler, whose multi-line advice about weights_only=False does not apply to it.
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        raise ValueError(f"{path}: not a readable PyTorch checkpoint (neither a zip archive nor a pickle; it "
                         f"starts with {head!r})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/corrupt/pickled files
        # One line: torch's messages run over several (advice, links); the first names the problem.
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first[:200]})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict (state_dict or checkpoint), got {type(data).__name__}")
    return data


def state_dict_of(data: dict[str, Any], path: Path) -> dict[str, Tensor]:
    """The tensors of a read checkpoint (ours, a published one or a bare state dict), without DDP's prefix."""
    sd = data.get("state_dict", data)
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise ValueError(f"{path}: no state_dict of tensors found (top-level keys: {sorted(data)[:10]})")
    # Files saved from (Distributed)DataParallel prefix every key with "module.".
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def infer_config(state_dict: dict[str, Tensor], *, path: str | Path = "<state_dict>") -> ModelConfig:
    """Backbone, output and max_disp of a published SMD-Nets state dict, from its keys and shapes."""
    keys = state_dict.keys()
    if any(k.startswith("stereo_network.feature_extraction.firstconv") for k in keys):
        backbone = "psmnet"
    elif any(k.startswith("stereo_network.feature_extraction.convbnrelu1_1") for k in keys):
        backbone = "hsmnet"
    else:
        raise ValueError(f"{path}: cannot tell the backbone from its keys (not PSMNet or HSMNet); pass backbone=")
    convs = sorted((k for k in keys if k.startswith("mlp.conv") and k.endswith(".weight")),
                   key=lambda k: int(k[8:].split(".")[0]))
    if not convs:
        raise ValueError(f"{path}: no SMD head weights (mlp.conv*.weight) found")
    k_out = state_dict[convs[-1]].shape[0]
    outputs = {v: k for k, v in OUTPUT_CHANNELS.items()}
    if k_out not in outputs:
        raise ValueError(f"{path}: last head layer has {k_out} outputs; expected 1, 2 or 5")
    widths = tuple(int(state_dict[k].shape[0]) for k in convs[:-1])
    c = int(state_dict[convs[0]].shape[1])
    base, div = _PUBLISHED_WIDTH[backbone]
    return ModelConfig(backbone=backbone, output=outputs[k_out], max_disp=(c - base) * div, head_widths=widths)


def _check_choice(name: str, value: str | None, choices: Iterable[str]) -> None:
    """A ValueError listing the valid values when `value` (None = infer from the file) is not one of them."""
    options = sorted(choices)
    if value is not None and value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)} (or omitted: read from the file), got {value!r}")


def load_model(path: str | Path, *, backbone: str | None = None, output: str | None = None, max_disp: int | None = None,
               device: str | torch.device = "cpu") -> SMDNet:
    """Load a published SMD-Nets checkpoint or one of ours; returns the model in eval mode on `device`.

    backbone ("psmnet"/"hsmnet", case-insensitive), output ("standard"/"unimodal"/"bimodal") and max_disp
    (256 for the published models) are inferred from the file when not given; a given value that
    contradicts the file raises ValueError naming the file.
    """
    path = Path(path)
    data = read_checkpoint(path)
    sd = state_dict_of(data, path)
    backbone = backbone.lower() if backbone else None
    output = output.lower() if output else None
    # Checked before the file's own values: a typo gets the list of valid values, not a mismatch with the file.
    _check_choice("backbone", backbone, BACKBONE_NAMES)
    _check_choice("output", output, OUTPUT_CHANNELS)
    if data.get("format") == CHECKPOINT_FORMAT:
        try:
            config = from_dict(ModelConfig, data["model_config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid model_config: {exc}") from exc
    else:
        try:
            config = infer_config(sd, path=path)
        except ValueError:
            if backbone is None:
                raise
            config = ModelConfig(backbone=backbone, output=output or "bimodal", max_disp=max_disp or 256)
    for name, given in (("backbone", backbone), ("output", output), ("max_disp", max_disp)):
        if given is not None and given != getattr(config, name):
            raise ValueError(f"{path}: {name}={given!r} was requested but the checkpoint's {name} is "
                             f"{getattr(config, name)!r}")
    deployment = None
    if data.get("deployment") is not None:
        try:
            deployment = from_dict(Deployment, data["deployment"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid deployment: {exc}") from exc
    model = SMDNet(config, deployment)
    load_state_dict_checked(model, sd, path=path)
    return model.to(torch.device(device)).eval()


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, Tensor], *, path: str | Path) -> None:
    """Strict load whose error names the file and lists missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def head(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" ... (+{len(items) - 5})" if len(items) > 5 else "")

        problems = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        parts = [f"{what} [{head(items)}]" for what, items in problems if items]
        raise ValueError(f"{path}: checkpoint does not match the model: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)
