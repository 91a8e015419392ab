"""The installed `smd` command: smd_core's subcommands plus the ROS-side ones registered here.

`smd bag2dataset` (rosbag2 recordings -> a training set) and `smd demo` (the node on the bundled
recording) live in smd_ros; the dispatcher is `smd_core.cli.main`, which knows nothing of them.
"""

from __future__ import annotations

import sys

from smd_core import cli as core_cli

ROS_COMMANDS: dict[str, tuple[str, str]] = {
    "bag2dataset": ("smd_ros.bags.cli", "turn rosbag2 recordings into a training set"),
    "demo": ("smd_ros.demo", "run the node on the bundled recording and write demo_out/"),
}
COMMANDS: dict[str, tuple[str, str]] = {**core_cli.CORE_COMMANDS, **ROS_COMMANDS}


def main(argv: list[str] | None = None) -> int:
    """Console script `smd` (every subcommand)."""
    return core_cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
