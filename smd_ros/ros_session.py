"""The one place where rclpy's start-up and shut-down differ between the ROS 2 distributions smd_ros runs on.

- Kilted's `rclpy.init()` returns a context manager and Jazzy's returns None, so using it in a `with` statement
  fails on Jazzy. `ros_session` uses only what both have (`rclpy.utilities.try_shutdown`), so the node, the
  demo, the tests and the benchmarks start and stop rclpy the same way on both.
- Fast DDS 2.x (Jazzy) reads its default XML profile from `FASTRTPS_DEFAULT_PROFILES_FILE` only, Fast DDS 3.x
  (Kilted) from `FASTDDS_DEFAULT_PROFILES_FILE` only (checked in both libraries' strings). Setting one of them
  leaves the other distribution silently on Fast DDS's defaults: `dds_profile_env` sets the right one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rclpy.context import Context

# Fast DDS 3.x's name first, then Fast DDS 2.x's: each library ignores the other's.
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
# Distributions whose rmw_fastrtps runs on Fast DDS 2.x (rmw_fastrtps before 9.0).
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def profile_variables() -> tuple[str, ...]:
    """The variable(s) that name Fast DDS's default XML profile file for the installed distribution.

    ROS_DISTRO where a ROS setup was sourced, else the version of the rmw_fastrtps_cpp wheel (PyPI installs set
    no ROS_DISTRO); both where neither says (Kilted's rmw_fastrtps warns on every start that the old name is
    deprecated, so the exact one is set when it is known).
    """
    if distro := os.environ.get("ROS_DISTRO", "").strip().lower():
        return (PROFILE_VARIABLES[1],) if distro in FAST_DDS_2_DISTROS else (PROFILE_VARIABLES[0],)
    from importlib import metadata

    try:
        major = int(metadata.version("ros-rmw-fastrtps-cpp").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return PROFILE_VARIABLES
    return (PROFILE_VARIABLES[1],) if major < 9 else (PROFILE_VARIABLES[0],)


def dds_profile_env(profile: str | os.PathLike[str], domain_id: int) -> dict[str, str]:
    """The variables that run rclpy on Fast DDS with the XML `profile` on domain `domain_id`, on every distribution
    (with only Fast DDS 3.x's variable, Jazzy ran the tests and demo on Fast DDS's defaults: a small message sent
    after a 640x480 image arrived up to 2.8 s late, and `smd demo` delivered 4-10 of 20 frames)."""
    return {**dict.fromkeys(profile_variables(), str(profile)), "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "ROS_DOMAIN_ID": str(domain_id)}


@contextlib.contextmanager
def ros_session(args: list[str] | None = None, *, context: Context | None = None) -> Iterator[Context]:
    """`rclpy.init(args=..., context=...)`; yields the context; shuts it down on exit unless Ctrl-C's handler did.

    The default context (no `context`) gets rclpy's SIGINT/SIGTERM handlers, removed on exit as leaving Kilted's
    init context does (rclpy then makes a fresh default context: `ros_session()` can run again in the process).
    """
    import rclpy
    from rclpy.signals import uninstall_signal_handlers
    from rclpy.utilities import try_shutdown

    default = context is None or context is rclpy.get_default_context()
    rclpy.init(args=args, context=context)
    try:
        yield rclpy.get_default_context() if context is None else context
    finally:
        try_shutdown(context=None if default else context)
        if default:
            uninstall_signal_handlers()
