"""Tests of rsengine.certificates against mpmath, statsmodels and classifiers known in closed form."""
import doctest

import mpmath
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binom, norm
from statsmodels.stats.proportion import proportion_confint

import rsengine.certificates
from rsengine.certificates import NORMS, certify_one_sided, certify_top_k, certify_two_sided
from rsengine.kernels.contract import NOISES, noise_scale
from rsengine.stats import ABSTAIN, certify_from_counts
from exact_binomial import exact_complement, exact_upper_quantile

# A radius must lie between the exact radius of the exact bounds and the exact radius of bounds
# widened by this much relative: the module's margin 1e-9 plus the complements' error (2.7e-11,
# rsengine.stats), plus a hair.
WIDENING = 1.03e-9


def _scale(noise, sigma):
    return sigma if noise == "gaussian" else noise_scale(noise, sigma)


def _allowed_failures(trials, rate):
    # Failure counts above this have probability < 1e-6 when the true failure rate is `rate`.
    return int(binom.ppf(1.0 - 1e-6, trials, rate))


# --- exact oracles (mpmath, 60 digits) -------------------------------------------------------


def _exact_radius(noise, scale, q_a, p_b, widen=0.0):
    """The two-sided radius of pA = 1 - q_a, pB = p_b (one-sided: p_b = q_a), both widened by widen."""
    with mpmath.workdps(60):
        scale = mpmath.mpf(scale)
        q_a, p_b = q_a * (1 + mpmath.mpf(widen)), p_b * (1 + mpmath.mpf(widen))
        if noise == "gaussian":
            return float(scale / 2 * (exact_upper_quantile(q_a) + exact_upper_quantile(p_b)))
        if noise == "laplace":
            return float(scale * max(mpmath.log((1 - q_a) / p_b) / 2, -mpmath.log(q_a + p_b)))
        return float(scale * (1 - q_a - p_b))


def _exact_top_k_radius(votes, label, k, n, alpha, sigma, widen=0.0):
    """Jia et al.'s R_l from the exact bounds (widened by widen), with the module's split.

    Upper bounds at alpha/(2(k+1)): only the k + 1 truly largest classes' must hold; k = 1 bounds
    only the runner-up, at alpha/2, as the two-sided certificate does.
    """
    uppers_budget = k + 1 if k > 1 else 1
    with mpmath.workdps(60):
        grow = 1 + mpmath.mpf(widen)
        q_l = exact_complement(votes[label], n, alpha / (2 * k)) * grow
        uppers = sorted((min(exact_complement(n - v, n, alpha / (2 * uppers_budget)) * grow, q_l)
                         for j, v in enumerate(votes) if j != label), reverse=True)[:k]
        a = exact_upper_quantile(q_l)
        best = mpmath.mpf(0)
        for u in range(1, k + 1):
            b = -exact_upper_quantile(min(sum(uppers[k - u:]), q_l))
            def excess(t):
                return mpmath.log(mpmath.ncdf(a - t)) - mpmath.log(mpmath.ncdf(b + t) / u)
            if excess(0) > 0:
                low, high = mpmath.mpf(0), mpmath.mpf(60)
                while high - low > mpmath.mpf(10) ** -40:
                    middle = (low + high) / 2
                    low, high = (middle, high) if excess(middle) > 0 else (low, middle)
                best = max(best, low)
        return float(sigma * best)


def _assert_rounded_down(got, exact, floor, scale):
    """A certificate where the exact radius is <= 0 would be false; else got lies in [floor, exact].

    floor is the exact radius of the widened bounds; uniform radii round down each of three
    operations (an ulp each), hence the 4 ulps of the scale.
    """
    assert got <= max(exact, 0.0), (got, exact)
    assert got >= floor - 4 * np.spacing(scale), (got, floor)


def test_module_doctests():
    result = doctest.testmod(rsengine.certificates)
    assert result.attempted > 0 and result.failed == 0


def test_norms_name_every_noise():
    assert NORMS == {"gaussian": "l2", "laplace": "l1", "uniform": "l1"}
    assert set(NORMS) == set(NOISES)


