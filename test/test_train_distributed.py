"""Multi-process training: `torchrun --nproc_per_node 2` on the CPU (gloo) ends with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_train import tiny_dict

# Each rank trains, then reports a hash of its final weights, its losses and its step.
DRIVER = '''
import hashlib, json, os, sys
from pathlib import Path
from smd_core.train.config import load_config
from smd_core.train.loop import train

cfg = load_config(sys.argv[1])
result = train(cfg)
h = hashlib.sha256()
for name, tensor in sorted(result.model.state_dict().items()):
    h.update(name.encode())
    h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
params = hashlib.sha256()
for name, p in sorted(result.model.named_parameters()):
    params.update(p.detach().cpu().contiguous().numpy().tobytes())
report = {"rank": int(os.environ["RANK"]), "world": int(os.environ["WORLD_SIZE"]), "hash": h.hexdigest(),
          "params": params.hexdigest(), "losses": result.losses, "step": result.step,
          "checkpoint": str(result.checkpoint) if result.checkpoint else None}
Path(sys.argv[2], f"rank{report['rank']}.json").write_text(json.dumps(report))
'''


@pytest.mark.slow
def test_torchrun_two_cpu_processes_end_identical(tmp_path: Path) -> None:
    cfg = tiny_dict(tmp_path, steps=4, ckpt_every=2, data=dict(tiny_dict(tmp_path)["data"], num_samples=8))
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(driver), str(config), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in reports] == [2, 2] and [r["step"] for r in reports] == [4, 4]
    # Same weights (parameters and BatchNorm statistics) on both ranks ...
    assert reports[0]["params"] == reports[1]["params"]
    assert reports[0]["hash"] == reports[1]["hash"]
    # ... although each rank trained on its own shard of the data.
    assert reports[0]["losses"] != reports[1]["losses"]
    # Only rank 0 writes: one set of checkpoints, holding those weights.
    assert reports[1]["checkpoint"] is None
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["step_00000002.pth", "step_00000004.pth"]
    saved = torch.load(reports[0]["checkpoint"], weights_only=True)
    assert saved["data"]["world_size"] == 2 and saved["step"] == 4
