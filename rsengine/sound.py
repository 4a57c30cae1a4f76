"""Floating-point-sound randomized smoothing on the 8-bit input grid (Voracek & Hein, ICLR 2023).

Float mode computes ``fl(x + fl(sigma * z))``: how that sum rounds depends on ``x``, so the
noisy inputs around ``x`` and around ``x + delta`` are not shifts of one another and Cohen's
theorem does not apply to what the classifier actually sees (a classifier that reads rounding
artefacts gets false certificates; ``tests/test_sound.py`` builds one). Sound mode keeps every
step that can depend on ``x`` in integers (docs/sound_mode.md has the proof and the limits):

* inputs are integer pixels ``i`` in grid units of 1/255 (uint8 images; :func:`to_grid`);
* the noise is the *rounded* Gaussian ``K = round(s * Z)``, ``s = 255 * sigma`` (the
  Gaussian with standard deviation ``sigma`` in pixel units, rounded to the grid), on the
  integers: ``P(K = k) = Phi((k + 1/2) / s) - Phi((k - 1/2) / s)``;
* it is drawn by inverse CDF from 64 uniform bits (two Philox words per element) against
  integer thresholds (:func:`noise_table`); every atom gets at most its exact mass, and the
  leftover words (mass 3.1e-17 per element at sigma = 0.25, 1.2e-16 at 1, 1.2e-15 at 10)
  *escape*: a row with an escaped element must count as a vote for no class;
* the classifier sees ``(i + k) / 255`` computed from the integer ``i + k`` (:func:`sound_inputs`);
* the certificate is Cohen's radius ``sigma * PhiInv(p_lower)`` for perturbations *on the grid*,
  computed in mpmath and rounded down (:func:`sound_radius`, :func:`certify_sound_from_counts`).

Why the radius is Cohen's: for integer ``i``, ``i + round(s Z) = round(i + s Z)`` exactly, so
``P(f(i + K) = c) = P(h(i + s Z) = c)`` for the classifier ``h = f o round`` on the reals, and
Cohen et al.'s Theorem 1 for ``h`` holds at every real point, in particular every grid point.

Example:
    >>> import torch
    >>> k = discrete_noise(seed=0, streams=torch.tensor([3, 3]), samples=torch.tensor([0, 1]),
    ...                    phase=1, numel=5, sigma=0.25)
    >>> k.shape, k.dtype, bool(escaped_rows(k).any())
    (torch.Size([2, 5]), torch.int32, False)
    >>> x = sound_inputs(torch.tensor([0, 64, 128, 200, 255], dtype=torch.uint8), k)
    >>> torch.equal(x * 255, (torch.tensor([0, 64, 128, 200, 255]) + k).float())
    True
    >>> pred, rad = certify_sound_from_counts([2], [99_000], 100_000, 0.001, 0.25)
    >>> pred.tolist(), round(float(rad[0]), 6)
    ([2], 0.5725)
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .kernels.contract import check_sound_launch
from .kernels.reference import philox4x32_10
from .stats import ABSTAIN, _certify_arguments, _complement_bound, _widened
from .validation import check_int_at_least, check_positive_float, reject

# mpmath is imported inside the functions that use it: only sound mode's tables and radii need it,
# and every `import rsengine` would pay for it.
if TYPE_CHECKING:
    import mpmath

__all__ = [
    "GRID",
    "WORD_BITS",
    "ESCAPE",
    "MAX_SIGMA",
    "NoiseTable",
    "noise_table",
    "rounded_gaussian_pmf",
    "discrete_noise",
    "sound_noise_normalize",
    "escaped_rows",
    "to_grid",
    "sound_inputs",
    "sound_radius",
    "certify_sound_from_counts",
]

GRID = 255
"""Grid steps per unit of input: pixel value ``i / 255`` for integer ``i``."""

WORD_BITS = 64
"""Uniform bits per noise element: two Philox words (module docstring, :func:`discrete_noise`)."""

ESCAPE = -(2**31)
"""The int32 :func:`discrete_noise` returns for an element whose 64 bits fall past the table."""

MAX_SIGMA = 10.0
"""Largest sigma accepted: the table then has 2 * 21,516 + 1 atoms and takes 2.8 s to build; larger is untested."""

_MASK32 = 0xFFFFFFFF
_TWO_POW_64 = 2**64
# Decimal digits for the table's masses and the radii. A mass is at most 2^64 ~ 1.8e19 and is
# computed to ~1e-45 relative, so its absolute error is < 1e-25, far inside the 2^-20 it is
# lowered by before flooring.
_DPS = 50
_MASS_LOWERING_EXPONENT = -20  # the masses are lowered by 2^-20 (exact in mpmath) before flooring


@dataclass(frozen=True)
class NoiseTable:
    """The inverse-CDF table of the rounded Gaussian on the integers, for 64-bit uniforms.

    Atoms ``k = -support .. support`` in order; atom ``k`` gets the integer mass
    ``m_k = floor(2^64 * P(K = k) - 2^-20)`` (never above its exact share, see
    :func:`noise_table`), and ``thresholds[j] = m_{-support} + ... + m_{-support + j}``.
    A uniform ``u`` in ``[0, 2^64)`` gives ``k = -support + #{j : thresholds[j] <= u}``, and
    escapes when ``u >= thresholds[-1]``.

    Attributes:
        sigma: the noise's standard deviation in input units (pixel values in [0, 1]).
        support: the largest ``|k|`` with a non-zero mass (atoms beyond get floor(...) = 0).
        masses: ``2 * support + 1`` Python ints ``m_k``, symmetric (``m_k = m_{-k}``).
        thresholds: ``2 * support + 1`` cumulative masses, Python ints, strictly increasing,
            the last one ``< 2^64``.
        escape_mass: ``2^64 - thresholds[-1]``, the words that escape (>= 1).
    """

    sigma: float
    support: int
    masses: tuple
    thresholds: tuple

    @property
    def escape_mass(self) -> int:
        return _TWO_POW_64 - self.thresholds[-1]

    @property
    def escape_probability(self) -> float:
        """``escape_mass / 2^64`` rounded up to float64: a row of d elements escapes w.p. <= d times it."""
        import mpmath  # deferred: see the imports

        value = float(mpmath.mpf(self.escape_mass) / _TWO_POW_64)
        return value if value * 2.0**64 >= self.escape_mass else math.nextafter(value, math.inf)

    def signed_thresholds(self, device=None) -> torch.Tensor:
        """[2 * support + 1] int64 ``thresholds - 2^63``: the same order, in torch's signed type."""
        return torch.tensor([t - 2**63 for t in self.thresholds], dtype=torch.int64, device=device)


