"""Pure-PyTorch references for the fused kernels: the CPU path and the tests' oracle.

Everything here runs on any torch device and imports no Triton. The Triton kernels in
``noise.py`` and ``votes.py`` produce the same results (noise up to float rounding of the
Box-Muller step, which the kernels compute in ``box_muller.py``'s branch-free float32 and this
module with torch's float32 log1p/log/sqrt/cos/sin; vote counts exactly).

They implement the random-number contract of ``contract.py`` (key, counter, Philox words,
Box-Muller of the words' exact uniforms).

Example:
    >>> import torch
    >>> from rsengine.kernels.reference import gaussian_noise
    >>> z = gaussian_noise(seed=0, streams=torch.tensor([0, 0]), samples=torch.tensor([0, 1]),
    ...                    phase=1, numel=3)
    >>> z.shape
    torch.Size([2, 3])
"""
from __future__ import annotations

import math

import torch

from .contract import PHILOX_KEY_INCREMENTS, PHILOX_ROUND_MULTIPLIERS, check_noise, check_skip, noise_scale

__all__ = [
    "philox4x32_10",
    "box_muller",
    "laplace_from_words",
    "uniform_from_words",
    "gaussian_noise",
    "standard_noise",
    "noise_normalize",
    "vote_count",
]

_MASK32 = 0xFFFFFFFF
_ROUND_A, _ROUND_B = PHILOX_ROUND_MULTIPLIERS
_KEY_A, _KEY_B = PHILOX_KEY_INCREMENTS
_TWO_POW_MINUS_32 = 2.0**-32
_TWO_POW_MINUS_33 = 2.0**-33


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32-bit words of a * m for a in [0, 2**32) held in int64.

    The 64-bit product overflows int64, so m is split into 16-bit halves and every partial
    product stays below 2**49.
    """
    t = a * (m & 0xFFFF)
    q = a * (m >> 16) + (t >> 16)
    return q >> 16, ((q & 0xFFFF) << 16) | (t & 0xFFFF)


def philox4x32_10(counter: tuple, key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Philox4x32-10 (Salmon et al. 2011), the same function as ``triton.language.philox``.

    Args:
        counter: four int64 tensors (or ints) holding 32-bit words c0..c3; broadcast together.
        key: two 32-bit ints (k0, k1).

    Returns:
        Four int64 tensors with the 32-bit output words.

    Example:
        >>> import torch
        >>> words = philox4x32_10(tuple(torch.zeros(1, dtype=torch.int64) for _ in range(4)), (0, 0))
        >>> [hex(int(w)) for w in words]  # Random123's known answer
        ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']
    """
    c0, c1, c2, c3 = torch.broadcast_tensors(*(torch.as_tensor(c, dtype=torch.int64) for c in counter))
    k0, k1 = key
    for _ in range(10):
        hi_a, lo_a = _mulhilo(c0, _ROUND_A)
        hi_b, lo_b = _mulhilo(c2, _ROUND_B)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0 = (k0 + _KEY_A) & _MASK32
        k1 = (k1 + _KEY_B) & _MASK32
    return c0, c1, c2, c3


def _minus_two_log_uniform(words: torch.Tensor) -> torch.Tensor:
    """-2 ln u, u = (w + 0.5) * 2**-32, in float32 (same shape as ``words``, int64 in [0, 2**32)).

    Below u = 1/2 from u rounded to float32 (|ln u| > ln 2 there: relative error <= 2**-24 / ln 2);
    above it from the complement 1 - u = (~w + 0.5) * 2**-32 by log1p, which keeps the bits u
    loses, so -2 ln u >= 2**-32 (u rounded to float32 is 1 for the top 128 words: ln u = 0).
    """
    u = (words.to(torch.float32) + 0.5) * _TWO_POW_MINUS_32
    complement = ((_MASK32 - words).to(torch.float32) + 0.5) * _TWO_POW_MINUS_32
    return -2.0 * torch.where(words >= 2**31, torch.log1p(-complement), torch.log(u))


