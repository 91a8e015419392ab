"""smd_core.resolve: the one device and checkpoint resolution behind the CLI, training and the node."""

from __future__ import annotations

import pytest
import torch

from smd_core import resolve, weights


def test_device_strings_and_unavailable_cuda() -> None:
    assert resolve.resolve_device(" CPU ") == ("cpu", "")
    assert resolve.select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N, got 'mps'"):
        resolve.select_device("mps")
    # Unavailable CUDA without fallback: a ValueError for the CLI's one-line errors, a RuntimeError for the node.
    with pytest.raises(resolve.DeviceUnavailableError) as info:
        resolve.resolve_device("cuda:3", cuda_available=False)
    assert isinstance(info.value, ValueError) and isinstance(info.value, RuntimeError)
    assert "CUDA is not available" in str(info.value)
    if not torch.cuda.is_available():
        assert resolve.select_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve.select_device("cuda")


def test_checkpoint_setting(tmp_path, monkeypatch) -> None:
    f = tmp_path / "m.pth"
    f.write_bytes(b"x")
    assert resolve.resolve_checkpoint(str(f)) == f
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*missing"):
        resolve.resolve_checkpoint(tmp_path / "missing")
    monkeypatch.setattr(weights, "default_checkpoint", lambda: f)
    assert resolve.resolve_checkpoint(None) == f and resolve.resolve_checkpoint("") == f

    def absent():
        raise FileNotFoundError("not in this install")

    monkeypatch.setattr(weights, "default_checkpoint", absent)
    with pytest.raises(FileNotFoundError, match=r"no model is bundled .*not in this install.*; pass --checkpoint$"):
        resolve.resolve_checkpoint("", hint="pass --checkpoint")
