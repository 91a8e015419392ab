"""The `smd` command: dispatch, help, start-up time, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smd_core import cli
from smd_ros import cli as ros_cli

REPO = Path(__file__).resolve().parents[1]


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "predict" in capsys.readouterr().out


def test_smd_offers_every_subcommand_and_smd_core_knows_no_ros(capsys):
    assert ros_cli.main([]) == 2
    listed = capsys.readouterr().out
    for name in ("predict", "train", "eval", "synth", "bag2dataset", "demo"):
        assert name in listed, name
    assert not any(module.startswith("smd_ros") for module, _ in cli.CORE_COMMANDS.values())
    with pytest.raises(SystemExit):
        cli.main(["bag2dataset", "--help"])  # not a core command: an argparse error


def test_help_is_fast_and_imports_no_torch():
    """`smd --help` and `smd CMD --help` for every command, in turn, in one fresh interpreter: after each, neither
    torch nor rclpy has been imported (a module that did shows up at the command that imported it)."""
    code = (
        "import contextlib, io, json, sys, time\n"
        "t = time.perf_counter()\n"
        "from smd_ros import cli\n"
        "results = []\n"
        "for argv in [['--help']] + [[name, '--help'] for name in cli.COMMANDS]:\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            cli.main(argv)\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "    now = time.perf_counter()\n"
        "    results.append({'argv': argv, 'seconds': now - t, 'code': code, 'usage': out.getvalue()[:200],\n"
        "                    'heavy': sorted(m for m in ('torch', 'rclpy') if m in sys.modules)})\n"
        "    t = now\n"
        "print(json.dumps(results))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    assert [r["argv"][:-1] for r in results] == [[], *([name] for name in ros_cli.COMMANDS)]
    for r in results:
        assert r["code"] == 0 and "usage: smd" in r["usage"] and not r["heavy"], r
        # Imports only: < 0.3 s each on an idle machine; the bound is generous for a shared, busy CI CPU.
        assert r["seconds"] < 1.5, r


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


# ------------------------------------------------------------------------------------ one clear line per mistake


def _pair(tmp_path: Path) -> tuple[str, str]:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    for name in ("l.png", "r.png"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    return str(tmp_path / "l.png"), str(tmp_path / "r.png")


def _predict_error(capfd, argv: list[str]) -> str:
    rc = cli.main(["predict", *argv])
    captured = capfd.readouterr()
    assert rc == 2, captured
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("smd predict: error: "), captured.err
    return lines[0]


@pytest.fixture
def no_debug(monkeypatch):
    monkeypatch.delenv("SMD_DEBUG", raising=False)


def test_a_checkpoint_that_is_not_one_is_named_in_one_line(tmp_path, capfd, no_debug):
    left, right = _pair(tmp_path)
    line = _predict_error(capfd, [left, right, "--checkpoint", left, "--device", "cpu"])
    assert f"{left}: not a readable PyTorch checkpoint (neither a zip archive nor a pickle" in line
    assert "weights_only" not in line
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(b"PK\x03\x04" + bytes(100))  # a zip header, then nothing torch can read
    line = _predict_error(capfd, [left, right, "--checkpoint", str(truncated), "--device", "cpu"])
    assert f"{truncated}: not a readable PyTorch checkpoint" in line


def test_unknown_backbone_or_output_lists_the_valid_values(tmp_path, capfd, no_debug):
    left, right = _pair(tmp_path)
    line = _predict_error(capfd, [left, right, "--output", "foo", "--device", "cpu"])
    assert "output must be one of bimodal, standard, unimodal" in line and "'foo'" in line
    line = _predict_error(capfd, [left, right, "--backbone", "foo", "--device", "cpu"])
    assert "backbone must be one of hsmnet, light, psmnet, sgbm_guided" in line and "'foo'" in line
    line = _predict_error(capfd, [left, right, "--output", "standard", "--device", "cpu"])  # valid, not this file's
    assert "output='standard' was requested but the checkpoint's output is 'bimodal'" in line


def test_an_output_too_large_for_memory_names_the_scale(tmp_path, capfd, no_debug):
    left, right = _pair(tmp_path)
    line = _predict_error(capfd, [left, right, "--scale", "1e9", "--device", "cpu", "--out", str(tmp_path / "o")])
    assert "output size 64000000000x96000000000 (from scale 1e+09 of 64x96)" in line and "GiB" in line
    assert not (tmp_path / "o").exists()


def test_cuda_without_a_gpu_says_what_to_choose(tmp_path, capfd, no_debug):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    left, right = _pair(tmp_path)
    line = _predict_error(capfd, [left, right, "--device", "cuda"])
    assert "CUDA is not available" in line and "choose device cpu or auto" in line
    assert "device_fallback" not in line  # the node's parameter; the command has none


def test_a_missing_or_unreadable_image_is_one_line_without_opencv_warnings(tmp_path, capfd, no_debug):
    left, right = _pair(tmp_path)
    line = _predict_error(capfd, [str(tmp_path / "missing.png"), right, "--device", "cpu"])
    assert line.endswith(f"image not found: {tmp_path / 'missing.png'}")
    (tmp_path / "text.png").write_text("not an image")
    line = _predict_error(capfd, [left, str(tmp_path / "text.png"), "--device", "cpu"])
    assert f"cannot read image {tmp_path / 'text.png'}: not an image" in line


def test_predict_pictures_have_colour_bars_and_uncertainty_starts_at_the_models_floor(tmp_path):
    import cv2
    import numpy as np

    from smd_core.infer.confidence import uncertainty_floor
    from smd_core.weights import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "guided_bimodal.pt").is_file():
        pytest.skip("the bundled weights are not in this checkout")
    left, right = _pair(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["predict", left, right, "--out", str(out), "--device", "cpu"]) == 0
    info = json.loads((out / "prediction.json").read_text())
    assert info["uncertainty_floor_px"] == pytest.approx(uncertainty_floor(128)) == pytest.approx(1.81, abs=0.01)
    for name in ("disparity", "uncertainty"):
        picture = cv2.imread(str(out / f"{name}.png"))
        assert picture.shape[0] == 64 and picture.shape[1] > 96 + 30, name  # the map, then its colour bar
    # Pixels at the floor are the darkest colour of the uncertainty scale.
    u = np.load(out / "uncertainty.npy")
    picture = cv2.imread(str(out / "uncertainty.png"))[:, :96].astype(int)
    at_floor = u <= info["uncertainty_floor_px"] + 1e-4
    if at_floor.any():
        assert picture[at_floor].max() < 10
