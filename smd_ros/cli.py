"""The installed `smd` command: smd_core's subcommands plus smd_ros's (smd_core's dispatcher knows none of them)."""

from __future__ import annotations

import sys

from smd_core import cli as core_cli

COMMANDS: dict[str, tuple[str, str]] = {
    **core_cli.CORE_COMMANDS,
    "bag2dataset": ("smd_ros.bags.cli", "turn rosbag2 recordings into a training set"),
    "demo": ("smd_ros.demo", "run the node on the bundled recording and write demo_out/"),
}


def main(argv: list[str] | None = None) -> int:
    return core_cli.main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