def _check_sigma(sigma) -> float:
    s = check_positive_float("sigma", sigma)
    if s > MAX_SIGMA:
        reject("sigma", f"to be a finite number in (0, {MAX_SIGMA}]", repr(sigma))
    return s


def _pmf(k: int, scale: mpmath.mpf) -> mpmath.mpf:
    # P(round(scale Z) = k) = P((|k| - 1/2) / scale <= Z < (|k| + 1/2) / scale), by symmetry from
    # the upper tail, as a difference of erfc values (no cancellation from 1 - Phi). For k = 0,
    # erf(1 / (2 sqrt(2) scale)).
    import mpmath  # deferred: see the imports

    if k == 0:
        return mpmath.erf(1 / (2 * mpmath.sqrt(2) * scale))
    a = abs(k)
    root_two_scale = mpmath.sqrt(2) * scale
    return (mpmath.erfc((a - mpmath.mpf(0.5)) / root_two_scale)
            - mpmath.erfc((a + mpmath.mpf(0.5)) / root_two_scale)) / 2


def rounded_gaussian_pmf(k: int, sigma: float) -> mpmath.mpf:
    """``P(round(255 * sigma * Z) = k)`` for ``Z ~ N(0, 1)``, in mpmath at 50 digits.

    ``sigma`` is read as its exact binary value; the noise in grid units has scale ``255 * sigma``.

    Example:
        >>> float(rounded_gaussian_pmf(0, 1 / 255))  # P(|Z| < 1/2)
        0.38292492254802624
    """
    import mpmath  # deferred: see the imports

    s = _check_sigma(sigma)
    with mpmath.workdps(_DPS):
        return +_pmf(check_int_at_least("k", k, -(2**31)), GRID * mpmath.mpf(s))


