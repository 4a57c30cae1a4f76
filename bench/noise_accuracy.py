"""Accuracy of the noise kernel's branch-free float32 Box-Muller step, from Philox words to normals.

The noise kernel turns two 32-bit Philox words (w0, w1) into two normals. The contract's uniform
of a word is the real number u = (w + 0.5) * 2**-32 (never 0, never 1); the exact transform is
r = sqrt(-2 ln u0), z = (r cos 2 pi u1, r sin 2 pi u1). This file models the kernels' float32
evaluation (kernels/box_muller.py) op for op in numpy and measures it against float64
evaluations of the words' exact uniforms, which float64 holds exactly:

- :func:`minus_two_log_uniform`: -2 ln u0 as an unevaluated sum xa + xb. Words below 2**31
  (u < 1/2) go through u rounded to float32 (relative error <= 2**-24, so at most 2**-24 / ln 2
  relative to ln u, |ln u| > ln 2); words from 2**31 on (u > 1/2) through the complement 1 - u =
  (~w + 0.5) * 2**-32, converted from the word's signed value w - 2**32 = -(~w + 1), so ln u
  keeps a small relative error however close u is to 1: the smallest -2 ln u is 2**-32, not 0.
  The logarithm is a degree-10 polynomial in g = -2 f, f = 2**-k u - 1 in [-1/3, 1/3). Measured
  max error of the unrounded sum: 1.003 ulp (w < 2**31), 1.192 ulp (w >= 2**31), every word.
- :func:`sincos_2pi`: (cos 2 pi u1, sin 2 pi u1) with the reduction done on the integer word:
  2 pi u1 = n pi / 2 + pi t, quadrant n = (w1 + 2**29) >> 30, t = (4 w1 + 2 mod 2**32, signed)
  * 2**-33 in [-1/4, 1/4], correctly rounded to float32 (never 0); degree-8 cos and degree-7 sin
  polynomials in t, quadrant rotation with selects. Measured max error against the exact angle:
  1.141 ulp (cos), 1.339 ulp (sin), every word.
- :func:`box_muller`: the whole transform, r carried as rh + rl (rh = sqrt_rn(xa + xb), rl the
  rest, xb included) and folded into the polynomials' last fmas. Measured max error: 1.983 ulp
  over 1e8 random word pairs, 2.064 at the error peaks; 1.793 against the angle as rounded.

Every function is written op for op as a GPU kernel would run it: one numpy call per float32
operation, fma by the exact float32 fma of Triton's interpreter (``tl.fma`` there; the fallback
:func:`fma_emulated` if that private API is missing). No multiply result feeds a plain add, so
ptxas's mul+add contraction (Triton's ``enable_fp_fusion``) cannot change a bit. The square root
here is np.sqrt (correctly rounded); the kernel computes it as rsqrt and one Newton step
(``tl.sqrt`` is approximate on a GPU), which :func:`sqrt_newton_mismatches` shows equal to
np.sqrt over its whole range with the interpreter's rsqrt; bit views are
``x.to(tl.int32, bitcast=True)``.

Errors are in ulps of the true value: ``|result - truth| / 2**(floor(log2 |truth|) - 23)``
(the float32 spacing at |truth|). What it measures (each row of the printed table):

- -2 ln u0 (the sum xa + xb, unrounded) and cos/sin of 2 pi u1: over every one of the 2**32
  words. The model's value depends on a word only through its float32 conversions, so it is
  computed once per run of words sharing them and compared with the truth at both ends of the
  run (the truth is monotone within it; a run whose truth crosses a power of two is compared
  word by word). cos/sin depend on w1 only through |4 w1 + 2| (the quadrant permutes and negates
  exactly): every w1 in [0, 2**29) covers them all.
- box_muller and, for comparison, a transform of float32 uniforms (the kernels' libdevice
  formulation before 2026-11-29: float32 np.log / np.sqrt, theta = float32(2 pi) * u1 rounded
  to float32, np.cos / np.sin; every version before this one started from float32 uniforms):
  on 12 * 2**23 random (w0, w1) word pairs (numpy Generator, fixed seed); on a grid of targeted
  words (u0 near 0, 1/2, 2/3 and every word of the last 2**12 below 2**32; u1 near 0, 1/4, 1/2,
  3/4 and 1, every word within 512 of each, and near the quadrant switches 1/8, 3/8, 5/8, 7/8);
  and on "peaks": the w0 where r's error is largest (above and below, in each range of w0) and
  the w1 where cos's or sin's is, among random words, crossed with each other and with random
  w1. Against float64 of the exact uniforms ("exact") and of exact u0 with the kernel's float32
  t ("t as rounded": everything but the angle's one rounding, which adds up to 0.3 ulp).

Run (2 worker processes by default, ``--jobs``)::

    python bench/noise_accuracy.py            # everything above: 178 s measured on 2 cores
    python bench/noise_accuracy.py --quick    # 2**20 random pairs only, ~3 s

Coefficients: weighted minimax fits (relative error) in float64 by linear programming on dense
Chebyshev grids (scipy HiGHS), rounded to float32 one coefficient at a time with the remaining ones
refitted after each rounding; the log coefficients were then adjusted by a greedy +-2-ulp search
on the exhaustive k = 0 and k = -1 sets; the same search on the sin/cos coefficients changed no
maximum, so they are left as rounded. scipy was used only for fitting; this file needs numpy
only.

Example:
    >>> z_cos, z_sin = box_muller(np.uint32([2**31]), np.uint32([2**29]))
    >>> print(f"{z_cos[0]:.7f} {z_sin[0]:.7f}")
    0.8325546 0.8325546
    >>> xa, xb = minus_two_log_uniform(np.uint32([2**32 - 1]))  # u = 1 - 2**-33: never 0
    >>> float(xa[0]) == 2.0**-32
    True
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# The coefficients have one home, shared by the kernels; this file models and measures them.
from rsengine.kernels.box_muller_coefficients import (COS_COEFFICIENTS, FOLD_COEFFICIENTS, LN2_HI as _LN2_HI,
                                                      LOG_G_COEFFICIENTS, PI_HI as _PI_HI, SIN_COEFFICIENTS)

__all__ = ["fma", "fma_emulated", "uniform", "twice_complement", "minus_two_log_uniform", "reduce_angle",
           "sincos_2pi", "radius", "box_muller", "box_muller_old", "sqrt_newton_mismatches", "main"]

F32 = np.float32
I32 = np.int32
U32 = np.uint32


def _h(s: str) -> np.float32:
    x = float.fromhex(s)
    assert float(F32(x)) == x, s  # every literal below is exactly a float32
    return F32(x)


try:  # the exact float32 fma of Triton's CPU interpreter (what tl.fma runs there)
    from triton._C.libtriton import interpreter as _interpreter

    _FMA_FP32 = _interpreter.fma_fp32
    FMA_SOURCE = "triton._C.libtriton.interpreter.fma_fp32"
except Exception:  # pragma: no cover - depends on the Triton build
    _FMA_FP32 = None
    FMA_SOURCE = "fma_emulated (numpy float64 + TwoSum)"


def fma_emulated(a, b, c):
    """Exact float32 fma in numpy: float64 product (exact), TwoSum, fixed-up double rounding.

    Valid when the float32 result is normal (true for every call in this file).
    """
    a64 = np.asarray(a, F32).astype(np.float64)
    p = a64 * np.asarray(b, F32).astype(np.float64)  # 48-bit product: exact in float64
    c64 = np.asarray(c, F32).astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)  # s + err == p + c exactly
    # s lands exactly halfway between two float32 only through its own rounding: break the tie
    # by the sign of the lost part instead of to even.
    mid = (s.view(np.int64) & 0x1FFFFFFF) == 0x10000000
    s = np.where(mid & (err != 0), np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(F32)


def fma(a, b, c):
    """float32 fma(a, b, c) = round(a * b + c), one rounding, numpy broadcasting."""
    a, b, c = np.broadcast_arrays(np.asarray(a, F32), np.asarray(b, F32), np.asarray(c, F32))
    if _FMA_FP32 is None:
        return fma_emulated(a, b, c)
    return _FMA_FP32(a, b, c)


# ---------------------------------------------------------------------------------------------
# Uniforms from words.

def uniform(w: np.ndarray) -> np.ndarray:
    """u = (w + 0.5) * 2**-32 rounded to float32, from the word's unsigned value: 1 i2f, 1 fma."""
    return fma(np.asarray(w, U32).astype(F32), _h("0x1p-32"), _h("0x1p-33"))


