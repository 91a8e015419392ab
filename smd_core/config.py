"""Typed configuration: YAML files, `key=value` overrides, ROS parameters and checkpoints all map onto these
dataclasses (`from_dict` / `to_dict`); a checkpoint stores `to_dict(model_config)` to rebuild its model."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

BACKBONE_NAMES = ("psmnet", "hsmnet", "light", "sgbm_guided")
OUTPUT_NAMES = ("standard", "unimodal", "bimodal")
# Raw channels the head predicts per output representation (SMD-Nets, Sec. 3.2).
OUTPUT_CHANNELS = {"standard": 1, "unimodal": 2, "bimodal": 5}
# Query points per block of a dense prediction by default (both backends, `--chunk-points`): bounds memory.
CHUNK_POINTS = 200_000


@dataclasses.dataclass
class ModelConfig:
    """What is needed to rebuild a network: backbone, head and output representation."""

    backbone: str = "psmnet"
    output: str = "bimodal"
    max_disp: int = 256
    # Hidden widths of the SMD head MLP; the published models use (1024, 512, 256, 128).
    head_widths: tuple[int, ...] = (1024, 512, 256, 128)
    # Extra keyword arguments of the backbone builder (e.g. widths of the light backbone).
    backbone_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Residual backbones with two anchors (sgbm_guided): the second mode stays within +- this many px of
    # its anchor (`mixture.activate`); 0 = unbounded, as the checkpoints written before it.
    anchor_range: float = 0.0

    def __post_init__(self) -> None:
        self.backbone = str(self.backbone).lower()
        self.output = str(self.output).lower()
        self.head_widths = tuple(int(w) for w in self.head_widths)
        if self.backbone not in BACKBONE_NAMES:
            raise ValueError(f"backbone must be one of {BACKBONE_NAMES}, got {self.backbone!r}")
        if self.output not in OUTPUT_NAMES:
            raise ValueError(f"output must be one of {OUTPUT_NAMES}, got {self.output!r}")
        if int(self.max_disp) <= 0 or int(self.max_disp) % 16:
            raise ValueError(f"max_disp must be a positive multiple of 16, got {self.max_disp}")
        self.max_disp = int(self.max_disp)
        if not self.head_widths or any(w <= 0 for w in self.head_widths):
            raise ValueError(f"head_widths must be positive, got {self.head_widths}")
        self.anchor_range = float(self.anchor_range)
        if not self.anchor_range >= 0:
            raise ValueError(f"anchor_range must be >= 0 px, got {self.anchor_range}")

    @property
    def out_channels(self) -> int:
        return OUTPUT_CHANNELS[self.output]


@dataclasses.dataclass
class Deployment:
    """How a model is deployed, stored in its checkpoint (`network.deployment_for` for files without it): read by
    the Predictor's users (the node, pseudo-labels), never derived from a backbone's name outside smd_core.

    cloud_max_uncertainty: the node's default cloud keeps points whose uncertainty is at most this (px of the
        network input, times the output scale at run time); 0 keeps every point.
    cpu_bfloat16: bfloat16 autocast on a CPU with native support is safe for this model (the node's
        `cpu_precision` auto).
    pseudo_max_uncertainty: the default pseudo-label threshold (px of the network input); 0: the model has no
        uncertainty to select labels by.
    speckle_size: > 0: the dense disparity's speckles, regions of at most this many network-input pixels unlike
        all around them, are refilled from the background side (`infer.dense.fill_speckles`); 0: off.
    """

    cloud_max_uncertainty: float = 0.0
    cpu_bfloat16: bool = False
    pseudo_max_uncertainty: float = 0.0
    speckle_size: int = 0

    def __post_init__(self) -> None:
        self.cloud_max_uncertainty = float(self.cloud_max_uncertainty)
        self.pseudo_max_uncertainty = float(self.pseudo_max_uncertainty)
        self.cpu_bfloat16 = bool(self.cpu_bfloat16)
        self.speckle_size = int(self.speckle_size)
        if self.speckle_size < 0:
            raise ValueError(f"deployment speckle_size must be >= 0 px, got {self.speckle_size}")
        if not (self.cloud_max_uncertainty >= 0 and self.pseudo_max_uncertainty >= 0):
            raise ValueError(f"deployment thresholds must be >= 0 px, got cloud {self.cloud_max_uncertainty} and "
                             f"pseudo-labels {self.pseudo_max_uncertainty}")


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain dict/list/scalars, safe for YAML and `weights_only` loads."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return str(obj) if isinstance(obj, Path) else obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, _where=where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        inner = (typing.get_args(tp) or (Any,))[0]  # tuple[int, ...]: int
        return origin(_coerce(inner, v, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"{where}: expected a boolean, got {value!r}")
    if tp in (int, float, str):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, _where: str = "") -> T:
    """Build dataclass `cls` from a mapping, coercing types; unknown keys raise ValueError naming them. A class may
    define `upgrade_dict(data, where) -> dict` to map keys of earlier layouts onto its fields."""
    data = dict(data or {})
    upgrade = getattr(cls, "upgrade_dict", None)
    if callable(upgrade):
        data = upgrade(data, _where or cls.__name__)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(data) - names):
        raise ValueError(f"{_where or cls.__name__}: unknown keys {unknown}; known keys are {sorted(names)}")
    return cls(**{k: _coerce(hints[k], v, f"{_where}.{k}" if _where else k) for k, v in data.items()})


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place; returns it."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


def read_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file: {})."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    loaded = yaml.safe_load(p.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{p}: top level must be a mapping, got {type(loaded).__name__}")
    return loaded


def load_yaml(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Read a YAML file (optional) into dataclass `cls`, applying `key=value` overrides first."""
    data = read_mapping(path) if path is not None else {}
    apply_overrides(data, overrides)
    return from_dict(cls, data)


def save_yaml(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
