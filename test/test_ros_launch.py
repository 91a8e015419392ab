"""launch/stereo.launch.py: its arguments and node description (with stand-ins for launch/launch_ros when they
are not installed), and a real launch where launch_ros and an installed smd_ros are available."""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
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
    for name in ("launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch.logging",
                 "launch_ros", "launch_ros.actions", "launch_ros.substitutions"):
        mods[name] = types.ModuleType(name)
    mods["launch"].LaunchDescription = type("LaunchDescription", (Recorded,), {})
    # launch.logging.get_logger returns a standard logging.Logger (launch's own handlers attached).
    mods["launch.logging"].get_logger = logging.getLogger
    for name in ("DeclareLaunchArgument", "OpaqueFunction"):
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


def test_description_structure(monkeypatch, caplog):
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
    with caplog.at_level(logging.INFO, logger=mod.LOGGER):
        actions = opaque.kwargs["function"](types.SimpleNamespace(launch_configurations={**values, "rviz": "true"}))
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    if mod.rviz_installed():
        assert [n.kwargs["package"] for n in nodes] == ["smd_ros", "rviz2"] and not caplog.records
    else:
        assert [n.kwargs["package"] for n in nodes] == ["smd_ros"]
        # A real warning (level WARNING), not an INFO line that starts with "WARNING:".
        (record,) = caplog.records
        assert record.levelno == logging.WARNING and record.name == mod.LOGGER
        assert "rviz2 is not installed" in record.getMessage() and not record.getMessage().startswith("WARNING")


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


@pytest.mark.slow  # starts the node as its own process
@pytest.mark.ros
def test_real_launch(ros_env):
    """Launch the installed package with the real `launch` / `launch_ros` and see the node subscribe.

    Needs launch_ros and smd_ros in an ament prefix (colcon build; source install/setup.bash). The real
    `LaunchService.run` must run in the main thread (its run_async raises 'LaunchService can only be run in the
    main thread' elsewhere), so the probe runs in a thread and ends the launch with `ls.shutdown()` (documented
    thread-safe). The probe waits for the node's subscription, which the node makes after loading its model, not
    just its name. rviz:=true where rviz2 is absent also checks the launch file's warning under the real launch.
    """
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (a ROS 2 install, not pip wheels)")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("smd_ros")
    except (PackageNotFoundError, LookupError, OSError):
        pytest.skip("smd_ros is not installed in an ament prefix (colcon build; source install/setup.bash)")
    import rclpy  # noqa: I001 (ruff takes `launch` for the repository's launch/ folder)
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    import launch.logging

    from ros_helpers import wait_until
    from smd_ros.ros_session import ros_session

    mod = load_launch_module()
    rviz_absent = not mod.rviz_installed()
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    launch.logging.get_logger(mod.LOGGER).addHandler(handler)
    topic = "/smd_launch_test/left/image_rect"
    ls = LaunchService()
    ls.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        # The bundled model (checkpoint left to the params file), small enough for any clone.
        launch_arguments={"namespace": "smd_launch_test", "device": "cpu",
                          "rviz": str(rviz_absent).lower()}.items())]))
    probe_result: dict[str, object] = {}

    def probe() -> None:
        try:
            with ros_session(context=rclpy.Context()) as context:
                node = rclpy.create_node("launch_probe", context=context)
                try:
                    wait_until(lambda: node.count_subscribers(topic) >= 1, 120, f"a subscriber on {topic}")
                    probe_result["names"] = node.get_node_names_and_namespaces()
                finally:
                    node.destroy_node()
        except AssertionError as exc:  # reported by the main thread below
            probe_result["error"] = exc
        finally:
            ls.shutdown()

    thread = threading.Thread(target=probe, name="launch_probe", daemon=True)
    thread.start()
    try:
        rc = ls.run()  # in the main thread, as the real LaunchService requires
    finally:
        launch.logging.get_logger(mod.LOGGER).removeHandler(handler)
    thread.join(timeout=30)
    assert "error" not in probe_result, probe_result["error"]
    assert ("stereo_node", "/smd_launch_test") in probe_result["names"], probe_result["names"]
    assert rc == 0
    if rviz_absent:
        assert [r.getMessage() for r in warnings if "rviz2 is not installed" in r.getMessage()], warnings
