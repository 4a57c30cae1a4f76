"""Accuracy of branch-free float32 log / sincos(2 pi u) for the noise kernel's Box-Muller step.

The noise kernel turns Philox words into normals: ``u = fma(float32(w), 2**-32, 2**-33)`` (a
normal float32 in [2**-33, 1]), ``r = sqrt(-2 ln u0)``, ``z = (r cos 2 pi u1, r sin 2 pi u1)``.
This file defines replacements for libdevice ``logf`` / ``sinf`` / ``cosf`` written only with
float32 add/mul/fma, int32 bit operations, compares and selects (no tables, no branches, no
special cases, no float->int conversion), so that Triton's CPU interpreter and a GPU give the same
bits, and measures them against float64 truth computed from the same float32 inputs:

- :func:`log_u`: ln u, degree-10 polynomial in f = m - 1, m in [2/3, 4/3). 17 ops; measured
  max error 0.872 ulp.
- :func:`sincos_2pi`: (cos 2 pi u, sin 2 pi u), sincospi-style reduction t = 2u - rint(4u)/2,
  degree-8 cos and degree-7 sin polynomials in t, quadrant rotation with selects. 25 ops;
  measured max error 0.874 ulp (cos), 0.871 ulp (sin).
- :func:`box_muller`: the whole transform with r folded into the sincos polynomials and the
  rounding error of the square root carried along (r = rh + rl), which the plain composition
  ``sqrt(-2 log_u(u0)) * sincos_2pi(u1)`` (:func:`box_muller_naive`, 2.6 ulp) lacks. 54 ops +
  1 sqrt_rn; measured max error 1.56 ulp.

Every function is written op for op as a GPU kernel would run it: one numpy call per float32
operation, fma by the exact float32 fma of Triton's interpreter (``tl.fma`` there; the fallback
:func:`fma_emulated` if that private API is missing). No multiply result feeds a plain add, so
ptxas's mul+add contraction (Triton's ``enable_fp_fusion``) cannot change a bit. The square root
here is np.sqrt (correctly rounded); the kernel computes it as rsqrt and one Newton step
(``tl.sqrt`` is approximate on a GPU), which :func:`sqrt_newton_mismatches` shows equal to
np.sqrt over its whole range with the interpreter's rsqrt; bit views are
``x.to(tl.int32, bitcast=True)``.

Errors are in ulps of the true value: ``|result - truth| / 2**(floor(log2 |truth|) - 23)``
(the float32 spacing at |truth|); a zero truth counts 0 if the result is +-0, else infinity.
What it measures (each row of the printed table):

- log_u, sincos_2pi: every float32 in [2**-33, 1] (33 * 2**23 + 1 values), and the subset the
  uniform can produce ("reachable": all floats >= 2**-8, even mantissas in [2**-9, 2**-8),
  (w + 0.5) * 2**-32 below). The sin/cos errors depend on u only through the quadrant and |t|,
  and every float32 |t| in [0, 1/4] occurs, so every reduced argument is covered.
- box_muller, box_muller_naive and the kernels' old formulation (float32 np.log / np.sqrt,
  theta = float32(2 pi) * u1 rounded to float32, np.cos / np.sin in float32): on 12 * 2**23
  random (w0, w1) uint32 pairs (numpy Generator, fixed seed) and on a grid of targeted points
  (u0 near 0, 1/2 and 1; u1 near 0, 1/4, 1/2, 3/4, 1).

Run (2 worker processes by default, ``--jobs``)::

    python bench/noise_accuracy.py            # everything above: 231 s measured on 2 cores
    python bench/noise_accuracy.py --quick    # 2**20 random pairs only (log/sincos sampled), ~2 s

Coefficients: weighted minimax fits (relative error) in float64 by linear programming on dense
Chebyshev grids (scipy HiGHS), rounded to float32 one coefficient at a time with the remaining ones
refitted after each rounding; the log coefficients were then adjusted by a greedy +-2-ulp search
on the exhaustive k = 0 and k = -1 sets (max error 0.934 -> 0.872 ulp there); the same search on
the sin/cos coefficients changed no maximum, so they are left as rounded. scipy was used only
for fitting; this file needs numpy only.

Example:
    >>> z_cos, z_sin = box_muller(np.float32([0.5]), np.float32([0.125]))
    >>> print(f"{z_cos[0]:.7f} {z_sin[0]:.7f}")
    0.8325546 0.8325546
    >>> print(f"{log_u(np.float32([0.5]))[0]:.8f}")
    -0.69314718
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

# The coefficients have one home, the kernels' module; this file models and measures them.
from rsengine.kernels.box_muller import (COS_COEFFICIENTS, FOLD_COEFFICIENTS, LN2_HI as _LN2_HI, LOG_COEFFICIENTS,
                                         PI_HI as _PI_HI, SIN_COEFFICIENTS)

__all__ = ["fma", "fma_emulated", "log_u", "sincos_2pi", "box_muller", "box_muller_naive", "box_muller_old",
           "sqrt_newton_mismatches", "uniform", "main"]

F32 = np.float32
I32 = np.int32


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
# ln u.  u = 2**k * m, m in [2/3, 4/3), f = m - 1 in [-1/3, 1/3):
#   ln u = k ln2 + f - f^2/2 + f^3 R(f),  R of degree 7 (ln(1+f) to degree 10).
# R: minimax of the relative error of ln(1+f) over f in [m0 - 1, 2 m0 - 1), m0 the float32 with
# bits 0x3f2aaaab; float64 fit error 2**-27.7. After rounding and the greedy search the float64
# evaluation of the float32 polynomial is within 0.074 ulp of ln(1+f). Measured on every m for
# k in {0, -1, -2, -3, -10, -33}: degree 9 1.16 ulp max (k = 0), degree 10 0.93 (k = -1) before
# the +-2-ulp search.
LOG_R = tuple(F32(c) for c in LOG_COEFFICIENTS)  # f^3 .. f^10, from rsengine.kernels.box_muller
LN2_HI = F32(_LN2_HI)  # float32(ln 2) = ln 2 + 1.9e-9; k * that error <= 0.07 ulp of ln u
_LOG_SHIFT = I32(0x3F2AAAAB)  # bits of the float32 just above 2/3
_MANT = I32(0x007FFFFF)


def log_u(u: np.ndarray) -> np.ndarray:
    """ln u for float32 u, u normal in [2**-33, 1]. 17 ops.

    4 int (sub, shift, and, add) + 1 int->float + 12 float (2 add/mul, 10 fma). Max error
    0.872 ulp over every float32 in [2**-33, 1]; u near 1 is accurate relative to ln u.
    """
    ix = np.asarray(u, F32).view(I32)                   # bitcast (free)
    t = ix - _LOG_SHIFT                                 # 1 isub
    k = t >> 23                                         # 2 arithmetic shift: k = exponent of u/m
    m = ((t & _MANT) + _LOG_SHIFT).view(F32)            # 3 and, 4 iadd; bitcast: m in [2/3, 4/3)
    f = m - F32(1.0)                                    # 5 fadd, exact (Sterbenz)
    kf = k.astype(F32)                                  # 6 i2f, exact (|k| <= 126)
    f2 = f * f                                          # 7 fmul
    r = fma(LOG_R[7], f, LOG_R[6])                      # 8  fma  (Horner for R, 7 fma)
    r = fma(r, f, LOG_R[5])                             # 9
    r = fma(r, f, LOG_R[4])                             # 10
    r = fma(r, f, LOG_R[3])                             # 11
    r = fma(r, f, LOG_R[2])                             # 12
    r = fma(r, f, LOG_R[1])                             # 13
    r = fma(r, f, LOG_R[0])                             # 14
    q = fma(r, f, F32(-0.5))                            # 15 fma: q = -1/2 + f R(f)
    p = fma(f2, q, f)                                   # 16 fma: ln(1 + f) = f + f^2 q
    return fma(kf, LN2_HI, p)                           # 17 fma: k ln2 + ln(1 + f), one rounding


# ---------------------------------------------------------------------------------------------
# cos(2 pi u), sin(2 pi u).  n = rint(4u) in {0..4}, t = 2u - n/2 in [-1/4, 1/4] (exact),
# 2 pi u = n pi/2 + pi t.  s = t^2.
#   cos(pi t) = 1 + s C(s),             C of degree 3 (cos to degree 8), fit error 2**-31.1
#   sin(pi t) = t PI_HI + t Q(s),       Q of degree 3 (sin to degree 7), fit error 2**-28.1
# (Q(0) carries pi - PI_HI.)  Minimax of the relative error of cos(pi t) resp. sin(pi t) on
# s in [0, 1/16]; float64 evaluation of the float32 polynomials: within 0.007 (cos) and 0.054
# (sin) ulp.
COS_C = tuple(F32(c) for c in COS_COEFFICIENTS)  # s .. s^4
SIN_Q = tuple(F32(c) for c in SIN_COEFFICIENTS)  # s^0 .. s^3 (Q(0) carries pi - PI_HI)
PI_HI = F32(_PI_HI)  # float32(pi)
_RINT_MAGIC = _h("0x1.8p+23")  # 1.5 * 2**23: x + magic rounds x to an integer, kept in low bits
# box_muller only: 1/C(s) + s ~ G0 + G1 s (least squares, relative error 3.7e-4), used to fold
# the low part rl of r into the cos polynomial's product (see box_muller).
BM_G = tuple(F32(c) for c in FOLD_COEFFICIENTS)  # -0.202587231993675, 0.828077495098114
_RSQRT_HALF_MAGIC = I32(0x5EB759DF)  # bits: ~0.5/sqrt(x) to 3.5% (0x5F3759DF - 2**23)


def _reduce(u):
    """5 float ops: t = 2u - n/2 (exact), s = t*t; n mod 4 in the low bits of j (bitcast)."""
    j = fma(u, F32(4.0), _RINT_MAGIC)                   # 1 fma: 1.5 * 2**23 + rint(4u), exact
    n = j - _RINT_MAGIC                                 # 2 fadd: rint(4u) in {0, 1, 2, 3, 4}
    a = u * F32(2.0)                                    # 3 fmul, exact
    t = fma(n, F32(-0.5), a)                            # 4 fma: 2u - n/2 in [-1/4, 1/4], exact
    s = t * t                                           # 5 fmul
    return t, s, j.view(I32)                            # quadrant n mod 4 = j bits & 3


def _poly3(s, c):
    """c[3] s^3 + c[2] s^2 + c[1] s + c[0]: 3 fma."""
    p = fma(c[3], s, c[2])
    p = fma(p, s, c[1])
    return fma(p, s, c[0])


def _rotate(qbits, zc, zs):
    """(cos, sin) of n pi/2 + pi t from zc ~ cos(pi t), zs ~ sin(pi t). 11 ops.

    n odd swaps: (cos, sin) = (-zs, zc); n & 2 negates both; n = 4 acts as n = 0.
    """
    swap = (qbits & I32(1)) != 0                        # 1 and, 2 compare
    neg = (qbits & I32(2)) != 0                         # 3 and, 4 compare
    c = np.where(swap, -zs, zc)                         # 5 neg, 6 select
    s = np.where(swap, zc, zs)                          # 7 select
    return np.where(neg, -c, c), np.where(neg, -s, s)   # 8, 9 neg; 10, 11 select


def sincos_2pi(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos 2 pi u, sin 2 pi u) for float32 u in [0, 1]. 25 ops (14 of them fma/mul/add).

    reduce 5 + cos 4 fma + sin (3 fma, 1 mul, 1 fma) + rotate 11. Max error 0.874 ulp (cos),
    0.871 ulp (sin) over every float32 in [2**-33, 1], relative to the value, zeros included.
    """
    u = np.asarray(u, F32)
    t, s, qbits = _reduce(u)                            # 5
    c = fma(s, _poly3(s, COS_C), F32(1.0))              # 4 fma: cos(pi t)
    sn = fma(t, PI_HI, t * _poly3(s, SIN_Q))            # 3 fma, 1 fmul, 1 fma: sin(pi t)
    return _rotate(qbits, c, sn)                        # 11


