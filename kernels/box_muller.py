"""The random-number contract's Box-Muller step in branch-free float32, for the Triton kernels.

Two 32-bit Philox words w0, w1 give the pair (r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0),
of the uniforms u = (w + 0.5) * 2**-32: real numbers in (0, 1), never 0 and never 1, which float32
cannot hold (words from 2**31 on lose up to 8 bits, and the top 128 words round to 1). Both are
therefore used through the word itself, not through u rounded to float32:

- ln u0 from u's float32 bits below u = 1/2 (there |ln u| > ln 2, so u's rounding costs little),
  and from the complement 1 - u = (~w + 0.5) * 2**-32 above it, converted exactly from the word's
  signed value: small relative error however close u0 is to 1, so r is never 0 (its smallest
  value is sqrt(-2 ln(1 - 2**-33)) = 2**-16, not a point mass at 0) and is not discretized near 0.
  A degree-10 polynomial in g = -2 (m - 1), m in [2/3, 4/3), returned as -2 ln u0 = xa + xb;
- cos and sin of 2 pi u1 sincospi-style with the reduction on the integer word: the quadrant
  n = (w1 + 2**29) >> 30 and t = 2 u1 - n / 2 = (4 w1 + 2 mod 2**32, signed) * 2**-33, |t| <= 1/4,
  rounded once (libdevice's sinf and cosf cost ~30 SASS instructions each, carry a Payne-Hanek
  slow path, and 2 pi u1 rounded to float32 is off by millions of ulps near their zeros);
- r carried as rh + rl (the rounding of xa + xb and of the square root, exact by an fma) and folded
  into the polynomials' last fmas.

Only float32 add/mul/fma, int32 bit operations, int32 -> float32 conversions, compares and selects:
Triton's CPU interpreter and a GPU compute the same bits (the kernels compile with fp fusion off,
so ptxas forms no fma the interpreter does not). Measured against float64 of the words' exact
uniforms (bench/noise_accuracy.py): -2 ln u0 (xa + xb) within 1.20 ulp and cos/sin of 2 pi u1
within 1.34 ulp on every one of the 2**32 words; the pair within 1.99 ulp over 1e8 random word
pairs and 2.07 ulp at the worst error peaks found, 1.80 ulp against the angle as rounded to
float32 (t's one rounding adds up to 0.3 ulp).

The coefficients live in ``box_muller_coefficients.py`` (no Triton there), shared with the
compiled CPU kernel, ``cpu_noise.c``, which evaluates the same operations in C.

Example (the kernels' constants are the shared ones, unchanged):
    >>> from rsengine.kernels.box_muller_coefficients import LOG_G_COEFFICIENTS, PI_HI
    >>> _P7.value == LOG_G_COEFFICIENTS[7] and _PI_HI.value == PI_HI
    True
"""
from __future__ import annotations

import triton
import triton.language as tl

from .box_muller_coefficients import (COS_COEFFICIENTS, FOLD_COEFFICIENTS, LN2_HI, LOG_G_COEFFICIENTS, PI_HI,
                                      SIN_COEFFICIENTS)

__all__ = ["minus_two_log", "minus_two_log_uniform", "box_muller"]

# Kernel globals must be tl.constexpr instances (the compiler rejects plain Python globals).
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7 = (tl.constexpr(c) for c in LOG_G_COEFFICIENTS)
_C0, _C1, _C2, _C3 = (tl.constexpr(c) for c in COS_COEFFICIENTS)
_Q0, _Q1, _Q2, _Q3 = (tl.constexpr(c) for c in SIN_COEFFICIENTS)
_G0, _G1 = (tl.constexpr(c) for c in FOLD_COEFFICIENTS)
_MINUS_TWO_LN2_HI = tl.constexpr(-2.0 * LN2_HI)
_PI_HI = tl.constexpr(PI_HI)
_RINT_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2**23: its bits + k are those of 1.5 * 2**23 + k (|k| < 2**22)
_TWO_POW_MINUS_32 = tl.constexpr(2.0**-32)
_TWO_POW_MINUS_33 = tl.constexpr(2.0**-33)
_MINUS_TWO_POW_MINUS_31 = tl.constexpr(-2.0**-31)
_MINUS_TWO_POW_MINUS_32 = tl.constexpr(-2.0**-32)


@triton.jit
def _uniform(w):
    # u = (w + 0.5) * 2**-32 rounded to float32, as one fma (scaling by a power of two is exact).
    return tl.fma(w.to(tl.float32), _TWO_POW_MINUS_32, _TWO_POW_MINUS_33)


@triton.jit
def _twice_complement(w):
    # 2 (1 - u) = (~w + 0.5) * 2**-31 for words w >= 2**31, from their signed value w - 2**32 =
    # -(~w + 1): exact in 32 bits, so the bits u loses in float32 stay here (down to 2**-32).
    return tl.fma(w.to(tl.int32, bitcast=True).to(tl.float32), _MINUS_TWO_POW_MINUS_31, _MINUS_TWO_POW_MINUS_32)


