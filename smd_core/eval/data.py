"""The frames `smd eval` scores: `--data` specs -> `DataConfig` -> frames.

`synthetic:SEED:N` (scenes `render_scene((SEED, i))`, i < N, 640x480, disparity up to 64 px unless
`--data-option` says otherwise; a seed training never used gives scenes it never saw), `motorcycle` (the real
Middlebury scene of `smd_core.data.real_sample`), a list file, a YAML file (a training config's val_data,
else its data section; or a DataConfig), or `KIND:ROOT` for the other `DataConfig` kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smd_core.config import apply_overrides, from_dict, read_mapping


def parse_data_spec(spec: str, options: Sequence[str] = ()) -> Any:
    """`--data` string (+ `key=value` DataConfig overrides) -> `smd_core.data.DataConfig`."""
    from smd_core.data import DATASET_KINDS, DataConfig

    spec = str(spec).strip()
    if not spec:
        raise ValueError("--data is empty")
    data: dict[str, Any]
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        parts = rest.split(":") if rest else []
        if len(parts) != 2:
            raise ValueError(f"synthetic data is 'synthetic:SEED:N', got {spec!r}")
        try:
            seed, num = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"synthetic data is 'synthetic:SEED:N' with integers, got {spec!r}") from None
        data = {"kind": "synthetic", "seed": seed, "num_samples": num}
    elif kind == "motorcycle":
        if rest:
            raise ValueError(f"the motorcycle data is bundled with scikit-image and takes no root, got {spec!r}")
        data = {"kind": "motorcycle"}
    elif kind in DATASET_KINDS and rest:
        data = {"kind": kind, "split": rest} if kind == "list" else {"kind": kind, "root": rest}
    else:
        path = Path(spec)
        if path.suffix.lower() in (".yaml", ".yml"):
            loaded = read_mapping(path, "data config")
            # A training config: evaluate on its validation data, else its training data; else a DataConfig.
            training = "data" in loaded or "val_data" in loaded
            section = (loaded.get("val_data") or loaded.get("data")) if training else loaded
            if not isinstance(section, dict):
                raise ValueError(f"{path}: the data section must be a mapping, got {section!r}")
            data = dict(section)
        elif path.suffix.lower() == ".txt" or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"list file not found: {path}")
            data = {"kind": "list", "split": str(path)}
        else:
            raise ValueError(f"cannot read --data {spec!r}: expected synthetic:SEED:N, motorcycle, a list file, a "
                             f"YAML file or KIND:ROOT with KIND one of {DATASET_KINDS}")
    apply_overrides(data, options)
    return from_dict(DataConfig, data)


def load_frames(spec: str, options: Sequence[str] = ()) -> Any:
    """The evaluation frames (`build_dataset(cfg, train=False)`) for a `--data` spec."""
    from smd_core.data import build_dataset

    return build_dataset(parse_data_spec(spec, options), train=False)
