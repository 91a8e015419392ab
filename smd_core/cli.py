"""The `smd` command's dispatcher: a subcommand is a module with `add_arguments(parser)` and `run(args) -> int`,
registered by name with a one-line help (`CORE_COMMANDS`; the installed `smd`, `smd_ros.cli:main`, adds the ROS
ones). Modules are imported only when named, and keep torch out of their top level, so `--help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping

# name -> (module, help)
Commands = Mapping[str, tuple[str, str]]

CORE_COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("smd_core.infer.predict_cli", "dense disparity + uncertainty for one stereo pair"),
    "train": ("smd_core.train.cli", "train or fine-tune a model from a YAML config"),
    "eval": ("smd_core.eval.cli", "evaluate a checkpoint on a dataset (EPE, bad-x, SEE, bleeding)"),
    "synth": ("smd_core.data.synthetic.cli", "write a procedural stereo dataset with exact disparity"),
    "export": ("smd_core.infer.export_cli", "a checkpoint as one ONNX file for onnxruntime / TensorRT"),
}


def main(argv: list[str] | None = None, commands: Commands | None = None) -> int:
    """Run `smd ARGV` with `commands` (default: `CORE_COMMANDS`); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    commands = CORE_COMMANDS if commands is None else commands
    parser = argparse.ArgumentParser(prog="smd", description="SMD-Nets stereo tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in commands:
        parser.parse_args(argv)  # prints usage / errors for unknown commands
        parser.print_help()
        return 2
    module_name, help_text = commands[argv[0]]
    module = importlib.import_module(module_name)
    cmd_parser = argparse.ArgumentParser(prog=f"smd {argv[0]}", description=help_text)
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
