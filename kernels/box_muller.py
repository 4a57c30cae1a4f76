"""The random-number contract's Box-Muller step in branch-free float32, for the Triton kernels.

Two uniforms u0, u1 (normal float32 in [2**-33, 1], from ``_uniform`` in noise.py) give the pair
(r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0). libdevice's logf, sinf and cosf cost ~30 SASS
instructions each and carry a Payne-Hanek slow path; 2 pi u1 rounded to float32 before the
cosine is off by up to 2e-7, millions of ulps near the zeros of cos and sin. Here:

- ln u by a degree-10 polynomial in f = m - 1, m in [2/3, 4/3), from the float's bits;
- cos and sin of 2 pi u1 sincospi-style: t = 2 u1 - rint(4 u1) / 2 is exact, |t| <= 1/4, and
  the quadrant comes from the low bits of the rounding constant, so there is no range reduction;
- r carried as rh + rl (the square root's rounding error, exact by an fma) and folded into the
  polynomials' last fmas.

Only float32 add/mul/fma, int32 bit operations, compares and selects: Triton's CPU interpreter
and a GPU compute the same bits (the kernels compile with fp fusion off, so ptxas forms no fma
the interpreter does not). Measured against float64 on the same u (bench/noise_accuracy.py):
at most 1.56 ulp over 1e8 random pairs and every targeted edge; ln u alone 0.87 ulp and cos/sin
alone 0.87 ulp over every float32 in [2**-33, 1].

Coefficients: minimax fits of the relative error (float64, linear programming), rounded to
float32 one at a time with the rest refitted; see bench/noise_accuracy.py.

Example (every coefficient is exactly a float32, so kernels and numpy models agree on them):
    >>> import numpy as np
    >>> all(float(np.float32(c)) == c for c in LOG_COEFFICIENTS + COS_COEFFICIENTS + SIN_COEFFICIENTS)
    True
"""
from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["LOG_COEFFICIENTS", "LN2_HI", "COS_COEFFICIENTS", "SIN_COEFFICIENTS", "PI_HI", "FOLD_COEFFICIENTS",
           "log_u", "box_muller"]

# ln(1 + f) = f - f^2 / 2 + f^3 R(f), R's coefficients for f^3 .. f^10 (fit error 2**-27.7).
LOG_COEFFICIENTS = tuple(float.fromhex(h) for h in (
    "0x1.55550cp-2", "-0x1.fffef6p-3", "0x1.99d042p-3", "-0x1.559c40p-3",
    "0x1.1ed65cp-3", "-0x1.f332a0p-4", "0x1.1e6786p-3", "-0x1.07c960p-3",
))
LN2_HI = float.fromhex("0x1.62e430p-1")  # float32(ln 2); k times its 1.9e-9 error <= 0.07 ulp
# cos(pi t) = 1 + s C(s), s = t^2, C's coefficients for s .. s^4 (fit error 2**-31.1).
COS_COEFFICIENTS = tuple(float.fromhex(h) for h in (
    "-0x1.3bd3ccp+2", "0x1.03c1b0p+2", "-0x1.55b2b6p+0", "0x1.d4f7eep-3",
))
# sin(pi t) = t PI_HI + t Q(s), Q's coefficients for s^0 .. s^3; Q(0) carries pi - PI_HI.
SIN_COEFFICIENTS = tuple(float.fromhex(h) for h in (
    "-0x1.a32bd0p-24", "-0x1.4abbbap+2", "0x1.465eeap+1", "-0x1.2da156p-1",
))
PI_HI = float.fromhex("0x1.921fb6p+1")  # float32(pi)
# 1 / C(s) + s ~ G0 + G1 s (least squares, relative error 3.7e-4): folds rl into cos's product.
FOLD_COEFFICIENTS = (float.fromhex("-0x1.9ee60ep-3"), float.fromhex("0x1.a7f9c6p-1"))

# Kernel globals must be tl.constexpr instances (the compiler rejects plain Python globals).
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7 = (tl.constexpr(c) for c in LOG_COEFFICIENTS)
_C0, _C1, _C2, _C3 = (tl.constexpr(c) for c in COS_COEFFICIENTS)
_Q0, _Q1, _Q2, _Q3 = (tl.constexpr(c) for c in SIN_COEFFICIENTS)
_G0, _G1 = (tl.constexpr(c) for c in FOLD_COEFFICIENTS)
_LN2_HI = tl.constexpr(LN2_HI)
_PI_HI = tl.constexpr(PI_HI)
_RINT_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2**23: x + magic rounds x to an integer in the low bits


