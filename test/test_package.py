"""The package installs the way ROS users build it: `colcon build` puts launch, config and executables in place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Files a ROS user's launch needs from share/smd_ros; setup.py's data_files must install every one.
SHARED_FILES = ("launch/stereo.launch.py", "config/stereo.yaml", "config/smd.rviz", "config/loopback_fastdds.xml")


def test_shared_files_exist_and_setup_installs_them():
    """Without colcon: every file the launch needs is in the repo and matched by a data_files glob of setup.py."""
    import ast
    from glob import glob

    missing = [rel for rel in SHARED_FILES if not (REPO / rel).is_file()]
    assert not missing, f"missing from the repository: {missing}"
    tree = ast.parse((REPO / "setup.py").read_text())
    globs = [node.args[0].value for node in ast.walk(tree)
             if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "glob"]
    cwd = os.getcwd()
    try:
        os.chdir(REPO)
        matched = {f for pattern in globs for f in glob(pattern)}
    finally:
        os.chdir(cwd)
    assert set(SHARED_FILES) <= matched, f"not installed by setup.py data_files: {set(SHARED_FILES) - matched}"


@pytest.mark.slow  # a full colcon build: ~20 s
@pytest.mark.skipif(shutil.which("colcon") is None and not (Path(sys.executable).parent / "colcon").exists(),
                    reason="colcon is not installed (pip install colcon-common-extensions)")
def test_colcon_build_installs_package(tmp_path):
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [colcon, "build", "--base-paths", str(REPO), "--build-base", str(tmp_path / "build"),
         "--install-base", str(tmp_path / "install")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    share = tmp_path / "install" / "smd_ros" / "share" / "smd_ros"
    lib = tmp_path / "install" / "smd_ros" / "lib" / "smd_ros"
    assert (share / "package.xml").is_file()
    index = tmp_path / "install" / "smd_ros" / "share" / "ament_index" / "resource_index" / "packages"
    assert (index / "smd_ros").exists()
    for exe in ("stereo_node", "smd", "bag2dataset"):
        assert (lib / exe).is_file(), f"missing executable {exe}"
    for rel in SHARED_FILES:
        assert (share / rel).is_file(), f"{rel} not installed"
    # package data the node and the demo load at run time
    site = next((tmp_path / "install" / "smd_ros" / "lib").glob("python3*/site-packages"))
    assert (site / "smd_core" / "weights" / "guided_bimodal.pt").is_file()


def test_package_xml_is_format_3_ament_python():
    import xml.etree.ElementTree as ET

    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "smd_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "stereo_msgs", "message_filters", "python3-numpy"} <= deps
