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

Floating point: the bound is kept at or below ``alpha ** (1/n)`` and the float64 radius is
stepped down one ulp, which leaves only the ~1e-15 relative error of SciPy's quantile
functions; :func:`floor_significant` rounds radii down to the digits that are printed.

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
from scipy.stats import beta, binom, norm

from .validation import (
    check_int_at_least,
    check_positive_float,
    check_positive_int,
    check_probability,
)

__all__ = [
    "ABSTAIN",
    "clopper_pearson_lower",
    "binomial_pvalue",
    "radius",
    "max_radius",
    "certify_from_counts",
    "predict_from_counts",
    "floor_significant",
]

ABSTAIN = -1
"""Class returned by PREDICT and CERTIFY when they abstain."""


def _reject(name: str, expectation: str, got: str, error=ValueError):
    # Same template as rsengine.validation, for array arguments its scalar helpers cannot take.
    raise error(f"Expected `{name}` {expectation}, got {got}")


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
        _reject(name, f"to be integers >= {minimum}", f"dtype {array.dtype}", TypeError)
    below = array < minimum
    if below.any():
        _reject(name, f"to be integers >= {minimum}", repr(array[below][0].item()))
    return array.astype(np.int64, copy=False)


def _as_probabilities(name: str, value, *, closed: bool) -> np.ndarray:
    """Return ``value`` as a float64 array after checking it lies in (0, 1), or [0, 1] if closed."""
    interval = "[0, 1]" if closed else "(0, 1)"
    if _is_scalar(value) and not closed:
        return np.asarray(check_probability(name, value), dtype=np.float64)
    if _is_scalar(value) and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        _reject(name, f"in {interval}", repr(value), TypeError)
    array = np.asarray(value)
    if array.size and array.dtype.kind not in "iuf":
        _reject(name, f"in {interval}", f"dtype {array.dtype}", TypeError)
    array = array.astype(np.float64, copy=False)
    inside = (array >= 0.0) & (array <= 1.0) if closed else (array > 0.0) & (array < 1.0)
    if not inside.all():  # NaN fails both comparisons, so it is rejected too
        _reject(name, f"in {interval}", repr(array[~inside][0].item()))
    return array


