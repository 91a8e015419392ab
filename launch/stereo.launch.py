"""Launch the SMD-Nets stereo node, optionally with rviz2.

    ros2 launch smd_ros stereo.launch.py namespace:=stereo left_namespace:=/camera/left \
        right_namespace:=/camera/right checkpoint:=/path/model.pth device:=cuda rviz:=true

Arguments:
    namespace        namespace of the node and its outputs (default: none)
    params_file      node parameters (default: the package's config/stereo.yaml)
    checkpoint       model checkpoint; overrides params_file when given (default: params_file's, i.e. the bundled
                     model)
    device           auto | cpu | cuda | cuda:N; overrides params_file when given
    rviz             start rviz2 with config/smd.rviz (default: false); where rviz2 is not installed the node
                     starts alone, with a warning (rviz2 is looked up before anything starts)
    fixed_frame      rviz2's fixed frame (default: left_camera_optical_frame; use the images' frame_id)
    left_namespace   where the left camera publishes image_rect and camera_info (default: left, relative)
    right_namespace  the same for the right camera (default: right)

Everything is imported inside `generate_launch_description` so the file can be loaded (and its structure
checked) on machines without `launch` / `launch_ros`.
"""

ARGUMENTS = {
    "namespace": ("", "Namespace of the node and its outputs."),
    "params_file": (None, "YAML file with the node parameters (default: the package's config/stereo.yaml)."),
    "checkpoint": ("", "Model checkpoint; empty: the params file's value (the bundled model by default)."),
    "device": ("", "Torch device (auto, cpu, cuda, cuda:N); empty: the params file's value."),
    "rviz": ("false", "Start rviz2 with the package's config/smd.rviz."),
    "fixed_frame": ("left_camera_optical_frame", "rviz2's fixed frame: the left images' frame_id (or a TF parent)."),
    "left_namespace": ("left", "Namespace of the left camera's image_rect and camera_info."),
    "right_namespace": ("right", "Namespace of the right camera's image_rect and camera_info."),
}


# The launch logger of this file's messages (launch.logging: shown on the screen and in the launch log).
LOGGER = "stereo.launch"


def remappings(left_namespace: str, right_namespace: str) -> list[tuple[str, str]]:
    """The node's relative input names -> the cameras' topics."""
    out = []
    for side, ns in (("left", left_namespace), ("right", right_namespace)):
        ns = ns.rstrip("/") or side
        for topic in ("image_rect", "camera_info"):
            out.append((f"{side}/{topic}", f"{ns}/{topic}"))
    return out


def node_parameters(params_file: str, checkpoint: str, device: str) -> list:
    """Parameters for the node: the file, then the explicitly given launch arguments (later entries win)."""
    overrides = {k: v for k, v in (("checkpoint", checkpoint), ("device", device)) if v}
    return [params_file, overrides] if overrides else [params_file]


def rviz_installed() -> bool:
    """Whether launch_ros can start rviz2: it looks the package up in the ament index, as here."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:  # no ament index: launch_ros could not find rviz2 either
        return False
    try:
        get_package_prefix("rviz2")
    except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (no ROS environment sourced)
        return False
    return True


def is_true(value: str) -> bool:
    """A launch boolean ("true"/"false", as IfCondition); anything else is an error naming the value."""
    low = value.strip().lower()
    if low not in ("true", "false", "1", "0"):
        raise ValueError(f"rviz must be true or false, got {value!r}")
    return low in ("true", "1")


def plan(values: dict, rviz_found: bool) -> tuple[dict, dict | None, str]:
    """(stereo_node Node kwargs, rviz2 Node kwargs or None, warning or "") for the launch arguments `values`.

    Decided before any process starts, so `rviz:=true` without rviz2 never leaves an orphaned node: the node
    starts alone and the warning says why (rather than launch failing on the missing package after the node
    started).
    """
    node = dict(
        package="smd_ros", executable="stereo_node", name="stereo_node", namespace=values.get("namespace", ""),
        output="screen", emulate_tty=True,
        parameters=node_parameters(values["params_file"], values.get("checkpoint", ""), values.get("device", "")),
        remappings=remappings(values.get("left_namespace", "left"), values.get("right_namespace", "right")),
    )
    if not is_true(values.get("rviz", "false")):
        return node, None, ""
    if not rviz_found:
        return node, None, ("rviz:=true but rviz2 is not installed (package 'rviz2' not in the ament index): "
                            "starting stereo_node without it")
    rviz = dict(package="rviz2", executable="rviz2", name="rviz2", namespace=values.get("namespace", ""),
                arguments=["-d", values["rviz_config"], "-f", values.get("fixed_frame", "")], output="screen")
    return node, rviz, ""


def generate_launch_description():
    # (ruff takes `launch` for this repository's launch/ folder; the order below is the natural one.)
    from launch import LaunchDescription  # noqa: I001
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.logging import get_logger
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    share = FindPackageShare("smd_ros")
    defaults = dict(ARGUMENTS)
    defaults["params_file"] = (PathJoinSubstitution([share, "config", "stereo.yaml"]), ARGUMENTS["params_file"][1])
    declared = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in defaults.items()]

    def actions(context, *args, **kwargs):
        values = dict(context.launch_configurations)
        values["rviz_config"] = PathJoinSubstitution([share, "config", "smd.rviz"]).perform(context)
        node, rviz, warning = plan(values, rviz_found=rviz_installed())
        if warning:
            # At WARNING level (LogInfo logs everything at INFO, whatever its text says), when the arguments are
            # resolved, before any process starts.
            get_logger(LOGGER).warning(warning)
        out = [Node(**node)]
        if rviz is not None:
            out.append(Node(**rviz))
        return out

    return LaunchDescription([*declared, OpaqueFunction(function=actions)])
