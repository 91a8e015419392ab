#!/usr/bin/env bash
# Creates a virtual environment with everything smd_ros needs on a pip-only machine (Python 3.10-3.12):
# PyTorch first (the build SMD_TORCH asks for, so nothing pulls the CUDA wheels by accident), the package in
# editable mode, and ROS 2 from PyPI wheels (rclpy, messages, Fast DDS, colcon).
#
#   SMD_ROS_DISTRO=kilted (default) -> .venv        ROS 2 Kilted wheels (rclpy 9, Fast DDS 3)
#   SMD_ROS_DISTRO=jazzy            -> .venv-jazzy  ROS 2 Jazzy wheels, pinned (rclpy 7.1.6, Fast DDS 2.14): pip
#                                                   is held to them so no later install upgrades them to Kilted's
#   SMD_TORCH=cpu (default) | cuda | auto            see scripts/torch_pip_args.py (what each installs)
#   SMD_TORCH_VERSION=2.13.0, SMD_VENV=<folder> (default above), PYTHON=python3
#
# On a machine with a real ROS 2 install, use colcon instead (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DISTRO=${SMD_ROS_DISTRO:-kilted}
TORCH_CHOICE=${SMD_TORCH:-cpu}
TORCH_VERSION=${SMD_TORCH_VERSION:-2.13.0}
case "$DISTRO" in
  kilted) VENV=${SMD_VENV:-.venv} ;;
  jazzy) VENV=${SMD_VENV:-.venv-jazzy} ;;
  *) echo "setup.sh: SMD_ROS_DISTRO must be kilted or jazzy, got '$DISTRO'" >&2; exit 2 ;;
esac
mapfile -t TORCH_ARGS < <("$PY" scripts/torch_pip_args.py "$TORCH_CHOICE" --version "$TORCH_VERSION")
[ ${#TORCH_ARGS[@]} -gt 0 ] || exit 2  # torch_pip_args.py said why

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "setup.sh: $("$PY" scripts/torch_pip_args.py "$TORCH_CHOICE" --version "$TORCH_VERSION" --explain)," \
  "ROS 2 $DISTRO, into $VENV"
BUILD=$("$PY" scripts/torch_pip_args.py "$TORCH_CHOICE" --build)
# Re-runs keep an installed torch of the wanted version and build (cpu: no CUDA in it); anything else is replaced.
if ! python -c "import sys, torch; v = torch.__version__.split('+')[0]
sys.exit(not (v == '$TORCH_VERSION' and (torch.version.cuda is None) == ('$BUILD' == 'cpu')))" 2>/dev/null; then
  pip install -q "${TORCH_ARGS[@]}"
fi
pip install -q "torch==$TORCH_VERSION"  # its dependencies (the build installed above satisfies the version)
if [ "$DISTRO" = jazzy ]; then
  # Jazzy's meta-wheels pin every ros-* wheel they need; the constraints file keeps them pinned for what follows.
  pip install -q "ros-jazzy-rclpy[fastrtps]==7.1.6" ros-jazzy-sensor-msgs==5.3.6 ros-jazzy-stereo-msgs==5.3.6 \
    ros-jazzy-std-msgs==5.3.6 ros-jazzy-diagnostic-msgs==5.3.6 ros-jazzy-rmw-fastrtps-cpp==8.4.3 \
    ros-jazzy-ament-package==0.16.4
  CONSTRAINTS="$VENV/ros-constraints.txt"
  pip freeze | grep -i '^ros-' > "$CONSTRAINTS"
  pip install -q -c "$CONSTRAINTS" -e ".[test,train,export]" colcon-common-extensions
else
  pip install -q -e ".[test,train,export]"
  pip install -q ros-rclpy ros-sensor-msgs ros-stereo-msgs ros-std-msgs ros-diagnostic-msgs \
    ros-rmw-fastrtps-cpp colcon-common-extensions ros-ament-package
fi
echo "smd_ros environment ready in $(cd "$VENV" && pwd) (ROS 2 $DISTRO)"
