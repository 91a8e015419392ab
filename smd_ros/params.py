"""ROS parameters <-> one typed `NodeConfig`: each field is the node parameter of the same name.

A field's metadata holds its description, allowed range or choices and when a change takes effect: "live" (the
next frame), "reload" (needs the model loaded again) or "restart" (changes the subscriptions); `updated_config`
refuses run-time changes of the last two, saying why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from smd_core.config import BACKBONE_NAMES, CHUNK_POINTS, OUTPUT_NAMES
from smd_core.geometry import SPECKLE_RANGE_PX, SPECKLE_SIZE
from smd_core.infer.backend import BACKENDS
from smd_core.infer.ort_backend import ORT_DEVICE_PATTERN
from smd_core.resolve import DEVICE_PATTERN
from smd_ros.topics import TRANSPORTS

LIVE, RELOAD, RESTART = "live", "reload", "restart"
TYPES = {"str": str, "int": int, "float": float, "bool": bool}  # field annotations (strings: future annotations)
MIN_INPUT_PIXELS = 64 * 64  # one padding block: below it the network sees nothing useful


def _p(default: Any, description: str, apply: str, *, lo: float | None = None, hi: float | None = None,
       choices: tuple[str, ...] | None = None) -> Any:
    meta = {"description": description, "apply": apply, "range": (lo, hi) if lo is not None else None,
            "choices": choices}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Configuration of the stereo node; one field per ROS parameter (see `config/stereo.yaml`)."""

    # Model: changing these needs a model reload.
    checkpoint: str = _p("", "Model file: a checkpoint (.pth/.pt: a published SMD-Nets checkpoint or one written by "
                         "`smd train`) or an ONNX file written by `smd export`. Empty: the model bundled with the "
                         "package (its .onnx export where torch is not installed).", RELOAD)
    backend: str = _p("auto", "What runs the network: torch (checkpoints), onnxruntime (.onnx files; needs no torch) "
                      "or auto (by the model file's type: .onnx -> onnxruntime). Same outputs, topics, uncertainty "
                      "and cloud rule either way.", RELOAD, choices=BACKENDS)
    backbone: str = _p("", "Backbone of a published checkpoint (one of the choices); empty: inferred from the "
                       "checkpoint.", RELOAD, choices=("", *BACKBONE_NAMES))
    output: str = _p("", "Output representation of a published checkpoint (standard, unimodal, bimodal); empty: "
                     "inferred from the checkpoint.", RELOAD, choices=("", *OUTPUT_NAMES))
    max_disparity: int = _p(0, "The network's maximum disparity in input pixels (256 for the published models); "
                            "0: read from the checkpoint.", RELOAD, lo=0, hi=1024)
    device: str = _p("auto", "Device: auto (CUDA when available, else CPU), cpu, cuda or cuda:N; with the onnxruntime "
                     "backend also tensorrt or tensorrt:N (TensorRT provider, engines cached beside the model).",
                     RELOAD)
    device_fallback: bool = _p(True, "When CUDA (or onnxruntime's CUDA / TensorRT provider) is requested but absent: "
                               "true = warn and run on the CPU, false = exit with an error.", RELOAD)
    half_precision: bool = _p(False, "Run the network in float16 autocast (CUDA only; ignored with a warning on "
                              "the CPU).", RELOAD)
    cpu_precision: str = _p("auto", "Precision of the network on the CPU: float32 (exact); bfloat16 (autocast, on CPUs "
                            "with native bfloat16: AVX512-BF16, AMX; float32 elsewhere); auto: bfloat16 only where the "
                            "checkpoint says its model keeps its accuracy in it.", RELOAD,
                            choices=("auto", "float32", "bfloat16"))
    uncertainty_kind: str = _p("edge", "What the uncertainty output (and max_uncertainty) measures, in output px: "
                               "edge: peak plus twice the distance to the nearer of the local foreground and "
                               "background surfaces where a disparity lies between the two sides of a depth edge; "
                               "peak: sqrt(2) b / pi of the selected Laplacian mode, its standard deviation where it "
                               "holds all the weight and more where the other mode shares it, so it also ranks the "
                               "pixels whose b sits at its floor; sigma: that mode's standard deviation alone; std: "
                               "the whole mixture's.", RELOAD, choices=("edge", "peak", "sigma", "std"))
    threads: int = _p(0, "CPU threads of the network (torch or onnxruntime; on the CPU also the output's row blocks "
                      "queried at once) and of OpenCV (SGBM; above 1 the guide channels take a helper thread); 0: one "
                      "per core this process may use (the OpenMP wait policy is chosen for a shared CPU: see "
                      "smd_ros.runtime).", RELOAD,
                      lo=0, hi=256)
    # Inference: live.
    input_scale: float = _p(1.0, "Resize factor applied to the images before the network (< 1 is faster; "
                            "SMD-Nets keeps the aspect ratio).", LIVE, lo=0.1, hi=2.0)
    output_scale: float = _p(1.0, "Output grid size relative to the input images (any float >= 1: super-resolved "
                             "disparity, uncertainty, depth and cloud).", LIVE, lo=1.0, hi=8.0)
    chunk_points: int = _p(CHUNK_POINTS, "Output pixels queried per network call; bounds memory whatever the output "
                           "size.", LIVE, lo=1_000, hi=50_000_000)
    image_bits: int = _p(0, "Significant bits of 16-bit camera images (mono16, 16-bit PNG): 9..16 shifts them to 8 "
                         "bits by image_bits - 8 (12 for a 12-bit sensor); 0: auto, the smallest shift that fits the "
                         "brighter image of each pair. Use the same value as `smd bag2dataset --image-bits`.", LIVE,
                         lo=0, hi=16)
    max_input_pixels: int = _p(2_100_000, "Largest network input in pixels (after input_scale); larger images are "
                               "downscaled before the network (said once per size) instead of stalling the node. "
                               "Outputs keep the images' grid. 0: no limit.", LIVE, lo=0, hi=100_000_000)
    # Validity: live.
    max_uncertainty: float = _p(-1.0, "Pixels whose uncertainty (output px, see uncertainty_kind) exceeds this are "
                                "left out of the cloud (and the depth). -1: auto, the threshold stored in the "
                                "checkpoint, times the output scale; 0: keep every point.", LIVE, lo=-1.0, hi=1000.0)
    speckle_size: int = _p(SPECKLE_SIZE, "Then drop the speckles among the cloud's points: connected regions of "
                           "at most this many output pixels whose disparity differs from all around them by more "
                           "than speckle_range (stereo_image_proc's filter, its default size); 0: off.", LIVE,
                           lo=0, hi=1_000_000)
    speckle_range: float = _p(SPECKLE_RANGE_PX, "Largest disparity step (output px) between neighbours of one "
                              "speckle region.", LIVE, lo=0.0, hi=100.0)
    mask_disparity_by_uncertainty: bool = _p(False, "Also mark pixels above max_uncertainty (and the speckles) "
                                             "invalid in the published disparity.", LIVE)
    min_depth: float = _p(0.0, "Nearest valid depth in metres (0: no limit).", LIVE, lo=0.0, hi=10_000.0)
    max_depth: float = _p(0.0, "Farthest valid depth in metres (0: no limit).", LIVE, lo=0.0, hi=10_000.0)
    # Outputs: live.
    use_color: bool = _p(True, "Add the left image's colour to the cloud as a packed `rgb` field.", LIVE)
    organized_cloud: bool = _p(True, "true: organized cloud (height = rows, width = cols, NaN for invalid "
                               "points); false: a dense list of the valid points only.", LIVE)
    publish_depth: bool = _p(False, "Also publish `depth` (32FC1, metres, NaN invalid; REP 118).", LIVE)
    # Inputs: changing these needs a restart (they shape the subscriptions).
    approximate_sync: bool = _p(False, "Synchronize the four inputs approximately (stamps within sync_slop) "
                                "instead of exactly.", RESTART)
    sync_slop: float = _p(0.01, "Largest stamp difference in seconds for approximate synchronization.", RESTART,
                          lo=0.0, hi=10.0)
    queue_size: int = _p(5, "Messages kept per input while waiting for a synchronized set.", RESTART, lo=1, hi=100)
    image_transport: str = _p("raw", "How the two camera images arrive, as image_transport names it: raw "
                              "(sensor_msgs/Image on left/image_rect, right/image_rect) or compressed "
                              "(sensor_msgs/CompressedImage, JPEG or PNG, on left/image_rect/compressed, "
                              "right/image_rect/compressed).", RESTART, choices=TRANSPORTS)
    sensor_data_qos: bool = _p(True, "Subscribe with the sensor-data QoS (best effort, REP 2003); false: ROS's "
                               "default QoS (reliable, keep last 10).", RESTART)
    output_best_effort: bool = _p(False, "Publish the outputs best effort; false: reliable. Always volatile (a late "
                                  "subscriber gets no stale cloud), keep last 1, as stereo_image_proc.", RESTART)
    # Reporting: live.
    report_period: float = _p(5.0, "Seconds between latency/rate/drop log lines and /diagnostics messages.", LIVE,
                              lo=0.1, hi=3600.0)
    stall_timeout: float = _p(10.0, "/diagnostics reports ERROR when synchronized input has waited this many "
                              "seconds without an output being published.", LIVE, lo=0.1, hi=3600.0)

    def __post_init__(self) -> None:
        errors: list[str] = []  # every problem, each naming the parameter and its value
        for name, f in FIELDS.items():
            value, tp = getattr(self, name), TYPES[f.type]
            accepted = (int, float) if tp is float else tp
            if not isinstance(value, accepted) or (tp is not bool and isinstance(value, bool)):
                errors.append(f"{name} must be {tp.__name__}, got {value!r}")
            elif tp is float and not math.isfinite(value):
                errors.append(f"{name} must be finite, got {value!r}")
            else:
                rng, choices = f.metadata["range"], f.metadata["choices"]
                if rng is not None and not (rng[0] <= value <= rng[1]):
                    errors.append(f"{name}={value!r} is outside [{rng[0]}, {rng[1]}]")
                if choices is not None and value not in choices:
                    errors.append(f"{name}={value!r} is not one of {list(choices)}")
        if not errors:  # the rules between values, once each has the right type
            if not ORT_DEVICE_PATTERN.match(self.device):
                errors.append(f"device={self.device!r} is not auto, cpu, cuda[:N] or tensorrt[:N]")
            elif self.backend == "torch" and not DEVICE_PATTERN.match(self.device):
                errors.append(f"device={self.device!r} needs backend onnxruntime (torch runs on auto, cpu, cuda or "
                              "cuda:N)")
            if 0 < self.image_bits < 9:
                errors.append(f"image_bits={self.image_bits} must be 0 (auto) or 9..16")
            if self.max_disparity % 16:
                errors.append(f"max_disparity={self.max_disparity} must be 0 or a multiple of 16")
            if 0 < self.max_input_pixels < MIN_INPUT_PIXELS:
                errors.append(f"max_input_pixels={self.max_input_pixels} must be 0 (no limit) or at least "
                              f"{MIN_INPUT_PIXELS}")
            if self.max_depth and self.max_depth <= self.min_depth:
                errors.append(f"max_depth={self.max_depth} must be 0 (no limit) or greater than "
                              f"min_depth={self.min_depth}")
        if errors:
            raise ValueError("invalid node parameters: " + "; ".join(errors))

    @property
    def depth_range(self) -> tuple[float, float]:
        """(min_depth, max_depth) with 0 = no limit mapped to (0, inf)."""
        return self.min_depth, (math.inf if self.max_depth == 0 else self.max_depth)


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(NodeConfig)}


