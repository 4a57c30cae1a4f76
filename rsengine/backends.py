"""Choosing the kernel backend: Triton's fused kernels or their pure-PyTorch references.

Both expose the same two functions, ``noise_normalize`` and ``vote_count`` (see
``rsengine.kernels.reference``), and produce the same random stream (up to the last bit of
log/cos/sin), so the choice changes speed, not certificates (short of a vote on a near-tie). Triton is imported only here, and only when it is chosen.

- ``"auto"``: Triton on a CUDA device when Triton is installed, else PyTorch.
- ``"triton"``: Triton or an error: on a CUDA device, or on the CPU under Triton's interpreter
  (TRITON_INTERPRET=1 set before triton is first imported; slow, for tests).
- ``"torch"``: the PyTorch references on any device.

Example:
    >>> import torch
    >>> from rsengine.backends import resolve_backend
    >>> resolve_backend("torch", torch.device("cpu")).name
    'torch'
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import torch

from .validation import check_choice

__all__ = ["BACKENDS", "Backend", "resolve_backend"]

BACKENDS = ("auto", "triton", "torch")


@dataclass(frozen=True)
class Backend:
    """The kernel pair a sampler runs: ``noise_normalize`` and ``vote_count``."""

    name: str
    noise_normalize: Callable
    vote_count: Callable


def _torch_backend() -> Backend:
    from .kernels import reference

    return Backend("torch", reference.noise_normalize, reference.vote_count)


def _triton_backend() -> Backend:
    try:
        from .kernels import noise, votes
    except ImportError as error:  # a broken triton install: say so in one line
        raise ValueError(f"backend='triton' cannot run here: triton failed to import ({error})") from None
    return Backend("triton", noise.noise_normalize, votes.vote_count)


def _triton_unavailable_reason(device: torch.device) -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return (f"Triton kernels need a CUDA device, got device {str(device)!r} "
            "(set TRITON_INTERPRET=1 before importing triton to run them in its CPU interpreter)")


def resolve_backend(name: str, device: torch.device) -> Backend:
    """Return the backend called ``name`` for tensors on ``device``.

    Raises:
        ValueError: unknown name, or "triton" where Triton cannot run (never a silent fallback).
    """
    check_choice("backend", name, BACKENDS)
    reason = _triton_unavailable_reason(device)
    if name == "triton":
        if reason is not None:
            raise ValueError(f"backend='triton' cannot run here: {reason}")
        return _triton_backend()
    if name == "auto" and device.type == "cuda" and reason is None:
        return _triton_backend()
    return _torch_backend()
