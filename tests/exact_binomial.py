"""Clopper-Pearson bounds and normal quantiles to 35+ digits: the oracles of the statistics' tests.

mpmath at 60 digits, each root checked on the exact binomial cdf (never trusting the float
libraries it starts from), for tests/test_stats.py and tests/test_certificates.py.

Example:
    >>> round(float(exact_complement(10, 10, 0.001)), 9)  # 1 - 0.001 ** (1/10): all 10 succeed
    0.498812766
    >>> round(float(exact_upper_quantile(0.025)), 6)
    1.959964
"""
import functools

import mpmath
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint


def exact_binomial_cdf(j, n, q):
    """P(Binomial(n, q) <= j) in mpmath: terms from i = j down until they stop counting.

    The pmf is log-concave, so once a term past the mode is 1e-55 of the sum the rest is too.
    """
    term = total = mpmath.exp(mpmath.loggamma(n + 1) - mpmath.loggamma(j + 1) - mpmath.loggamma(n - j + 1)
                              + j * mpmath.log(q) + (n - j) * mpmath.log1p(-q))
    odds_down = (1 - q) / q
    for i in range(j, 0, -1):
        term *= mpmath.mpf(i) / (n - i + 1) * odds_down
        total += term
        if term < total * mpmath.mpf(10) ** -55:
            break
    return total


@functools.lru_cache(maxsize=None)
def exact_complement(k, n, alpha):
    """q = 1 - BetaInv(alpha; k, n - k + 1): the root of P(Binomial(n, q) <= n - k) = alpha.

    That is 1 minus the Clopper-Pearson lower bound at level alpha of k successes in n (and, at
    k -> n - k, the upper bound of k). Newton's method at 60 digits from statsmodels' float
    value, bisecting (in log q) whenever a step leaves the bracket the signs so far give; then
    checked on the exact binomial cdf: it must cross alpha within 1e-35 relative either side of q.
    """
    with mpmath.workdps(60):
        alpha = mpmath.mpf(alpha)
        low = -mpmath.expm1(mpmath.log(alpha) / n)  # the root at k = n, the smallest for any k
        if k == 0:
            return mpmath.mpf(1)
        if k == n:
            return low
        j, high = n - k, mpmath.mpf(1)
        log_binom = mpmath.loggamma(n) - mpmath.loggamma(j + 1) - mpmath.loggamma(n - j)
        q = mpmath.mpf(float(proportion_confint(j, n, alpha=2 * float(alpha), method="beta")[1]))
        if not low < q < high:
            q = mpmath.sqrt(low * high)
        for _ in range(300):
            excess = exact_binomial_cdf(j, n, q) - alpha
            low, high = (q, high) if excess > 0 else (low, q)
            # d/dq P(Binomial(n, q) <= j) = -n P(Binomial(n - 1, q) = j)
            slope = n * mpmath.exp(log_binom + j * mpmath.log(q) + (n - 1 - j) * mpmath.log1p(-q))
            following = q + excess / slope
            if not low < following < high:
                following = mpmath.sqrt(low * high)
            done = abs(following - q) < q * mpmath.mpf(10) ** -45
            q = following
            if done:
                break
        tolerance = mpmath.mpf(10) ** -35
        assert exact_binomial_cdf(j, n, q * (1 - tolerance)) > alpha > exact_binomial_cdf(j, n, q * (1 + tolerance))
        return q


def exact_upper_quantile(q):
    """x with P(Z > x) = q for Z ~ N(0, 1), to 45 digits: PhiInv(1 - q) without forming 1 - q."""
    with mpmath.workdps(60):
        q = mpmath.mpf(q)
        x = mpmath.mpf(float(norm.isf(float(q))))
        for _ in range(50):
            step = (mpmath.ncdf(-x) - q) / mpmath.npdf(x)
            x += step
            if abs(step) < mpmath.mpf(10) ** -45 * max(1, abs(x)):
                return x
        raise AssertionError("no convergence")
