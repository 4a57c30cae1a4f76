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

Other noises (``noise="laplace"`` or ``"uniform"``) take one word per element, the same word
Box-Muller would have paired: element e takes word e % 4 of block q, through the noise's inverse
CDF at u = (w + 0.5) * 2**-32, never from u rounded to float32:

    laplace  = s * (-ln v), standard Laplace (scale 1): s = +1 for w >= 2**31 (u > 1/2), else
               -1, and v = 1 - 2 |u - 1/2| = (m + 0.5) * 2**-31 with m = w for w < 2**31 and
               m = ~w above (the low 31 bits, reflected), so -ln v in [2**-32, 22.2] from m
               exactly, by the Box-Muller step's logarithm on the 31-bit grid.
    uniform  = 2 u - 1 = (w - 2**31 + 0.5) * 2**-31, uniform on (-1, 1), from the word read as
               int32 after flipping its top bit, rounded once to float32 (where the words
               nearest the ends give -1.0 and 1.0; no value is 0).

The value is then multiplied by the noise's scale, ``noise_scale(noise, sigma)``: sigma for
Gaussian noise, b = sigma / sqrt(2) for Laplace, lambda = sigma * sqrt(3) for uniform, so sigma
is the noise's standard deviation per coordinate whatever the noise, each scale rounded once
to the float32 the kernels multiply by (and the radii are computed with).

The stream index and phase sit in the counter, not hashed into the key, so distinct
(stream, phase, sample) triples can never collide. The implementations agree up to float
rounding of the transform (see ``tolerance.py``).

Example:
    >>> PHASE_SELECTION, PHASE_ESTIMATION, PHASE_PREDICTION, PHASE_TRAINING
    (0, 1, 2, 3)
    >>> noise_scale("uniform", 0.5) == float(np.float32(0.5 * 3 ** 0.5))
    True
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["NOISES", "NOISE_CODES", "noise_scale", "check_noise", "PHASE_SELECTION", "PHASE_ESTIMATION", "PHASE_PREDICTION", "PHASES",
           "PHASE_TRAINING", "PHILOX_ROUND_MULTIPLIERS",
           "PHILOX_KEY_INCREMENTS", "check_fused_launch", "check_sound_launch", "check_skip", "search_steps"]

# Phases of a certificate: the proof needs the n0 selection draws and the n estimation draws to be
# independent, so each phase has its own counter space.
PHASE_SELECTION = 0
PHASE_ESTIMATION = 1
PHASE_PREDICTION = 2
PHASES = (PHASE_SELECTION, PHASE_ESTIMATION, PHASE_PREDICTION)
# Training's noisy copies (rsengine.training_noise) have a phase of their own, outside PHASES: a
# counter with phase 3 is never one a certificate draws, whatever the seed and stream, so no
# training copy is ever a certification sample.
PHASE_TRAINING = 3

# The noises, and the code the kernels specialize on (a constexpr integer).
NOISES = ("gaussian", "laplace", "uniform")
NOISE_CODES = {name: code for code, name in enumerate(NOISES)}
# Scale parameter per unit of standard deviation: Laplace's variance is 2 b^2, uniform's on
# [-lambda, lambda] lambda^2 / 3.
_SCALE_PER_SIGMA = {"gaussian": 1.0, "laplace": 1.0 / math.sqrt(2.0), "uniform": math.sqrt(3.0)}


def check_noise(noise) -> str:
    """``noise`` if it names one of NOISES, else a one-line ValueError (TypeError if not a str)."""
    if not isinstance(noise, str):
        raise TypeError(f"Expected `noise` to be one of {', '.join(NOISES)}, got {type(noise).__name__}")
    if noise not in NOISE_CODES:
        raise ValueError(f"Expected `noise` to be one of {', '.join(NOISES)}, got {noise!r}")
    return noise