@functools.lru_cache(maxsize=16)
def _table(sigma: float) -> NoiseTable:
    import mpmath  # deferred: see the imports

    with mpmath.workdps(_DPS):
        scale = GRID * mpmath.mpf(sigma)  # exact: sigma is a binary float
        lowering = mpmath.mpf(2) ** _MASS_LOWERING_EXPONENT
        half = []
        k = 0
        while True:
            mass = int(mpmath.floor(_pmf(k, scale) * _TWO_POW_64 - lowering))
            if mass <= 0:
                break
            half.append(mass)
            k += 1
    masses = tuple(half[:0:-1] + half)  # -support .. support; the pmf is symmetric
    thresholds = []
    total = 0
    for m in masses:
        total += m
        thresholds.append(total)
    return NoiseTable(sigma=sigma, support=len(half) - 1, masses=masses, thresholds=tuple(thresholds))


def noise_table(sigma) -> NoiseTable:
    """The sound sampler's table for ``sigma``: what the kernel must reproduce bit for bit.

    For each integer ``k``, ``m_k = floor(2^64 * P(K = k) - 2^-20)`` with ``P(K = k)`` from
    :func:`rounded_gaussian_pmf` (mpmath at 50 digits; its error, < 1e-25 absolute on the scaled
    mass, is far inside the 2^-20 lowering, so ``m_k <= 2^64 P(K = k)`` holds as a fact about
    real numbers, and ``m_k > 2^64 P(K = k) - 1 - 2^-20``). The support is the ``k`` with
    ``m_k > 0``: ``|k| <= support``, 8.4 to 9.0 times ``255 * sigma`` (masses decrease in ``|k|``).
    Every mass not given to an atom, the flooring's (< 1 unit per atom) and the tails' beyond the
    support, escapes; :attr:`NoiseTable.escape_mass` gives it exactly: 3.1e-17 per element at
    sigma = 0.25, 1.2e-16 at 1, 1.2e-15 at 10 (2.8 s to build there, 0.3 s at 1).

    Args:
        sigma: noise standard deviation in input units, a finite number in (0, MAX_SIGMA].

    Returns:
        The :class:`NoiseTable` (cached per sigma).

    Raises:
        TypeError: if ``sigma`` is not a real number.
        ValueError: if ``sigma`` is not in (0, MAX_SIGMA].

    Example:
        >>> t = noise_table(0.25)
        >>> t.support, len(t.thresholds), t.thresholds[-1] + t.escape_mass == 2**64
        (565, 1131, True)
    """
    return _table(_check_sigma(sigma))


def _uniform64_signed(w_hi: torch.Tensor, w_lo: torch.Tensor) -> torch.Tensor:
    # u - 2^63 for u = w_hi * 2^32 + w_lo: flipping u's top bit maps [0, 2^64) onto int64 in order.
    return (w_hi - 2**31) * 2**32 + w_lo


def discrete_noise(seed: int, streams: torch.Tensor, samples: torch.Tensor, phase: int,
                   numel: int, sigma: float) -> torch.Tensor:
    """Rounded-Gaussian integer offsets (grid units) of the random-number contract, one row per sample.

    Element ``e = sample * numel + j`` (64-bit) of a row uses Philox4x32-10 block ``q = e // 2``
    (counter ``(q lo, q hi, stream, phase)``, key the seed's two 32-bit halves, as in
    ``kernels/contract.py``) and its words ``(w0, w1)`` if ``e`` is even, ``(w2, w3)`` if odd:
    the uniform ``u = w_hi * 2^32 + w_lo`` (first word high) in ``[0, 2^64)``, and the offset
    ``k = -support + #{j : thresholds[j] <= u}`` of :func:`noise_table`, or :data:`ESCAPE` when
    ``u >= thresholds[-1]``.

    Args:
        seed: 64-bit seed, 0 <= seed < 2**63.
        streams: [B] int64 stream index of the input each row belongs to (< 2**32).
        samples: [B] int64 sample index of each row within its input's phase.
        phase: one of the contract's PHASE_* constants (0, 1, 2).
        numel: elements per input, >= 1.
        sigma: noise standard deviation in input units, in (0, MAX_SIGMA].

    Returns:
        [B, numel] int32 offsets ``k`` (``|k| <= support``, or :data:`ESCAPE`), on the device of
        ``streams``.

    Raises:
        TypeError, ValueError: naming the first bad argument.
    """
    table = noise_table(sigma)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        reject("seed", "to be an integer in [0, 2**63)", repr(seed),
               TypeError if not isinstance(seed, int) or isinstance(seed, bool) else ValueError)
    if phase not in (0, 1, 2) or isinstance(phase, bool):
        reject("phase", "to be one of 0, 1, 2", repr(phase))
    numel = check_int_at_least("numel", numel, 1)
    for name, tensor in (("streams", streams), ("samples", samples)):
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.int64 or tensor.ndim != 1:
            reject(name, "to be a 1-D int64 tensor [B]",
                   f"{type(tensor).__name__} {getattr(tensor, 'dtype', '')}".strip(), TypeError)
    if streams.numel() and (int(streams.min()) < 0 or int(streams.max()) >= 2**32):
        reject("streams", "in [0, 2**32)", f"values in [{int(streams.min())}, {int(streams.max())}]")
    if samples.numel() and int(samples.min()) < 0:
        reject("samples", "to be >= 0", repr(int(samples.min())))
    if streams.shape != samples.shape:
        reject("samples", f"to have the shape of `streams` {tuple(streams.shape)}", f"{tuple(samples.shape)}")
    return _offsets(_signed_uniforms(seed, streams, samples, phase, numel), table)