def _sincos_2pi(words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos 2 pi u, sin 2 pi u), u = (w + 0.5) * 2**-32, in float32 (shapes of ``words``).

    2 pi u = n pi/2 + pi t, reduced on the integer word: n = rint(4 u) = (w + 2**29) >> 30 (mod 4)
    and t = 2 u - n/2 = (4 w + 2 - n 2**32) * 2**-33, the low 32 bits of 4 w + 2 read as int32,
    exact until its one rounding to float32: no float32 2 pi u, which is off by up to 2e-7 (millions
    of ulps of cos and sin near their zeros).
    """
    low = (4 * words + 2) & _MASK32
    t = (low - ((low >> 31) << 32)).to(torch.float32) * _TWO_POW_MINUS_33  # |t| <= 1/4, never 0
    cos, sin = torch.cos(math.pi * t), torch.sin(math.pi * t)
    n = (words + 2**29) >> 30  # rint(4 u); 4 (a full turn) for the top 2**29 words
    swap, negate = (n & 1) == 1, (n & 2) == 2
    cos, sin = torch.where(swap, -sin, cos), torch.where(swap, cos, sin)
    return torch.where(negate, -cos, cos), torch.where(negate, -sin, sin)


def box_muller(w0: torch.Tensor, w1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r cos 2 pi u1, r sin 2 pi u1), r = sqrt(-2 ln u0), u = (w + 0.5) * 2**-32, from 32-bit words.

    Args:
        w0, w1: int64 tensors of words in [0, 2**32), broadcastable together.

    Returns:
        Two float32 tensors of the broadcast shape: the pair of standard normals.

    Example (the smallest radius, w0 = 2**32 - 1, is 2**-16, not 0):
        >>> import torch
        >>> z_cos, _ = box_muller(torch.tensor([2**32 - 1]), torch.tensor([0]))
        >>> float(z_cos[0]) == 2.0**-16
        True
    """
    r = torch.sqrt(_minus_two_log_uniform(w0))
    cos, sin = _sincos_2pi(w1)
    return r * cos, r * sin


def laplace_from_words(words: torch.Tensor) -> torch.Tensor:
    """Standard Laplace values (scale 1) of 32-bit words by the contract's inverse CDF, in float32.

    s * (-ln v): s = +1 for w >= 2**31, v = (m + 0.5) * 2**-31, m = w below 2**31 and ~w above;
    -ln v from v rounded to float32 below v = 1/2, from the complement 1 - v = (~m + 0.5) * 2**-31
    (31 bits) by log1p above it, so the smallest magnitude is 2**-32, not 0.

    Args:
        words: int64 tensor of words in [0, 2**32).

    Returns:
        float32 tensor of its shape.

    Example:
        >>> import torch
        >>> [float(v) for v in laplace_from_words(torch.tensor([2**31 - 1, 2**31]))] == [-2.0**-32, 2.0**-32]
        True
    """
    upper = words >= 2**31
    m = torch.where(upper, _MASK32 - words, words)  # [0, 2**31)
    v = (m.to(torch.float32) + 0.5) * 2.0**-31
    complement = ((2**31 - 1 - m).to(torch.float32) + 0.5) * 2.0**-31
    magnitude = -torch.where(m >= 2**30, torch.log1p(-complement), torch.log(v))
    return torch.where(upper, magnitude, -magnitude)


def uniform_from_words(words: torch.Tensor) -> torch.Tensor:
    """2 u - 1 = (w - 2**31 + 0.5) * 2**-31 of 32-bit words: uniform on (-1, 1), in float32.

    Example:
        >>> import torch
        >>> uniform_from_words(torch.tensor([0, 2**31, 2**32 - 1])).tolist() == [-1.0, 2.0**-32, 1.0]
        True
    """
    return ((words - 2**31).to(torch.float64) + 0.5).mul(2.0**-31).to(torch.float32)  # exact, rounded once