@triton.jit
def minus_two_log(u, c2, upper):
    """-2 ln u as xa + xb (xb the small part) from u rounded to float32 and, where ``upper`` (u >= 1/2),
    c2 = 2 (1 - u), exact to float32's relative precision however small: the logarithm of the
    words' uniforms here and of the Laplace inverse CDF's 31-bit grid (``inverse_cdf.py``).

    u = 2**k m, m in [2/3, 4/3), f = m - 1, g = -2 f: -2 ln u = -2 k ln2 + g + g^2 (1/4 + g P(g)).
    Below u = 1/2 k and m come from u's float32 bits; above it k is 0 or -1 (0 from the first u
    whose float32 is the float just above 2/3) and g comes from the complement: c2 for k = 0,
    -2 (2 u - 1) = 2 c2 - 2 for k = -1. 25 operations.
    """
    ix = u.to(tl.int32, bitcast=True)
    t = ix - 0x3F2AAAAB  # bits of the float32 just above 2/3
    k = t >> 23  # u = 2**k * m, m in [2/3, 4/3)
    m = ((t & 0x007FFFFF) + 0x3F2AAAAB).to(tl.float32, bitcast=True)
    # float(k) without a conversion instruction (|k| <= 33): bits of 1.5 * 2**23 + k, minus that.
    kf = (k + 0x4B400000).to(tl.float32, bitcast=True) - _RINT_MAGIC
    # g, exact all three ways: 2 - 2 m below u = 1/2; above it c2 for k = 0 (t >= 0) and 2 c2 - 2
    # for k = -1 (c2 in (2/3, 1], so c2 - 1 is exact).
    g = tl.where(upper, tl.where(t < 0, tl.fma(c2, 2.0, -2.0), c2), tl.fma(m, -2.0, 2.0))
    p = tl.fma(_P7, g, _P6)
    p = tl.fma(p, g, _P5)
    p = tl.fma(p, g, _P4)
    p = tl.fma(p, g, _P3)
    p = tl.fma(p, g, _P2)
    p = tl.fma(p, g, _P1)
    p = tl.fma(p, g, _P0)
    q = tl.fma(p, g, 0.25)
    # xa is exact for k = 0, and for k = -1 while below 2 (u > 0.347: a multiple of 2**-23 below 2);
    # r recovers the rounding of xa + xb.
    return tl.fma(kf, _MINUS_TWO_LN2_HI, g), (g * g) * q


@triton.jit
def minus_two_log_uniform(w):
    """-2 ln u for u = (w + 0.5) * 2**-32, w uint32 words, as xa + xb (xb the small part).

    Below u = 1/2 (words < 2**31) from u's float32 bits; above it (k = 0 from w = 0xAAAAAA81 on,
    the first word whose float32 u is the float just above 2/3) from the complement. 27
    operations; the sum is within 1.20 ulp of the exact value on every word, and at least 2**-32
    (bench/noise_accuracy.py).
    """
    return minus_two_log(_uniform(w), _twice_complement(w), w >= 0x80000000)


@triton.jit
def _poly3(s, c0, c1, c2, c3):
    return tl.fma(tl.fma(tl.fma(s, c3, c2), s, c1), s, c0)


@triton.jit
def box_muller(w0, w1):
    """(r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0), u = (w + 0.5) * 2**-32 of uint32 words
    w0, w1 (any equal shapes): within 2.07 ulp of the exact pair, 1.80 of the pair at the angle
    as rounded."""
    xa, xb = minus_two_log_uniform(w0)
    x = xa + xb  # in [2**-32, 45.8]: never 0
    # sqrt(x) correctly rounded, branch-free: rsqrt and one Newton step, the fast path ptxas
    # emits for sqrt.rn, without sqrt.rn's branch to a slow path for 0, subnormal, infinite or
    # negative x. Equal to np.sqrt on every float32 in [2**-32, 2**7) with the interpreter's
    # rsqrt (bench/noise_accuracy.py).
    y = tl.rsqrt(x)
    sx = x * y
    rh = tl.fma(tl.fma(-sx, sx, x), 0.5 * y, sx)
    rl = tl.fma(-rh, rh, xa) + xb  # xa + xb - rh^2: the sum's and the square root's rounding ...
    # ... times ~0.5 / sqrt(x) (bits 0x5F3759DF - 2**23, within 3.5%) gives r = rh + rl.
    rl = rl * (0x5EB759DF - (x.to(tl.int32, bitcast=True) >> 1)).to(tl.float32, bitcast=True)
    # 2 pi u1 = n pi / 2 + pi t with n = rint(4 u1) = (w1 + 2**29) >> 30 (mod 4) and t = 2 u1 - n / 2
    # = (4 w1 + 2 - n 2**32) * 2**-33: the low 32 bits of 4 w1 + 2 read as int32, in [-1/4, 1/4],
    # rounded once (never 0).
    t = ((w1 << 2) + 2).to(tl.int32, bitcast=True).to(tl.float32) * _TWO_POW_MINUS_33
    s = t * t
    z_cos = tl.fma(tl.fma(rh, s, rl * tl.fma(s, _G1, _G0)), _poly3(s, _C0, _C1, _C2, _C3), rh)
    hi = t * _PI_HI
    lo = tl.fma(t, _poly3(s, _Q0, _Q1, _Q2, _Q3), tl.fma(t, _PI_HI, -hi))
    z_sin = tl.fma(rh, hi, tl.fma(rl, hi, rh * lo))
    # Rotate by the quadrant n (bits 30, 31 of w1 + 2**29): odd n swaps, n & 2 negates.
    quadrant = (w1 + 0x20000000) >> 30
    swap = (quadrant & 1) != 0
    negate = (quadrant & 2) != 0
    rotated_cos = tl.where(swap, -z_sin, z_cos)
    rotated_sin = tl.where(swap, z_cos, z_sin)
    return tl.where(negate, -rotated_cos, rotated_cos), tl.where(negate, -rotated_sin, rotated_sin)
