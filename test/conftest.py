"""Shared fixtures: parity fixtures from ../shared, and a loopback-only DDS environment."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMD_SHARED_DIR", REPO.parent / "shared"))
PARITY = SHARED / "parity"
DDS_PROFILE = REPO / "config" / "loopback_fastdds.xml"


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not PARITY.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY} (SMD_SHARED_DIR, default ../shared beside the repo)")
    return PARITY


def load_parity_case(name: str) -> tuple[Path, dict[str, np.ndarray]]:
    """(checkpoint path, case arrays) for fixture folder `name`, or skip when ../shared is absent."""
    folder = PARITY / name
    if not folder.is_dir():
        pytest.skip(f"parity fixture {folder} not found (SMD_SHARED_DIR, default ../shared beside the repo)")
    with np.load(folder / "case.npz") as z:
        case = {k: z[k] for k in z.files}
    return folder / "checkpoint.pth", case


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for ROS processes: loopback-only Fast DDS and a private domain id for this run."""
    from smd_ros.ros_session import dds_profile_env

    domain = int(os.environ.get("SMD_TEST_DOMAIN_ID", random.Random(os.getpid()).randint(30, 200)))
    dds = dds_profile_env(DDS_PROFILE, domain)
    env = {**os.environ, **dds}
    env.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.update(dds)
    return env


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test (`pytestmark = pytest.mark.usefixtures("one_thread")`).

    Tiny tensors: threading buys nothing and, on a busy machine, costs OpenMP barrier waits.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