def standard_noise(noise: str, seed: int, streams: torch.Tensor, samples: torch.Tensor, phase: int,
                   numel: int) -> torch.Tensor:
    """Noise of the random-number contract before its scale, one row per (stream, sample).

    Gaussian: standard normals (Box-Muller pairs of words); Laplace: standard Laplace; uniform:
    uniform on (-1, 1); the last two take word e % 4 of block e // 4 for element e.

    Args:
        noise: one of ``contract.NOISES``; the others as :func:`gaussian_noise`.

    Returns:
        [B, numel] float32 on the device of ``streams``.
    """
    check_noise(noise)
    device = streams.device
    first = samples.to(torch.int64) * numel  # [B] element index e of each row's first element
    offset = first % 4
    n_blocks = (numel + 3) // 4 + 1  # one spare block: a row need not start on a block boundary
    q = (first // 4)[:, None] + torch.arange(n_blocks, device=device)  # [B, n_blocks]
    counter = (q & _MASK32, q >> 32, streams.to(torch.int64)[:, None], phase)
    w0, w1, w2, w3 = philox4x32_10(counter, (seed & _MASK32, (seed >> 32) & _MASK32))
    if noise == "gaussian":
        lanes = torch.stack([*box_muller(w0, w1), *box_muller(w2, w3)], dim=-1)
    else:
        transform = laplace_from_words if noise == "laplace" else uniform_from_words
        lanes = torch.stack([transform(w) for w in (w0, w1, w2, w3)], dim=-1)
    lanes = lanes.reshape(len(samples), 4 * n_blocks)  # [B, 4 * n_blocks], element e at 4 * (q - q0) + lane
    return torch.gather(lanes, 1, offset[:, None] + torch.arange(numel, device=device))


def gaussian_noise(seed: int, streams: torch.Tensor, samples: torch.Tensor, phase: int,
                   numel: int) -> torch.Tensor:
    """Standard normal noise of the random-number contract, one row per (stream, sample).

    Args:
        seed: 64-bit seed (0 <= seed < 2**63).
        streams: [B] int64 stream index of the input each row belongs to (< 2**32).
        samples: [B] int64 sample index of each row within its input's phase.
        phase: one of the PHASE_* constants.
        numel: elements per input.

    Returns:
        [B, numel] float32 normals on the device of ``streams``.
    """
    return standard_noise("gaussian", seed, streams, samples, phase, numel)


def noise_normalize(xs: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                    sigma: float, seed: int, phase: int, mean: torch.Tensor | None = None,
                    std: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
                    memory_format: torch.memory_format = torch.contiguous_format,
                    noise: str = "gaussian") -> torch.Tensor:
    """One model batch: rows ``start .. start + count`` of the flattened (input, sample) grid.

    Row p belongs to input p // n and is its sample p % n. Each row is
    (x + scale * z - mean) / std, z the standard noise and scale = ``noise_scale(noise, sigma)``,
    computed in float32 and stored in ``dtype``.

    Args:
        xs: [M, *shape] float32 inputs in pixel space; shape[0] is the channel axis for mean/std.
        streams: [M] int64 stream index of each input.
        start: first global row. count: rows in this batch. n: samples per input in this phase.
        sigma: the noise's standard deviation. seed: 64-bit seed. phase: PHASE_* constant.
        mean, std: optional [shape[0]] float32 per-channel normalization.
        dtype: output dtype. memory_format: output memory format (channels_last for 4-D batches).
        noise: one of ``contract.NOISES``.

    Returns:
        [count, *shape] tensor in ``dtype`` and ``memory_format``.
    """
    rows = start + torch.arange(count, device=xs.device, dtype=torch.int64)
    owner = rows // n
    shape = xs.shape[1:]
    numel = shape.numel()
    z = standard_noise(noise, seed, streams[owner], rows % n, phase, numel).view(count, *shape)
    batch = xs[owner] + noise_scale(noise, sigma) * z
    if mean is not None:
        channel_shape = (1, -1) + (1,) * (len(shape) - 1)
        batch = (batch - mean.view(channel_shape)) / std.view(channel_shape)
    return batch.to(dtype).contiguous(memory_format=memory_format)


def vote_count(logits: torch.Tensor, start: int, n: int, counts: torch.Tensor,
               nonfinite: torch.Tensor, skip: torch.Tensor | None = None) -> None:
    """Add each row's argmax to ``counts[(start + row) // n]``; count rows with non-finite logits.

    Ties go to the lowest class index, as torch.argmax. Rows with any NaN or +-inf logit are not
    counted: ``nonfinite`` (a [1] int32 device counter) grows instead and the sampler raises at
    the end of the phase, so no host sync happens per batch. Rows flagged in ``skip`` (sound
    mode's escaped rows) vote for no class and are not checked.

    Args:
        logits: [B, K] any float dtype; rows are global rows start .. start + B - 1.
        start: first global row. n: samples per input in this phase.
        counts: [M, K] int32, updated in place. nonfinite: [1] int32, updated in place.
        skip: optional [B] int32, non-zero for rows that must not vote.
    """
    check_skip(skip, logits)
    rows = start + torch.arange(logits.shape[0], device=logits.device, dtype=torch.int64)
    finite = torch.isfinite(logits).all(dim=1)  # [B]
    voting = torch.ones_like(finite) if skip is None else skip == 0
    nonfinite.add_((voting & ~finite).sum().to(nonfinite.dtype))
    # Weighted index_add instead of boolean indexing: masking would force a host sync.
    flat = (rows // n) * counts.shape[1] + logits.argmax(dim=1)
    counts.view(-1).index_add_(0, flat, (voting & finite).to(counts.dtype))