def _offsets(u_signed: torch.Tensor, table: NoiseTable) -> torch.Tensor:
    # k = -support + #{j : thresholds[j] <= u}, ESCAPE past the last threshold; u - 2^63 in int64.
    count = _threshold_counts(u_signed, table.signed_thresholds(u_signed.device))
    return torch.where(count == len(table.thresholds), ESCAPE, count - table.support).to(torch.int32)


def _signed_uniforms(seed: int, streams: torch.Tensor, samples: torch.Tensor, phase: int, numel: int) -> torch.Tensor:
    # [B, numel] int64 u - 2^63 of each row's elements (the words of :func:`discrete_noise`).
    device = streams.device
    first = samples * numel  # [B] element index e of each row's first element
    n_blocks = (numel + 1) // 2 + 1  # one spare block: an odd first element starts mid-block
    q = (first // 2)[:, None] + torch.arange(n_blocks, device=device)  # [B, n_blocks]
    counter = (q & _MASK32, q >> 32, streams[:, None], phase)
    w0, w1, w2, w3 = philox4x32_10(counter, (seed & _MASK32, (seed >> 32) & _MASK32))
    lanes = torch.stack([_uniform64_signed(w0, w1), _uniform64_signed(w2, w3)], dim=-1)
    lanes = lanes.reshape(len(samples), 2 * n_blocks)  # element e at 2 * (q - q0) + e % 2
    return torch.gather(lanes, 1, (first % 2)[:, None] + torch.arange(numel, device=device))


def _threshold_counts(u_signed: torch.Tensor, signed_thresholds: torch.Tensor) -> torch.Tensor:
    # #{j : thresholds[j] <= u}, in int64 u - 2^63 and T - 2^63: the offset is this minus the
    # support, and a count equal to the table's length escapes.
    return torch.searchsorted(signed_thresholds, u_signed, right=True)


def sound_noise_normalize(pixels: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                          thresholds: torch.Tensor, support: int, seed: int, phase: int,
                          mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                          dtype: torch.dtype = torch.float32,
                          memory_format: torch.memory_format = torch.contiguous_format):
    """The PyTorch reference of the sound-mode fused kernel (``rsengine.kernels.sound_noise``).

    Rows ``start .. start + count - 1`` of the (input, sample) grid (row p is sample p % n of
    input p // n), each ``sound_inputs`` of its pixels and :func:`discrete_noise` offsets, except
    that an escaped element is written as its clean pixel (``k = 0``) and its row is flagged;
    then ``(x - mean) / std`` per channel (the kernels' ``fma(x, 1 / std, -mean / std)`` may
    differ from it in the last bit), in ``dtype`` and ``memory_format``.

    Args:
        pixels: [M, *shape] int32 grid pixels in [0, 255] (:func:`to_grid`). streams: [M] int64.
        start, count, n, seed, phase: as in ``rsengine.kernels.reference.noise_normalize``.
        thresholds: [2 * support + 1] int64 ``NoiseTable.signed_thresholds()``; support: its S.
        mean, std: optional [shape[0]] float32 normalization. dtype, memory_format: of the batch.

    Returns:
        (batch [count, *shape], escaped [count] int32: 1 where the row must vote for no class).

    Example:
        >>> table = noise_table(0.25)
        >>> batch, escaped = sound_noise_normalize(torch.full((1, 1, 2, 2), 7, dtype=torch.int32),
        ...                                        torch.tensor([0]), 0, 3, 3, table.signed_thresholds(),
        ...                                        table.support, 0, 1)
        >>> bool(((batch * 255).round() == batch * 255).all()), escaped.tolist()
        (True, [0, 0, 0])
    """
    check_sound_launch(pixels, start, count, n, seed, thresholds, support)
    shape = pixels.shape[1:]
    rows = start + torch.arange(count, device=pixels.device)
    owner = rows // n
    hits = _threshold_counts(_signed_uniforms(seed, streams[owner], rows % n, phase, shape.numel()), thresholds)
    escape = hits == thresholds.numel()
    total = pixels.reshape(pixels.shape[0], -1)[owner] + torch.where(escape, 0, hits - support).to(torch.int32)
    batch = (total.to(torch.float32) / GRID).reshape(count, *shape)
    if mean is not None:
        channel_shape = (1, -1) + (1,) * (len(shape) - 1)
        batch = (batch - mean.view(channel_shape)) / std.view(channel_shape)
    batch = batch.to(dtype).contiguous(memory_format=memory_format)
    return batch, escape.any(dim=1).to(torch.int32)


def escaped_rows(k: torch.Tensor) -> torch.Tensor:
    """[B] bool: rows of ``k`` ([B, numel] from :func:`discrete_noise`) with an escaped element.

    Such a row is a sample of no atom of the table: its vote must count for no class (it stays
    in ``n`` and never adds to ``n_A``), which keeps the Clopper-Pearson bound valid for the
    exact rounded Gaussian (docs/sound_mode.md). Its probability is at most
    ``numel * noise_table(sigma).escape_probability``.
    """
    return (k == ESCAPE).any(dim=-1)


def to_grid(x) -> torch.Tensor:
    """Integer pixels ``i`` (int32) of an image given as uint8 or as float32 ``i / 255`` values.

    uint8 (or any integer dtype with values in [0, 255]) is taken as is. A float tensor must hold
    values that are exactly ``float32(i / 255)`` for an integer ``i`` in [0, 255] (what
    ``torchvision.transforms.ToTensor`` makes of a uint8 image); anything else is off the grid
    and rejected: quantize it yourself, knowing the certificate is then about the quantized image.

    Example:
        >>> to_grid(torch.tensor([0, 128, 255], dtype=torch.uint8) / 255).tolist()
        [0, 128, 255]
    """
    if not isinstance(x, torch.Tensor):
        reject("x", "to be a torch.Tensor of pixels", type(x).__name__, TypeError)
    if not x.dtype.is_floating_point:
        if x.dtype == torch.bool or x.is_complex():
            reject("x", "to be uint8 pixels or float32 values i / 255", f"dtype {x.dtype}", TypeError)
        i = x.to(torch.int32)
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > GRID):
            reject("x", "to hold pixels in [0, 255]", f"values in [{int(x.min())}, {int(x.max())}]")
        return i
    if x.dtype != torch.float32:
        reject("x", "to be uint8 pixels or float32 values i / 255", f"dtype {x.dtype}", TypeError)
    i = torch.round(x.double() * GRID).clamp(0, GRID).to(torch.int32)
    off = ~(torch.isfinite(x) & ((i.to(torch.float32) / GRID) == x))
    if off.any():
        reject("x", "to hold float32 values i / 255 for integers i in [0, 255]", repr(float(x[off][0])))
    return i