def box_muller(u0: np.ndarray, u1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0). 54 ops + 1 sqrt_rn; max 1.56 ulp.

    log_u 17; r as rh + rl 5 (+ sqrt_rn); reduce 5; r cos(pi t) 7; r sin(pi t) 9; rotate 11.
    rh = sqrt_rn(x) and rl = (x - rh^2) * ~0.5/sqrt(x) (bit-trick estimate: rl is <= half an
    ulp of rh, so 3.5% of it is harmless): the square root's rounding no longer adds up to one
    ulp of z. The two products r * poly are folded into the polynomials' last fma:
      r cos(pi t) = rh + C(s) (rh s + rl (1/C(s) + s))      (1/C + s ~ G0 + G1 s)
      r sin(pi t) = rh hi + (rl hi + rh lo),  hi + lo = t PI_HI + t Q(s)  (hi = t*PI_HI, lo exact
                                                                        product error + t Q)
    """
    u1 = np.asarray(u1, F32)
    x = F32(-2.0) * log_u(u0)                           # log_u 17; 1 fmul, exact
    rh = np.sqrt(x)                                     # correctly rounded (the kernel: rsqrt + Newton)
    e = fma(-rh, rh, x)                                 # 2 fma: x - rh^2, exact
    y = (_RSQRT_HALF_MAGIC - (x.view(I32) >> 1)).view(F32)  # 3 shift, 4 isub: ~0.5/sqrt(x)
    rl = e * y                                          # 5 fmul: sqrt(x) ~ rh + rl
    t, s, qbits = _reduce(u1)                           # 5
    c = _poly3(s, COS_C)                                # 3 fma
    g = fma(s, BM_G[1], BM_G[0])                        # 1 fma
    zc = fma(fma(rh, s, rl * g), c, rh)                 # 1 fmul, 2 fma: r cos(pi t)
    hi = t * PI_HI                                      # 1 fmul
    lo = fma(t, _poly3(s, SIN_Q), fma(t, PI_HI, -hi))   # 3 + 2 fma
    zs = fma(rh, hi, fma(rl, hi, rh * lo))              # 1 fmul, 2 fma: r sin(pi t)
    return _rotate(qbits, zc, zs)                       # 11


def sqrt_newton_mismatches(exponents=range(-24, 7)) -> tuple[int, int]:
    """The kernel's square root against np.sqrt (correctly rounded) on every float32 in
    [2**-24, 2**7), where -2 ln u lies (or is 0): y = 1/sqrt(x) as Triton's interpreter computes
    rsqrt, s = x y, r = fma(fma(-s, s, x), y / 2, s): the fast path ptxas emits for sqrt.rn,
    written out so the kernel carries no branch to sqrt.rn's slow path. Returns (mismatches, n).
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