@triton.jit
def log_u(u):
    """ln u for float32 u, a normal number in [2**-33, 1]: 17 operations, at most 0.87 ulp."""
    ix = u.to(tl.int32, bitcast=True)
    t = ix - 0x3F2AAAAB  # bits of the float32 just above 2/3
    k = t >> 23  # u = 2**k * m, m in [2/3, 4/3)
    f = ((t & 0x007FFFFF) + 0x3F2AAAAB).to(tl.float32, bitcast=True) - 1.0  # exact
    # float(k) without a conversion instruction (|k| <= 126): bits of 1.5 * 2**23 + k, minus that.
    kf = (k + 0x4B400000).to(tl.float32, bitcast=True) - _RINT_MAGIC
    r = tl.fma(_R7, f, _R6)
    r = tl.fma(r, f, _R5)
    r = tl.fma(r, f, _R4)
    r = tl.fma(r, f, _R3)
    r = tl.fma(r, f, _R2)
    r = tl.fma(r, f, _R1)
    r = tl.fma(r, f, _R0)
    p = tl.fma(f * f, tl.fma(r, f, -0.5), f)  # ln(1 + f)
    return tl.fma(kf, _LN2_HI, p)


@triton.jit
def _poly3(s, c0, c1, c2, c3):
    return tl.fma(tl.fma(tl.fma(s, c3, c2), s, c1), s, c0)


@triton.jit
def box_muller(u0, u1):
    """(r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0): within 1.56 ulp of the exact pair."""
    x = -2.0 * log_u(u0)  # 0 or in [1.19e-7, 45.8]
    # sqrt(x) correctly rounded, branch-free: rsqrt and one Newton step, the fast path ptxas
    # emits for sqrt.rn, without sqrt.rn's branch to a slow path for 0, subnormal, infinite or
    # negative x (x = 0 is the select). Equal to np.sqrt on every float32 in [2**-24, 2**7)
    # with the interpreter's rsqrt (bench/noise_accuracy.py).
    y = tl.rsqrt(x)
    s = x * y
    rh = tl.where(x > 0.0, tl.fma(tl.fma(-s, s, x), 0.5 * y, s), 0.0)
    rl = tl.fma(-rh, rh, x)  # x - rh^2, exact: the square root's rounding error ...
    # ... times ~0.5 / sqrt(x) (bits 0x5F3759DF - 2**23, within 3.5%) gives r = rh + rl.
    rl = rl * (0x5EB759DF - (x.to(tl.int32, bitcast=True) >> 1)).to(tl.float32, bitcast=True)
    j = tl.fma(u1, 4.0, _RINT_MAGIC)  # 1.5 * 2**23 + rint(4 u1): the quadrant in the low bits
    t = tl.fma(j - _RINT_MAGIC, -0.5, u1 * 2.0)  # 2 u1 - quadrant / 2, exact, |t| <= 1/4
    s = t * t
    z_cos = tl.fma(tl.fma(rh, s, rl * tl.fma(s, _G1, _G0)), _poly3(s, _C0, _C1, _C2, _C3), rh)
    hi = t * _PI_HI
    lo = tl.fma(t, _poly3(s, _Q0, _Q1, _Q2, _Q3), tl.fma(t, _PI_HI, -hi))
    z_sin = tl.fma(rh, hi, tl.fma(rl, hi, rh * lo))
    # Rotate by the quadrant n = rint(4 u1) (n = 4 is a full turn): odd n swaps, n & 2 negates.
    quadrant = j.to(tl.int32, bitcast=True)
    swap = (quadrant & 1) != 0
    negate = (quadrant & 2) != 0
    rotated_cos = tl.where(swap, -z_sin, z_cos)
    rotated_sin = tl.where(swap, z_cos, z_sin)
    return tl.where(negate, -rotated_cos, rotated_cos), tl.where(negate, -rotated_sin, rotated_sin)