def twice_complement(w: np.ndarray) -> np.ndarray:
    """2 (1 - u) = (~w + 0.5) * 2**-31 rounded to float32, for words w >= 2**31: 1 i2f, 1 fma.

    From the word's signed value w - 2**32 = -(~w + 1): exact in 32 bits, so the complement keeps
    the bits that u rounded to float32 loses (every u >= 1 - 2**-25 rounds to 1).
    """
    return fma(np.asarray(w, U32).view(I32).astype(F32), _h("-0x1p-31"), _h("-0x1p-32"))


# ---------------------------------------------------------------------------------------------
# -2 ln u.  u = 2**k * m, m in [2/3, 4/3), f = m - 1 in [-1/3, 1/3), g = -2 f:
#   -2 ln u = -2 k ln2 + g + g^2 (1/4 + g P(g)),  P(g) = R(-g/2) / 4,
# where ln(1 + f) = f - f^2/2 + f^3 R(f), R of degree 7 (ln(1+f) to degree 10). R: minimax of the
# relative error of ln(1+f) over f in [m0 - 1, 2 m0 - 1), m0 the float32 with bits 0x3f2aaaab;
# float64 fit error 2**-27.7. P's coefficients are R's times powers of two (exact), so Horner in g
# computes exactly the scaled values Horner in f would.
# Words below 2**31 take k and m from u's float32 bits (m exact, g = 2 - 2m exact). Words from
# 2**31 on have u in (1/2, 1], k = 0 or -1 from the same bits (0 from w = 0xAAAAAA81 on: the
# first word whose float32 u is m0), and g from the complement c2 = 2 (1 - u):
#   k = 0: g = c2;  k = -1: g = -2 (2u - 1) = 2 c2 - 2, exact (c2 - 1 is, for c2 in (2/3, 1]).
# xa = -2 k ln2_hi + g is exact for k = 0, and for k = -1 while below 2 (u > 0.347: multiples of
# 2**-23); xb = g^2 (1/4 + g P) is the small rest, kept apart so that r = sqrt(xa + xb) can
# recover the rounding of the sum (radius).
LOG_P = tuple(F32(c) for c in LOG_G_COEFFICIENTS)  # g^0 .. g^7 of P
MINUS_TWO_LN2_HI = F32(-2.0 * _LN2_HI)  # -2 float32(ln 2); |k| times its 3.8e-9 error <= 0.07 ulp
_LOG_SHIFT = I32(0x3F2AAAAB)  # bits of the float32 just above 2/3
_MANT = I32(0x007FFFFF)


