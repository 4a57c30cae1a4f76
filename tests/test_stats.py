"""Tests of rsengine.stats against independent oracles and exact hand values."""
import doctest
import itertools
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from scipy.stats import beta, binom, binomtest, norm
from statsmodels.stats.proportion import proportion_confint

import rsengine.stats
from rsengine.stats import (
    ABSTAIN,
    binomial_pvalue,
    certify_from_counts,
    clopper_pearson_lower,
    floor_significant,
    max_radius,
    predict_from_counts,
    radius,
)
from exact_binomial import exact_complement, exact_upper_quantile

ALPHAS = [1e-6, 0.001, 0.05, 0.3]
TRIALS = [1, 2, 3, 10, 57, 1000, 100_000]
SIGMAS = [0.12, 0.25, 0.5, 1.0]
# The most a radius may fall below the exact one, in units of sigma: the module's margin widens
# q = 1 - p_lower by 1e-9 relative (plus at most 2.7e-11 of float error), which moves
# sigma * PhiInv(1 - q) by at most 1.027e-9 * q / phi(PhiInv(1 - q)) <= 1.29e-9 sigma.
RADIUS_SHORTFALL = 1.3e-9


def _successes(n):
    """Every k for small n; otherwise both ends, the middle and an even spread."""
    if n <= 60:
        return np.arange(n + 1)
    spread = np.linspace(0, n, 41).astype(np.int64)
    return np.unique(np.r_[0, 1, 2, n // 2, spread, n - 2, n - 1, n])


def _exact_pvalue(n_a, n_b):
    """Exact two-sided p-value at 1/2 in rational arithmetic: min(1, 2 * P(X <= min))."""
    total = n_a + n_b
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(n_a, n_b) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**total)))


def _exact_radius(k, n, alpha, sigma):
    """sigma * PhiInv(p_exact) for the exact Clopper-Pearson bound p_exact, and its complement."""
    q = exact_complement(k, n, alpha)
    return float(sigma * exact_upper_quantile(q)), q


def test_module_doctests():
    result = doctest.testmod(rsengine.stats)
    assert result.attempted > 0
    assert result.failed == 0


# --- clopper_pearson_lower ------------------------------------------------------------------


@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("n", TRIALS, ids=lambda n: f"n={n}")
def test_clopper_pearson_lower_matches_statsmodels(n, alpha):
    k = _successes(n)
    # statsmodels' alpha is two-sided: its lower end at 2 * alpha is our one-sided bound.
    expected = proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]
    got = clopper_pearson_lower(k, n, alpha)
    assert got.dtype == np.float64 and got.shape == k.shape
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("n", TRIALS, ids=lambda n: f"n={n}")
def test_clopper_pearson_lower_solves_binomial_tail(n, alpha):
    # Independent of the inverse beta: the bound is the p at which P(Binom(n, p) >= k) = alpha,
    # and that tail grows with p, so it must cross alpha within a hair either side of the bound.
    # 1e-9 relative in p because binom.sf is itself only accurate to ~1e-12 absolute.
    k = _successes(n)
    k = k[k > 0]
    bound = clopper_pearson_lower(k, n, alpha)
    below = binom.sf(k - 1, n, bound * (1 - 1e-9))
    above = binom.sf(k - 1, n, np.minimum(bound * (1 + 1e-9), 1.0))
    assert np.all(below < alpha)
    assert np.all(above > alpha)


@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("n", TRIALS, ids=lambda n: f"n={n}")
def test_clopper_pearson_lower_edges(n, alpha):
    assert clopper_pearson_lower(0, n, alpha) == 0.0
    at_n = clopper_pearson_lower(n, n, alpha)
    assert at_n <= alpha ** (1 / n)
    assert at_n == pytest.approx(alpha ** (1 / n), rel=1e-15)
    bounds = clopper_pearson_lower(_successes(n), n, alpha)
    assert np.all(bounds <= alpha ** (1 / n))
    assert np.all(np.diff(bounds) >= 0), "the bound must grow with the number of successes"


