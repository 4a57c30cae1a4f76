"""How closely the Triton and PyTorch noise paths agree: the one rule tests and benchmarks check.

Both compute the same Philox words and the same transform in float32 with different log/cos/sin
(Triton: kernels/box_muller.py within 2.07 ulp of the exact values; PyTorch: within 4.3 ulp), so
a noisy value may differ by float rounding (relative 1e-5 leaves room for sigma, the
normalization and their roundings), and a value stored in bf16 or fp16 may land on the
neighbouring representable number, one unit in the last place of that dtype near 1.

Example:
    >>> import torch
    >>> noise_mismatch(torch.ones(3), torch.ones(3) + 1e-7) <= 0
    True
"""
from __future__ import annotations

import torch

__all__ = ["NOISE_RELATIVE_ERROR", "STORAGE_ULP", "noise_mismatch"]

NOISE_RELATIVE_ERROR = 1e-5
# One unit in the last place near 1 of each storage dtype.
STORAGE_ULP = {torch.float32: 0.0, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def noise_mismatch(got: torch.Tensor, want: torch.Tensor) -> float:
    """The largest amount by which ``got`` differs from ``want`` beyond the allowed rounding.

    Args:
        got, want: noisy batches of one shape and dtype (any device).

    Returns:
        <= 0 when every element agrees within (NOISE_RELATIVE_ERROR + STORAGE_ULP) * max(1, |want|).
    """
    scale = want.float().abs().clamp(min=1.0)
    allowed = (NOISE_RELATIVE_ERROR + STORAGE_ULP[want.dtype]) * scale
    return ((got.float() - want.float()).abs() - allowed).max().item()
