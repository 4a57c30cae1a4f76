"""The random-number contract: what every noise value is a function of, and its constants.

A certificate must be a function of (seed, stream index of the input, phase, n0, n, alpha) and
nothing else: not the batch size, the backend, the device, or which inputs share a batch. Every
noise implementation (``noise.py`` in Triton, ``reference.py`` in PyTorch) computes:

    key      = the 64-bit seed as two 32-bit words (lo, hi)
    counter  = (q lo, q hi, stream index, phase), q = e // 4, where
    e        = sample index * elements per input + element (64-bit: ImageNet at n = 100k needs
               1.5e10 elements per input)
    words    = Philox4x32-10 (Salmon et al. 2011, Random123's constants below) of (counter, key)
    normals  = Box-Muller on the four words of block q: words (0, 1) give lanes 0 and 1 (cos,
               sin), words (2, 3) give lanes 2 and 3; element e takes lane e % 4.
    uniform  = u = (w + 0.5) * 2**-32 of a word w, a real number in (0, 1): never 0 or 1, so no
               clamp. z = (r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0), evaluated from the
               words, not from u rounded to float32 (which drops up to 8 low bits and rounds the
               top 128 words to 1): ln u0 from the complement 1 - u0 = (~w0 + 0.5) * 2**-32 when
               w0 >= 2**31, and 2 pi u1 = n pi/2 + pi t with n = (w1 + 2**29) >> 30 and
               t = 2 u1 - n/2 = (4 w1 + 2 mod 2**32, as int32) * 2**-33, |t| <= 1/4.
               So 2**-16 <= r <= sqrt(-2 ln 2**-33) = 6.764: the noise tails beyond (mass 1.3e-11)
               are cut, and r has no point mass at 0.

The stream index and phase sit in the counter, not hashed into the key, so distinct
(stream, phase, sample) triples can never collide. The implementations agree up to float
rounding of the transform (see ``tolerance.py``).

Example:
    >>> PHASE_SELECTION, PHASE_ESTIMATION, PHASE_PREDICTION
    (0, 1, 2)
"""
from __future__ import annotations

import torch

__all__ = ["PHASE_SELECTION", "PHASE_ESTIMATION", "PHASE_PREDICTION", "PHASES", "PHILOX_ROUND_MULTIPLIERS",
           "PHILOX_KEY_INCREMENTS", "check_fused_launch"]

# Phases of a certificate: the proof needs the n0 selection draws and the n estimation draws to be
# independent, so each phase has its own counter space.
PHASE_SELECTION = 0
PHASE_ESTIMATION = 1
PHASE_PREDICTION = 2
PHASES = (PHASE_SELECTION, PHASE_ESTIMATION, PHASE_PREDICTION)

# Philox4x32-10's round multipliers (for counter words 0 and 2) and key increments (Weyl
# sequence for key words 0 and 1): Random123's constants, those of triton.language.philox.
PHILOX_ROUND_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
PHILOX_KEY_INCREMENTS = (0x9E3779B9, 0xBB67AE85)


def check_fused_launch(xs: torch.Tensor, start: int, count: int, n: int, seed: int) -> None:
    """What the fused noise kernels (Triton's and the compiled CPU one) accept, checked alike.

    Args:
        xs: [M, *shape] inputs: float32 and contiguous, fewer than 2**31 elements each (32-bit
            element offsets in the Triton kernels).
        start, count, n: rows start .. start + count - 1 of the (input, sample) grid, n samples
            per input; 1 <= n, count < 2**31 and start + count <= M * n.
        seed: 0 <= seed < 2**63.

    Raises:
        ValueError: naming the first argument out of range.
    """
    if xs.dtype != torch.float32 or not xs.is_contiguous():
        raise ValueError(f"Expected `xs` float32 and contiguous, got {xs.dtype}, contiguous={xs.is_contiguous()}")
    numel = xs.shape[1:].numel()
    if numel >= 2**31:
        raise ValueError(f"Expected inputs of fewer than 2**31 elements, got {numel}")
    if not 1 <= n < 2**31 or not 1 <= count < 2**31:
        raise ValueError(f"Expected 1 <= n, count < 2**31, got n={n}, count={count}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"Expected `seed` in [0, 2**63), got {seed}")
    if start + count > xs.shape[0] * n:
        raise ValueError(f"Expected rows start + count <= M * n = {xs.shape[0] * n}, got {start + count}")