@pytest.mark.parametrize("alpha", [0.9999999, 1 - 2**-53], ids=["alpha=0.9999999", "alpha=1-2^-53"])
@pytest.mark.parametrize("n", [10, 100_000, 2**31 - 1], ids=lambda n: f"n={n}")
def test_clopper_pearson_lower_stays_below_one_where_the_ceiling_rounds_to_one(n, alpha):
    bounds = clopper_pearson_lower(_successes(n), n, alpha)
    assert bounds[0] == 0.0
    assert np.all(np.diff(bounds) >= 0)
    assert np.all(bounds < 1.0) and np.all(bounds <= alpha ** (1 / n))


@pytest.mark.parametrize("alpha", [1e-6, 0.001, 0.05, 0.5, 0.9], ids=lambda a: f"alpha={a:g}")
def test_clopper_pearson_lower_one_trial_is_alpha(alpha):
    assert clopper_pearson_lower(1, 1, alpha) == alpha


def test_clopper_pearson_lower_scalar_and_broadcast():
    assert type(clopper_pearson_lower(3, 10, 0.05)) is float
    assert type(clopper_pearson_lower(np.int64(3), np.int32(10), np.float64(0.05))) is float
    k = np.array([[0], [3], [7]])
    n = np.array([7, 10])
    alpha = np.array([0.001, 0.05])
    got = clopper_pearson_lower(k, n, alpha)
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert got[i, j] == clopper_pearson_lower(int(k[i, 0]), int(n[j]), float(alpha[j]))


@pytest.mark.parametrize(
    "p, n, alpha",
    [(0.7, 50, 0.05), (0.5, 50, 0.05), (0.1, 50, 0.01), (0.97, 200, 0.001), (0.3, 1, 0.05)],
    ids=["p=0.7-n=50-alpha=0.05", "p=0.5-n=50-alpha=0.05", "p=0.1-n=50-alpha=0.01",
         "p=0.97-n=200-alpha=0.001", "p=0.3-n=1-alpha=0.05"],
)
def test_clopper_pearson_lower_coverage_is_exact(p, n, alpha):
    # Exact, no simulation: sum the binomial mass of every k whose bound overshoots p.
    k = np.arange(n + 1)
    overshoots = clopper_pearson_lower(k, n, alpha) > p
    miscoverage = binom.pmf(k[overshoots], n, p).sum()
    assert miscoverage <= alpha


# --- binomial_pvalue ------------------------------------------------------------------------

PVALUE_PAIRS = [
    (0, 1), (1, 0), (1, 1), (5, 5), (6, 5), (5, 6), (10, 0), (0, 10), (7, 3), (17, 18),
    (49, 50), (12, 10), (1000, 900), (900, 1000), (1000, 1000), (1001, 1000),
    (50_000, 49_000), (60_000, 39_999), (99_990, 10), (100_000, 0),
]


@pytest.mark.parametrize("n_a, n_b", PVALUE_PAIRS, ids=lambda v: str(v))
def test_binomial_pvalue_equals_binomtest(n_a, n_b):
    expected = binomtest(n_a, n_a + n_b, 0.5).pvalue
    got = binomial_pvalue(n_a, n_b)
    assert type(got) is float
    assert got == expected


def test_binomial_pvalue_equals_binomtest_on_a_dense_grid():
    a, b = np.meshgrid(np.arange(41), np.arange(41), indexing="ij")
    a, b = a.ravel()[1:], b.ravel()[1:]  # (0, 0) is not a test binomtest accepts
    expected = [binomtest(int(x), int(x + y), 0.5).pvalue for x, y in zip(a, b)]
    np.testing.assert_array_equal(binomial_pvalue(a, b), expected)


@pytest.mark.parametrize(
    "n_a, n_b", [p for p in PVALUE_PAIRS if sum(p) <= 2000], ids=lambda v: str(v)
)
def test_binomial_pvalue_matches_rational_arithmetic(n_a, n_b):
    # Different routes to the binomial tail differ by tens of ulp on tiny p-values.
    assert binomial_pvalue(n_a, n_b) == pytest.approx(_exact_pvalue(n_a, n_b), rel=1e-12)


