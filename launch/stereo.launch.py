"""Launch the SMD-Nets stereo node, optionally with rviz2.

    ros2 launch smd_ros stereo.launch.py namespace:=stereo left_namespace:=/camera/left \
        right_namespace:=/camera/right checkpoint:=/path/model.pth device:=cuda rviz:=true

Arguments:
    namespace        namespace of the node and its outputs (default: none)
    params_file      node parameters (default: the package's config/stereo.yaml)
    checkpoint       model checkpoint; overrides params_file when given (default: params_file's, i.e. the bundled
                     model)
    device           auto | cpu | cuda | cuda:N; overrides params_file when given
    rviz             start rviz2 with config/smd.rviz (default: false)
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


def generate_launch_description():
    # (ruff takes `launch` for this repository's launch/ folder; the order below is the natural one.)
    from launch import LaunchDescription  # noqa: I001
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    share = FindPackageShare("smd_ros")
    defaults = dict(ARGUMENTS)
    defaults["params_file"] = (PathJoinSubstitution([share, "config", "stereo.yaml"]), ARGUMENTS["params_file"][1])
    declared = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in defaults.items()]

    def stereo_node(context, *args, **kwargs):
        value = context.launch_configurations.get
        return [Node(
            package="smd_ros",
            executable="stereo_node",
            name="stereo_node",
            namespace=value("namespace", ""),
            output="screen",
            emulate_tty=True,
            parameters=node_parameters(value("params_file"), value("checkpoint", ""), value("device", "")),
            remappings=remappings(value("left_namespace", "left"), value("right_namespace", "right")),
        )]

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([share, "config", "smd.rviz"]), "-f", LaunchConfiguration("fixed_frame")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription([*declared, OpaqueFunction(function=stereo_node), rviz])