def parameter_descriptors() -> dict[str, Any]:
    """name -> rcl_interfaces/ParameterDescriptor (type, description, range, constraints)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {"str": ParameterType.PARAMETER_STRING, "int": ParameterType.PARAMETER_INTEGER,
             "float": ParameterType.PARAMETER_DOUBLE, "bool": ParameterType.PARAMETER_BOOL}
    out = {}
    for name, f in FIELDS.items():
        constraints = []
        if f.metadata["choices"] is not None:
            constraints.append("one of: " + ", ".join(repr(c) for c in f.metadata["choices"]))
        if name == "device":
            constraints.append("auto, cpu, cuda[:N] or (onnxruntime) tensorrt[:N]")
        constraints.append({LIVE: "changeable at run time",
                            RELOAD: "changing it needs a model reload: restart the node",
                            RESTART: "changing it needs new subscriptions: restart the node"}[f.metadata["apply"]])
        # Float parameters accept integers too (`-p output_scale:=2`); `NodeConfig` converts and validates them.
        desc = ParameterDescriptor(name=name, type=types[f.type], description=f.metadata["description"],
                                   additional_constraints="; ".join(constraints), dynamic_typing=f.type == "float")
        rng = f.metadata["range"]
        if rng is not None and f.type == "float":
            desc.floating_point_range = [FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
        elif rng is not None and f.type == "int":
            desc.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=1)]
        out[name] = desc
    return out


def config_from_mapping(values: Mapping[str, Any]) -> NodeConfig:
    """NodeConfig from {name: value}; integers are accepted for float parameters; unknown names raise."""
    if unknown := sorted(set(values) - set(FIELDS)):
        raise ValueError(f"unknown node parameters {unknown}; known: {sorted(FIELDS)}")
    return NodeConfig(**{name: float(value) if FIELDS[name].type == "float" and type(value) is int else value
                         for name, value in values.items()})


def declare_parameters(node: Any) -> NodeConfig:
    """Declare every parameter on `node` (values from overrides / params files); ValueError names bad values."""
    from rclpy.exceptions import ParameterException

    values = {}
    for name, desc in parameter_descriptors().items():
        try:
            param = node.declare_parameter(name, FIELDS[name].default, desc)
        except ParameterException as exc:  # a value of the wrong type or outside the descriptor's range
            raise ValueError(f"invalid node parameter {name}: {exc}") from exc
        values[name] = param.value
    return config_from_mapping(values)


def updated_config(config: NodeConfig, changes: Iterable[tuple[str, Any]]) -> tuple[NodeConfig | None, str]:
    """Apply run-time parameter changes [(name, value)]; returns (new config, "") or (None, reason).

    Changes of "reload"/"restart" parameters (setting the current value again is no change), unknown names and
    invalid values are refused.
    """
    values = dataclasses.asdict(config)
    for name, value in changes:
        f = FIELDS.get(name)
        if f is None:
            return None, f"unknown parameter {name!r}"
        if value == values[name]:
            continue
        apply = f.metadata["apply"]
        if apply == RELOAD:
            return None, (f"{name} needs a model reload: restart the node with {name}:={value!r} "
                          f"(the running model keeps {name}={values[name]!r})")
        if apply == RESTART:
            return None, f"{name} shapes the subscriptions: restart the node with {name}:={value!r}"
        values[name] = value
    try:
        return config_from_mapping(values), ""
    except ValueError as exc:
        return None, str(exc)