def test_binomial_pvalue_no_trials_is_one():
    assert binomial_pvalue(0, 0) == 1.0


@pytest.mark.parametrize("n_a, n_b", [(17, 18), (49, 50), (60, 61), (500, 500)], ids=str)
def test_binomial_pvalue_is_exactly_one_when_counts_differ_by_at_most_one(n_a, n_b):
    # 2 * cdf lands a few ulp under 1 here; the p-value must be exactly 1 as in binomtest.
    assert binomial_pvalue(n_a, n_b) == 1.0
    assert binomial_pvalue(n_b, n_a) == 1.0


def test_binomial_pvalue_broadcasts():
    got = binomial_pvalue(np.array([[10], [3]]), np.array([0, 3, 10]))
    assert got.shape == (2, 3) and got.dtype == np.float64
    assert got[0, 0] == binomtest(10, 10, 0.5).pvalue
    assert got[1, 1] == 1.0


# --- radius and max_radius ------------------------------------------------------------------


def test_max_radius_paper_setting():
    # mpmath at 50 digits: sqrt(2) * erfinv(2 * 0.001 ** (1 / 100000) - 1).
    assert max_radius(1, 100_000, 0.001) == pytest.approx(3.8115, abs=1e-3)
    assert max_radius(1, 100_000, 0.001) == pytest.approx(3.81145656338995189, rel=1e-12)
    assert max_radius(0.25, 100_000, 0.001) == pytest.approx(0.25 * 3.81145656338995189)


