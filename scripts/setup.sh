#!/usr/bin/env bash
# Creates .venv with everything smd_ros needs on a pip-only machine (Python 3.10-3.12):
# the CPU PyTorch build first (so nothing pulls multi-GB CUDA wheels), the package in editable
# mode, and ROS 2 Kilted from PyPI wheels (rclpy, messages, Fast DDS, colcon).
# On a machine with a real ROS 2 install, use colcon instead (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q "torch==${SMD_TORCH_VERSION:-2.13.0}"
pip install -q -e ".[test,train]"
pip install -q ros-rclpy ros-sensor-msgs ros-stereo-msgs ros-std-msgs ros-diagnostic-msgs \
  ros-rmw-fastrtps-cpp colcon-common-extensions ros-ament-package
echo "smd_ros environment ready in $(pwd)/.venv"