def minus_two_log_uniform(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-2 ln u for u = (w + 0.5) * 2**-32 as xa + xb: 27 ops, the two uniforms included.

    2 i2f, 13 fma, 2 fmul, 1 fadd, 5 int (sub, shift, and, add; add for float(k)), 2 compares,
    2 selects; 24 SASS instructions on sm_90 (ptxas folds the shift into float(k)'s add and the
    selects into predicated fmas). Measured against float64 on every word: see main().
    """
    w = np.asarray(w, U32)
    u = uniform(w)                                      # 1 i2f, 2 fma
    ix = u.view(I32)                                    # bitcast (free)
    t = ix - _LOG_SHIFT                                 # 3 isub
    k = t >> 23                                         # 4 arithmetic shift: u = 2**k m
    m = ((t & _MANT) + _LOG_SHIFT).view(F32)            # 5 and, 6 iadd; bitcast: m in [2/3, 4/3)
    kf = k.astype(F32)                                  # 7, 8 (iadd, fadd: bits of 1.5 * 2**23 + k), exact
    c2 = twice_complement(w)                            # 9 i2f, 10 fma
    g_complement = np.where(t < 0, fma(c2, F32(2.0), F32(-2.0)), c2)  # 11 compare, 12 fma, 13 select
    g = np.where(w >= U32(2**31), g_complement,         # 14 compare, 15 select
                 fma(m, F32(-2.0), F32(2.0)))           # 16 fma: g = -2 (m - 1), exact
    p = fma(LOG_P[7], g, LOG_P[6])                      # 17 fma (Horner for P, 7 fma)
    for c in LOG_P[5::-1]:                              # 18 .. 23
        p = fma(p, g, c)
    q = fma(p, g, F32(0.25))                            # 24 fma: 1/4 + g P(g)
    xa = fma(kf, MINUS_TWO_LN2_HI, g)                   # 25 fma: exact for k = 0, k = -1 below 2
    return xa, (g * g) * q                              # 26, 27 fmul


# ---------------------------------------------------------------------------------------------
# cos(2 pi u), sin(2 pi u) from the word.  n = (w + 2**29) >> 30 (mod 4) = rint(4u),
# t = 2u - n/2 = (4w + 2 - n 2**32) * 2**-33 = (4w + 2 mod 2**32, read as int32) * 2**-33 in
# [-1/4, 1/4], so 2 pi u = n pi/2 + pi t; t is rounded once (int32 -> float32), never 0.  s = t^2.
#   cos(pi t) = 1 + s C(s),             C of degree 3 (cos to degree 8), fit error 2**-31.1
#   sin(pi t) = t PI_HI + t Q(s),       Q of degree 3 (sin to degree 7), fit error 2**-28.1
# (Q(0) carries pi - PI_HI.)  Minimax of the relative error of cos(pi t) resp. sin(pi t) on
# s in [0, 1/16]; float64 evaluation of the float32 polynomials: within 0.007 (cos) and 0.054
# (sin) ulp.
COS_C = tuple(F32(c) for c in COS_COEFFICIENTS)  # s .. s^4
SIN_Q = tuple(F32(c) for c in SIN_COEFFICIENTS)  # s^0 .. s^3 (Q(0) carries pi - PI_HI)
PI_HI = F32(_PI_HI)  # float32(pi)
# 1/C(s) + s ~ G0 + G1 s (least squares, relative error 3.7e-4), used to fold the low part rl of
# r into the cos polynomial's product (see box_muller).
BM_G = tuple(F32(c) for c in FOLD_COEFFICIENTS)  # -0.202587231993675, 0.828077495098114
_RSQRT_HALF_MAGIC = I32(0x5EB759DF)  # bits: ~0.5/sqrt(x) to 3.5% (0x5F3759DF - 2**23)


def reduce_angle(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, swap, negate) of 2 pi u = n pi/2 + pi t: 6 ops (4 int, 1 i2f, 1 fmul) + 2 compares.

    swap = n odd, negate = n & 2: bits 30 and 31 of w + 2**29.
    """
    w = np.asarray(w, U32)
    v = (w << U32(2)) + U32(2)                          # 1 shift, 2 iadd (or one lea): 4w + 2 mod 2**32
    t = v.view(I32).astype(F32) * _h("0x1p-33")         # 3 i2f (the one rounding), 4 fmul (exact)
    quadrant = (w + U32(2**29)) >> U32(30)              # 5 iadd, 6 shift (ptxas: bit tests of the sum)
    return t, (quadrant & U32(1)) != 0, (quadrant & U32(2)) != 0  # 2 compares


def _poly3(s, c):
    """c[3] s^3 + c[2] s^2 + c[1] s + c[0]: 3 fma."""
    p = fma(c[3], s, c[2])
    p = fma(p, s, c[1])
    return fma(p, s, c[0])


def _rotate(swap, negate, zc, zs):
    """(cos, sin) of n pi/2 + pi t from zc ~ cos(pi t), zs ~ sin(pi t): 7 ops (4 on a GPU: negations are free).

    n odd swaps: (cos, sin) = (-zs, zc); n & 2 negates both; n = 4 acts as n = 0.
    """
    c = np.where(swap, -zs, zc)                         # 1 neg, 2 select
    s = np.where(swap, zc, zs)                          # 3 select
    return np.where(negate, -c, c), np.where(negate, -s, s)  # 4, 5 neg; 6, 7 select


def _scaled_sincos(rh, rl, t):
    """(r cos(pi t), r sin(pi t)) for r = rh + rl: 17 ops.

    The two products r * poly are folded into the polynomials' last fma:
      r cos(pi t) = rh + C(s) (rh s + rl (1/C(s) + s))      (1/C + s ~ G0 + G1 s)
      r sin(pi t) = rh hi + (rl hi + rh lo),  hi + lo = t PI_HI + t Q(s)  (hi = t*PI_HI, lo exact
                                                                        product error + t Q)
    """
    s = t * t                                           # 1 fmul
    c = _poly3(s, COS_C)                                # 3 fma
    g = fma(s, BM_G[1], BM_G[0])                        # 1 fma
    zc = fma(fma(rh, s, rl * g), c, rh)                 # 1 fmul, 2 fma: r cos(pi t)
    hi = t * PI_HI                                      # 1 fmul
    lo = fma(t, _poly3(s, SIN_Q), fma(t, PI_HI, -hi))   # 3 + 2 fma
    zs = fma(rh, hi, fma(rl, hi, rh * lo))              # 1 fmul, 2 fma: r sin(pi t)
    return zc, zs


def sincos_2pi(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos 2 pi u, sin 2 pi u) for u = (w + 0.5) * 2**-32: box_muller's angle path with r = 1."""
    t, swap, negate = reduce_angle(w)
    zc, zs = _scaled_sincos(F32(1.0), F32(0.0), t)
    return _rotate(swap, negate, zc, zs)


def box_muller(w0: np.ndarray, w1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0), from the words: 65 ops + 1 sqrt_rn.

    radius 33 (+ sqrt_rn); reduce_angle 6 + 2 compares; r cos, r sin 17; rotate 7. On sm_90:
    63 SASS instructions per pair, the square root (rsqrt and its Newton step) included.
    """
    rh, rl = radius(w0)
    t, swap, negate = reduce_angle(w1)
    zc, zs = _scaled_sincos(rh, rl, t)
    return _rotate(swap, negate, zc, zs)


def radius(w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r = sqrt(-2 ln u0) as rh + rl: minus_two_log_uniform, 6 ops and 1 sqrt_rn.

    rh = sqrt_rn(xa + xb), rl = (xa + xb - rh^2) * ~0.5/sqrt(x), xa - rh^2 by an fma and xb added
    after it: rh + rl carries both the square root's rounding and the sum's (bit-trick estimate:
    rl is about half an ulp of rh, so 3.5% of it is harmless).
    """
    xa, xb = minus_two_log_uniform(w0)
    x = xa + xb                                         # 1 fadd: in [2**-32, 45.8], never 0
    rh = np.sqrt(x)                                     # correctly rounded (the kernel: rsqrt + Newton)
    e = fma(-rh, rh, xa) + xb                           # 2 fma, 3 fadd: xa + xb - rh^2
    y = (_RSQRT_HALF_MAGIC - (x.view(I32) >> 1)).view(F32)  # 4 shift, 5 isub: ~0.5/sqrt(x)
    return rh, e * y                                    # 6 fmul: sqrt(xa + xb) ~ rh + rl


def sqrt_newton_mismatches(exponents=range(-32, 7)) -> tuple[int, int]:
    """The kernel's square root against np.sqrt (correctly rounded) on every float32 in
    [2**-32, 2**7), where -2 ln u lies: y = 1/sqrt(x) as Triton's interpreter computes rsqrt,
    s = x y, r = fma(fma(-s, s, x), y / 2, s): the fast path ptxas emits for sqrt.rn, written
    out so the kernel carries no branch to sqrt.rn's slow path. Returns (mismatches, n).
    """
    mismatches = total = 0
    for e in exponents:
        start = (127 + e) << 23
        x = np.arange(start, start + (1 << 23), dtype=np.uint32).view(F32)
        y = F32(1) / np.sqrt(x)
        s = x * y
        r = fma(fma(-s, s, x), F32(0.5) * y, s)
        mismatches += int((r != np.sqrt(x)).sum())
        total += x.size
    return mismatches, total


def box_muller_old(u0, u1):
    """The kernels' formulation before 2026-11-29 (libdevice): float32 log, sqrt, theta = f32(2 pi) * u1."""
    r = np.sqrt(F32(-2.0) * np.log(np.asarray(u0, F32)))
    theta = F32(2.0 * np.pi) * np.asarray(u1, F32)
    return r * np.cos(theta), r * np.sin(theta)


# ---------------------------------------------------------------------------------------------
# Truth and error measures (float64, from the words' exact uniforms).

def _exact_minus_two_log(w):
    """-2 ln((w + 0.5) 2**-32) in float64; log1p of the exact complement from 2**31 on."""
    w64 = np.asarray(w, U32).astype(np.float64)
    return -2.0 * np.where(w64 >= 2.0**31, np.log1p(-(2.0**32 - 0.5 - w64) * 2.0**-32),
                           np.log((w64 + 0.5) * 2.0**-32))


def _exact_sincos(w, t=None):
    """float64 (cos 2 pi u, sin 2 pi u), u = (w + 0.5) 2**-32: pi t with t exact (or the given t)."""
    w = np.asarray(w, U32)
    if t is None:
        t = ((w << U32(2)) + U32(2)).view(I32).astype(np.float64) * 2.0**-33
    x = np.pi * np.asarray(t, np.float64)  # |x| <= pi/4
    cx, sx = np.cos(x), np.sin(x)
    n = (w + U32(0x20000000)) >> U32(30)
    odd = (n & 1) == 1
    c, s = np.where(odd, -sx, cx), np.where(odd, cx, sx)
    neg = (n & 2) == 2
    return np.where(neg, -c, c), np.where(neg, -s, s)


def _ulp_error(res, truth):
    res = np.asarray(res, np.float64)
    ulp = np.ldexp(1.0, np.frexp(np.abs(truth))[1] - 24)  # 2**(floor(log2|x|) - 23)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(res - truth) / ulp
    zero = truth == 0
    if zero.any():
        err[zero] = np.where(res[zero] == 0, 0.0, np.inf)
    return err


class _Stat:
    """Max (with location), counts above thresholds, over the finite and infinite errors."""

    THRESHOLDS = (0.5, 1.0, 2.0)

    def __init__(self):
        self.n = 0
        self.max = -1.0
        self.at = None
        self.above = [0] * len(self.THRESHOLDS)
        self.n_inf = 0
        self.inf_at = None

    def add(self, err, where, weight=None):
        """err: float64 errors; where: callable i -> description of sample i; weight: words per sample."""
        if err.size == 0:
            return self
        weight = np.ones(err.shape, np.int64) if weight is None else weight
        self.n += int(weight.sum())
        inf = ~np.isfinite(err)
        if inf.any():
            if self.inf_at is None:
                self.inf_at = where(int(np.flatnonzero(inf)[0]))
            self.n_inf += int(weight[inf].sum())
            err = np.where(inf, -1.0, err)
        i = int(np.argmax(err))
        if err[i] > self.max:
            self.max, self.at = float(err[i]), where(i)
        for j, th in enumerate(self.THRESHOLDS):
            self.above[j] += int(weight[err > th].sum())
        return self

    def merge(self, other):
        self.n += other.n
        if other.max > self.max:
            self.max, self.at = other.max, other.at
        self.above = [a + b for a, b in zip(self.above, other.above)]
        if self.inf_at is None:
            self.inf_at = other.inf_at
        self.n_inf += other.n_inf
        return self


# ---------------------------------------------------------------------------------------------
# Work units (run in worker processes; each returns a dict of _Stat).

def _runs(*keys):
    """(first, last) index of each run of equal consecutive keys (same length 1-D arrays)."""
    change = np.zeros(keys[0].size - 1, bool)
    for key in keys:
        change |= key[1:] != key[:-1]
    edges = np.flatnonzero(change)
    return np.concatenate([[0], edges + 1]), np.concatenate([edges, [keys[0].size - 1]])


def _max_over_runs(words, first, last, results, truth_of):
    """Per run, the largest ulp error of its (constant) result against the truth of its words,
    and where it is: the truth is monotone in the word, so the ends of a run bound it unless it
    crosses a power of two there (then the run's words are compared one by one).

    Returns (errors [runs], words [runs] where each error is, words per run).
    """
    truth_first, truth_last = truth_of(words[first]), truth_of(words[last])
    err_first, err_last = _ulp_error(results, truth_first), _ulp_error(results, truth_last)
    err = np.maximum(err_first, err_last)
    at = np.where(err_first >= err_last, words[first], words[last])
    crossing = np.flatnonzero(np.frexp(np.abs(truth_first))[1] != np.frexp(np.abs(truth_last))[1])
    for i in crossing:
        inside = words[first[i]:last[i] + 1]
        inner = _ulp_error(np.full(inside.size, results[i]), truth_of(inside))
        j = int(np.argmax(inner))
        err[i], at[i] = inner[j], inside[j]
    return err, at, last - first + 1


def _unit_log(bounds):
    """-2 ln u (xa + xb) on every word in [lo, hi)."""
    lo, hi = bounds
    w = np.arange(lo, hi, dtype=np.uint64).astype(U32)
    first, last = _runs(w.astype(F32).view(U32), w.view(I32).astype(F32).view(U32))
    xa, xb = minus_two_log_uniform(w[first])
    err, at, weight = _max_over_runs(w, first, last, xa.astype(np.float64) + xb, _exact_minus_two_log)
    label = "-2 ln u0 (xa + xb)" + (" w >= 2**31" if lo >= 2**31 else " w < 2**31")
    return {label: _Stat().add(err, lambda i: f"w0={int(at[i]):#010x}", weight)}


def _unit_angle(bounds):
    """cos and sin of 2 pi u on every word in [lo, hi), lo >= 0, hi <= 2**29 (|t| covers all)."""
    lo, hi = bounds
    w = np.arange(lo, hi, dtype=np.uint32)
    t, _, _ = reduce_angle(w)
    first, last = _runs(t.view(U32))
    zc, zs = sincos_2pi(w[first])
    out = {}
    for name, res, index in (("cos 2 pi u1", zc, 0), ("sin 2 pi u1", zs, 1)):
        err, at, weight = _max_over_runs(w, first, last, res, lambda words: _exact_sincos(words)[index])
        out[name] = _Stat().add(err, lambda i: f"w1={int(at[i]):#010x}", weight)
    return out


def _transform_stats(w0, w1):
    def where(i):
        return f"w0={int(w0[i]):#010x} w1={int(w1[i]):#010x}"

    out = {}
    r = np.sqrt(_exact_minus_two_log(w0))
    t, _, _ = reduce_angle(w1)
    exact, rounded_t = _exact_sincos(w1), _exact_sincos(w1, t)
    zc, zs = box_muller(w0, w1)
    for label, (ct, st) in (("z exact", exact), ("z t as rounded", rounded_t)):
        out[label + " cos"] = _Stat().add(_ulp_error(zc, r * ct), where)
        out[label + " sin"] = _Stat().add(_ulp_error(zs, r * st), where)
    zc, zs = box_muller_old(uniform(w0), uniform(w1))
    out["z old (f32 u) exact cos"] = _Stat().add(_ulp_error(zc, r * exact[0]), where)
    out["z old (f32 u) exact sin"] = _Stat().add(_ulp_error(zs, r * exact[1]), where)
    return out


def _unit_random(args):
    seed, index, size = args
    rng = np.random.default_rng([seed, index])
    w0 = rng.integers(0, 2**32, size=size, dtype=np.uint32)
    w1 = rng.integers(0, 2**32, size=size, dtype=np.uint32)
    return _transform_stats(w0, w1)


def _targeted_words():
    rng = np.random.default_rng(12345)
    w0 = np.concatenate([
        np.arange(0, 2048),                                   # u0 tiny (largest |z|)
        2**31 + 128 * np.arange(-1024, 1024),                 # u0 near 1/2: the complement starts
        0xAAAAAA81 + np.arange(-1024, 1024),                  # u0 near 2/3: k = -1 -> 0 in the complement
        2**32 - 1 - np.arange(4096),                          # u0 near 1: every word (float32 u = 1 for 128)
        2**32 - 4096 * np.arange(1, 1025),                    # further from 1
        rng.integers(0, 2**32, 1024),
    ]).astype(np.uint64)
    w1 = [np.arange(0, 512)]                                  # u1 tiny
    for centre in (2**30, 2**31, 3 * 2**30, 2**32):           # u1 near 1/4, 1/2, 3/4, 1: every word
        w1.append(centre + np.arange(-512, 512))
    for switch in (1, 3, 5, 7):                               # u1 near 1/8, 3/8, 5/8, 7/8: |t| = 1/4
        w1.append(switch * 2**29 + np.arange(-128, 128))
    w1.append(rng.integers(0, 2**32, 512))
    w1 = np.concatenate(w1).astype(np.uint64)
    return (np.unique(w0[w0 < 2**32]).astype(U32), np.unique(w1[w1 < 2**32]).astype(U32))


def _unit_targeted(args):
    lo, hi = args
    w0, w1 = _targeted_words()
    w0 = w0[lo:hi]
    return _transform_stats(np.repeat(w0, w1.size), np.tile(w1, w0.size))


# Ranges of w0 with different error sources: u0 exact in float32, u0 rounded, the complement with
# k = -1 (the worst of u0's rounding, near u0 = e**-0.5, avoided), with k = 0, exact complement.
_W0_RANGES = ((0, 2**24), (2**24, 2**30), (2**30, 2**31), (2**31, 0x9B000000), (0x9B000000, 0xAAAAAA81),
              (0xAAAAAA81, 2**32 - 2**24), (2**32 - 2**24, 2**32))


def _peak_words(seed, per_range=1 << 21, keep=32, spread=4096):
    """Words where the errors peak, for crossing: w0 where r = rh + rl is furthest above and below
    sqrt(-2 ln u0) (``keep`` each, per range of _W0_RANGES), w1 where cos and sin of 2 pi u1 are
    furthest above and below the exact and the as-rounded angle's, among random words; and
    ``spread`` random w1, so that the final roundings of z fall everywhere."""
    rng = np.random.default_rng(seed)

    def extremes(words, relative_error):
        order = np.argsort(relative_error)
        return [words[order[:keep]], words[order[-keep:]]]

    w0 = []
    for lo, hi in _W0_RANGES:
        w = rng.integers(lo, hi, per_range, dtype=np.uint64).astype(U32)
        rh, rl = radius(w)
        r = np.sqrt(_exact_minus_two_log(w))
        w0 += extremes(w, (rh.astype(np.float64) + rl - r) / r)
    w = rng.integers(0, 2**32, per_range, dtype=np.uint64).astype(U32)
    t, _, _ = reduce_angle(w)
    results = sincos_2pi(w)
    w1 = [rng.integers(0, 2**32, spread, dtype=np.uint64).astype(U32)]
    for exact in (_exact_sincos(w), _exact_sincos(w, t)):
        for res, truth in zip(results, exact):
            w1 += extremes(w, (res - truth) / np.abs(truth))
    return np.unique(np.concatenate(w0)), np.unique(np.concatenate(w1))


def _unit_peaks(seed):
    w0, w1 = _peak_words(seed)
    return _transform_stats(np.repeat(w0, w1.size), np.tile(w1, w0.size))


def _fma_selfcheck(n=1 << 20):
    """Triton's fma_fp32 against fma_emulated on random and near-cancelling triples."""
    rng = np.random.default_rng(7)
    a = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(F32)
    b = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 30, n))).astype(F32)
    c = (rng.standard_normal(n) * np.exp2(rng.integers(-60, 60, n))).astype(F32)
    half = n // 2  # c ~ -a*b: cancellation, halfway cases of the double rounding
    c[:half] = (-(a[:half].astype(np.float64) * b[:half])).astype(F32)
    c[:half] = c[:half] + (rng.integers(-4, 5, half) * np.spacing(np.abs(c[:half]))).astype(F32)
    if _FMA_FP32 is None:
        return None
    ref = fma_emulated(a, b, c)
    got = _FMA_FP32(a, b, c)
    ok = np.isfinite(ref) & (np.abs(ref) >= np.finfo(F32).tiny)
    return int((got[ok].view(np.uint32) != ref[ok].view(np.uint32)).sum()), int(ok.sum())