@pytest.mark.parametrize("alpha", [*ALPHAS, 0.5, 0.999999], ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("n", [*TRIALS, 9, 10, 2**53], ids=lambda n: f"n={n}")
def test_can_certify_is_max_radius_above_zero(n, alpha):
    # The CLI's warning asks can_certify instead of max_radius (no scipy import at start-up).
    assert rsengine.stats.can_certify(n, alpha) == (max_radius(1.0, n, alpha) > 0)


def test_can_certify_at_its_edge():
    # alpha ** (1/n) = 2 ** (-10/n) at alpha = 2**-10: 1/2 itself at n = 10 (a bound of 1/2 certifies
    # nothing), below it at n = 9, above it at n = 11.
    alpha = 2.0**-10
    assert not rsengine.stats.can_certify(10, alpha) and not rsengine.stats.can_certify(9, alpha)
    assert rsengine.stats.can_certify(11, alpha)


@pytest.mark.parametrize("sigma", [0.12, 0.25, 1.0], ids=lambda s: f"sigma={s}")
@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("n", TRIALS, ids=lambda n: f"n={n}")
def test_radius_never_above_max_radius(n, alpha, sigma):
    radii = radius(clopper_pearson_lower(_successes(n), n, alpha), sigma)
    assert np.all(radii < max_radius(sigma, n, alpha))


def test_radius_rounds_down_by_at_most_the_margin():
    p = np.array([0.5000001, 0.6, 0.75, 0.99, 0.9999309, 1 - 2**-50])
    # 1 - p is exact in float64 for p >= 1/2, so mpmath gets the float's own complement.
    exact = np.array([0.37 * float(exact_upper_quantile(1 - mpmath.mpf(x))) for x in p])
    got = radius(p, 0.37)
    assert np.all(got < exact)
    assert np.all(exact - got <= RADIUS_SHORTFALL * 0.37)


def test_radius_exact_points():
    assert radius(0.5, 1.0) == 0.0
    assert radius(np.nextafter(0.5, 1.0), 1.0) == 0.0  # within the margin above 1/2
    assert radius(0.0, 1.0) == -math.inf
    assert radius(0.25, 2.0) < 0.0
    assert type(radius(0.9, 1.0)) is float
    assert radius([0.5, 0.9], 1.0).shape == (2,)


def _first_certified_count(n, alpha):
    """Smallest k whose complement beta.isf(alpha, n - k + 1, k) is below 1/2, by bisection
    (the complement decreases in k; k = n certifies for the n and alpha used here)."""
    abstains, certifies = 0, n
    while certifies - abstains > 1:
        middle = (abstains + certifies) // 2
        if beta.isf(alpha, n - middle + 1, middle) < 0.5:
            certifies = middle
        else:
            abstains = middle
    return certifies


def _grid_cases():
    """(k, n, alpha, sigma): k = n, n - 1, n - 10 over n and alpha, then the two counts either
    side of the exact certify/abstain threshold; sigma cycles through SIGMAS."""
    trials = [10, 57, 1000, 100_000, 10**7, 2**31 - 1]
    alphas = [1e-10, 0.001, 0.05, 0.5, 0.9999999]
    near_n = [(n - offset, n, alpha) for n, alpha, offset in
              itertools.product(trials, alphas, [0, 1, 10])]
    at_threshold = []
    for n, alpha in itertools.product([10, 57, 1000, 100_000], [0.001, 0.3]):
        first = _first_certified_count(n, alpha)
        at_threshold += [(first - 1, n, alpha), (first, n, alpha)]
    cases = [case for case in dict.fromkeys(near_n + at_threshold) if case[0] >= 1]
    return [
        pytest.param(k, n, alpha, sigma, id=f"k={k}-n={n}-alpha={alpha:.10g}-sigma={sigma}")
        for (k, n, alpha), sigma in zip(cases, itertools.cycle(SIGMAS))
    ]


@pytest.mark.parametrize("k, n, alpha, sigma", _grid_cases())
def test_radii_are_at_most_the_exact_radius(k, n, alpha, sigma):
    exact, q = _exact_radius(k, n, alpha, sigma)
    assert not 0.5 - 1e-9 < q < 0.5, "inside the margin the decision may go either way"
    pred, rad = certify_from_counts([4], [k], n, alpha, sigma)
    composed = radius(clopper_pearson_lower(k, n, alpha), sigma)
    assert composed <= exact
    if q < 0.5:
        assert pred.tolist() == [4]
        assert composed <= rad[0] <= exact
        assert exact - rad[0] <= RADIUS_SHORTFALL * sigma
        assert rad[0] < max_radius(sigma, n, alpha)
    else:
        assert pred.tolist() == [ABSTAIN] and rad.tolist() == [0.0]


@pytest.mark.parametrize(
    "n, alpha, truth",
    [(10, 1 - 2**-53, 8.4816), (2**31 - 1, 0.9999999, 8.3132)],
    ids=["alpha=1-2^-53-n=10", "alpha=0.9999999-n=2^31-1"],
)
def test_certify_from_counts_is_finite_where_the_bound_rounds_to_one(n, alpha, truth):
    # alpha ** (1/n) rounds to 1.0 here, which used to certify an infinite radius.
    exact, _ = _exact_radius(n, n, alpha, 1.0)
    assert exact == pytest.approx(truth, abs=1e-4)
    pred, rad = certify_from_counts([0], [n], n, alpha, 1.0)
    assert pred.tolist() == [0]
    assert 0.0 <= exact - rad[0] <= RADIUS_SHORTFALL
    assert rad[0] < max_radius(1.0, n, alpha) < math.inf
    p_lower = clopper_pearson_lower(n, n, alpha)
    assert p_lower < 1.0
    assert radius(p_lower, 1.0) <= exact


def test_certify_from_counts_where_beta_isf_fails():
    # SciPy 1.17's beta.isf returns 2^-26 here, six times the root, and the Newton step cannot
    # recover from there: the complement is found by bisection instead.
    n, k, alpha = 415_532_737_055, 415_532_737_055 - 999, 0.18329473474064084
    exact, _ = _exact_radius(k, n, alpha, 0.5)
    pred, rad = certify_from_counts([2], [k], n, alpha, 0.5)
    assert pred.tolist() == [2]
    assert 0.0 <= exact - rad[0] <= RADIUS_SHORTFALL * 0.5


# --- certify_from_counts --------------------------------------------------------------------


def test_certify_from_counts_matches_the_paper():
    n, alpha, sigma = 100_000, 0.001, 0.5
    c_hat = np.array([0, 4, 9, 2, 7])
    n_a = np.array([0, 40_000, 50_000, 99_000, 100_000])
    pred, rad = certify_from_counts(c_hat, n_a, n, alpha, sigma)
    assert pred.dtype == np.int64 and rad.dtype == np.float64
    p_lower = clopper_pearson_lower(n_a, n, alpha)
    expected_pred = np.where(p_lower < 0.5, ABSTAIN, c_hat)
    expected_rad = np.where(p_lower < 0.5, 0.0, radius(p_lower, sigma))
    np.testing.assert_array_equal(pred, expected_pred)
    # certify_from_counts works from q = 1 - p_lower, so it skips the rounding of p_lower, which
    # costs radius() up to 1.1e-16 in q: 1e-13 relative at n_A = n here.
    assert np.all(rad >= expected_rad)
    np.testing.assert_allclose(rad, expected_rad, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(pred, [ABSTAIN, ABSTAIN, ABSTAIN, 2, 7])
    assert rad[4] < max_radius(sigma, n, alpha)


def test_certify_from_counts_abstains_exactly_below_one_half():
    n, alpha = 100_000, 0.001
    k = np.arange(50_000, 51_500)
    p_lower = clopper_pearson_lower(k, n, alpha)
    first = int(np.argmax(p_lower > 0.5))
    assert 0 < first < k.size - 1, "the threshold must lie inside the scanned range"
    pred, rad = certify_from_counts(np.full(k.size, 3), k, n, alpha, 1.0)
    assert np.all(pred[:first] == ABSTAIN) and np.all(rad[:first] == 0.0)
    assert np.all(pred[first:] == 3) and np.all(rad[first:] > 0.0)
    assert p_lower[first - 1] <= 0.5 < p_lower[first]


@pytest.mark.parametrize(
    "alpha, expected_pred",
    [(0.5, ABSTAIN), (np.nextafter(0.5, 0.0), ABSTAIN), (np.nextafter(0.5, 1.0), ABSTAIN),
     (0.5 + 1e-8, 1)],
    ids=["p_lower=0.5", "p_lower-just-below-0.5", "p_lower-within-the-margin-above-0.5",
         "p_lower-past-the-margin-above-0.5"],
)
def test_certify_from_counts_boundary_at_one_half(alpha, expected_pred):
    # n = 1, k = 1 makes p_lower = alpha exactly, so the boundary can be hit on the dot.
    assert clopper_pearson_lower(1, 1, alpha) == alpha
    pred, rad = certify_from_counts([1], [1], 1, alpha, 1.0)
    assert pred.tolist() == [expected_pred]
    if expected_pred == ABSTAIN:
        # p_lower = 1/2 does not prove p_A > 1/2: abstain (the paper); nor does a p_lower above
        # 1/2 by less than the margin that covers the float error of the bound.
        assert rad.tolist() == [0.0]
    else:
        assert 0.0 < norm.ppf(alpha) - rad[0] <= RADIUS_SHORTFALL


def test_certify_from_counts_empty():
    pred, rad = certify_from_counts(np.zeros(0, np.int64), np.zeros(0, np.int64), 10, 0.1, 1.0)
    assert pred.shape == rad.shape == (0,)
    assert pred.dtype == np.int64 and rad.dtype == np.float64


# --- predict_from_counts --------------------------------------------------------------------


def _reference_predict(counts, alpha):
    """The paper's PREDICT on one row, written plainly with scipy.stats.binomtest."""
    order = np.argsort(-counts, kind="stable")
    n_a = int(counts[order[0]])
    n_b = int(counts[order[1]]) if counts.size > 1 else 0
    if n_a + n_b == 0 or binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(order[0])


@pytest.mark.parametrize(
    "counts, alpha, expected",
    [
        ([[5, 5, 0]], 0.999, [ABSTAIN]),
        ([[0, 7, 7, 0]], 0.999, [ABSTAIN]),
        ([[100, 0]], 0.001, [0]),
        ([[0, 100]], 0.001, [1]),
        ([[10, 5]], 0.05, [ABSTAIN]),
        ([[1, 7, 7, 30]], 0.001, [3]),
        ([[10]], 0.01, [0]),
        ([[3]], 0.05, [ABSTAIN]),
        ([[0]], 0.5, [ABSTAIN]),
        ([[0, 90, 10], [40, 60, 0], [5, 5, 0]], 0.001, [1, ABSTAIN, ABSTAIN]),
    ],
    ids=["tie-at-top", "tie-in-the-middle", "K=2-first", "K=2-second", "K=2-abstain",
         "tie-below-top", "K=1-predict", "K=1-abstain", "K=1-no-votes", "batch"],
)
def test_predict_from_counts_cases(counts, alpha, expected):
    got = predict_from_counts(counts, alpha)
    assert got.dtype == np.int64
    assert got.tolist() == expected


def test_predict_from_counts_pvalue_equal_to_alpha_predicts():
    pvalue = binomial_pvalue(60, 40)
    assert predict_from_counts([[40, 60]], pvalue).tolist() == [1]
    assert predict_from_counts([[40, 60]], np.nextafter(pvalue, 0.0)).tolist() == [ABSTAIN]


@pytest.mark.parametrize("num_classes", [2, 10, 1000], ids=lambda k: f"K={k}")
def test_predict_from_counts_matches_reference(num_classes):
    rng = np.random.default_rng(num_classes)
    m, n = 60, 1000
    favourite = rng.integers(0, num_classes, size=m)
    strength = rng.uniform(0.0, 0.2, size=m)
    probs = rng.dirichlet(np.ones(num_classes), size=m) * (1 - strength[:, None])
    probs[np.arange(m), favourite] += strength
    counts = np.stack([rng.multinomial(n, p) for p in probs])
    counts[0] = 0
    counts[0, -2:] = n // 2  # a tie at the top
    for alpha in (0.001, 0.05):
        expected = [_reference_predict(row, alpha) for row in counts]
        got = predict_from_counts(counts, alpha)
        assert got.tolist() == expected
        assert ABSTAIN in expected and any(e != ABSTAIN for e in expected)


def test_predict_from_counts_empty():
    got = predict_from_counts(np.zeros((0, 10), np.int64), 0.01)
    assert got.shape == (0,) and got.dtype == np.int64


# --- floor_significant ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, digits, expected",
    [
        (0.4568, 3, 0.456),
        (1.0, 3, 1.0),
        (0.0, 3, 0.0),
        (3.8099, 3, 3.80),
        (0.456, 3, 0.456),
        (0.1 + 0.2, 3, 0.3),
        (0.45599999999999996, 3, 0.455),
        (0.999999, 3, 0.999),
        (9.9999, 2, 9.9),
        (123456.0, 3, 123000.0),
        (7.0, 1, 7.0),
        (0.000123456, 2, 0.00012),
        (3, 3, 3.0),
        (np.float64(0.57268), 3, 0.572),
    ],
    ids=lambda v: repr(v),
)
def test_floor_significant_cases(x, digits, expected):
    got = floor_significant(x, digits)
    assert type(got) is float
    assert got == expected


@pytest.mark.parametrize("exponent", [-5, -1, 0, 2], ids=lambda e: f"1e{e}")
def test_floor_significant_keeps_every_three_digit_decimal(exponent):
    for mantissa in range(100, 1000):
        value = float(f"{mantissa}e{exponent - 2}")
        assert floor_significant(value) == value


def test_floor_significant_never_rounds_up():
    rng = np.random.default_rng(0)
    for x in 10.0 ** rng.uniform(-6, 3, size=2000):
        got = floor_significant(float(x))
        assert got <= x
        assert x - got < 10.0 ** (math.floor(math.log10(x)) - 2)


# --- argument validation --------------------------------------------------------------------

BAD_ARGUMENTS = [
    ("cp-alpha=0", clopper_pearson_lower, (3, 10, 0.0), ValueError, "alpha"),
    ("cp-alpha=1", clopper_pearson_lower, (3, 10, 1.0), ValueError, "alpha"),
    ("cp-alpha=nan", clopper_pearson_lower, (3, 10, math.nan), ValueError, "alpha"),
    ("cp-alpha=1.5", clopper_pearson_lower, (3, 10, 1.5), ValueError, "alpha"),
    ("cp-alpha-array", clopper_pearson_lower, (3, 10, [0.05, 1.5]), ValueError, "alpha"),
    ("cp-alpha-array-nan", clopper_pearson_lower, (3, 10, np.array([math.nan])), ValueError,
     "alpha"),
    ("cp-alpha-str", clopper_pearson_lower, (3, 10, "0.05"), TypeError, "alpha"),
    ("cp-k>n", clopper_pearson_lower, (11, 10, 0.05), ValueError, "n_success"),
    ("cp-k>n-array", clopper_pearson_lower, ([3, 11], 10, 0.05), ValueError, "n_success"),
    ("cp-k<0", clopper_pearson_lower, (-1, 10, 0.05), ValueError, "n_success"),
    ("cp-k<0-array", clopper_pearson_lower, (np.array([2, -1]), 10, 0.05), ValueError,
     "n_success"),
    ("cp-k-float", clopper_pearson_lower, (2.5, 10, 0.05), TypeError, "n_success"),
    ("cp-k-float-array", clopper_pearson_lower, ([1.0, 2.0], 10, 0.05), TypeError, "n_success"),
    ("cp-k-bool", clopper_pearson_lower, (True, 10, 0.05), TypeError, "n_success"),
    ("cp-n=0", clopper_pearson_lower, (0, 0, 0.05), ValueError, "n_trials"),
    ("cp-n-array<1", clopper_pearson_lower, (0, [5, 0], 0.05), ValueError, "n_trials"),
    ("cp-n-float", clopper_pearson_lower, (3, 10.0, 0.05), TypeError, "n_trials"),
    ("cp-n>2^53", clopper_pearson_lower, (3, [10, 2**53 + 1], 0.05), ValueError, "n_trials"),
    ("pvalue-negative", binomial_pvalue, (-1, 3), ValueError, "n_a"),
    ("pvalue-negative-array", binomial_pvalue, (3, [1, -3]), ValueError, "n_b"),
    ("pvalue-float", binomial_pvalue, (3.0, 3), TypeError, "n_a"),
    ("pvalue-float-array", binomial_pvalue, (3, np.array([1.5])), TypeError, "n_b"),
    ("radius-sigma=0", radius, (0.9, 0.0), ValueError, "sigma"),
    ("radius-sigma<0", radius, (0.9, -0.25), ValueError, "sigma"),
    ("radius-sigma=nan", radius, (0.9, math.nan), ValueError, "sigma"),
    ("radius-sigma=inf", radius, (0.9, math.inf), ValueError, "sigma"),
    ("radius-sigma-str", radius, (0.9, "0.25"), TypeError, "sigma"),
    ("radius-p>1", radius, (1.5, 0.25), ValueError, "p_lower"),
    ("radius-p=1", radius, (1.0, 0.25), ValueError, "p_lower"),
    ("radius-p-array=1", radius, ([0.9, 1.0], 0.25), ValueError, "p_lower"),
    ("radius-p<0", radius, (-0.1, 0.25), ValueError, "p_lower"),
    ("radius-p=nan", radius, (math.nan, 0.25), ValueError, "p_lower"),
    ("radius-p-array-nan", radius, ([0.9, math.nan], 0.25), ValueError, "p_lower"),
    ("radius-p-str", radius, ("0.9", 0.25), TypeError, "p_lower"),
    ("max-sigma=0", max_radius, (0.0, 100, 0.001), ValueError, "sigma"),
    ("max-sigma=inf", max_radius, (math.inf, 100, 0.001), ValueError, "sigma"),
    ("max-n=0", max_radius, (1.0, 0, 0.001), ValueError, "n"),
    ("max-n-float", max_radius, (1.0, 100.0, 0.001), TypeError, "n"),
    ("max-n>2^53", max_radius, (1.0, 2**53 + 1, 0.001), ValueError, "n"),
    ("max-alpha=1", max_radius, (1.0, 100, 1.0), ValueError, "alpha"),
    ("certify-n_a>n", certify_from_counts, ([0], [11], 10, 0.05, 1.0), ValueError, "n_a"),
    ("certify-n_a<0", certify_from_counts, ([0], [-1], 10, 0.05, 1.0), ValueError, "n_a"),
    ("certify-n_a-float", certify_from_counts, ([0], [5.0], 10, 0.05, 1.0), TypeError, "n_a"),
    ("certify-shape", certify_from_counts, ([0, 1], [5], 10, 0.05, 1.0), ValueError, "n_a"),
    ("certify-c_hat<0", certify_from_counts, ([-1], [5], 10, 0.05, 1.0), ValueError, "c_hat"),
    ("certify-c_hat-2d", certify_from_counts, ([[0]], [[5]], 10, 0.05, 1.0), ValueError,
     "c_hat"),
    ("certify-c_hat-float", certify_from_counts, ([0.0], [5], 10, 0.05, 1.0), TypeError,
     "c_hat"),
    ("certify-n=0", certify_from_counts, ([0], [0], 0, 0.05, 1.0), ValueError, "n"),
    ("certify-n>2^53", certify_from_counts, ([0], [5], 2**53 + 1, 0.05, 1.0), ValueError, "n"),
    ("certify-alpha=0", certify_from_counts, ([0], [5], 10, 0.0, 1.0), ValueError, "alpha"),
    ("certify-alpha=nan", certify_from_counts, ([0], [5], 10, math.nan, 1.0), ValueError,
     "alpha"),
    ("certify-sigma=0", certify_from_counts, ([0], [5], 10, 0.05, 0.0), ValueError, "sigma"),
    ("certify-sigma=nan", certify_from_counts, ([0], [5], 10, 0.05, math.nan), ValueError,
     "sigma"),
    ("certify-sigma=inf", certify_from_counts, ([0], [5], 10, 0.05, math.inf), ValueError,
     "sigma"),
    ("predict-1d", predict_from_counts, ([5, 3], 0.05), ValueError, "counts"),
    ("predict-K=0", predict_from_counts, (np.zeros((3, 0), np.int64), 0.05), ValueError,
     "counts"),
    ("predict-negative", predict_from_counts, ([[5, -3]], 0.05), ValueError, "counts"),
    ("predict-float", predict_from_counts, ([[5.0, 3.0]], 0.05), TypeError, "counts"),
    ("predict-alpha=1", predict_from_counts, ([[5, 3]], 1.0), ValueError, "alpha"),
    ("predict-alpha=1.5", predict_from_counts, ([[5, 3]], 1.5), ValueError, "alpha"),
    ("floor-negative", floor_significant, (-0.5,), ValueError, "x"),
    ("floor-nan", floor_significant, (math.nan,), ValueError, "x"),
    ("floor-inf", floor_significant, (math.inf,), ValueError, "x"),
    ("floor-str", floor_significant, ("0.5",), TypeError, "x"),
    ("floor-digits=0", floor_significant, (0.5, 0), ValueError, "digits"),
    ("floor-digits-float", floor_significant, (0.5, 2.0), TypeError, "digits"),
]


@pytest.mark.parametrize(
    "function, args, error, name",
    [pytest.param(*case[1:], id=case[0]) for case in BAD_ARGUMENTS],
)
def test_bad_arguments_raise_naming_the_argument(function, args, error, name):
    with pytest.raises(error, match=f"^Expected `{name}` "):
        function(*args)
