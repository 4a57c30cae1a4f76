"""Exact statistics of randomized smoothing: confidence bounds, tests, decisions and radii.

Everything here works on vote counts that have already come back from the device; it is pure
numpy + scipy, vectorized over inputs, and free of torch.

The smoothed classifier is ``g(x) = argmax_c P(f(x + e) = c)`` with ``e ~ N(0, sigma^2 I)``
(Cohen, Rosenfeld & Kolter, ICML 2019). Its two algorithms decide from counts as follows.

CERTIFY. Out of ``n`` fresh noisy samples, ``n_A ~ Binomial(n, p_A)`` vote for the guess
``c_A`` made on a separate selection sample. The one-sided ``(1 - alpha)`` Clopper-Pearson lower
confidence bound is::

    p_lower = BetaInv(alpha; n_A, n - n_A + 1)    (p_lower = 0 when n_A = 0)

so that ``P(p_lower <= p_A) >= 1 - alpha``. It is increasing in ``n_A`` and at most
``alpha ** (1 / n)`` (its value at ``n_A = n``). Unless ``p_lower > 1/2`` CERTIFY abstains
(class -1, radius 0.0); otherwise it returns ``c_A`` with the l2 radius
``R = sigma * PhiInv(p_lower)`` (Theorem 1 with ``p_B <= 1 - p_A``). The largest radius any
certificate can give is therefore ``sigma * PhiInv(alpha ** (1 / n))``: 3.81 sigma at
``n = 100000, alpha = 0.001``. The chance of returning a class together with a radius that is
not a true certificate of ``g`` is at most ``alpha``.

PREDICT. Out of ``n`` noisy samples, take the top two classes with counts ``n_A >= n_B``. The
two-sided exact binomial test of ``n_A`` successes in ``n_A + n_B`` trials at ``p = 1/2`` has
p-value ``min(1, 2 * P(Binomial(n_A + n_B, 1/2) <= n_B))``. If it exceeds ``alpha`` PREDICT
abstains (-1); otherwise it returns the top class, which differs from ``g(x)`` with probability
at most ``alpha`` (Theorem 2).

Floating point: CERTIFY works with the complement ``q = 1 - p_lower``. A float64 ``p_lower`` near
1 keeps ``q`` only to ~1e-16 absolute, a large relative error once ``q`` is small, and ``q = 0``
(an infinite radius) below 5.6e-17. ``q`` is SciPy's ``beta.isf(alpha, n - n_A + 1, n_A)``
(``1 - BetaInv(a; k, m) = BetaInv(1 - a; m, k)``), polished by one Newton step on the incomplete
beta function (by bisection where ``beta.isf`` is too far off for one step) and floored at
``-expm1(log(alpha) / n)``, its exact value at ``n_A = n``. The radius is ``sigma * norm.isf(q)``,
accurate and finite for every ``q > 0``. Measured against mpmath (60 digits) on 6.4e4 cases,
``alpha`` from 1e-12 to 1 - 1e-15, ``n_A`` within 3000 of ``n`` for ``n`` up to 1e16 and any
``n_A`` for ``n`` up to 1e7 (spot checks to 1e11): ``beta.isf`` alone errs by up to 6.6e-8
relative (``n`` near 2e9; 9e-13 at ``n = 1e5``) and in rare cases near ``n = 1e11`` returns
2^-26, six times the root; the polished ``q`` errs by at most 2.7e-11, ``norm.isf`` by at most 1.7
ulp. ``q`` is then widened by the relative margin 1e-9, 37 times the largest error measured. That
lowers a radius ``R`` by at least ``1e-9 / (1 + (R / sigma) ** 2)`` relative (> 7e-12, since
``R <= 11.9 sigma`` for every ``n <= 2^53``), which also covers ``norm.isf`` and the product with
``sigma`` many times over, and by at most 1.3e-9 sigma. So every radius is finite and at most the
exact ``sigma * PhiInv(p_exact)``, and a certify/abstain decision differs from the exact one only
when the exact ``q`` lies within 6e-10 below 1/2 (then it abstains).
:func:`floor_significant` rounds radii down to the digits that are printed.

Example:
    >>> import numpy as np
    >>> pred, rad = certify_from_counts(np.array([3, 7]), np.array([99_000, 40]), 100_000,
    ...                                 0.001, 0.25)
    >>> pred.tolist(), floor_significant(rad[0]), float(rad[1])
    ([3, -1], 0.572, 0.0)
"""
from __future__ import annotations