def sound_inputs(x, k: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """What the base classifier is fed in sound mode: float32 ``(i + k) / 255``, from the integer ``i + k``.

    The sum is formed in int32 (exact), converted to float32 (exact: ``|i + k| < 2^24``) and
    divided by 255 once, correctly rounded, so every integer maps to one float whatever ``i``
    and ``k`` were. Anything after that (normalization, casts, the network) is part of the base
    classifier and cannot break the certificate; forming ``i / 255 + k / 255`` in float would.

    No clipping by default, as the paper (its code clips only at the edge of the noise's
    support, a no-op). ``clip=True`` clips ``i + k`` to [0, 255] *after* the sum; that is a
    function of the sum alone, hence also part of the base classifier and equally sound (it
    changes what the classifier sees, so it changes accuracy, not validity). Clipping ``k`` or
    ``i`` separately in a way that depends on ``i`` would break the certificate; it is not offered.

    Args:
        x: [*S] image, or [B, *S] (one image per row: read so when ``x.shape[0] == B`` and ``x``
            has ``B * numel`` elements), as uint8 pixels or float32 ``i / 255`` (:func:`to_grid`).
        k: [B, numel] int32 offsets from :func:`discrete_noise`, ``numel = prod(S)``.
        clip: clip the integer sum to [0, 255].

    Returns:
        [B, *S] float32; NaN at escaped elements (their rows must not vote: :func:`escaped_rows`).

    Raises:
        TypeError, ValueError: if ``x`` is off the grid, ``k`` not int32 [B, numel], or the
        shapes disagree.
    """
    i = to_grid(x)
    if not isinstance(k, torch.Tensor) or k.dtype != torch.int32 or k.ndim != 2:
        reject("k", "to be an int32 tensor [B, numel]",
               f"{type(k).__name__} {getattr(k, 'dtype', '')} {tuple(getattr(k, 'shape', ()))}".strip(), TypeError)
    if not isinstance(clip, bool):
        reject("clip", "to be a bool", repr(clip), TypeError)
    batched = i.ndim >= 1 and i.shape[0] == k.shape[0] and i[0].numel() == k.shape[1] and i.numel() != k.shape[1]
    shape = i.shape[1:] if batched else i.shape
    if math.prod(shape) != k.shape[1]:
        reject("k", f"to have numel = {math.prod(shape)} columns (the image's elements)", f"{k.shape[1]}")
    flat = i.reshape(k.shape[0], -1) if batched else i.reshape(1, -1)
    total = flat.to(k.device) + k  # [B, numel] int32, exact
    if clip:
        total = total.clamp(0, GRID)
    out = total.to(torch.float32) / GRID
    out = torch.where(k == ESCAPE, torch.nan, out)
    return out.reshape(k.shape[0], *shape)


def _isf_down(q, sigma: float) -> float:
    """``sigma * PhiInv(1 - q)`` for a float64 ``q`` in (0, 1], rounded down to float64.

    ``q`` is read exactly; ``x = -sqrt(2) erfinv(2 q - 1)`` at 50 digits is checked against
    ``erfc(x / sqrt(2)) / 2 >= q`` (x at most the exact quantile) and lowered until it passes.
    """
    import mpmath  # deferred: see the imports

    with mpmath.workdps(_DPS):
        qm = mpmath.mpf(float(q))
        if qm >= 1:
            return -math.inf
        x = -mpmath.sqrt(2) * mpmath.erfinv(2 * qm - 1)
        step = abs(x) * mpmath.mpf(10) ** -40 + mpmath.mpf(10) ** -45
        while mpmath.erfc(x / mpmath.sqrt(2)) / 2 < qm:
            x -= step
        r = mpmath.mpf(sigma) * x
        value = float(r)
        if mpmath.mpf(value) > r:
            value = math.nextafter(value, -math.inf)
        return value


def sound_radius(p_lower, sigma):
    """Certified l2 radius ``sigma * PhiInv(p_lower)`` (input units) for perturbations on the grid.

    The exact quantile of the exact ``p_lower`` (its float64 value), computed in mpmath at 50
    digits and rounded down to float64: never above ``sigma * PhiInv(p_lower)``, and below it by
    at most one ulp plus 1e-40 relative. Negative below 1/2 (no certificate), ``-inf`` at 0.
    It certifies ``g(i') = g(i)`` for integer images ``i'`` with ``||i' - i||_2 / 255 < R``
    (docs/sound_mode.md); it says nothing about points off the 1/255 grid.

    Args:
        p_lower: lower confidence bound(s) on the top class's probability under the rounded
            Gaussian, in [0, 1), float scalar or array.
        sigma: noise standard deviation in input units, a finite number > 0.

    Returns:
        float for a scalar ``p_lower``, else a float64 array of its shape.

    Raises:
        TypeError: if an argument is not a real number.
        ValueError: if ``p_lower`` is outside [0, 1) or NaN, or ``sigma`` is not finite and > 0.

    Example:
        >>> sound_radius(0.5, 0.25), sound_radius(0.99, 0.5)
        (0.0, 1.1631739370204204)
    """
    s = check_positive_float("sigma", sigma)
    scalar = np.ndim(p_lower) == 0 and not isinstance(p_lower, np.ndarray)
    if scalar and (isinstance(p_lower, bool) or not isinstance(p_lower, (int, float, np.integer, np.floating))):
        reject("p_lower", "in [0, 1)", repr(p_lower), TypeError)
    p = np.asarray(p_lower)
    if p.size and p.dtype.kind not in "iuf":
        reject("p_lower", "in [0, 1)", f"dtype {p.dtype}", TypeError)
    p = p.astype(np.float64)
    inside = (p >= 0.0) & (p < 1.0)
    if not inside.all():
        reject("p_lower", "in [0, 1)", repr(p[~inside].flat[0].item()))
    # For p >= 1/2 the complement 1 - p is exact in float64 (Sterbenz); below 1/2 the radius is
    # negative, minus the upper-rounded quantile of 1 - p formed in mpmath.
    out = np.empty(p.shape, dtype=np.float64)
    for index, value in np.ndenumerate(p):
        out[index] = _isf_down(1.0 - value, s) if value >= 0.5 else -_quantile_up(value, s)
    return float(out) if scalar else out


def _quantile_up(p: float, sigma: float) -> float:
    # sigma * PhiInv(1 - p) rounded up for p < 1/2, so that its negative sigma * PhiInv(p) is
    # rounded down. PhiInv(p) = -PhiInv(1 - p); 1 - p is not exact in float64 here, so it is
    # formed in mpmath.
    if p == 0.0:
        return math.inf
    import mpmath  # deferred: see the imports

    with mpmath.workdps(_DPS):
        pm = mpmath.mpf(p)
        x = -mpmath.sqrt(2) * mpmath.erfinv(2 * pm - 1)  # = PhiInv(1 - p) > 0
        step = abs(x) * mpmath.mpf(10) ** -40 + mpmath.mpf(10) ** -45
        while mpmath.erfc(x / mpmath.sqrt(2)) / 2 > pm:  # need x >= the exact quantile
            x += step
        r = mpmath.mpf(sigma) * x
        value = float(r)
        if mpmath.mpf(value) < r:
            value = math.nextafter(value, math.inf)
        return value


def certify_sound_from_counts(c_hat, n_a, n, alpha, sigma):
    """CERTIFY's decision in sound mode: class and grid-perturbation l2 radius of each input.

    The counts must come from :func:`discrete_noise` rows fed through :func:`sound_inputs`, with
    escaped rows (:func:`escaped_rows`) counted in ``n`` but never in ``n_a``, and ``c_hat``
    chosen on the independent selection phase. The bound is stats.py's one-sided
    Clopper-Pearson complement ``q = 1 - p_lower``, widened by its documented margin 1e-9;
    where ``q < 1/2`` the result is ``(c_hat, sigma * PhiInv(1 - q))`` by :func:`sound_radius`'s
    mpmath quantile rounded down, else ``(ABSTAIN, 0.0)``. With probability at least
    ``1 - alpha`` over the noise, every returned radius ``R`` certifies ``g(i') = c_hat`` for
    every integer image ``i'`` with ``||i' - i||_2 / 255 < R``.

    Args:
        c_hat: [M] integer classes >= 0 guessed from the independent selection phase.
        n_a: [M] integer votes for ``c_hat`` among the ``n`` estimation rows, in [0, n].
        n: number of estimation rows, an integer in [1, 2**53].
        alpha: one-sided miscoverage in (0, 1).
        sigma: noise standard deviation in input units, a finite number > 0.

    Returns:
        ``(pred, radius)``: int64 [M] classes (``ABSTAIN`` = -1 where abstaining) and float64
        [M] radii (0.0 where abstaining).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, ``n_a > n``, or the shapes differ.

    Example:
        >>> pred, rad = certify_sound_from_counts([2, 5], [100, 60], 100, 0.001, 0.5)
        >>> pred.tolist(), [round(float(r), 4) for r in rad]
        ([2, -1], [0.7502, 0.0])
    """
    n, a, s, classes, votes = _certify_arguments(c_hat, n_a, n, alpha, sigma)
    complement = _widened(_complement_bound(votes, np.int64(n), np.float64(a)))
    certified = complement < 0.5
    pred = np.where(certified, classes, ABSTAIN).astype(np.int64)
    rad = np.array([_isf_down(q, s) if c else 0.0 for q, c in zip(complement, certified)], dtype=np.float64)
    return pred, rad
