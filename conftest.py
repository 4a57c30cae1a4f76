"""Shared test set-up.

Without a GPU the Triton kernels run in Triton's CPU interpreter, which must be switched on
before triton is first imported; with a GPU they run on the real compiler.
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a 2-core machine shared with the CLI
# subprocesses the tests start, spinning threads slowed torch down 30x. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the Triton kernels run on here: CUDA when present, else the CPU interpreter."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