import math
import numbers
from decimal import ROUND_FLOOR, Decimal, localcontext

import numpy as np

# scipy.special and scipy.stats are imported inside the functions that use them: each takes 0.4 s
# to import on 2 cores, and `import rsengine` and the CLI's start-up need neither.
from .validation import (
    check_int_at_least,
    check_positive_float,
    check_positive_int,
    check_probability,
    reject,
)

__all__ = [
    "ABSTAIN",
    "clopper_pearson_lower",
    "binomial_pvalue",
    "radius",
    "max_radius",
    "can_certify",
    "certify_from_counts",
    "predict_from_counts",
    "floor_significant",
]

ABSTAIN = -1
"""Class returned by PREDICT and CERTIFY when they abstain."""

# Relative widening of q = 1 - p_lower before it decides or sets a radius: 37 times the largest
# error of the polished q measured against mpmath (2.7e-11, n near 2e9; module docstring).
_COMPLEMENT_MARGIN = 1e-9

# SciPy's incomplete beta works in float64, where counts above 2^53 are no longer exact; near
# n = 1e18 it returns complements off by half their value, so larger n is refused.
_MAX_TRIALS = 2**53

# A Newton step is taken when it is at most 1e-6 of q (beta.isf's largest measured error is
# 6.6e-8; where it fails, it returns 2^-26 for some n ~ 1e11, six times the root) and its own
# error, about curvature * step^2 / 2, is at most 1e-12 of q (1/1000 of the margin). Otherwise q
# is found by bisection.
_NEWTON_MAX_STEP = 1e-6
_NEWTON_MAX_ERROR = 1e-12

# Halvings of log q between the floor (>= 1.2e-32 for n <= 2^53) and 1: 73.5 / 2^60 = 6.4e-17.
_BISECTION_STEPS = 60


def _is_scalar(value) -> bool:
    return np.ndim(value) == 0 and not isinstance(value, np.ndarray)


def _as_counts(name: str, value, minimum: int) -> np.ndarray:
    """Return ``value`` as an int64 array after checking every entry is an integer >= minimum."""
    if _is_scalar(value):
        return np.asarray(check_int_at_least(name, value, minimum), dtype=np.int64)
    array = np.asarray(value)
    if array.size == 0:
        # An empty list has dtype float64 in numpy; there is no entry to be a non-integer.
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        reject(name, f"to be integers >= {minimum}", f"dtype {array.dtype}", TypeError)
    below = array < minimum
    if below.any():
        reject(name, f"to be integers >= {minimum}", repr(array[below][0].item()))
    return array.astype(np.int64, copy=False)


def _check_trials(name: str, n) -> None:
    """Raise unless every trial count ``n`` is at most ``_MAX_TRIALS``."""
    too_many = np.asarray(n) > _MAX_TRIALS
    if too_many.any():
        reject(name, "<= 2**53", repr(np.asarray(n)[too_many].item(0)))


def _as_probabilities(name: str, value, *, zero_allowed: bool) -> np.ndarray:
    """Return ``value`` as a float64 array after checking it lies in (0, 1), or [0, 1)."""
    interval = "[0, 1)" if zero_allowed else "(0, 1)"
    if _is_scalar(value) and not zero_allowed:
        return np.asarray(check_probability(name, value), dtype=np.float64)
    if _is_scalar(value) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        reject(name, f"in {interval}", repr(value), TypeError)
    array = np.asarray(value)
    if array.size and array.dtype.kind not in "iuf":
        reject(name, f"in {interval}", f"dtype {array.dtype}", TypeError)
    array = array.astype(np.float64, copy=False)
    inside = ((array >= 0.0) if zero_allowed else (array > 0.0)) & (array < 1.0)
    if not inside.all():  # NaN fails both comparisons, so it is rejected too
        reject(name, f"in {interval}", repr(array[~inside][0].item()))
    return array