# ---------------------------------------------------------------------------------------------

def _run(units, fn, jobs):
    merged = {}
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            results = ex.map(fn, units)
            for res in results:
                for k, v in res.items():
                    merged[k] = merged[k].merge(v) if k in merged else v
    else:
        for unit in units:
            for k, v in fn(unit).items():
                merged[k] = merged[k].merge(v) if k in merged else v
    return merged


def _print_table(title, stats):
    print(f"\n{title}")
    hdr = f"  {'quantity':<30} {'N':>11} {'max ulp':>8} {'>0.5':>10} {'>1':>10} {'>2':>10}  at"
    print(hdr)
    for name, st in stats.items():
        fr = [f"{a / st.n:.2e}" if st.n else "-" for a in st.above]
        print(f"  {name:<30} {st.n:>11} {st.max:>8.3f} {fr[0]:>10} {fr[1]:>10} {fr[2]:>10}  "
              f"{st.at}")
        if st.n_inf:
            print(f"  {'':<30} {st.n_inf} results nonzero where the truth is exactly 0 "
                  f"(infinite ulp error, left out of max), e.g. {st.inf_at}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2**20 random pairs only (~3 s)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="worker processes (default: 2 or fewer)")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    print(f"fma: {FMA_SOURCE}; numpy {np.__version__}; jobs {args.jobs}")
    chk = _fma_selfcheck(1 << 16 if args.quick else 1 << 22)
    if chk is not None:
        print(f"fma self-check: {chk[0]} of {chk[1]} triples differ from fma_emulated")

    if args.quick:
        t0 = time.perf_counter()
        units = [(args.seed, i, 1 << 18) for i in range(4)]
        _print_table(f"random (w0, w1) pairs, seed {args.seed} (quick)",
                     _run(units, _unit_random, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
    else:
        t0 = time.perf_counter()
        bad, n = sqrt_newton_mismatches()
        print(f"\nsquare root (rsqrt + one Newton step) vs np.sqrt, every float32 in [2**-32, 2**7): "
              f"{bad} of {n} differ  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        step = 1 << 24
        units = [(lo, lo + step) for lo in range(0, 2**32, step)]
        ex = _run(units, _unit_log, args.jobs)
        ex.update(_run([(lo, lo + step) for lo in range(0, 2**29, step)], _unit_angle, args.jobs))
        _print_table("exhaustive: every 32-bit word (ulps of the exact value at the word's exact uniform)", ex)
        print(f"  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        units = [(args.seed, i, 1 << 23) for i in range(12)]
        _print_table(f"random (w0, w1) pairs: 12 * 2**23, seed {args.seed}",
                     _run(units, _unit_random, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        w0, w1 = _targeted_words()
        step = max(1, (1 << 22) // w1.size)
        units = [(lo, min(lo + step, w0.size)) for lo in range(0, w0.size, step)]
        _print_table(f"targeted: {w0.size} w0 (u0 near 0, 1/2, 2/3, 1) x {w1.size} w1 (u1 near 0, 1/8, 1/4, "
                     "..., 1)", _run(units, _unit_targeted, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        _print_table("peaks: w0 where r's error peaks x w1 where cos's or sin's does (2**21 random words each)",
                     _run([args.seed + 1, args.seed + 2], _unit_peaks, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