def box_muller_naive(u0, u1):
    """sqrt_rn(-2 log_u(u0)) * sincos_2pi(u1): the plain composition. 45 ops + 1 sqrt_rn."""
    r = np.sqrt(F32(-2.0) * log_u(u0))
    c, s = sincos_2pi(u1)
    return r * c, r * s


def box_muller_old(u0, u1):
    """The kernels' formulation before 2026-11-29 (libdevice): float32 log, sqrt, theta = f32(2 pi) * u1."""
    r = np.sqrt(F32(-2.0) * np.log(np.asarray(u0, F32)))
    theta = F32(2.0 * np.pi) * np.asarray(u1, F32)
    return r * np.cos(theta), r * np.sin(theta)


def uniform(w: np.ndarray) -> np.ndarray:
    """u = (float32(w) + 0.5) * 2**-32 in float32 (one fma), for uint32 Philox words w."""
    return fma(np.asarray(w, np.uint32).astype(F32), _h("0x1p-32"), _h("0x1p-33"))


# ---------------------------------------------------------------------------------------------
# Truth and error measures (float64).

def _ulp_error(res, truth):
    res = np.asarray(res, np.float64)
    ulp = np.ldexp(1.0, np.frexp(np.abs(truth))[1] - 24)  # 2**(floor(log2|x|) - 23)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(res - truth) / ulp
    zero = truth == 0
    if zero.any():
        err[zero] = np.where(res[zero] == 0, 0.0, np.inf)
    return err


