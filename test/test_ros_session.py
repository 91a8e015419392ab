"""smd_ros.ros_session: rclpy start-up / shut-down and the Fast DDS profile variable, the same on Jazzy and Kilted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from smd_ros.ros_session import PROFILE_VARIABLES, dds_profile_env, profile_variables, ros_session  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_session_on_a_given_context_starts_and_stops_it(ros_env):
    import rclpy
    from rclpy.node import Node

    with ros_session(context=rclpy.Context()) as context:
        assert context.ok()
        Node("session_test", context=context).destroy_node()
    assert not context.ok()
    # Shut down inside (as rclpy's Ctrl-C handler does): leaving the block is not an error.
    with ros_session(context=rclpy.Context()) as context:
        context.shutdown()
    assert not context.ok()


def test_default_context_twice_with_arguments(ros_env):
    """The node's and the demo's use: the default context with command-line arguments, twice in one process
    (Jazzy's rclpy.init() returns None, so using it in a `with` statement dies there)."""
    code = """
import rclpy
from smd_ros.ros_session import ros_session
for _ in range(2):
    with ros_session(args=["prog", "--ros-args", "-r", "__node:=renamed"]) as context:
        assert context is rclpy.get_default_context() and rclpy.ok()
        node = rclpy.create_node("session_default")
        assert node.get_name() == "renamed", node.get_name()
        node.destroy_node()
    assert not rclpy.ok()
with ros_session():
    rclpy.shutdown()  # what Ctrl-C does under the node
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**ros_env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.mark.parametrize("distro, variable", [("jazzy", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                                              ("humble", "FASTRTPS_DEFAULT_PROFILES_FILE"),
                                              ("kilted", "FASTDDS_DEFAULT_PROFILES_FILE"),
                                              ("rolling", "FASTDDS_DEFAULT_PROFILES_FILE")])
def test_profile_variable_follows_ros_distro(monkeypatch, distro, variable):
    monkeypatch.setenv("ROS_DISTRO", distro)
    assert profile_variables() == (variable,)
    env = dds_profile_env("/p.xml", 42)
    assert env == {variable: "/p.xml", "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp", "ROS_DOMAIN_ID": "42"}


def test_the_installed_fast_dds_reads_the_variable_we_set(monkeypatch):
    """Jazzy's Fast DDS 2.14 reads only FASTRTPS_DEFAULT_PROFILES_FILE, Kilted's 3.x only FASTDDS_...: the
    library installed here must contain the name we set (else tests and demo silently run without the profile)."""
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    libs = sorted((Path(sys.prefix) / "lib").glob("libfast[dr]*s.so.*"))
    libs = [p for p in libs if p.name.startswith(("libfastdds.so.", "libfastrtps.so."))]
    if not libs:
        pytest.skip(f"no Fast DDS library under {sys.prefix}/lib (a ROS install outside the venv)")
    data = libs[-1].read_bytes()
    read = [v for v in PROFILE_VARIABLES if v.encode() in data]
    assert read and set(profile_variables()) >= set(read), (libs[-1].name, read, profile_variables())
