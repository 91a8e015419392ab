"""The GPU recipe (scripts/train_gpu.sh) in its dry-run mode: the same stages as the CPU recipe, each from
the previous one's weights, with the batch scaled up and the steps scaled down by the same factor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_recipe_chains_the_cpu_stages_with_scaled_batch_steps_and_lr(tmp_path: Path) -> None:
    env = {**os.environ, "DRY_RUN": "1", "GPU_BATCH": "8", "SMD_RUNS": str(tmp_path / "runs"),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "scripts/train_gpu.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    trains = [line for line in out if line.startswith("smd train")]
    stages = re.findall(r'"(\w+) (\d+) ', (REPO / "scripts" / "guided_stages.sh").read_text())
    assert len(trains) == 2 * 2 + len(stages)  # stages 1-2 of both heads, then the later ones
    costs = next(t for t in trains if "log_dir=" in t and t.split("log_dir=")[1].split()[0].endswith("_costs"))
    assert "steps=5000 " in costs and "batch_size=8 " in costs and "model.backbone_options.cost_offsets=3" in costs
    lr = float(re.search(r"optim\.lr=([\d.e-]+)", costs).group(1))
    assert abs(lr - 3e-4 * 2**0.5) < 1e-9
    assert "--init" in costs and "guided_synthetic_stage5/checkpoints" in costs
    assert out[-1].startswith("python scripts/ship_models.py guided --bimodal-run")
