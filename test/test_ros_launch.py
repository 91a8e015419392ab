"""launch/stereo.launch.py: its arguments and node description (with stand-ins for launch/launch_ros when they
are not installed), and a real launch where launch_ros and an installed smd_ros are available."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "stereo.launch.py"


def load_launch_module():
    spec = importlib.util.spec_from_file_location("smd_stereo_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorded:
    """Stand-in for any launch class: remembers its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def fake_launch_modules() -> dict[str, types.ModuleType]:
    mods = {}
    for name in ("launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch_ros",
                 "launch_ros.actions", "launch_ros.substitutions"):
        mods[name] = types.ModuleType(name)
    mods["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "LogInfo"):
        setattr(mods["launch.actions"], name, type(name, (Recorded,), {}))
    mods["launch.conditions"].IfCondition = type("IfCondition", (Recorded,), {})
    mods["launch.substitutions"].LaunchConfiguration = type("LaunchConfiguration", (Recorded,), {})
    mods["launch.substitutions"].PathJoinSubstitution = type(
        "PathJoinSubstitution", (Recorded,), {"perform": lambda self, context: "/".join(
            p if isinstance(p, str) else "/share/smd_ros" for p in self.args[0])})
    mods["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    mods["launch_ros.substitutions"].FindPackageShare = type("FindPackageShare", (Recorded,), {})
    return mods


def test_file_loads_without_launch_and_declares_the_arguments():
    mod = load_launch_module()
    assert {"namespace", "params_file", "checkpoint", "device", "rviz"} <= set(mod.ARGUMENTS)
    assert {"left_namespace", "right_namespace", "fixed_frame"} <= set(mod.ARGUMENTS)
    assert mod.ARGUMENTS["rviz"][0] == "false"
    for name, (_, description) in mod.ARGUMENTS.items():
        assert description, name


def test_remappings_and_parameter_overrides():
    mod = load_launch_module()
    assert mod.remappings("/camera/left", "/camera/right/") == [
        ("left/image_rect", "/camera/left/image_rect"), ("left/camera_info", "/camera/left/camera_info"),
        ("right/image_rect", "/camera/right/image_rect"), ("right/camera_info", "/camera/right/camera_info"),
    ]
    assert mod.remappings("", "") == [("left/image_rect", "left/image_rect"), ("left/camera_info", "left/camera_info"),
                                      ("right/image_rect", "right/image_rect"),
                                      ("right/camera_info", "right/camera_info")]
    # Empty launch arguments keep the params file's values; given ones override it (later entries win).
    assert mod.node_parameters("p.yaml", "", "") == ["p.yaml"]
    assert mod.node_parameters("p.yaml", "/m.pth", "cuda") == ["p.yaml", {"checkpoint": "/m.pth", "device": "cuda"}]


def test_description_structure(monkeypatch):
    for name, module in fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    mod = load_launch_module()
    ld = mod.generate_launch_description()
    entities = ld.args[0]
    declared = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    assert set(declared) == set(mod.ARGUMENTS)
    assert all(kw["description"] for kw in declared.values())
    params_default = declared["params_file"]["default_value"]
    assert type(params_default).__name__ == "PathJoinSubstitution" and params_default.args[0][1:] == ["config",
                                                                                                      "stereo.yaml"]
    opaque = next(e for e in entities if type(e).__name__ == "OpaqueFunction")
    values = {"namespace": "stereo", "params_file": "/share/smd_ros/config/stereo.yaml", "checkpoint": "/m.pth",
              "device": "", "left_namespace": "/cam/left", "right_namespace": "/cam/right", "rviz": "false",
              "fixed_frame": "cam"}
    (node,) = opaque.kwargs["function"](types.SimpleNamespace(launch_configurations=values))
    kw = node.kwargs
    assert (kw["package"], kw["executable"], kw["name"], kw["namespace"]) == ("smd_ros", "stereo_node",
                                                                              "stereo_node", "stereo")
    assert kw["parameters"] == ["/share/smd_ros/config/stereo.yaml", {"checkpoint": "/m.pth"}]
    assert ("left/image_rect", "/cam/left/image_rect") in kw["remappings"]
    assert ("right/camera_info", "/cam/right/camera_info") in kw["remappings"]

    # rviz:=true on this machine: with rviz2 installed both start; without, the node starts alone and a warning
    # says why (before this change launch failed on 'rviz2' after starting the node, leaving it orphaned).
    actions = opaque.kwargs["function"](types.SimpleNamespace(launch_configurations={**values, "rviz": "true"}))
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    if mod.rviz_installed():
        assert [n.kwargs["package"] for n in nodes] == ["smd_ros", "rviz2"]
    else:
        assert [n.kwargs["package"] for n in nodes] == ["smd_ros"]
        (log,) = [a for a in actions if type(a).__name__ == "LogInfo"]
        assert "rviz2 is not installed" in log.kwargs["msg"]


def test_rviz_plan():
    mod = load_launch_module()
    values = {"namespace": "ns", "params_file": "p.yaml", "rviz": "true", "rviz_config": "/share/smd.rviz",
              "fixed_frame": "left_optical"}
    node, rviz, warning = mod.plan(values, rviz_found=True)
    assert node["package"] == "smd_ros" and not warning
    assert rviz["package"] == "rviz2" and rviz["namespace"] == "ns"
    assert rviz["arguments"] == ["-d", "/share/smd.rviz", "-f", "left_optical"]
    node, rviz, warning = mod.plan(values, rviz_found=False)
    assert node["package"] == "smd_ros" and rviz is None and "rviz2 is not installed" in warning
    for off in ("false", "False", "0"):
        assert mod.plan({**values, "rviz": off}, rviz_found=False)[1:] == (None, "")
    with pytest.raises(ValueError, match="rviz must be true or false, got 'yes please'"):
        mod.plan({**values, "rviz": "yes please"}, rviz_found=True)


def test_rviz_installed_follows_the_ament_index(monkeypatch, tmp_path):
    """rviz_installed() looks rviz2 up where launch_ros does (AMENT_PREFIX_PATH's resource index)."""
    pytest.importorskip("ament_index_python")
    mod = load_launch_module()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert not mod.rviz_installed()
    marker = tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "rviz2"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    assert mod.rviz_installed()


def test_rviz_config_shows_cloud_disparity_and_uncertainty():
    config = yaml.safe_load((REPO / "config" / "smd.rviz").read_text())
    displays = {d["Class"]: d for d in config["Visualization Manager"]["Displays"] if "Topic" in d}
    topics = sorted(d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d)
    assert topics == ["disparity_image", "points2", "uncertainty"]
    assert displays["rviz_default_plugins/PointCloud2"]["Color Transformer"] == "RGB8"
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"]


def test_real_launch(ros_env, parity_dir):
    """Launch the installed package (colcon build + source install/setup.bash) and see the node come up."""
    pytest.importorskip("launch_ros")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("smd_ros")
    except PackageNotFoundError:
        pytest.skip("smd_ros is not installed in an ament prefix (colcon build; source install/setup.bash)")
    import rclpy  # noqa: I001 (ruff takes `launch` for the repository's launch/ folder)
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    ls = LaunchService()
    ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={"namespace": "smd_launch_test", "device": "cpu", "rviz": "false",
                          "checkpoint": str(parity_dir / "psm_bimodal_s1" / "checkpoint.pth")}.items())]))
    thread = threading.Thread(target=ls.run, daemon=True)
    thread.start()
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("launch_probe", context=context)
    try:
        end = time.monotonic() + 90
        found = False
        while time.monotonic() < end and not found:
            found = ("stereo_node", "/smd_launch_test") in node.get_node_names_and_namespaces()
            time.sleep(0.5)
        assert found, "the launched stereo_node never appeared"
        assert node.count_subscribers("/smd_launch_test/left/image_rect") >= 1
    finally:
        node.destroy_node()
        context.try_shutdown()
        ls.shutdown()
        thread.join(timeout=30)
