"""The onnxruntime backend: `OrtPredictor` runs a file written by `smd export` with no torch import.

`OnnxModel` reads the file's metadata (`smd_core.infer.export.metadata`), splits its one graph at the encoder's outputs
into an encode and a query session, and picks execution providers from a `device` setting (`select_providers`):
cpu; cuda[:N] (CUDA provider); tensorrt[:N] (TensorRT, then CUDA, engines cached next to the model); auto (CUDA
where onnxruntime has it, else the CPU). A provider that is asked for but absent, or that fails to load, falls
back to the CPU with a warning (`OnnxModel.warnings`), or raises when `fallback` is False.

`OrtPredictor` is a `dense.DensePredictor`, as the PyTorch Predictor; SGBM and the guide channels come from
`classical.guide_channels` on the same padded uint8 pair.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from smd_core import classical
from smd_core.classical import SGBMConfig
from smd_core.config import CHUNK_POINTS, Deployment, ModelConfig, from_dict
from smd_core.infer.dense import QUERY_BLOCK, DensePredictor, normalize_coords
from smd_core.resolve import NODE_FALLBACK_HINT

ONNX_FORMAT = "smd_ros.onnx"  # the `smd_format` metadata `smd export` writes
CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
ORT_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|tensorrt(:\d+)?)$")


class ProviderUnavailableError(ValueError, RuntimeError):
    """A GPU provider was requested, is absent, and falling back to the CPU was not allowed."""


def select_providers(device: str, available: list[str], *, fallback: bool = True,
                     cache_dir: str | Path | None = None, hint: str = NODE_FALLBACK_HINT) -> tuple[list[Any], str]:
    """(providers for onnxruntime.InferenceSession, warning or "") for a `device` setting and the providers this
    onnxruntime offers (`onnxruntime.get_available_providers()`).

    auto: CUDA when available, else the CPU (TensorRT only when asked: its engine build takes minutes).
    cuda[:N] / tensorrt[:N] when absent: the CPU with a warning if `fallback`, else ProviderUnavailableError
    ending with `hint` (what the caller's user can do, as `resolve.resolve_device`).
    """
    device = str(device).strip().lower()
    if not ORT_DEVICE_PATTERN.match(device):
        raise ValueError(f"device must be auto, cpu, cuda[:N] or tensorrt[:N] for onnxruntime, got {device!r}")
    if device == "cpu":
        return [CPU], ""
    if device == "auto":
        return ([(CUDA, {"device_id": 0}), CPU] if CUDA in available else [CPU]), ""
    kind, _, index = device.partition(":")
    device_id = int(index or 0)
    wanted = TENSORRT if kind == "tensorrt" else CUDA
    if wanted not in available:
        why = f"device={device!r} requested but this onnxruntime has no {wanted} (it has {', '.join(available)})"
        if not fallback:
            raise ProviderUnavailableError(f"{why} ({hint})")
        return [CPU], f"{why}: running on the CPU (set device_fallback:=false to fail)"
    providers: list[Any] = []
    if wanted == TENSORRT:
        trt: dict[str, Any] = {"device_id": device_id}
        if cache_dir is not None:
            # Engines are built once per input-shape range and reused from here by later starts.
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        providers.append((TENSORRT, trt))
    if CUDA in available:
        providers.append((CUDA, {"device_id": device_id}))
    return [*providers, CPU], ""


def read_onnx(path: Path) -> tuple[Any, dict[str, Any]]:
    """(onnx.ModelProto, metadata with JSON values decoded) of an `smd export` file; clear errors naming it."""
    import onnx

    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises its own DecodeError; onnx wraps others
        raise ValueError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc})") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if json.loads(meta.get("smd_format", "null")) != ONNX_FORMAT:
        raise ValueError(f"{path}: not written by `smd export` (no smd_format={ONNX_FORMAT!r} metadata)")
    return model, {k: json.loads(v) for k, v in meta.items()}


def config_of(metadata: dict[str, Any], path: Path) -> ModelConfig:
    """The ModelConfig an `smd export` file carries."""
    return from_dict(ModelConfig, metadata["model_config"], _where=f"{path}: model_config")


class OnnxModel:
    """An `smd export` file: its ModelConfig, metadata and encode / query sessions on the providers of `device`
    (`select_providers`). threads: intra-op threads on the CPU (0: onnxruntime's choice, one per core; n > 1 also
    runs n query blocks at once, `query_workers`). spin: let waiting worker threads spin (onnxruntime's default;
    False makes them sleep, as the node's OpenMP policy does for torch)."""

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int = 0, spin: bool = False,
                 fallback: bool = True, hint: str = NODE_FALLBACK_HINT) -> None:
        import onnx
        import onnxruntime as ort

        self.path = Path(path)
        model, self.metadata = read_onnx(self.path)
        self.config = config_of(self.metadata, self.path)
        if not isinstance(self.metadata.get("deployment"), dict):
            raise ValueError(f"{self.path}: no deployment metadata (an export older than config.Deployment): export "
                             "it again from its checkpoint (smd export CKPT --out model.onnx)")
        self.deployment = from_dict(Deployment, self.metadata["deployment"], _where=f"{self.path}: deployment")
        self.pad_multiple = int(self.metadata["pad_multiple"])
        self.guide_channels = int(self.metadata["guide_channels"])
        # Keyword arguments of classical.guide_channels beyond the images, SGBM and max_disp (cost_offsets).
        self.guide_options: dict[str, Any] = dict(self.metadata.get("guide_options") or {})
        size = self.metadata.get("image_size")
        self.image_size: tuple[int, int] | None = tuple(size) if size else None  # type: ignore[assignment]
        self.sgbm: SGBMConfig | None = None
        if self.guide_channels:
            try:
                expected = classical.guide_channel_count(**self.guide_options)
            except TypeError as exc:
                raise ValueError(f"{self.path}: guide options {self.guide_options} are unknown to this smd_core's "
                                 f"classical.guide_channels ({exc}): export it again with this version") from exc
            if self.guide_channels != expected:
                raise ValueError(f"{self.path} takes {self.guide_channels} SGBM guide channels but this smd_core's "
                                 f"classical.guide_channels makes {expected} for {self.guide_options}: export it "
                                 "again from its checkpoint (smd export CKPT --out model.onnx)")
            self.sgbm = from_dict(SGBMConfig, self.config.backbone_options.get("sgbm", {}))
        self.encode_inputs: list[str] = self.metadata["encode_inputs"]
        self.encode_outputs: list[str] = self.metadata["encode_outputs"]
        self.query_outputs: list[str] = self.metadata["query_outputs"]

        available = ort.get_available_providers()
        providers, warning = select_providers(device, available, fallback=fallback, hint=hint,
                                              cache_dir=self.path.parent / f".{self.path.stem}.trt")
        self.requested = [p[0] if isinstance(p, tuple) else p for p in providers]
        # On the CPU with several threads the query blocks run concurrently, one per thread, on a single-threaded
        # query session (as the torch backend's): onnxruntime spreads the query graph's small ops poorly.
        self.query_workers = int(threads) if self.requested[0] == CPU and threads > 1 else 1

        def options(intra_op_threads: int) -> Any:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = intra_op_threads
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
            opts.log_severity_level = 3  # onnxruntime's own fallback messages: we say it in one line below
            return opts

        extractor = onnx.utils.Extractor(model)
        graphs = {"encode": extractor.extract_model(self.encode_inputs, self.encode_outputs),
                  "query": extractor.extract_model(self.metadata["query_inputs"], self.query_outputs)}
        intra_op = {"encode": int(threads), "query": 1 if self.query_workers > 1 else int(threads)}
        self.sessions = {k: ort.InferenceSession(g.SerializeToString(), options(intra_op[k]), providers=providers)
                         for k, g in graphs.items()}
        self.providers: list[str] = self.sessions["encode"].get_providers()
        self.warnings = [warning] if warning else []
        if self.requested[0] not in self.providers:
            why = f"onnxruntime could not start {self.requested[0]} (its libraries?)"
            if not fallback:
                raise ProviderUnavailableError(f"{why} ({hint})")
            self.warnings.append(f"{why}: running on {self.providers[0]}")
        # Maps stay where the encoder put them (GPU memory on CUDA/TensorRT) between the query blocks.
        gpu = self.providers[0] in (CUDA, TENSORRT)
        self.device_type = "cuda" if gpu else "cpu"
        self.device_id = int(device.partition(":")[2] or 0) if gpu else 0
        self.device = f"{self.device_type}:{self.device_id} ({self.providers[0]})" if gpu else f"cpu ({CPU})"

    def encode(self, pair: np.ndarray) -> list[Any]:
        """pair (2, Hp, Wp, 3) uint8 BGR -> the encoder's outputs as OrtValues (on the provider's device)."""
        left = np.ascontiguousarray(pair[0:1].transpose(0, 3, 1, 2), dtype=np.float32)
        if self.sgbm is not None:
            second = classical.guide_channels(pair[0], pair[1], self.sgbm, self.config.max_disp,
                                              **self.guide_options)[None]
        else:
            second = np.ascontiguousarray(pair[1:2].transpose(0, 3, 1, 2), dtype=np.float32)
        session = self.sessions["encode"]
        binding = session.io_binding()
        for name, value in zip(self.encode_inputs, (left, second), strict=True):
            binding.bind_cpu_input(name, np.ascontiguousarray(value, dtype=np.float32))
        for name in self.encode_outputs:
            binding.bind_output(name, self.device_type, self.device_id)
        session.run_with_iobinding(binding)
        return list(binding.get_outputs())

    def query(self, maps: list[Any], gx: np.ndarray, gy: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """`outputs` of the query graph at the grid gx (W,) x gy (R,) (normalized), each (1, R * W) float32."""
        session = self.sessions["query"]
        binding = session.io_binding()
        for name, value in zip(self.encode_outputs, maps, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_cpu_input("gx", np.ascontiguousarray(gx, dtype=np.float32))
        binding.bind_cpu_input("gy", np.ascontiguousarray(gy, dtype=np.float32))
        for name in outputs:
            binding.bind_output(name, "cpu")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()


class OrtPredictor(DensePredictor):
    """Dense disparity + uncertainty from an `smd export` file with onnxruntime (same outputs as `Predictor`):
    `model` an OnnxModel, or the .onnx file the other arguments open as one."""

    backend = "onnxruntime"

    def __init__(self, model: OnnxModel | str | Path, *, device: str = "cpu", threads: int = 0, spin: bool = False,
                 fallback: bool = True, hint: str = NODE_FALLBACK_HINT, chunk_points: int = CHUNK_POINTS,
                 uncertainty_kind: str = "edge") -> None:
        if not isinstance(model, OnnxModel):
            model = OnnxModel(model, device=device, threads=threads, spin=spin, fallback=fallback, hint=hint)
        super().__init__(chunk_points=chunk_points, pad_multiple=model.pad_multiple, uncertainty_kind=uncertainty_kind)
        self.model, self.config, self.deployment, self.device = model, model.config, model.deployment, model.device
        fields = [o for o in model.query_outputs if not o.startswith("uncertainty_")]
        if f"uncertainty_{uncertainty_kind}" not in model.query_outputs:
            kinds = [o.removeprefix("uncertainty_") for o in model.query_outputs if o.startswith("uncertainty_")]
            raise ValueError(f"{model.path.name} has no {uncertainty_kind!r} uncertainty (it has {kinds}): export "
                             "it again with this version's `smd export`, or choose one of those kinds")
        self._outputs = [*fields, f"uncertainty_{uncertainty_kind}"]

    def _block_points(self) -> int:
        # Cache-sized blocks on the CPU (as `SMDHead.forward_points` blocks its rows); they also keep onnxruntime's
        # memory arena, which holds on to the largest block's working set, small.
        return min(self.chunk_points, QUERY_BLOCK) if self.model.device_type == "cpu" else self.chunk_points

    def _query_workers(self) -> int:
        return self.model.query_workers

    def _encode(self, pair: np.ndarray) -> Any:
        if self.model.image_size is not None and tuple(pair.shape[1:3]) != self.model.image_size:
            h, w = self.model.image_size
            raise ValueError(f"{self.model.path.name} was exported for {h}x{w} network inputs, got "
                             f"{pair.shape[1]}x{pair.shape[2]} (padded): export it without --size, or with this size")
        return self.model.encode(pair)

    def _query_block(self, features: Any, xs: np.ndarray, ys: np.ndarray,
                     grid_size: tuple[float, float]) -> dict[str, np.ndarray]:
        gx, gy = normalize_coords(xs, grid_size[1]), normalize_coords(ys, grid_size[0])
        values = self.model.query(features, gx, gy, self._outputs)
        return {name: value[0] for name, value in zip([*self._outputs[:-1], "uncertainty"], values, strict=True)}


def onnxruntime_version() -> str:
    """The installed onnxruntime's version and providers, for logs."""
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())}; {os.cpu_count()} cores)"