def _as_vector(name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        reject(name, "to be a 1-D array [M]", f"shape {array.shape}")
    return array


def _certify_arguments(c_hat, n_a, n, alpha, sigma) -> tuple[int, float, float, np.ndarray, np.ndarray]:
    """CERTIFY's checked arguments: (n, alpha, sigma, classes int64 [M], votes int64 [M])."""
    n = check_positive_int("n", n)
    _check_trials("n", n)
    a = check_probability("alpha", alpha)
    s = check_positive_float("sigma", sigma)
    classes = _as_vector("c_hat", _as_counts("c_hat", c_hat, 0))
    votes = _as_counts("n_a", n_a, 0)
    if votes.shape != classes.shape:
        reject("n_a", f"to have the shape of `c_hat` {classes.shape}", f"{votes.shape}")
    over = votes > n
    if over.any():
        reject("n_a", f"<= `n` = {n}", repr(votes[over][0].item()))
    return n, a, s, classes, votes


def _scalar_or_array(result: np.ndarray):
    return float(result) if result.ndim == 0 else result


def _complement_ceiling(alpha, n):
    # 1 - alpha ** (1/n), the complement of the bound at k = n: the smallest complement for n
    # trials. In this form it keeps its digits when alpha ** (1/n) rounds to 1 (an infinite
    # radius), and one expression serves the bound and max_radius, so no radius exceeds it.
    return -np.expm1(np.log(alpha) / n)


def _tail_excess(q, a, b, alpha):
    # P(Beta(a, b) > q) - alpha, decreasing in q, from whichever tail is the smaller so it keeps
    # its relative digits (1 - alpha is exact for alpha >= 1/2).
    from scipy import special  # deferred: see the imports

    return np.where(
        alpha <= 0.5,
        special.betaincc(a, b, q) - alpha,
        (1.0 - alpha) - special.betainc(a, b, q),
    )


def _newton_step(q, a, b, alpha):
    """One Newton step towards the root of ``_tail_excess``, and where it can be trusted.

    beta.isf stops short at large n; the step leaves only the error of the tail functions
    (measured in the module docstring).
    """
    from scipy.stats import beta  # deferred: see the imports

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        step = _tail_excess(q, a, b, alpha) / beta.pdf(q, a, b)
        # The excess's second derivative over its first (d/dq log pdf); Newton's own error is
        # about that times step^2 / 2.
        curvature = (a - 1) / q - (b - 1) / (1 - q)
        own_error = np.abs(curvature) * step**2 / 2
    # NaN fails both comparisons, so it is not trusted either.
    trusted = (np.abs(step) <= _NEWTON_MAX_STEP * q) & (own_error <= _NEWTON_MAX_ERROR * q)
    return np.where(trusted, q + step, q), trusted


def _bisect(a, b, alpha, low):
    """The root of ``_tail_excess`` in ``[low, 1]`` by bisection on log q.

    Returns the upper end of the last bracket: never below the root as the tail functions see it.
    """
    high = np.ones_like(low)
    for _ in range(_BISECTION_STEPS):
        middle = np.sqrt(low * high)
        root_above = _tail_excess(middle, a, b, alpha) > 0
        low = np.where(root_above, middle, low)
        high = np.where(root_above, high, middle)
    return high


def _complement_bound(k: np.ndarray, n: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``q = 1 - BetaInv(alpha; k, n - k + 1)``, computed without forming the bound; 1 at k = 0."""
    from scipy.stats import beta  # deferred: see the imports

    k, n, alpha = np.broadcast_arrays(k, n, alpha)
    # beta(., 0) is not a distribution; np.maximum keeps scipy away from it (result discarded).
    successes = np.maximum(k, 1)
    failures_plus_one = n - k + 1
    # The exact complement decreases in k down to this floor at k = n: a smaller q is float
    # error, and the floor keeps every radius finite and below max_radius.
    floor = _complement_ceiling(alpha, n)
    q, polished = _newton_step(
        beta.isf(alpha, failures_plus_one, successes), failures_plus_one, successes, alpha
    )
    failed = ~polished & (k > 0)
    if failed.any():
        q[failed] = _bisect(failures_plus_one[failed], successes[failed], alpha[failed],
                            floor[failed])
    q = np.maximum(q, floor)
    return np.where(k == 0, 1.0, q)


def _widened(q: np.ndarray) -> np.ndarray:
    return q * (1.0 + _COMPLEMENT_MARGIN)


def _one_minus_rounded_down(q: np.ndarray) -> np.ndarray:
    # For q <= 1/2. Rounding 1 - q to nearest can land above 1 - q (on 1.0 for q < 5.6e-17), and
    # a radius computed from the bound would then exceed the exact one. 1 - p is exact here
    # (Sterbenz), so it shows when p was rounded up.
    p = 1.0 - q
    return np.where(1.0 - p < q, np.nextafter(p, 0.0), p)


def _clopper_pearson(k: np.ndarray, n: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from scipy.stats import beta  # deferred: see the imports

    q = _complement_bound(k, n, alpha)
    # Above 1/2 the complement holds the digits; below it, beta.ppf keeps the relative digits of
    # a small bound that 1 - q would lose. The cap keeps that branch at or below the other, so
    # the two join increasing in k.
    from_complement = _one_minus_rounded_down(q)
    from_ppf = np.minimum(beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.5)
    bound = np.where(q < 0.5, from_complement, from_ppf)
    return np.where(k == 0, 0.0, bound)


def _radius(p_lower: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.stats import norm  # deferred: see the imports

    # Above 1/2 from the widened complement (1 - p_lower is exact there), capped at 1/2 where the
    # radius is exactly 0. Below 1/2 (no certificate) the negative radius is lowered by the same
    # relative margin, so it too stays below max_radius where n and alpha allow no certificate.
    widened = np.minimum(_widened(1.0 - p_lower), 0.5)
    negative = sigma * norm.ppf(p_lower) * (1.0 + _COMPLEMENT_MARGIN)
    return np.where(p_lower < 0.5, negative, sigma * norm.isf(widened))


def _binomial_pvalue(n_a: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    from scipy.stats import binom  # deferred: see the imports

    # At p = 1/2 the binomial is symmetric, so the two-sided (minlike) p-value is twice the
    # smaller tail. When |n_a - n_b| <= 1 the two tails cover every outcome and the p-value is
    # exactly 1, but 2 * cdf lands a few ulp below it: pin it, as scipy's binomtest does.
    smaller_tail = binom.cdf(np.minimum(n_a, n_b), n_a + n_b, 0.5)
    return np.where(np.abs(n_a - n_b) <= 1, 1.0, np.minimum(1.0, 2.0 * smaller_tail))


def clopper_pearson_lower(n_success, n_trials, alpha):
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower confidence bound on a binomial proportion.

    ``BetaInv(alpha; k, n - k + 1)``, and 0.0 when ``k == 0``. Arguments broadcast against each
    other. The result increases with ``k`` and never exceeds ``alpha ** (1 / n)``, the exact bound
    at ``k == n``. Above 1/2 it is ``1 - q`` rounded down, from the complement ``q`` that
    :func:`certify_from_counts` uses (module docstring), so it stays below 1 where the bound rounds
    to 1; below 1/2 it is SciPy's ``beta.ppf``, which keeps the digits of a small bound.

    Args:
        n_success: successes ``k``, integer scalar or array, ``0 <= k <= n_trials``.
        n_trials: trials ``n``, integer scalar or array, ``1 <= n <= 2**53``.
        alpha: one-sided miscoverage in (0, 1), scalar or array.

    Returns:
        float when every argument is a scalar, else a float64 array of the broadcast shape.

    Raises:
        TypeError: if a count is not an integer or ``alpha`` not a real number.
        ValueError: if a count or ``alpha`` is out of range, or ``n_success > n_trials``.

    Example:
        >>> clopper_pearson_lower(1, 1, 0.05)
        0.05
        >>> clopper_pearson_lower([0, 5, 10], 10, 0.05).round(4)
        array([0.    , 0.2224, 0.7411])
    """
    k = _as_counts("n_success", n_success, 0)
    n = _as_counts("n_trials", n_trials, 1)
    _check_trials("n_trials", n)
    a = _as_probabilities("alpha", alpha, zero_allowed=False)
    k, n, a = np.broadcast_arrays(k, n, a)
    over = k > n
    if over.any():
        reject("n_success", "<= `n_trials`", f"{k[over][0]} > {n[over][0]}")
    return _scalar_or_array(_clopper_pearson(k, n, a))


def binomial_pvalue(n_a, n_b):
    """Two-sided exact binomial test p-value of ``n_a`` successes in ``n_a + n_b`` trials at 1/2.

    Equals ``scipy.stats.binomtest(n_a, n_a + n_b, 0.5).pvalue`` (bit for bit on every pair
    tested up to 10^5 trials), computed in closed form as ``min(1, 2 * cdf(min(n_a, n_b)))``.
    ``binomtest`` counts outcomes within a relative 1e-7 of the observed likelihood as "as
    extreme", which only matters beyond ~2 * 10^7 trials; this function stays exact there.
    ``n_a + n_b == 0`` gives 1.0 (no evidence either way). Arguments broadcast.

    Args:
        n_a: integer count(s) >= 0 for the first class.
        n_b: integer count(s) >= 0 for the second class.

    Returns:
        float when both are scalars, else a float64 array of the broadcast shape.

    Raises:
        TypeError: if a count is not an integer.
        ValueError: if a count is negative.

    Example:
        >>> binomial_pvalue(10, 0)
        0.001953125
        >>> binomial_pvalue([5, 0], [5, 0]).tolist()
        [1.0, 1.0]
    """
    a = _as_counts("n_a", n_a, 0)
    b = _as_counts("n_b", n_b, 0)
    a, b = np.broadcast_arrays(a, b)
    return _scalar_or_array(_binomial_pvalue(a, b))


def radius(p_lower, sigma):
    """Certified l2 radius ``sigma * PhiInv(p_lower)``, rounded down by the module's margin.

    ``p_lower`` is taken to be a computed bound such as :func:`clopper_pearson_lower` returns:
    its complement ``1 - p_lower`` is widened by the relative margin 1e-9 that covers the error
    of the inverse incomplete beta function (module docstring), so the result is at most the
    exact radius of the exact bound, and at most 1.3e-9 sigma below ``sigma * PhiInv(p_lower)``.
    From ``p_lower = 1/2`` up to that margin above it the result is exactly 0.0. Below 1/2 it is
    ``sigma * PhiInv(p_lower) * (1 + 1e-9) < 0``: no certificate (CERTIFY abstains there), kept
    below :func:`max_radius` even where that is negative. ``p_lower = 1`` would be an infinite
    radius, which no finite sample certifies, and is rejected.

    Args:
        p_lower: lower bound(s) on the top-class probability in [0, 1), scalar or array.
        sigma: noise standard deviation, a finite number > 0.

    Returns:
        float for a scalar ``p_lower``, else a float64 array of its shape.

    Raises:
        TypeError: if an argument is not a real number.
        ValueError: if ``p_lower`` is outside [0, 1) or NaN, or ``sigma`` is not finite and > 0.

    Example:
        >>> radius(0.5, 0.25)
        0.0
        >>> from scipy.stats import norm
        >>> r = radius(0.99, 0.5)
        >>> bool(r < 0.5 * norm.ppf(0.99)), round(r, 6)
        (True, 1.163174)
    """
    s = check_positive_float("sigma", sigma)
    p = _as_probabilities("p_lower", p_lower, zero_allowed=True)
    return _scalar_or_array(_radius(p, s))


def max_radius(sigma, n, alpha):
    """Largest radius any certificate can give: ``sigma * PhiInv(alpha ** (1 / n))``.

    Computed as ``sigma * norm.isf(-expm1(log(alpha) / n))``, finite even where ``alpha ** (1/n)``
    rounds to 1. Every radius from :func:`certify_from_counts` and :func:`radius` of
    :func:`clopper_pearson_lower` with the same ``sigma, n, alpha`` is strictly below it. A test
    that expects a larger certified radius is wrong.

    Args:
        sigma: noise standard deviation, a finite number > 0.
        n: number of estimation samples, an integer in [1, 2**53].
        alpha: one-sided miscoverage in (0, 1).

    Returns:
        The radius as a float.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.

    Example:
        >>> round(max_radius(1.0, 100_000, 0.001), 3)
        3.811
    """
    s = check_positive_float("sigma", sigma)
    n = check_positive_int("n", n)
    _check_trials("n", n)
    a = check_probability("alpha", alpha)
    from scipy.stats import norm  # deferred: see the imports

    return float(s * norm.isf(_complement_ceiling(a, n)))


def can_certify(n, alpha) -> bool:
    """Whether any input can be certified with ``n`` samples at ``alpha``: ``max_radius(., n, alpha) > 0``.

    Even ``n`` votes of ``n`` bound the top class's probability by ``alpha ** (1 / n)``; a
    certificate needs that bound above 1/2. Decided without scipy (the CLI asks before every run,
    and importing scipy.special costs it 0.4 s): ``norm.isf(q) > 0`` exactly when ``q < 1/2``.

    Example:
        >>> can_certify(100_000, 0.001), can_certify(9, 0.001)
        (True, False)
    """
    n = check_positive_int("n", n)
    _check_trials("n", n)
    return bool(_complement_ceiling(check_probability("alpha", alpha), n) < 0.5)


def certify_from_counts(c_hat, n_a, n, alpha, sigma):
    """CERTIFY's decision from counts: the certified class and l2 radius of each input.

    ``p_lower = clopper_pearson_lower(n_a, n, alpha)``; return ``(c_hat, radius(p_lower, sigma))``
    where ``p_lower > 1/2``, else abstain (``ABSTAIN``, 0.0). As in the paper's pseudocode (the
    reference code certified ``p_lower`` exactly 1/2 with radius 0, which proves nothing about
    ``p_A > 1/2``). Both are computed from the complement ``q = 1 - p_lower`` widened by the
    margin (module docstring): certify where it is below 1/2, with radius ``sigma * norm.isf``
    of it. The radius is finite and at most the exact one; it is at least
    ``radius(clopper_pearson_lower(n_a, n, alpha), sigma)``, which also loses the rounding of
    ``p_lower``.

    Args:
        c_hat: [M] integer classes >= 0 guessed from the independent selection phase.
        n_a: [M] integer votes for ``c_hat`` among the ``n`` estimation samples, in [0, n].
        n: number of estimation samples, an integer in [1, 2**53].
        alpha: one-sided miscoverage in (0, 1).
        sigma: noise standard deviation, a finite number > 0.

    Returns:
        ``(pred, radius)``: int64 [M] classes (``ABSTAIN`` = -1 where abstaining) and float64
        [M] radii (0.0 where abstaining).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, ``n_a > n``, or the shapes differ.

    Example:
        >>> pred, rad = certify_from_counts([2, 5], [100, 60], 100, 0.001, 0.5)
        >>> pred.tolist(), [floor_significant(r) for r in rad]
        ([2, -1], [0.75, 0.0])
    """
    from scipy.stats import norm  # deferred: see the imports

    n, a, s, classes, votes = _certify_arguments(c_hat, n_a, n, alpha, sigma)
    complement = _widened(_complement_bound(votes, np.int64(n), np.float64(a)))
    certified = complement < 0.5
    pred = np.where(certified, classes, ABSTAIN).astype(np.int64)
    rad = np.where(certified, s * norm.isf(complement), 0.0).astype(np.float64)
    return pred, rad


def predict_from_counts(counts, alpha):
    """PREDICT's decision from counts: the top class of each input, or ``ABSTAIN``.

    The top two classes have counts ``n_A >= n_B`` (the top class is the lowest index among
    ties, like ``np.argmax``; with one class ``n_B = 0``). Abstain where
    ``binomial_pvalue(n_A, n_B) > alpha``. A tie at the top has p-value 1 and always abstains,
    so the tie-break never shows in the output.

    Args:
        counts: [M, K] integer vote counts >= 0, K >= 1.
        alpha: two-sided test level in (0, 1).

    Returns:
        int64 [M] predicted classes, ``ABSTAIN`` = -1 where abstaining.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``counts`` is not [M, K] with K >= 1, has a negative entry, or ``alpha``
            is out of range.

    Example:
        >>> predict_from_counts([[0, 90, 10], [40, 60, 0], [5, 5, 0]], 0.001).tolist()
        [1, -1, -1]
    """
    a = check_probability("alpha", alpha)
    votes = _as_counts("counts", counts, 0)
    if votes.ndim != 2 or votes.shape[1] < 1:
        reject("counts", "to be a 2-D array [M, K] with K >= 1", f"shape {votes.shape}")
    num_classes = votes.shape[1]
    top = votes.argmax(axis=1)
    n_top = np.take_along_axis(votes, top[:, None], axis=1)[:, 0]
    if num_classes == 1:
        n_second = np.zeros_like(n_top)
    else:
        # Index K-2 of an ascending partition is the second-largest count, equal to the top
        # count when the top is tied.
        n_second = np.partition(votes, num_classes - 2, axis=1)[:, num_classes - 2]
    pvalue = _binomial_pvalue(n_top, n_second)
    return np.where(pvalue > a, ABSTAIN, top).astype(np.int64)


def floor_significant(x, digits=3):
    """Round a non-negative number down to ``digits`` significant digits, for printing radii.

    ``'{:.3}'.format`` rounds to nearest and can print a radius larger than the certified one;
    this never does. ``x`` is read as its shortest round-trip decimal (``repr``), the number
    Python prints for it, so a float such as 0.456 is not pushed down to 0.455 by the binary
    error of its representation.

    Args:
        x: finite real number >= 0.
        digits: significant digits to keep, an integer >= 1.

    Returns:
        The rounded value as a float (``<= x``).

    Raises:
        TypeError: if ``x`` is not a real number or ``digits`` not an integer.
        ValueError: if ``x`` is negative, NaN or infinite, or ``digits < 1``.

    Example:
        >>> floor_significant(0.4568), floor_significant(3.8099), floor_significant(0.456)
        (0.456, 3.8, 0.456)
        >>> floor_significant(123456.0, digits=2)
        120000.0
    """
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        reject("x", "to be a finite number >= 0", repr(x), TypeError)
    digits = check_positive_int("digits", digits)
    value = float(x)
    if not (math.isfinite(value) and value >= 0.0):
        reject("x", "to be a finite number >= 0", repr(x))
    if value == 0.0:
        return 0.0
    shortest = Decimal(repr(value))
    quantum = Decimal(1).scaleb(shortest.adjusted() - digits + 1)
    with localcontext() as context:
        # quantize fails if the kept digits exceed the context precision (28 by default).
        context.prec = max(context.prec, digits)
        return float(shortest.quantize(quantum, rounding=ROUND_FLOOR))
