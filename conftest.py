"""Shared test set-up.

Without a GPU the Triton kernels run in Triton's CPU interpreter, which must be switched on
before triton is first imported; with a GPU they run on the real compiler.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the Triton kernels run on here: CUDA when present, else the CPU interpreter."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