# --- one-sided ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1e-6, 0.001, 0.3], ids=lambda a: f"alpha={a:g}")
@pytest.mark.parametrize("n", [1, 10, 1000, 100_000, 10**12], ids=lambda n: f"n={n}")
def test_gaussian_one_sided_is_certify_from_counts_bit_for_bit(n, alpha):
    rng = np.random.default_rng(n)
    votes = np.r_[rng.integers(0, n + 1, size=300), 0, n, n - 1, n // 2 + 1]
    classes = rng.integers(0, 10, size=votes.size)
    for sigma in (0.12, 0.5, 1.0):
        pred, rad = certify_one_sided(classes, votes, n, alpha, sigma)
        expected_pred, expected_rad = certify_from_counts(classes, votes, n, alpha, sigma)
        assert pred.dtype == np.int64 and rad.dtype == np.float64
        np.testing.assert_array_equal(pred, expected_pred)
        assert rad.tobytes() == expected_rad.tobytes()


# (n, n_a): both ends, the smallest certifiable counts above n/2 and n near 2**53.
ONE_SIDED_GRID = [
    (1, 1), (7, 4), (7, 6), (7, 7), (100, 51), (100, 80), (100, 99), (100, 100),
    (100_000, 50_001), (100_000, 50_600), (100_000, 75_000), (100_000, 99_999), (100_000, 100_000),
    (10**6, 500_001), (10**6, 501_700), (10**6, 10**6 - 1),
    (10**12, 10**12 - 1000), (10**12, 10**12 - 1), (10**12, 10**12), (2**53, 2**53 - 5), (2**53, 2**53),
]


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("alpha", [0.001, 0.05], ids=lambda a: f"alpha={a:g}")
def test_one_sided_is_the_exact_radius_rounded_down(noise, alpha):
    sigma = 0.37
    scale = _scale(noise, sigma)
    for n, n_a in ONE_SIDED_GRID:
        pred, rad = certify_one_sided([3], [n_a], n, alpha, sigma, noise)
        q = exact_complement(n_a, n, alpha)
        _assert_rounded_down(rad[0], _exact_radius(noise, scale, q, q),
                             _exact_radius(noise, scale, q, q, WIDENING), scale)
        assert pred[0] == (3 if rad[0] > 0 else ABSTAIN)


def test_uniform_radii_round_down_where_the_margin_is_below_an_ulp():
    # q ~ 1e-12 to 1e-15: the margin moves lam (1 - 2q) by ~1e-24, far below an ulp of lam, so
    # only rounding each operation down keeps the radius at or below the exact one.
    for n in (10**12, 3 * 10**12, 10**13, 10**14, 10**15):
        for n_a in (n, n - 1, n - 2):
            for sigma in (0.12, 0.25, 0.37, 0.5, 1.0):
                scale = noise_scale("uniform", sigma)
                rad = certify_one_sided([0], [n_a], n, 0.001, sigma, "uniform")[1][0]
                q = exact_complement(n_a, n, 0.001)
                _assert_rounded_down(rad, _exact_radius("uniform", scale, q, q),
                                     _exact_radius("uniform", scale, q, q, WIDENING), scale)


def test_one_sided_closed_forms_at_all_votes():
    # n_a = n: pA = alpha^(1/n) exactly; the radii in closed form, float64.
    n, alpha, sigma = 100, 0.001, 0.5
    p = alpha ** (1 / n)
    b, lam = noise_scale("laplace", sigma), noise_scale("uniform", sigma)
    assert certify_one_sided([0], [n], n, alpha, sigma, "laplace")[1][0] == pytest.approx(
        -b * np.log(2 * (1 - p)), rel=1e-8)
    assert certify_one_sided([0], [n], n, alpha, sigma, "uniform")[1][0] == pytest.approx(
        2 * lam * (p - 0.5), rel=1e-8)


# --- two-sided ---------------------------------------------------------------------------------


def _row(n, n_a, n_b, num_classes):
    """A counts row [n_a, n_b, rest spread evenly], n_b the largest after n_a."""
    rest = n - n_a - n_b
    spread = [rest // (num_classes - 2) + (i < rest % (num_classes - 2)) for i in range(num_classes - 2)]
    assert max(spread, default=0) <= n_b
    return [n_a, n_b, *spread]


# (n, n_a, n_b, K): the cap at 1 - pA binding and not, pA below 1/2, extreme n.
TWO_SIDED_GRID = [
    (100, 60, 5, 10), (100, 45, 10, 10), (100, 90, 10, 2), (100_000, 60_000, 4_448, 10),
    (100_000, 40_000, 30_000, 3), (100_000, 99_990, 10, 4), (100_000, 50_600, 49_400, 2),
    (10**6, 501_700, 498_300, 2), (10**12, 10**12 - 10, 7, 5), (10**12, 10**12 - 3000, 2000, 3),
    (2**53, 2**53 - 2, 1, 3),
]


@pytest.mark.parametrize("noise", NOISES)
def test_two_sided_is_the_exact_radius_rounded_down(noise):
    alpha, sigma = 0.001, 0.8
    scale = _scale(noise, sigma)
    for n, n_a, n_b, num_classes in TWO_SIDED_GRID:
        pred, rad = certify_two_sided([0], [_row(n, n_a, n_b, num_classes)], n, alpha, sigma, noise)
        q_a = exact_complement(n_a, n, alpha / 2)
        p_b = min(exact_complement(n - n_b, n, alpha / 2), q_a)  # the runner-up's, at alpha/2
        _assert_rounded_down(rad[0], _exact_radius(noise, scale, q_a, p_b),
                             _exact_radius(noise, scale, q_a, p_b, WIDENING), scale)
        assert pred[0] == (0 if rad[0] > 0 else ABSTAIN)


@pytest.mark.parametrize("noise", NOISES)
def test_two_sided_with_the_cap_binding_is_one_sided_at_half_alpha(noise):
    # With K = 2 the runner-up's upper bound at alpha/2 is exactly 1 - pA's lower bound at alpha/2.
    n, alpha, sigma = 1000, 0.01, 0.25
    n_a = np.arange(n + 1)
    classes = np.ones_like(n_a)
    one_pred, one_rad = certify_one_sided(classes, n_a, n, alpha / 2, sigma, noise)
    two_pred, two_rad = certify_two_sided(classes, np.c_[n - n_a, n_a], n, alpha, sigma, noise)
    np.testing.assert_array_equal(two_pred, one_pred)
    assert two_rad.tobytes() == one_rad.tobytes()
    assert (one_pred == ABSTAIN).any() and (one_pred == 1).any()
    # At one level the cap is the bound of n - n_a votes, so it binds where the runner-up holds
    # every other vote, whatever K: rows [0, n_a, n - n_a] are the one-sided rule at alpha/2 again.
    pred, rad = certify_two_sided(classes, np.c_[np.zeros_like(n_a), n_a, n - n_a], n, alpha, sigma, noise)
    np.testing.assert_array_equal(pred, one_pred)
    assert rad.tobytes() == one_rad.tobytes()
    # Rows [1, n_a, n - n_a - 1]: the runner-up's bound is a vote below the cap, the radius above.
    inner = n_a[1:-2]
    rows = np.c_[np.ones_like(inner), inner, n - inner - 1]
    pred, rad = certify_two_sided(np.ones_like(inner), rows, n, alpha, sigma, noise)
    certified = one_pred[1:-2] == 1
    assert (rad >= one_rad[1:-2]).all() and (rad[certified] > one_rad[1:-2][certified]).all()
    assert (pred[certified] == 1).all()


@pytest.mark.parametrize("noise", NOISES)
def test_two_sided_beats_one_sided_when_the_rest_is_spread(noise):
    # K = 10, pA = 0.6 and 0.4 / 9 for each other class at n = 100000: pB is far below 1 - pA.
    n, alpha, sigma = 100_000, 0.001, 0.5
    counts = np.array([_row(n, 60_000, 4_448, 10)])
    _, one = certify_one_sided([0], counts[:, 0], n, alpha, sigma, noise)
    pred, two = certify_two_sided([0], counts, n, alpha, sigma, noise)
    assert pred[0] == 0 and two[0] > 1.5 * one[0] > 0


@pytest.mark.parametrize("noise", NOISES)
def test_two_sided_certifies_exactly_where_the_bounds_separate(noise):
    # Never below the one-sided radius at alpha/2; certifies iff pA_lower > pB_upper, which is
    # where the one-sided rule at alpha/2 certifies or the runner-up's bound leaves a gap.
    rng = np.random.default_rng(5)
    n, alpha, sigma, num_classes = 500, 0.01, 0.5, 6
    counts = np.array([rng.multinomial(n, rng.dirichlet(np.full(num_classes, 0.3))) for _ in range(3000)])
    classes = counts.argmax(axis=1)
    pred, rad = certify_two_sided(classes, counts, n, alpha, sigma, noise)
    one_pred, one_rad = certify_one_sided(classes, counts.max(axis=1), n, alpha / 2, sigma, noise)
    assert (rad >= one_rad).all()
    assert (pred[one_pred != ABSTAIN] == classes[one_pred != ABSTAIN]).all()
    p_lower = proportion_confint(counts.max(axis=1), n, alpha=alpha, method="beta")[0]
    runner_up = np.sort(counts, axis=1)[:, -2]
    p_upper = proportion_confint(runner_up, n, alpha=alpha, method="beta")[1]
    p_upper = np.minimum(p_upper, 1 - p_lower)
    clear = np.abs(p_lower - p_upper) > 1e-6  # away from the decision's float boundary
    np.testing.assert_array_equal((pred != ABSTAIN)[clear], (p_lower > p_upper)[clear])
    assert ((pred != ABSTAIN) & (one_pred == ABSTAIN)).any(), "some pA below 1/2 is certified"


@pytest.mark.parametrize("n, num_classes", [(1000, 2), (1000, 10), (100_000, 10), (100_000, 1000), (10**6, 100)],
                         ids=lambda v: str(v))
def test_two_sided_bounds_are_statsmodels_at_half_alpha_for_the_runner_up(n, num_classes):
    # pA's lower bound and the largest other count's upper bound, both at alpha/2 (statsmodels'
    # alpha is two-sided: its upper end at alpha is a one-sided bound at alpha/2), pB capped at
    # 1 - pA; each widened by the margin: 1e-9 up to statsmodels' float error (< 1e-12 here).
    rng = np.random.default_rng(num_classes)
    alpha = 0.001
    counts = np.array([rng.multinomial(n, rng.dirichlet(np.full(num_classes, 0.3))) for _ in range(2000)])
    classes = counts.argmax(axis=1)
    rows = np.arange(len(classes))
    q_a, p_b = rsengine.certificates._two_sided_bounds(classes, counts, n, alpha)
    others = counts.copy()
    others[rows, classes] = -1
    # 1 - pA's lower bound is the failures' upper bound, never formed as 1 minus a number near 1.
    complement = proportion_confint(n - counts[rows, classes], n, alpha=alpha, method="beta")[1]
    runner_up = proportion_confint(others.max(axis=1), n, alpha=alpha, method="beta")[1]
    capped = np.minimum(runner_up, complement)
    for got, oracle in ((q_a, complement), (p_b, capped)):
        assert (got >= oracle * (1 + 0.999e-9)).all() and (got <= oracle * (1 + WIDENING)).all()
    # At one level the cap is the bound of n - n_A votes: it binds only where the runner-up holds
    # every other vote (always for K = 2).
    assert (runner_up <= complement).all()
    np.testing.assert_array_equal(runner_up == complement, others.max(axis=1) == n - counts[rows, classes])
    assert (runner_up == complement).all() == (num_classes == 2)


def _bonferroni_radius(classes, counts, n, alpha, sigma, noise):
    """The former certificate: every other class's upper bound at alpha/(2(K-1)), the largest capped."""
    rows = np.arange(len(classes))
    others = counts.copy()
    others[rows, classes] = -1
    q_a = rsengine.certificates._lower_complement(counts[rows, classes], n, alpha / 2)
    p_b = rsengine.certificates._upper(others.max(axis=1), n, alpha / (2 * (counts.shape[1] - 1)))
    radius = rsengine.certificates._radius(noise, _scale(noise, sigma), q_a, np.minimum(p_b, q_a))
    return np.where(radius > 0, radius, 0.0)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("num_classes", [2, 3, 10, 1000])
def test_two_sided_is_never_below_the_bonferroni_split(noise, num_classes):
    # alpha/2 instead of alpha/(2(K-1)) for the runner-up: a lower pB, so a radius no smaller,
    # and larger wherever the new bound is below the cap.
    rng = np.random.default_rng(num_classes)
    n, alpha, sigma = 10_000, 0.001, 0.5
    # Class 0 holds a weight in [0.2, 0.9] more than a Dirichlet draw gives it: most rows certify.
    weight = rng.uniform(0.2, 0.9, size=(2000, 1))
    probs = weight * np.eye(num_classes)[0] + (1 - weight) * rng.dirichlet(np.full(num_classes, 0.2), size=2000)
    counts = np.array([rng.multinomial(n, p) for p in probs])
    classes = counts.argmax(axis=1)
    _, rad = certify_two_sided(classes, counts, n, alpha, sigma, noise)
    old = _bonferroni_radius(classes, counts, n, alpha, sigma, noise)
    assert (rad >= old).all()
    # Equal where the runner-up holds every other vote (both at the cap; all rows for K = 2).
    rows = np.arange(len(classes))
    alone = np.sort(counts, axis=1)[:, -2] == n - counts[rows, classes]
    assert rad[alone].tobytes() == old[alone].tobytes() and alone.all() == (num_classes == 2)
    certified = (old > 0) & ~alone
    assert (rad[certified] > old[certified]).all()
    if num_classes > 2:
        assert certified.sum() > 1000


def test_two_sided_bounds_cover_at_level_alpha():
    # The bounds themselves: pA_lower > pA or pB_upper < pB (jointly) at most at rate alpha.
    rng = np.random.default_rng(11)
    probs = np.array([0.5, 0.3, 0.1, 0.06, 0.04])
    trials, n, alpha = 20_000, 1000, 0.05
    counts = rng.multinomial(n, probs, size=trials)
    q_a, p_b = rsengine.certificates._two_sided_bounds(np.zeros(trials, dtype=np.int64), counts, n, alpha)
    failures = (1.0 - q_a > probs[0]) | (p_b < probs[1])
    assert failures.sum() <= _allowed_failures(trials, alpha)
    # Half of alpha goes to pA: its failures alone are below that rate, and not far below.
    assert _allowed_failures(trials, alpha / 4) < (1.0 - q_a > probs[0]).sum() <= _allowed_failures(trials, alpha / 2)


@pytest.mark.parametrize("noise", NOISES)
def test_two_sided_certificates_exceed_the_true_radius_at_most_at_rate_alpha(noise):
    rng = np.random.default_rng(list(NOISES).index(noise))
    probs = np.array([0.45, 0.25, 0.15, 0.1, 0.05])
    trials, n, alpha, sigma = 20_000, 1000, 0.05, 0.5
    scale = _scale(noise, sigma)
    true_radius = _exact_radius(noise, scale, 1 - probs[0], probs[1])
    counts = rng.multinomial(n, probs, size=trials)
    pred, rad = certify_two_sided(np.zeros(trials, dtype=np.int64), counts, n, alpha, sigma, noise)
    assert (pred == 0).mean() > 0.9
    assert (rad > true_radius).sum() <= _allowed_failures(trials, alpha)


def _shared_middle(num_classes, p_b, sigma):
    """Intervals at x_0 = 0: class 0 below 0 (pA = 1/2), class K-1 above PhiInv(1 - p_b), the K - 2
    between sharing 1/2 - p_b evenly: Cohen et al.'s worst case (half-spaces for A and B), so g's
    l2 radius at 0 is sigma/2 (PhiInv(1/2) - PhiInv(p_b)) exactly while the middle stays small."""
    return Intervals(np.r_[0.0, norm.isf(np.linspace(0.5, p_b, num_classes - 1)[1:])], sigma)


@pytest.mark.parametrize("noise", NOISES)
def test_two_sided_false_certificates_with_many_classes_at_most_at_rate_alpha(noise):
    # K = 20: pA = 0.5, pB = 0.2 and 18 classes of 0.3 / 18 each, where the old split mattered
    # (the runner-up's bound at alpha/38). A Gaussian certificate above the truth is false; for
    # the l1 noises the bound is the radius of the exact probabilities (at most their truth).
    num_classes, sigma = 20, 1.0
    classifier = _shared_middle(num_classes, 0.2, sigma)
    probs = classifier.probabilities(0.0)[0]
    np.testing.assert_allclose(probs[[0, -1]], [0.5, 0.2], rtol=1e-12)
    assert probs[1:-1].max() < 0.02
    bound = _exact_radius(noise, _scale(noise, sigma), 1 - probs[0], probs[-1])
    if noise == "gaussian":
        assert bound == pytest.approx(classifier.true_radius(0.0, 0, 1), rel=1e-12)
    rng = np.random.default_rng(40 + list(NOISES).index(noise))
    trials, n, alpha = 20_000, 1000, 0.05
    counts = rng.multinomial(n, probs, size=trials)
    pred, rad = certify_two_sided(np.zeros(trials, dtype=np.int64), counts, n, alpha, sigma, noise)
    assert (pred == 0).all()
    assert (rad > bound).sum() <= _allowed_failures(trials, alpha)
    # The runner-up's bound spends its alpha/2, no longer alpha/38: its misses alone are below
    # that rate, and well above alpha/8 (what any split over 4 or more classes would allow).
    q_a, p_b = rsengine.certificates._two_sided_bounds(np.zeros(trials, dtype=np.int64), counts, n, alpha)
    assert _allowed_failures(trials, alpha / 8) < (p_b < probs[-1]).sum() <= _allowed_failures(trials, alpha / 2)


# --- top-k -------------------------------------------------------------------------------------


def test_top_k_with_one_label_is_two_sided_and_the_hand_formula():
    rng = np.random.default_rng(2)
    n, alpha, sigma, num_classes = 20_000, 0.001, 0.5, 7
    probs = rng.dirichlet(np.full(num_classes, 0.5), size=400)
    counts = np.array([rng.multinomial(n, p) for p in probs])
    selection = np.array([rng.multinomial(100, p) for p in probs])
    labels, radii = certify_top_k(selection, counts, 1, n, alpha, sigma)
    assert labels.shape == radii.shape == (400, 1) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels[:, 0], selection.argmax(axis=1))
    pred, rad = certify_two_sided(labels[:, 0], counts, n, alpha, sigma)
    assert radii[:, 0].tobytes() == rad.tobytes()
    # By hand: pl at alpha/2, the runner-up at alpha/2 (no split over the others), capped at 1 - pl.
    rows = np.arange(400)
    p_l = proportion_confint(counts[rows, labels[:, 0]], n, alpha=alpha, method="beta")[0]
    others = counts.copy()
    others[rows, labels[:, 0]] = -1
    p_bar = proportion_confint(others.max(axis=1), n, alpha=alpha, method="beta")[1]
    hand = sigma / 2 * (norm.ppf(p_l) - norm.ppf(np.minimum(p_bar, 1 - p_l)))
    certified = hand > 1e-6
    assert certified.sum() > 100 and (radii[~certified, 0] < 1e-6).all()
    # Up to statsmodels' float error (rtol) and the module's margin on the bounds (atol: at most
    # 1.03e-9 * (q / phi(PhiInv(q)) + pB / phi(PhiInv(pB))) / 2 <= 3e-9 here, pA >= 0.2).
    assert (p_l[certified] >= 0.2).all()
    np.testing.assert_allclose(radii[certified, 0], hand[certified], rtol=1e-7, atol=3e-9 * sigma)


# Rows where u = 1, 2 or 3 decides; K = 4 to 6, n up to 10^12.
TOP_K_GRID = [
    ([84_134, 15_731, 135, 0], 2, 100_000), ([69_146, 9_915, 9_184, 8_185, 3_570], 3, 100_000),
    ([158_655, 32_518, 83_702, 116_587, 170_383, 438_155], 3, 10**6),
    ([10**12 - 3000, 2000, 600, 400], 2, 10**12), ([500, 300, 150, 50], 3, 1000),
]


def test_top_k_is_the_exact_radius_rounded_down():
    alpha, sigma = 0.001, 0.7
    for votes, k, n in TOP_K_GRID:
        # Selection votes make the labels the k largest counts.
        labels, radii = certify_top_k([votes], [votes], k, n, alpha, sigma)
        np.testing.assert_array_equal(labels[0], np.argsort(-np.array(votes), kind="stable")[:k])
        for j, label in enumerate(labels[0]):
            exact = _exact_top_k_radius(votes, label, k, n, alpha, sigma)
            floor = _exact_top_k_radius(votes, label, k, n, alpha, sigma, WIDENING)
            _assert_rounded_down(radii[0, j], exact, floor, sigma)
    assert (radii > 0).all()


def _top_k_bounds(selection, counts, k, n, alpha, sigma):
    """``(labels, q_l, uppers)`` as certify_top_k makes them: the labels' widened ``1 - p_l`` at
    alpha/(2k) [M, k] and every class's upper bound at alpha/(2(k+1)) [M, K], k >= 2; asserts
    that certify_top_k's radii are exactly Jia et al.'s radii of these bounds."""
    labels, radii = certify_top_k(selection, counts, k, n, alpha, sigma)
    q_l = rsengine.certificates._lower_complement(np.take_along_axis(counts, labels, axis=1), n, alpha / (2 * k))
    uppers = rsengine.certificates._upper(counts, n, alpha / (2 * (k + 1)))
    largest = rsengine.certificates._largest_others(labels, uppers, q_l)
    assert radii.tobytes() == rsengine.certificates._jia_radii(q_l, largest, sigma).tobytes()
    return labels, q_l, uppers


def test_top_k_bounds_cover_the_k_plus_one_largest_classes_at_level_alpha():
    # k = 3 labels of K = 20 classes whose 4 largest stand well apart: each label's 3 largest
    # others are 3 of those 4, and all 4 are some label's, so the upper bounds at alpha/8 miss at
    # close to their alpha/2 (at alpha/6, a split over k, they miss about 0.67 alpha; at alpha/40,
    # the old split over K, alpha/10).
    probs = np.r_[0.3, 0.2, 0.15, 0.1, np.full(16, 0.25 / 16)]
    trials, n, alpha, k = 20_000, 10_000, 0.1, 3
    rng = np.random.default_rng(3)
    counts = rng.multinomial(n, probs, size=trials)
    selection = np.tile(np.r_[3, 2, 1, np.zeros(17, dtype=np.int64)], (trials, 1))  # labels 0, 1, 2
    labels, q_l, uppers = _top_k_bounds(selection, counts, k, n, alpha, 1.0)
    largest = rsengine.certificates._largest_others(labels, uppers, q_l)
    truth = np.array([np.sort(np.delete(probs, label))[::-1][:k] for label in range(k)])  # [k, k]
    lower_misses = (1.0 - q_l > probs[labels]).any(axis=1)
    upper_misses = (largest < truth[None]).any(axis=(1, 2))
    assert (lower_misses | upper_misses).sum() <= _allowed_failures(trials, alpha)
    for misses in (lower_misses, upper_misses):
        assert _allowed_failures(trials, alpha / 4) < misses.sum() <= _allowed_failures(trials, alpha / 2)


def test_top_k_upper_bounds_raise_a_radius_past_the_truth_at_most_at_rate_alpha_over_2_with_ties():
    # Five classes tied at 0.15 (T, the k + 1 = 5 largest, is all of them) and 25 at 0.01, k = 4,
    # labels from 10 independent selection votes (30% of the runs have one outside T). With each
    # label's exact p_l, a radius from the upper bounds above the exact probabilities' radius
    # needs an upper bound below its truth: at alpha/10 per class about 0.10 of the runs, against
    # the 0.1 allowed; a split over k (alpha/8) gives about 0.125, over K = 30 about 0.018.
    probs = np.r_[np.full(5, 0.15), np.full(25, 0.01)]
    trials, n, alpha, k, sigma = 20_000, 100_000, 0.2, 4, 1.0
    rng = np.random.default_rng(17)
    selection, counts = rng.multinomial(10, probs, size=trials), rng.multinomial(n, probs, size=trials)
    labels, _, uppers = _top_k_bounds(selection, counts, k, n, alpha, sigma)
    assert (~np.isin(labels, np.arange(5))).any(axis=1).mean() > 0.25
    q_exact = 1.0 - probs[labels]
    bounded = rsengine.certificates._jia_radii(q_exact, rsengine.certificates._largest_others(labels, uppers, q_exact),
                                               sigma)
    exact = rsengine.certificates._jia_radii(
        q_exact, rsengine.certificates._largest_others(labels, np.broadcast_to(probs, counts.shape), q_exact), sigma)
    misses = (bounded > exact).any(axis=1).sum()
    assert _allowed_failures(trials, alpha / 4) < misses <= _allowed_failures(trials, alpha / 2)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_top_k_gains_on_the_split_over_every_class_and_never_loses(k):
    # Not a validity test (the two above are): upper bounds at alpha/(2(k+1)) instead of
    # alpha/(2K) are each lower, so no radius is smaller; where the old k largest sum to less
    # than the cap 1 - p_l, every S_u falls and every t_u > 0 grows: a certified radius is larger.
    rng = np.random.default_rng(k)
    n, alpha, sigma, num_classes = 10_000, 0.001, 0.5, 20
    weight = rng.uniform(0.2, 0.9, size=(500, 1))
    probs = weight * np.eye(num_classes)[0] + (1 - weight) * rng.dirichlet(np.full(num_classes, 0.2), size=500)
    counts = np.array([rng.multinomial(n, p) for p in probs])
    labels, radii = certify_top_k(counts, counts, k, n, alpha, sigma)  # labels from the same counts: no statistics here
    old = rsengine.certificates._top_k_radii(labels, counts, n, alpha, sigma, num_classes)
    assert (radii >= old).all()
    q_l = rsengine.certificates._lower_complement(np.take_along_axis(counts, labels, axis=1), n, alpha / (2 * k))
    old_largest = rsengine.certificates._largest_others(
        labels, rsengine.certificates._upper(counts, n, alpha / (2 * num_classes)), q_l)
    uncapped = (old_largest.sum(axis=2) < q_l) & (old > 0)
    assert uncapped.sum() > 500 and (radii[uncapped] > old[uncapped]).all()


def test_top_k_labels_break_ties_to_the_lower_class():
    labels, _ = certify_top_k([[5, 9, 5, 9, 1]], [[20, 20, 20, 20, 20]], 3, 100, 0.001, 1.0)
    assert labels.tolist() == [[1, 3, 0]]


class Intervals:
    """f(x) = the index of the interval of x_0 among fixed cut points: smoothing in closed form."""

    def __init__(self, cuts, sigma):
        self.edges = np.r_[-np.inf, cuts, np.inf]
        self.sigma = sigma

    def probabilities(self, x0):
        """[len(x0), K] P(f(x0 + e) = c) under e ~ N(0, sigma^2): differences of Phi."""
        cdf = norm.cdf((self.edges[None, :] - np.atleast_1d(x0)[:, None]) / self.sigma)
        return np.diff(cdf, axis=1)

    def true_radius(self, x0, label, k):
        """Distance along x_0 to where label leaves the smoothed top k (inf: never; 0: not in it)."""
        def margin(x):  # > 0 while label is in the top k: it beats the k-th largest other
            p = self.probabilities(x)
            return p[:, label] - np.sort(np.delete(p, label, axis=1), axis=1)[:, -k]
        if margin(x0)[0] <= 0:
            return 0.0
        radius = np.inf
        steps = np.linspace(0.0, 12 * self.sigma, 120_001)
        for direction in (1.0, -1.0):
            inside = margin(x0 + direction * steps) > 0
            if not inside.all():
                out = np.argmax(~inside)
                edge = brentq(lambda d: margin(x0 + direction * d)[0], steps[out - 1], steps[out], xtol=1e-13)
                radius = min(radius, edge)
        return radius


# (cuts, k, x0): Jia et al.'s exact-probability radius of class 0 is 89-100% of the truth here,
# decided by u = 1 ([0, 2, 4]), u = 2 (k = 5) and u = 3 (k = 3).
INTERVAL_CASES = [([0.0, 2.0, 4.0], 2, -1.0), ([0.0, 0.5, 1.0, 1.5, 2.0], 3, -2.0),
                  ([0.0, 0.5, 1.0, 1.5, 2.0], 5, -1.0)]


@pytest.mark.parametrize("cuts, k, x0", INTERVAL_CASES, ids=["K4-k2", "K6-k3", "K6-k5"])
def test_top_k_against_intervals_never_exceeds_the_truth_and_reaches_85_percent(cuts, k, x0):
    sigma = 1.0
    classifier = Intervals(cuts, sigma)
    probs = classifier.probabilities(x0)[0]
    truth = np.array([classifier.true_radius(x0, c, k) for c in range(len(probs))])
    rng = np.random.default_rng(7)
    # Many independent certificates at alpha = 0.1: a run fails if any label's radius exceeds its
    # truth (0 for a class outside the top k); all labels hold at once at rate >= 1 - alpha.
    trials, n, alpha = 3000, 2000, 0.1
    labels, radii = certify_top_k(rng.multinomial(50, probs, size=trials),
                                  rng.multinomial(n, probs, size=trials), k, n, alpha, sigma)
    assert (radii > 0).any()
    assert (radii > truth[labels]).any(axis=1).sum() <= _allowed_failures(trials, alpha)
    # At n = 10^6 class 0's certificate reaches 85% of its truth, and never passes it.
    n, alpha = 10**6, 0.001
    labels, radii = certify_top_k(rng.multinomial(1000, probs, size=20),
                                  rng.multinomial(n, probs, size=20), k, n, alpha, sigma)
    assert (labels[:, 0] == 0).all()
    assert (radii <= truth[labels]).all()
    assert (radii[:, 0] >= 0.85 * truth[0]).all(), (radii[:, 0].min(), truth[0])


# --- argument errors ---------------------------------------------------------------------------

COUNTS = [[6, 3, 1], [2, 8, 0]]
ERRORS = [
    ("k", lambda: certify_top_k(COUNTS, COUNTS, 3, 10, 0.01, 0.5), ValueError),
    ("k", lambda: certify_top_k(COUNTS, COUNTS, 0, 10, 0.01, 0.5), ValueError),
    ("k", lambda: certify_top_k(COUNTS, COUNTS, 1.0, 10, 0.01, 0.5), TypeError),
    ("counts", lambda: certify_top_k(COUNTS, [[6, 3, 1], [2, 8, 1]], 1, 10, 0.01, 0.5), ValueError),
    ("counts", lambda: certify_two_sided([0, 1], [[6, 3, 1], [2, 8, 1]], 10, 0.01, 0.5), ValueError),
    ("counts", lambda: certify_two_sided([0, 1], [[11, -1, 0], [2, 8, 0]], 10, 0.01, 0.5), ValueError),
    ("counts", lambda: certify_two_sided([0, 1], [[6.0, 3, 1], [2, 8, 0]], 10, 0.01, 0.5), TypeError),
    ("counts", lambda: certify_two_sided([0], [[10]], 10, 0.01, 0.5), ValueError),
    ("counts", lambda: certify_two_sided([0, 1, 0], COUNTS, 10, 0.01, 0.5), ValueError),
    ("counts", lambda: certify_two_sided([0, 1], [6, 3, 1], 10, 0.01, 0.5), ValueError),
    ("selection_counts", lambda: certify_top_k([[6, 3], [2, 8]], COUNTS, 1, 10, 0.01, 0.5), ValueError),
    ("selection_counts", lambda: certify_top_k([[6, 3, -1], [2, 8, 0]], COUNTS, 1, 10, 0.01, 0.5), ValueError),
    ("c_hat", lambda: certify_two_sided([0, 3], COUNTS, 10, 0.01, 0.5), ValueError),
    ("c_hat", lambda: certify_two_sided([0, -1], COUNTS, 10, 0.01, 0.5), ValueError),
    ("c_hat", lambda: certify_one_sided([[0]], [5], 10, 0.01, 0.5, "laplace"), ValueError),
    ("n_a", lambda: certify_one_sided([0], [11], 10, 0.01, 0.5, "uniform"), ValueError),
    ("n_a", lambda: certify_one_sided([0], [-1], 10, 0.01, 0.5, "uniform"), ValueError),
    ("n_a", lambda: certify_one_sided([0, 1], [5], 10, 0.01, 0.5, "laplace"), ValueError),
    ("noise", lambda: certify_one_sided([0], [5], 10, 0.01, 0.5, "cauchy"), ValueError),
    ("noise", lambda: certify_two_sided([0, 1], COUNTS, 10, 0.01, 0.5, None), TypeError),
    ("alpha", lambda: certify_two_sided([0, 1], COUNTS, 10, 1.0, 0.5), ValueError),
    ("alpha", lambda: certify_one_sided([0], [5], 10, 0.0, 0.5, "laplace"), ValueError),
    ("sigma", lambda: certify_top_k(COUNTS, COUNTS, 1, 10, 0.01, -0.5), ValueError),
    ("sigma", lambda: certify_one_sided([0], [5], 10, 0.01, float("nan"), "uniform"), ValueError),
    ("n", lambda: certify_two_sided([0, 1], COUNTS, 0, 0.01, 0.5), ValueError),
    ("n", lambda: certify_top_k(COUNTS, COUNTS, 1, 2**53 + 1, 0.01, 0.5), ValueError),
]


@pytest.mark.parametrize("name, call, error", ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_bad_arguments_name_the_argument(name, call, error):
    with pytest.raises(error, match=f"`{name}`") as caught:
        call()
    assert "\n" not in str(caught.value)


def test_top_k_takes_no_noise():
    with pytest.raises(TypeError):
        certify_top_k(COUNTS, COUNTS, 1, 10, 0.01, 0.5, "laplace")


def test_empty_inputs_give_empty_results():
    for noise in NOISES:
        pred, rad = certify_two_sided(np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.int64), 10, 0.01, 0.5, noise)
        assert pred.shape == rad.shape == (0,)
    labels, radii = certify_top_k(np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3), dtype=np.int64), 2, 10, 0.01, 0.5)
    assert labels.shape == radii.shape == (0, 2)
