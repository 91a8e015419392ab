#!/usr/bin/env bash
# GPU check (when a GPU machine is lent): onnxruntime CUDA / TensorRT providers and torch CUDA on the bundled
# and a published-shape model at 640x480 and 960x540; latency and parity (bench/gpu_check.py).
# Needs a Python with torch (CUDA build), onnx and onnxruntime-gpu (TensorRT libraries for its provider):
#   PYTHON=/path/to/python bash bench/gpu_check.sh [--repeats N]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi not found"
"$PY" - <<'PYEOF' || { echo "gpu_check: install torch (CUDA), onnx and onnxruntime-gpu for $PY first"; exit 2; }
import importlib
missing = [m for m in ("torch", "onnx", "onnxruntime", "cv2", "yaml") if importlib.util.find_spec(m) is None]
raise SystemExit(f"missing: {missing}" if missing else 0)
PYEOF
exec "$PY" bench/gpu_check.py "$@"
