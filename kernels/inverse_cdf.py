"""The random-number contract's Laplace and uniform noises in branch-free float32, for the Triton kernels.

One 32-bit Philox word per element, through the noise's inverse CDF at u = (w + 0.5) * 2**-32
(``contract.py``), computed from the word, never from u rounded to float32:

- ``standard_laplace``: s * (-ln v), s the sign of u - 1/2 (the word's top bit) and v =
  1 - 2 |u - 1/2| = (m + 0.5) * 2**-31 on a 31-bit grid, m the low 31 bits reflected. -ln v is
  the Box-Muller step's logarithm (``box_muller.minus_two_log``) on that grid: from v's float32
  bits below v = 1/2, and from the complement 2 (1 - v) = (2**31 - m - 0.5) * 2**-30, converted
  from an exact int32, above it, so the smallest magnitude is 2**-32 (no point mass at 0) and
  the largest -ln(2**-32) = 22.18.
- ``standard_uniform``: 2 u - 1 = (w - 2**31 + 0.5) * 2**-31 in [-1, 1], correctly rounded: the
  word read as int32 after flipping its top bit is split into its top 23 bits and its low 8,
  each exact in float32, so that only the last fma rounds (converting all 31 bits at once would
  round twice, off by one ulp on some words).

The same operations as ``cpu_noise.c`` (kernels compile without fp fusion), so the interpreter,
a GPU and the CPU kernel write the same bits.

Example (the PyTorch reference's values of the words at both ends and the middle, which the
kernels match; tests/test_noises.py):
    >>> import torch
    >>> from rsengine.kernels import reference
    >>> reference.uniform_from_words(torch.tensor([0, 2**31, 2**32 - 1])).tolist() == [-1.0, 2.0**-32, 1.0]
    True
    >>> reference.laplace_from_words(torch.tensor([2**31])).tolist() == [2.0**-32]
    True
"""
from __future__ import annotations

import triton
import triton.language as tl

from .box_muller import minus_two_log

__all__ = ["standard_laplace", "standard_uniform"]

_TWO_POW_MINUS_30 = tl.constexpr(2.0**-30)
_TWO_POW_MINUS_31 = tl.constexpr(2.0**-31)
_TWO_POW_MINUS_32 = tl.constexpr(2.0**-32)


@triton.jit
def standard_laplace(w):
    """Standard Laplace values (scale 1, variance 2) of uint32 words w, float32 of w's shape."""
    upper = w >= 0x80000000  # u > 1/2: positive values
    m = tl.where(upper, ~w, w)  # [0, 2**31): v = (m + 0.5) * 2**-31
    v = tl.fma(m.to(tl.int32, bitcast=True).to(tl.float32), _TWO_POW_MINUS_31, _TWO_POW_MINUS_32)
    # 2 (1 - v) = (2**31 - m - 0.5) * 2**-30 from m - 2**31 = -(2**31 - m), exact in int32.
    twice_complement = tl.fma((m ^ 0x80000000).to(tl.int32, bitcast=True).to(tl.float32), -_TWO_POW_MINUS_30,
                              -_TWO_POW_MINUS_31)
    xa, xb = minus_two_log(v, twice_complement, m >= 0x40000000)
    magnitude = 0.5 * (xa + xb)  # -ln v
    return tl.where(upper, magnitude, -magnitude)


@triton.jit
def standard_uniform(w):
    """Uniform values on [-1, 1] (2 u - 1) of uint32 words w, float32 of w's shape."""
    s = (w ^ 0x80000000).to(tl.int32, bitcast=True)  # w - 2**31
    low = tl.fma((s & 255).to(tl.float32), _TWO_POW_MINUS_31, _TWO_POW_MINUS_32)  # exact: 9 bits
    return tl.fma((s & -256).to(tl.float32), _TWO_POW_MINUS_31, low)
