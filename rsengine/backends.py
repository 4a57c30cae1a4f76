"""Choosing the kernel backend: Triton's fused kernels, the compiled CPU kernel, or the PyTorch references.

All expose the same two functions, ``noise_normalize`` and ``vote_count`` (see
``rsengine.kernels.reference``), and produce the same random stream: the Triton and CPU kernels
the same bits, the PyTorch reference the same values up to the last bit of its log/cos/sin. The
choice changes speed, not certificates (short of a vote on a near-tie). Triton is imported only
here, and only when it is chosen; the CPU kernel is compiled on first use (``kernels/cpu_build.py``).

- ``"auto"``: Triton on a CUDA device when Triton is installed, else PyTorch; on the CPU the
  compiled CPU kernel, or PyTorch with a warning where it cannot be built (no C compiler).
- ``"triton"``: Triton or an error: on a CUDA device, or on the CPU under Triton's interpreter
  (TRITON_INTERPRET=1 set before triton is first imported; slow, for tests).
- ``"cpu"``: the compiled CPU kernel or an error: CPU tensors, a C compiler on the first run.
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
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from .validation import check_choice

__all__ = ["BACKENDS", "Backend", "resolve_backend"]

BACKENDS = ("auto", "triton", "cpu", "torch")


@dataclass(frozen=True)
class Backend:
    """The kernels a sampler runs: ``noise_normalize``, ``vote_count`` and sound mode's
    ``sound_noise_normalize`` (``rsengine.kernels.sound_noise``'s signature)."""

    name: str
    noise_normalize: Callable
    vote_count: Callable
    sound_noise_normalize: Callable


def _torch_backend() -> Backend:
    from . import sound
    from .kernels import reference

    return Backend("torch", reference.noise_normalize, reference.vote_count, sound.sound_noise_normalize)


def _triton_backend() -> Backend:
    try:
        from .kernels import noise, sound_noise, votes
    except ImportError as error:  # a broken triton install: say so in one line
        raise ValueError(f"backend='triton' cannot run here: triton failed to import ({error})") from None
    return Backend("triton", noise.noise_normalize, votes.vote_count, sound_noise.sound_noise_normalize)


def _cpu_backend(device: torch.device) -> tuple[Backend | None, str | None]:
    """The compiled CPU kernel's backend, or (None, why it cannot run on ``device``)."""
    if device.type != "cpu":
        return None, f"the CPU kernel runs on CPU tensors, got device {str(device)!r}"
    from .kernels import cpu_build, cpu_noise, reference

    try:
        cpu_build.load_library()
    except cpu_build.CpuKernelUnavailable as error:
        return None, str(error)
    return Backend("cpu", cpu_noise.noise_normalize, reference.vote_count, cpu_noise.sound_noise_normalize), None


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
        ValueError: unknown name, or "triton" / "cpu" where it cannot run (never a silent fallback).

    Warns:
        RuntimeWarning: "auto" on the CPU where the compiled kernel cannot be built.
    """
    check_choice("backend", name, BACKENDS)
    if name == "cpu" or (name == "auto" and device.type == "cpu"):
        backend, reason = _cpu_backend(device)
        if backend is not None:
            return backend
        if name == "cpu":
            raise ValueError(f"backend='cpu' cannot run here: {reason}")
        warnings.warn(f"the compiled CPU noise kernel is unavailable ({reason}): sampling with the PyTorch "
                      "reference kernels, about 20x slower noise (backend='torch')", RuntimeWarning, stacklevel=2)
        return _torch_backend()
    reason = _triton_unavailable_reason(device)
    if name == "triton":
        if reason is not None:
            raise ValueError(f"backend='triton' cannot run here: {reason}")
        return _triton_backend()
    if name == "auto" and device.type == "cuda" and reason is None:
        return _triton_backend()
    return _torch_backend()
