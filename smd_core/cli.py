"""The `smd` command: `smd predict|train|eval|bag2dataset|synth|demo ...`.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = {
    "predict": ("smd_core.predict", "dense disparity + uncertainty for one stereo pair"),
    "train": ("smd_core.train", "train or fine-tune a model from a YAML config"),
    "eval": ("smd_core.evaluate", "evaluate a checkpoint on a dataset (EPE, bad-x, SEE, bleeding)"),
    "synth": ("smd_core.data.synthetic", "write a procedural stereo dataset with exact disparity"),
    "bag2dataset": ("smd_ros.bags.cli", "turn rosbag2 recordings into a training set"),
    "demo": ("smd_ros.demo", "run the node on the bundled recording and write demo_out/"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="smd", description="SMD-Nets stereo tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in SUBCOMMANDS:
        args = parser.parse_args(argv)  # prints usage / errors for unknown commands
        parser.print_help()
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    cmd_parser = argparse.ArgumentParser(prog=f"smd {argv[0]}", description=SUBCOMMANDS[argv[0]][1])
    module.add_arguments(cmd_parser)
    # Intermixed: `smd train --config C --init CKPT key=value` works with overrides anywhere.
    args = cmd_parser.parse_intermixed_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        # Bad input is the user's to fix: one clear line, no traceback (SMD_DEBUG=1 shows it).
        if os.environ.get("SMD_DEBUG"):
            raise
        print(f"smd {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"smd {argv[0]}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