def _sincos_truth(u):
    """float64 (cos 2 pi u, sin 2 pi u) with exact reduction: t = u - rint(4u)/4 is exact."""
    ud = np.asarray(u, F32).astype(np.float64)
    n = np.rint(4.0 * ud)
    x = (2.0 * np.pi) * (ud - 0.25 * n)  # |x| <= pi/4
    cx, sx = np.cos(x), np.sin(x)
    q = n.astype(np.int64) & 3
    odd = (q & 1) == 1
    c, s = np.where(odd, -sx, cx), np.where(odd, cx, sx)
    neg = (q & 2) == 2
    return np.where(neg, -c, c), np.where(neg, -s, s)


def _reachable(u):
    """True where float32 u (in [2**-33, 1]) equals uniform(w) for some uint32 w."""
    y = np.asarray(u, F32).astype(np.float64) * 2.0**32  # float32(w) + 0.5, rounded
    return np.where(y < 2.0**23, y - np.floor(y) == 0.5,
                    np.where(y < 2.0**24, np.fmod(y, 2.0) == 0.0, True))


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

    def add(self, err, where):
        """err: float64 errors; where: callable i -> description of sample i."""
        if err.size == 0:
            return self
        self.n += err.size
        inf = ~np.isfinite(err)
        if inf.any():
            if self.inf_at is None:
                self.inf_at = where(int(np.flatnonzero(inf)[0]))
            self.n_inf += int(inf.sum())
            err = np.where(inf, -1.0, err)
        i = int(np.argmax(err))
        if err[i] > self.max:
            self.max, self.at = float(err[i]), where(i)
        for j, th in enumerate(self.THRESHOLDS):
            self.above[j] += int((err > th).sum())
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


