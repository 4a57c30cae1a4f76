"""The float32 constants of the noise kernels' Box-Muller step: one home, no Triton needed.

The Triton kernels (``box_muller.py``), the compiled CPU kernel (``cpu_noise.c``, which gets them
from ``cpu_build.py``) and the numpy model that measured their accuracy
(``bench/noise_accuracy.py``) all read them from here, so the three evaluate the same polynomials.

Coefficients: minimax fits of the relative error (float64, linear programming), rounded to
float32 one at a time with the rest refitted; see bench/noise_accuracy.py.

Example (every constant is exactly a float32, so every implementation agrees on it):
    >>> import numpy as np
    >>> all(float(np.float32(c)) == c for c in LOG_COEFFICIENTS + LOG_G_COEFFICIENTS + COS_COEFFICIENTS
    ...     + SIN_COEFFICIENTS + FOLD_COEFFICIENTS + (LN2_HI, PI_HI))
    True
"""
from __future__ import annotations

__all__ = ["LOG_COEFFICIENTS", "LOG_G_COEFFICIENTS", "LN2_HI", "COS_COEFFICIENTS", "SIN_COEFFICIENTS", "PI_HI",
           "FOLD_COEFFICIENTS"]

# ln(1 + f) = f - f^2 / 2 + f^3 R(f), R's coefficients for f^3 .. f^10 (fit error 2**-27.7).
LOG_COEFFICIENTS = tuple(float.fromhex(h) for h in (
    "0x1.55550cp-2", "-0x1.fffef6p-3", "0x1.99d042p-3", "-0x1.559c40p-3",
    "0x1.1ed65cp-3", "-0x1.f332a0p-4", "0x1.1e6786p-3", "-0x1.07c960p-3",
))
# The logarithm runs in g = -2 f: P(g) = R(-g / 2) / 4, coefficients of g^0 .. g^7. They are R's
# times powers of two (exact), so Horner in g computes exactly the scaled values Horner in f would.
LOG_G_COEFFICIENTS = tuple(c * (-0.5) ** i / 4 for i, c in enumerate(LOG_COEFFICIENTS))
LN2_HI = float.fromhex("0x1.62e430p-1")  # float32(ln 2); |k| times its 1.9e-9 error <= 0.07 ulp
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
