"""The `smd` command: dispatch, help, and one-line errors for bad input."""

from __future__ import annotations

import pytest

from smd_core import cli


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "predict" in capsys.readouterr().out


def test_unknown_command_is_an_argparse_error():
    with pytest.raises(SystemExit):
        cli.main(["frobnicate"])


def test_bad_input_gives_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SMD_DEBUG", raising=False)
    rc = cli.main(["predict", str(tmp_path / "l.png"), str(tmp_path / "r.png"),
                   "--checkpoint", str(tmp_path / "missing.pt"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "smd predict: error: checkpoint file not found" in err and "Traceback" not in err
    monkeypatch.setenv("SMD_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["predict", "l.png", "r.png", "--checkpoint", str(tmp_path / "missing.pt"), "--device", "cpu"])


@pytest.mark.slow
def test_predict_writes_maps_and_pictures(tmp_path, parity_dir):
    import cv2
    import numpy as np

    with np.load(parity_dir / "psm_bimodal_s1" / "case.npz") as z:
        left, right = z["left_bgr"][:64, :128], z["right_bgr"][:64, :128]
    cv2.imwrite(str(tmp_path / "l.png"), left)
    cv2.imwrite(str(tmp_path / "r.png"), right)
    out = tmp_path / "out"
    rc = cli.main(["predict", str(tmp_path / "l.png"), str(tmp_path / "r.png"), "--checkpoint",
                   str(parity_dir / "psm_bimodal_s1" / "checkpoint.pth"), "--out", str(out), "--scale", "1.5",
                   "--device", "cpu"])
    assert rc == 0
    disp = np.load(out / "disparity.npy")
    assert disp.shape == (96, 192) and np.isfinite(disp).all()
    for name in ("disparity.png", "uncertainty.png", "mu0.npy", "pi1.npy", "prediction.json"):
        assert (out / name).is_file(), name