def noise_scale(noise: str, sigma: float) -> float:
    """The float32 factor the kernels multiply the standard noise value by (see the module docstring).

    Args:
        noise: one of NOISES. sigma: the noise's standard deviation per coordinate, > 0.

    Returns:
        sigma, sigma / sqrt(2) or sigma * sqrt(3), rounded to float32, as a Python float.
    """
    return float(np.float32(float(sigma) * _SCALE_PER_SIGMA[check_noise(noise)]))


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
    _check_rows(xs, start, count, n, seed)


def _check_rows(xs: torch.Tensor, start: int, count: int, n: int, seed: int) -> None:
    # The launch arguments every fused noise kernel shares (32-bit offsets, 64-bit seed, row range).
    numel = xs.shape[1:].numel()
    if numel >= 2**31:
        raise ValueError(f"Expected inputs of fewer than 2**31 elements, got {numel}")
    if not 1 <= n < 2**31 or not 1 <= count < 2**31:
        raise ValueError(f"Expected 1 <= n, count < 2**31, got n={n}, count={count}")
    if not 0 <= seed < 2**63:
        raise ValueError(f"Expected `seed` in [0, 2**63), got {seed}")
    if start + count > xs.shape[0] * n:
        raise ValueError(f"Expected rows start + count <= M * n = {xs.shape[0] * n}, got {start + count}")


def search_steps(thresholds: int) -> int:
    """Halvings of the sound kernels' binary search over ``thresholds`` thresholds: its bit length
    (so 2**steps > thresholds, and every count 0 .. thresholds is reachable).

    Example:
        >>> search_steps(1131), search_steps(4441)
        (11, 13)
    """
    return int(thresholds).bit_length()


def check_sound_launch(pixels: torch.Tensor, start: int, count: int, n: int, seed: int,
                       thresholds: torch.Tensor, support: int) -> None:
    """What the sound-mode kernels accept (``sound_noise.py``, the CPU kernel), checked alike.

    Args:
        pixels: [M, *shape] int32 contiguous grid pixels (their range, [0, 255], is the caller's
            to check once: ``rsengine.sound.to_grid``; a per-batch check would sync the device).
        start, count, n, seed: as in :func:`check_fused_launch`.
        thresholds: [2 * support + 1] int64 contiguous, on the device of ``pixels``.
        support: the noise table's largest offset, >= 0.

    Raises:
        ValueError: naming the first argument out of range.
    """
    if pixels.dtype != torch.int32 or not pixels.is_contiguous():
        raise ValueError(f"Expected `pixels` int32 and contiguous, got {pixels.dtype}, "
                         f"contiguous={pixels.is_contiguous()}")
    if thresholds.dtype != torch.int64 or thresholds.ndim != 1 or not thresholds.is_contiguous() \
            or thresholds.device != pixels.device:
        raise ValueError(f"Expected `thresholds` a contiguous 1-D int64 tensor on {pixels.device}, got "
                         f"{thresholds.dtype} {list(thresholds.shape)} on {thresholds.device}")
    if isinstance(support, bool) or not isinstance(support, int) or support < 0 \
            or thresholds.numel() != 2 * support + 1:
        raise ValueError(f"Expected `support` S >= 0 with 2 S + 1 = {thresholds.numel()} thresholds, got {support!r}")
    _check_rows(pixels, start, count, n, seed)


def check_skip(skip, logits: torch.Tensor) -> None:
    """``vote_count``'s optional ``skip``: None, or [B] int32 flags on the logits' device.

    Raises:
        ValueError: naming what is wrong (a bool or uint8 tensor would be read at the wrong width).
    """
    if skip is not None and (skip.dtype != torch.int32 or skip.shape != logits.shape[:1]
                             or skip.device != logits.device):
        raise ValueError(f"Expected `skip` int32 [{logits.shape[0]}] on {logits.device}, got {skip.dtype} "
                         f"{list(skip.shape)} on {skip.device}")