def _hex32(v):
    """float32 v as a float.fromhex literal without trailing zeros: 0x1.2ap-3."""
    mant, _, exp = float(v).hex().partition("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{mant}p{exp}"


def _fmt_u(v):
    return f"{_hex32(F32(v))} ({float(F32(v)):.9g})"


# ---------------------------------------------------------------------------------------------
# Work units (run in worker processes; each returns a dict of _Stat).

def _binade(e):
    """All float32 in [2**e, 2**(e+1)); for e = -1 also 1.0."""
    start = (127 + e) << 23
    bits = np.arange(start, start + (1 << 23), dtype=np.uint32)
    if e == -1:
        bits = np.append(bits, np.uint32(0x3F800000))
    return bits.view(F32)


def _unit_exhaustive(e):
    u = _binade(e)
    reach = _reachable(u)
    where = lambda sel: (lambda i: _fmt_u(u[sel][i]))  # noqa: E731
    out = {}
    err = _ulp_error(log_u(u), np.log(u.astype(np.float64)))
    k = (u.view(I32) - _LOG_SHIFT) >> 23
    out["log_u"] = _Stat().add(err, where(slice(None)))
    out["log_u reachable"] = _Stat().add(err[reach], where(reach))
    for name, sel in (("log_u k=0 (u>=2/3)", k == 0), ("log_u k=-1", k == -1),
                      ("log_u k<=-2", k <= -2)):
        out[name] = _Stat().add(err[sel], where(sel))
    del err
    c, s = sincos_2pi(u)
    ct, st = _sincos_truth(u)
    for name, res, tr in (("cos_2pi", c, ct), ("sin_2pi", s, st)):
        err = _ulp_error(res, tr)
        out[name] = _Stat().add(err, where(slice(None)))
        out[name + " reachable"] = _Stat().add(err[reach], where(reach))
    return out


def _transform_stats(u0, u1, sampled_components):
    def where(i):
        return f"u0={_fmt_u(u0[i])} u1={_fmt_u(u1[i])}"

    out = {}
    rt = np.sqrt(-2.0 * np.log(u0.astype(np.float64)))
    ct, st = _sincos_truth(u1)
    zc_t, zs_t = rt * ct, rt * st
    for label, fn in (("z new (box_muller)", box_muller), ("z naive", box_muller_naive),
                      ("z old (2 pi u rounded)", box_muller_old)):
        zc, zs = fn(u0, u1)
        out[label + " cos"] = _Stat().add(_ulp_error(zc, zc_t), where)
        out[label + " sin"] = _Stat().add(_ulp_error(zs, zs_t), where)
    if sampled_components:
        out["log_u (sampled u0)"] = _Stat().add(
            _ulp_error(log_u(u0), np.log(u0.astype(np.float64))), lambda i: _fmt_u(u0[i]))
        c, s = sincos_2pi(u1)
        out["cos_2pi (sampled u1)"] = _Stat().add(_ulp_error(c, ct), lambda i: _fmt_u(u1[i]))
        out["sin_2pi (sampled u1)"] = _Stat().add(_ulp_error(s, st), lambda i: _fmt_u(u1[i]))
    return out


def _unit_random(args):
    seed, index, size, sampled_components = args
    rng = np.random.default_rng([seed, index])
    w0 = rng.integers(0, 2**32, size=size, dtype=np.uint32)
    w1 = rng.integers(0, 2**32, size=size, dtype=np.uint32)
    return _transform_stats(uniform(w0), uniform(w1), sampled_components)


def _targeted_words():
    rng = np.random.default_rng(12345)
    top = np.uint64(2**32)
    w0 = np.concatenate([
        np.arange(0, 2048),                                   # u0 tiny (largest |z|)
        2**31 + 128 * np.arange(-1024, 1024),                 # u0 near 1/2
        2**32 - 256 * np.arange(1, 2049),                     # u0 near 1 (spacing of u: 2**-24)
        2**32 - 1 - np.arange(128),                           # u0 == 1 (float32(w) rounds to 2**32)
        rng.integers(0, 2**32, 1024),
    ]).astype(np.uint64)
    w1 = [np.arange(0, 1024)]                                 # u1 tiny
    for centre, spacing in ((2**30, 64), (2**31, 128), (3 * 2**30, 128), (2**32, 256)):
        w1.append(centre + spacing * np.arange(-512, 513))    # u1 near 1/4, 1/2, 3/4, 1
    w1.append(rng.integers(0, 2**32, 512))
    w1 = np.concatenate(w1).astype(np.uint64)
    w0, w1 = w0[w0 < top].astype(np.uint32), w1[w1 < top].astype(np.uint32)
    # one word per distinct u
    w0 = w0[np.unique(uniform(w0), return_index=True)[1]]
    w1 = w1[np.unique(uniform(w1), return_index=True)[1]]
    return w0, w1


def _unit_targeted(args):
    lo, hi = args
    w0, w1 = _targeted_words()
    w0 = w0[lo:hi]
    W0, W1 = np.repeat(w0, w1.size), np.tile(w1, w0.size)
    return _transform_stats(uniform(W0), uniform(W1), False)


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
    hdr = f"  {'quantity':<26} {'N':>11} {'max ulp':>8} {'>0.5':>10} {'>1':>10} {'>2':>10}  at"
    print(hdr)
    for name, st in stats.items():
        fr = [f"{a / st.n:.2e}" if st.n else "-" for a in st.above]
        print(f"  {name:<26} {st.n:>11} {st.max:>8.3f} {fr[0]:>10} {fr[1]:>10} {fr[2]:>10}  "
              f"{st.at}")
        if st.n_inf:
            print(f"  {'':<26} {st.n_inf} results nonzero where the truth is exactly 0 "
                  f"(infinite ulp error, left out of max), e.g. {st.inf_at}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2**20 random pairs only (~2 s)")
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
        units = [(args.seed, i, 1 << 18, True) for i in range(4)]
        _print_table(f"random (w0, w1) pairs, seed {args.seed} (quick)",
                     _run(units, _unit_random, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
    else:
        t0 = time.perf_counter()
        bad, n = sqrt_newton_mismatches()
        print(f"\nsquare root (rsqrt + one Newton step) vs np.sqrt, every float32 in [2**-24, 2**7): "
              f"{bad} of {n} differ  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        ex = _run(list(range(-33, 0)), _unit_exhaustive, args.jobs)
        _print_table("exhaustive: every float32 u in [2**-33, 1] (reachable: the ones uniform(w) "
                     "produces)", ex)
        print(f"  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        units = [(args.seed, i, 1 << 23, False) for i in range(12)]
        _print_table(f"random (w0, w1) pairs: 12 * 2**23, seed {args.seed}",
                     _run(units, _unit_random, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
        t0 = time.perf_counter()
        w0, w1 = _targeted_words()
        step = max(1, (1 << 22) // w1.size)
        units = [(lo, min(lo + step, w0.size)) for lo in range(0, w0.size, step)]
        _print_table(f"targeted: {w0.size} u0 (near 0, 1/2, 1) x {w1.size} u1 (near 0, 1/4, "
                     "1/2, 3/4, 1)", _run(units, _unit_targeted, args.jobs))
        print(f"  [{time.perf_counter() - t0:.1f} s]")
    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