def _as_vector(name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        _reject(name, "to be a 1-D array [M]", f"shape {array.shape}")
    return array


def _scalar_or_array(result: np.ndarray):
    return float(result) if result.ndim == 0 else result


def _ceiling(alpha, n):
    # The Clopper-Pearson bound at k = n, i.e. the largest bound for n trials. One expression
    # shared by the bound and max_radius, so no radius can exceed max_radius in floating point.
    return alpha ** (1.0 / n)


def _clopper_pearson(k: np.ndarray, n: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # beta(0, .) is not a distribution; np.maximum keeps scipy away from it (result discarded).
    bound = beta.ppf(alpha, np.maximum(k, 1), n - k + 1)
    # The exact bound is increasing in k with maximum alpha ** (1/n) at k = n, so anything above
    # that is float error in the inverse incomplete beta, not a real value: the minimum only
    # undoes that error and never cuts a bound that could be right.
    bound = np.minimum(bound, _ceiling(alpha, n))
    return np.where(k == 0, 0.0, bound)


def _radius(p_lower: np.ndarray, sigma: float) -> np.ndarray:
    exact = sigma * norm.ppf(p_lower)
    # One step down undoes the round-to-nearest of the product, which can land above the real
    # value. Zero (p_lower = 1/2) and the infinities are exact and stay as they are.
    movable = np.isfinite(exact) & (exact != 0.0)
    return np.where(movable, np.nextafter(exact, -np.inf), exact)


def _binomial_pvalue(n_a: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    # At p = 1/2 the binomial is symmetric, so the two-sided (minlike) p-value is twice the
    # smaller tail. When |n_a - n_b| <= 1 the two tails cover every outcome and the p-value is
    # exactly 1, but 2 * cdf lands a few ulp below it: pin it, as scipy's binomtest does.
    smaller_tail = binom.cdf(np.minimum(n_a, n_b), n_a + n_b, 0.5)
    return np.where(np.abs(n_a - n_b) <= 1, 1.0, np.minimum(1.0, 2.0 * smaller_tail))


def clopper_pearson_lower(n_success, n_trials, alpha):
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower confidence bound on a binomial proportion.

    ``BetaInv(alpha; k, n - k + 1)``, and 0.0 when ``k == 0``. Arguments broadcast against each
    other. The result never exceeds ``alpha ** (1 / n)``, the exact bound at ``k == n``.

    Args:
        n_success: successes ``k``, integer scalar or array, ``0 <= k <= n_trials``.
        n_trials: trials ``n``, integer scalar or array, ``n >= 1``.
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
    a = _as_probabilities("alpha", alpha, closed=False)
    k, n, a = np.broadcast_arrays(k, n, a)
    over = k > n
    if over.any():
        _reject("n_success", "<= `n_trials`", f"{k[over][0]} > {n[over][0]}")
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
    """Certified l2 radius ``sigma * PhiInv(p_lower)``, rounded down by one ulp.

    Rounding down absorbs the rounding of the final product, so the result is never above the
    value computed in exact arithmetic from the same ``PhiInv``. ``p_lower = 1/2`` gives exactly
    0.0; below 1/2 the result is negative (no certificate; CERTIFY abstains there).

    Args:
        p_lower: lower bound(s) on the top-class probability in [0, 1], scalar or array.
        sigma: noise standard deviation, a finite number > 0.

    Returns:
        float for a scalar ``p_lower``, else a float64 array of its shape.

    Raises:
        TypeError: if an argument is not a real number.
        ValueError: if ``p_lower`` is outside [0, 1] or NaN, or ``sigma`` is not finite and > 0.

    Example:
        >>> radius(0.5, 0.25)
        0.0
        >>> from scipy.stats import norm
        >>> r = radius(0.99, 0.5)
        >>> bool(r < 0.5 * norm.ppf(0.99)), round(r, 6)
        (True, 1.163174)
    """
    s = check_positive_float("sigma", sigma)
    p = _as_probabilities("p_lower", p_lower, closed=True)
    return _scalar_or_array(_radius(p, s))


def max_radius(sigma, n, alpha):
    """Largest radius any certificate can give: ``sigma * PhiInv(alpha ** (1 / n))``.

    Every radius from :func:`certify_from_counts` with the same ``sigma, n, alpha`` is strictly
    below it. A test that expects a larger certified radius is wrong.

    Args:
        sigma: noise standard deviation, a finite number > 0.
        n: number of estimation samples, an integer >= 1.
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
    a = check_probability("alpha", alpha)
    return float(s * norm.ppf(_ceiling(a, n)))


def certify_from_counts(c_hat, n_a, n, alpha, sigma):
    """CERTIFY's decision from counts: the certified class and l2 radius of each input.

    ``p_lower = clopper_pearson_lower(n_a, n, alpha)``; return ``(c_hat, radius(p_lower, sigma))``
    where ``p_lower > 1/2``, else abstain (``ABSTAIN``, 0.0). As in the paper's pseudocode (the
    reference code certified ``p_lower`` exactly 1/2 with radius 0, which proves nothing about
    ``p_A > 1/2``).

    Args:
        c_hat: [M] integer classes >= 0 guessed from the independent selection phase.
        n_a: [M] integer votes for ``c_hat`` among the ``n`` estimation samples, in [0, n].
        n: number of estimation samples, an integer >= 1.
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
    n = check_positive_int("n", n)
    a = check_probability("alpha", alpha)
    s = check_positive_float("sigma", sigma)
    classes = _as_vector("c_hat", _as_counts("c_hat", c_hat, 0))
    votes = _as_counts("n_a", n_a, 0)
    if votes.shape != classes.shape:
        _reject("n_a", f"to have the shape of `c_hat` {classes.shape}", f"{votes.shape}")
    over = votes > n
    if over.any():
        _reject("n_a", f"<= `n` = {n}", repr(votes[over][0].item()))
    p_lower = _clopper_pearson(votes, np.int64(n), np.float64(a))
    certified = p_lower > 0.5
    pred = np.where(certified, classes, ABSTAIN).astype(np.int64)
    rad = np.where(certified, _radius(p_lower, s), 0.0).astype(np.float64)
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
        _reject("counts", "to be a 2-D array [M, K] with K >= 1", f"shape {votes.shape}")
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
        _reject("x", "to be a finite number >= 0", repr(x), TypeError)
    digits = check_positive_int("digits", digits)
    value = float(x)
    if not (math.isfinite(value) and value >= 0.0):
        _reject("x", "to be a finite number >= 0", repr(x))
    if value == 0.0:
        return 0.0
    shortest = Decimal(repr(value))
    quantum = Decimal(1).scaleb(shortest.adjusted() - digits + 1)
    with localcontext() as context:
        # quantize fails if the kept digits exceed the context precision (28 by default).
        context.prec = max(context.prec, digits)
        return float(shortest.quantize(quantum, rounding=ROUND_FLOOR))
