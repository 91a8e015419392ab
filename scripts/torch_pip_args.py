"""The pip arguments that install PyTorch for `scripts/setup.sh`, one per line: `python3 torch_pip_args.py CHOICE`.

setup.sh runs `pip install <these>`, then `pip install torch==VERSION` for torch's dependencies (a no-op after a
full install; after the CPU build's --no-deps install it keeps that build, which satisfies the same version).

CHOICE (setup.sh's SMD_TORCH):
- cpu:  the CPU build, from PyTorch's own CPU wheel index as an extra index (about 200 MB installed on Linux;
        a plain `pip install torch` on Linux x86_64 brings the CUDA build and its nvidia-* wheels, several GB).
        A package mirror that serves a `+cpu` wheel itself (find-links, a local index) still works: pip takes
        the wanted version wherever it is found, and an unreachable extra index only costs a warning.
- cuda: the default PyPI build (CUDA on Linux x86_64; several GB), for NVIDIA GPUs.
- auto: cuda where an NVIDIA driver is visible (/proc/driver/nvidia/version or `nvidia-smi`), else cpu.
Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("cpu", "cuda", "auto")


def nvidia_gpu_visible() -> bool:
    """Whether an NVIDIA driver is loaded here (the CUDA build would be usable)."""
    if os.path.exists("/proc/driver/nvidia/version"):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve(choice: str, gpu: bool) -> str:
    """cpu or cuda for `choice`; ValueError naming the valid values for anything else."""
    if choice not in CHOICES:
        raise ValueError(f"SMD_TORCH must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "auto":
        return "cuda" if gpu else "cpu"
    return choice


def pip_args(choice: str, version: str, *, gpu: bool, system: str = "Linux") -> list[str]:
    """pip install arguments for torch==`version` built for `choice` (cpu | cuda | auto)."""
    build = resolve(choice, gpu)
    args = [f"torch=={version}"]
    # Only Linux has a CUDA build on PyPI; elsewhere PyPI's torch already is the CPU (or Metal) build.
    if build == "cpu" and system == "Linux":
        # --no-deps: only torch itself is looked up on the extra index (setup.sh installs its dependencies next,
        # from the usual index); each lookup there costs pip ~8 s of retries where that index is unreachable.
        args += ["--no-deps", "--extra-index-url", CPU_INDEX]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("choice", help="cpu | cuda | auto")
    parser.add_argument("--version", default="2.13.0", help="torch version (setup.sh's SMD_TORCH_VERSION)")
    parser.add_argument("--explain", action="store_true", help="print what the choice installs instead")
    parser.add_argument("--build", action="store_true", help="print the build the choice means: cpu or cuda")
    args = parser.parse_args(argv)
    gpu = nvidia_gpu_visible() if args.choice == "auto" else False
    try:
        out = pip_args(args.choice, args.version, gpu=gpu, system=platform.system())
    except ValueError as exc:
        print(f"torch_pip_args: {exc}", file=sys.stderr)
        return 2
    if args.build:
        print(resolve(args.choice, gpu))
        return 0
    if args.explain:
        build = resolve(args.choice, gpu)
        print(f"PyTorch {args.version}, {build} build ({'NVIDIA GPU found' if gpu else 'no NVIDIA GPU found'})"
              if args.choice == "auto" else f"PyTorch {args.version}, {build} build")
        return 0
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
