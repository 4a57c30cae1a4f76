"""Statistical validity: certificates that hold, against classifiers with exactly known smoothing.

CERTIFY promises that, with probability at least 1 - alpha over its sampling, it abstains or
returns g's class with a radius no larger than the truth; PREDICT promises to answer a class other
than g(x) with probability at most alpha. Both are statements about a distribution, so they are
checked as one: over many independent repetitions the number of failures is Binomial(reps, q),
and a one-sided binomial test at LEVEL checks q <= alpha. Where q itself can be computed (it can
for every classifier here), the count is also tested two-sided against q, which catches sampling
that is wrong in either direction, needlessly conservative included.

Three layers, cheapest first:
- the exact law: failure probabilities summed from binomial pmfs over every count, no sampling;
- a Bernoulli oracle: vote counts drawn with numpy and fed to rsengine.stats, no network;
- the real engine: Smooth.certify_batch / predict_batch on small modules whose smoothed
  probabilities are Phi of a margin (linear, threshold, three intervals, fair coins), R
  certificates of one input per call, one stream each.
Wrong bounds run through the same harnesses prove that they can fail. Every seed is fixed, so each
assertion is deterministic; at LEVEL = 0.001 a failure points at a bug, not at bad luck.
"""
import functools
import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import beta, binom, binomtest, chisquare, multinomial, norm

from rsengine import ABSTAIN, Smooth
from rsengine.stats import certify_from_counts, clopper_pearson_lower, max_radius, predict_from_counts

LEVEL = 0.001  # significance of every statistical assertion
POWER_LEVEL = 1e-6  # a harness "flags" a wrong procedure when its p-value falls below this
Z_LEVEL = norm.isf(LEVEL / 2)  # two-sided z bound at LEVEL, for means
SIGMA = 0.5


# --- exact law -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _certify_every_count(n, alpha, sigma):
    """CERTIFY's decision for every vote count k = 0..n: (certified [n + 1] bool, radius [n + 1])."""
    pred, rad = certify_from_counts(np.zeros(n + 1, np.int64), np.arange(n + 1), n, alpha, sigma)
    certified = pred != ABSTAIN
    certified.flags.writeable = rad.flags.writeable = False  # shared through the cache
    return certified, rad


def _valid_limit(probs, sigma):
    """Largest radius a certificate of each class may claim.

    sigma * PhiInv(p_c) for the unique top class: the exact robust radius for two classes, and for
    more classes the bound the Clopper-Pearson guarantee is about (P(p_lower > p_c) <= alpha).
    -inf for every other class, and for every class when the top is tied: no certificate of
    those is right.
    """
    probs = np.asarray(probs, dtype=np.float64)
    top = np.flatnonzero(probs == probs.max())
    limit = np.full(probs.size, -np.inf)
    if top.size == 1:
        limit[top] = sigma * norm.ppf(probs[top])
    return limit


def _failures(pred, rad, limit):
    """[R] bool: certificates that claim a class or a radius they may not."""
    certified = pred != ABSTAIN
    return certified & (rad > limit[np.where(certified, pred, 0)])


def _selection_probabilities(probs, n0):
    """P(CERTIFY guesses class c): argmax of Multinomial(n0, probs) votes, ties to the lowest index."""
    num_classes = len(probs)
    head = np.array([c for c in itertools.product(range(n0 + 1), repeat=num_classes - 1) if sum(c) <= n0])
    counts = np.column_stack([head, n0 - head.sum(axis=1)])
    return np.bincount(counts.argmax(axis=1), weights=multinomial.pmf(counts, n0, probs), minlength=num_classes)


def _exact_certify_law(probs, n0, n, alpha, sigma):
    """Exact failure and abstention probabilities and radius moments of CERTIFY (selection included)."""
    certified, rad = _certify_every_count(n, alpha, sigma)
    k = np.arange(n + 1)
    law = dict(failure=0.0, abstain=0.0, mean_radius=0.0, mean_square_radius=0.0)
    for chosen, p, limit in zip(_selection_probabilities(probs, n0), probs, _valid_limit(probs, sigma)):
        pmf = chosen * binom.pmf(k, n, p)  # the estimation votes for the guess are Binomial(n, p_guess)
        law["failure"] += pmf[certified & (rad > limit)].sum()
        law["abstain"] += pmf[~certified].sum()
        law["mean_radius"] += (pmf * np.where(certified, rad, 0.0)).sum()
        law["mean_square_radius"] += (pmf * np.where(certified, rad, 0.0) ** 2).sum()
    return law


def _exact_overclaim(p_a, n, sigma, certified, rad):
    """P(a certificate of the true class claims more than sigma * PhiInv(p_a)), n_A ~ Bin(n, p_a)."""
    overclaiming = np.flatnonzero(certified & (rad > sigma * norm.ppf(p_a)))
    return float(binom.pmf(overclaiming, n, p_a).sum())


def _all_count_vectors(n, num_classes):
    """Every [K] vector of non-negative counts summing to n, as rows (K = 2 or 3)."""
    if num_classes == 2:
        k = np.arange(n + 1)
        return np.column_stack([k, n - k])
    a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = a + b <= n
    return np.column_stack([a[keep], b[keep], n - a[keep] - b[keep]])


def _wrong_answers(pred, probs):
    """[R] bool: PREDICT answered a class other than g(x) (any answer, when the top is tied)."""
    probs = np.asarray(probs, dtype=np.float64)
    top = np.flatnonzero(probs == probs.max())
    right = top[0] if top.size == 1 else ABSTAIN
    return (pred != ABSTAIN) & (pred != right)


def _exact_wrong_answer(probs, n, alpha, predict=predict_from_counts):
    counts = _all_count_vectors(n, len(probs))
    pmf = binom.pmf(counts[:, 0], n, probs[0]) if len(probs) == 2 else multinomial.pmf(counts, n, probs)
    return float(pmf[_wrong_answers(predict(counts, alpha), probs)].sum())


def _not_above(count, reps, q):
    """One-sided p-value of `count` failures in `reps` under failure probability q."""
    return binomtest(int(count), reps, q, alternative="greater").pvalue


# --- wrong procedures, to show the harnesses have power --------------------------------------


def _certify_with(bound):
    """A CERTIFY built on another lower bound p_lower(n_A, n, alpha), else as the paper's."""

    def certify(c_hat, n_a, n, alpha, sigma):
        p_lower = bound(np.asarray(n_a), n, alpha)
        certified = p_lower > 0.5
        with np.errstate(invalid="ignore"):  # PhiInv of a negative Wald bound, discarded below
            rad = sigma * norm.ppf(p_lower)
        return np.where(certified, c_hat, ABSTAIN), np.where(certified, rad, 0.0)

    return certify


def _wald(k, n, alpha):
    p_hat = k / n
    return p_hat - norm.isf(alpha) * np.sqrt(p_hat * (1 - p_hat) / n)


WRONG_BOUNDS = {
    # The estimate itself: overclaims about half the time.
    "point-estimate": lambda k, n, alpha: k / n,
    # Clopper-Pearson at 2 * alpha: a factor-two slip in the level, the kind that converting
    # between one- and two-sided alpha (statsmodels' proportion_confint) invites.
    "cp-at-2alpha": lambda k, n, alpha: np.where(k > 0, beta.ppf(2 * alpha, np.maximum(k, 1), n - k + 1), 0.0),
    # The normal approximation: at n_A = n it is 1, an infinite radius.
    "wald": _wald,
}


def _one_sided_predict(counts, alpha):
    """PREDICT with a one-sided p-value (half the right one): answers a coin about 2 alpha of the time."""
    top = counts.argmax(axis=1)
    n_top = counts.max(axis=1)
    n_second = np.sort(counts, axis=1)[:, -2]
    return np.where(binom.cdf(n_second, n_top + n_second, 0.5) > alpha, ABSTAIN, top)


# --- Bernoulli oracle ------------------------------------------------------------------------

ORACLE_REPS = 20_000
ORACLE_N0 = 100


def _sampled_certify(certify, p_a, n, alpha, sigma, seed):
    """CERTIFY on two classes from numpy draws; class 0 is g's class, with probability p_a.

    As in the engine, the guess is the argmax of n0 selection votes (ties to class 0) and the n
    estimation votes for it are drawn independently: Binomial(n, p_guess).
    """
    rng = np.random.default_rng(seed)
    guess = (2 * rng.binomial(ORACLE_N0, 1 - p_a, ORACLE_REPS) > ORACLE_N0).astype(np.int64)
    n_a = rng.binomial(n, np.where(guess == 0, p_a, 1 - p_a))
    return certify(guess, n_a, n, alpha, sigma)


def _sampled_predict(predict, probs, n, alpha, seed):
    """PREDICT on Multinomial(n, probs) votes from numpy draws, ORACLE_REPS times."""
    counts = np.random.default_rng(seed).multinomial(n, probs, size=ORACLE_REPS)
    return predict(counts, alpha)


P_AS = [0.5, 0.55, 0.7, 0.9, 0.99, 0.999]
NS = [100, 1000, 100_000]
ALPHAS = [0.05, 0.01]


@pytest.mark.parametrize("p_a", P_AS, ids=lambda p: f"pA={p}")
@pytest.mark.parametrize("n", NS, ids=lambda n: f"n={n}")
@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a}")
def test_certify_overclaims_at_most_alpha_bernoulli_oracle(alpha, n, p_a):
    pred, rad = _sampled_certify(certify_from_counts, p_a, n, alpha, SIGMA,
                                 seed=[int(p_a * 1000), n, int(alpha * 1000)])  # one stream per case
    failures = _failures(pred, rad, _valid_limit([p_a, 1 - p_a], SIGMA)).sum()
    assert _not_above(failures, ORACLE_REPS, alpha) > LEVEL, f"{failures} of {ORACLE_REPS} overclaim"


@pytest.mark.parametrize("n", NS, ids=lambda n: f"n={n}")
@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a}")
def test_certify_exact_overclaim_probability_is_at_most_alpha(alpha, n):
    certified, rad = _certify_every_count(n, alpha, SIGMA)
    # The failure probability is largest just below a bound the certificate can take: at
    # p_A = p_lower(k) - eps it is P(n_A >= k) -> alpha as eps -> 0, by the bound's definition.
    # eps = 1e-9 keeps the comparison clear of float rounding and still sits within ~1e-5 of alpha.
    k_certified = np.flatnonzero(certified)
    k_probe = np.unique(np.linspace(k_certified[0], n, 60).astype(np.int64))
    worst_case = clopper_pearson_lower(k_probe, n, alpha) - 1e-9
    # A dense grid too where every count is cheap to sum over.
    grid = np.r_[P_AS, np.linspace(0.5, 0.9999, 300) if n <= 1000 else []]
    exact_grid = np.array([_exact_overclaim(p, n, SIGMA, certified, rad) for p in grid])
    exact_worst = np.array([_exact_overclaim(p, n, SIGMA, certified, rad) for p in worst_case])
    assert exact_grid.max() <= alpha, f"pA = {grid[exact_grid.argmax()]}: {exact_grid.max()}"
    assert exact_worst.max() <= alpha, f"pA = {worst_case[exact_worst.argmax()]}: {exact_worst.max()}"
    # Valid but not slack: the supremum alpha is approached, so radii are as large as allowed.
    assert exact_worst.max() >= alpha * (1 - 1e-3)


PREDICT_COINS = [((0.5, 0.5), n) for n in (100, 101, 1000, 100_000)] + [
    ((1 / 3, 1 / 3, 1 / 3), 100),  # three-way tie: PREDICT's choice of the top two is random
    ((0.4, 0.4, 0.2), 99),
]


def _coin_id(case):
    probs, n = case
    return f"K={len(probs)}-p={'/'.join(f'{p:.2g}' for p in probs)}-n={n}"


@pytest.mark.parametrize("case", PREDICT_COINS, ids=_coin_id)
@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a}")
def test_predict_answers_a_coin_at_most_alpha_bernoulli_oracle(alpha, case):
    probs, n = case
    pred = _sampled_predict(predict_from_counts, probs, n, alpha, seed=[len(probs), n, int(alpha * 1000)])
    answered = (pred != ABSTAIN).sum()
    assert _not_above(answered, ORACLE_REPS, alpha) > LEVEL, f"answered {answered} of {ORACLE_REPS}"


PREDICT_EXACT = [
    ((0.5, 0.5), 100), ((0.5, 0.5), 101), ((0.5, 0.5), 1000), ((0.5, 0.5), 100_000),
    ((0.52, 0.48), 1000),  # g = class 0 but barely: answering class 1 is the error
    ((1 / 3, 1 / 3, 1 / 3), 30), ((1 / 3, 1 / 3, 1 / 3), 100),
    ((0.4, 0.4, 0.2), 99), ((0.499, 0.499, 0.002), 100),
    ((0.42, 0.4, 0.18), 100),
]


@pytest.mark.parametrize("case", PREDICT_EXACT, ids=_coin_id)
@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha={a}")
def test_predict_exact_wrong_answer_probability_is_at_most_alpha(alpha, case):
    probs, n = case
    assert _exact_wrong_answer(probs, n, alpha) <= alpha


POWER_CASES = {"point-estimate": (0.9, 1000, 0.05), "cp-at-2alpha": (0.7, 1000, 0.05), "wald": (0.99, 100, 0.05)}


@pytest.mark.parametrize("name", list(POWER_CASES))
def test_oracle_flags_a_wrong_bound(name):
    # The same harnesses, run on a CERTIFY with a wrong bound, must reject it: they have power.
    p_a, n, alpha = POWER_CASES[name]
    certify = _certify_with(WRONG_BOUNDS[name])
    pred, rad = _sampled_certify(certify, p_a, n, alpha, SIGMA, seed=7)
    failures = _failures(pred, rad, _valid_limit([p_a, 1 - p_a], SIGMA)).sum()
    assert _not_above(failures, ORACLE_REPS, alpha) < POWER_LEVEL
    all_pred, all_rad = certify(np.zeros(n + 1, np.int64), np.arange(n + 1), n, alpha, SIGMA)
    assert _exact_overclaim(p_a, n, SIGMA, all_pred != ABSTAIN, all_rad) > 1.5 * alpha


def test_oracle_flags_a_one_sided_predict():
    probs, n, alpha = (0.5, 0.5), 1000, 0.05
    answered = (_sampled_predict(_one_sided_predict, probs, n, alpha, seed=8) != ABSTAIN).sum()
    assert _not_above(answered, ORACLE_REPS, alpha) < POWER_LEVEL
    assert _exact_wrong_answer(probs, n, alpha, predict=_one_sided_predict) > 1.5 * alpha


# --- the real engine -------------------------------------------------------------------------

ENGINE_REPS = 3000
ENGINE_N0 = 32
ENGINE_N = 200
ENGINE_ALPHA = 0.05
BATCH = 100_000
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


class Linear(torch.nn.Module):
    """Two classes split by a hyperplane: class 0 where w.x + b > 0. P(class 0) = Phi(m / sigma)
    with m = (w.x + b) / |w|, and |m| is g's exact robust radius."""

    def __init__(self, w, b):
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("b", b)

    def forward(self, x):  # [B, d] -> [B, 2]
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([s, -s], 1)


class Threshold(torch.nn.Module):
    """Class 1 where coordinate 0 of the (normalized) input exceeds t, else class 0."""

    def __init__(self, t):
        super().__init__()
        self.register_buffer("t", t)

    def forward(self, z):  # [B, *shape] -> [B, 2]
        z0 = z.flatten(1)[:, 0]
        return torch.stack([self.t - z0, z0 - self.t], 1)


class Intervals(torch.nn.Module):
    """Three classes by where coordinate 0 falls: below lo -> 0, between -> 1, above hi -> 2."""

    def __init__(self, lo, hi):
        super().__init__()
        self.register_buffer("lo", lo)
        self.register_buffer("hi", hi)

    def forward(self, z):  # [B, *shape] -> [B, 3]
        z0 = z.flatten(1)[:, 0]
        return torch.stack([self.lo - z0, torch.minimum(z0 - self.lo, self.hi - z0), z0 - self.hi], 1)


def _linear_case(p_a):
    """d = 5, margin sigma * PhiInv(p_a); probabilities from the float32 weights actually used."""
    w = torch.tensor([1.0, -2.0, 0.5, 2.0, -1.0])
    x = torch.tensor([0.3, 0.1, -0.4, 0.2, 0.5])
    b = torch.tensor(SIGMA * norm.ppf(p_a) * w.double().norm().item() - float(w.double() @ x.double()))
    margin = float((w.double() @ x.double() + float(b)) / w.double().norm())
    return Linear(w, b), x, (norm.cdf(margin / SIGMA), norm.sf(margin / SIGMA)), {}


def _threshold_case(p_a):
    """A [3, 2, 2] image with per-channel mean/std applied in the kernel; f thresholds pixel 0 at t
    in normalized units, so P(class 0) = Phi((t - x_0) / sigma) in pixel units."""
    t = torch.tensor(0.55)
    x = torch.rand(3, 2, 2, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0] = t - SIGMA * norm.ppf(p_a)
    # The same float32 operations as the kernel's (x - mean) / std, so at x_0 = t the boundary
    # sits exactly on the input and the coin is fair.
    t_normalized = (t - torch.tensor(MEAN[0])) / torch.tensor(STD[0])
    margin = float(t) - float(x[0, 0, 0])
    return Threshold(t_normalized), x, (norm.cdf(margin / SIGMA), norm.sf(margin / SIGMA)), dict(mean=MEAN, std=STD)


def _intervals_case(p_low, p_mid):
    """d = 3; P(class 0) = p_low and P(class 1) = p_mid at x (up to the float32 thresholds)."""
    x = torch.tensor([0.2, -0.3, 0.7])
    lo = x[0] + SIGMA * norm.ppf(p_low)
    hi = x[0] + SIGMA * norm.ppf(p_low + p_mid)
    a, b = (float(lo) - float(x[0])) / SIGMA, (float(hi) - float(x[0])) / SIGMA
    return Intervals(lo, hi), x, (norm.cdf(a), norm.cdf(b) - norm.cdf(a), norm.sf(b)), {}


def _just_below_a_bound(share):
    # p_A just under the Clopper-Pearson bound of n_A = share * n, where the failure probability
    # comes closest to alpha (~0.0499): the engine tests' most sensitive point.
    return clopper_pearson_lower(round(share * ENGINE_N), ENGINE_N, ENGINE_ALPHA) - 1e-5


ENGINE_CASES = {
    "linear-d5": (lambda: _linear_case(_just_below_a_bound(0.85)), 101),
    "threshold-normalized": (lambda: _threshold_case(_just_below_a_bound(0.95)), 102),
    "intervals-K3": (lambda: _intervals_case(0.12, _just_below_a_bound(0.75)), 103),
    "coin": (lambda: _threshold_case(0.5), 104),
}


@functools.lru_cache(maxsize=None)
def _engine_certificates(name):
    """R independent certificates of one input through the real engine: (pred, rad, probs)."""
    build, seed = ENGINE_CASES[name]
    model, x, probs, kwargs = build()
    smooth = Smooth(model, len(probs), SIGMA, seed=seed, backend="torch", **kwargs)
    pred, rad = smooth.certify_batch(x.expand(ENGINE_REPS, *x.shape), ENGINE_N0, ENGINE_N, ENGINE_ALPHA,
                                     batch_size=BATCH, streams=np.arange(ENGINE_REPS))
    return pred, rad, np.asarray(probs)


@pytest.mark.parametrize("name", list(ENGINE_CASES))
def test_engine_certificates_fail_at_most_alpha(name):
    pred, rad, probs = _engine_certificates(name)
    failures = _failures(pred, rad, _valid_limit(probs, SIGMA)).sum()
    assert _not_above(failures, ENGINE_REPS, ENGINE_ALPHA) > LEVEL, f"{failures} of {ENGINE_REPS} fail"
    if name != "coin":  # and the check is not vacuous: most runs certify
        assert (pred != ABSTAIN).mean() > 0.5


@pytest.mark.parametrize("name", list(ENGINE_CASES))
def test_engine_certificates_follow_the_exact_law(name):
    # Failures and abstentions are Binomial(R, q) with q from the exact law: this catches noise
    # of the wrong scale or shared between phases or streams, in either direction.
    pred, rad, probs = _engine_certificates(name)
    law = _exact_certify_law(probs, ENGINE_N0, ENGINE_N, ENGINE_ALPHA, SIGMA)
    assert law["failure"] <= ENGINE_ALPHA
    failures = _failures(pred, rad, _valid_limit(probs, SIGMA)).sum()
    assert binomtest(int(failures), ENGINE_REPS, law["failure"]).pvalue > LEVEL
    abstained = (pred == ABSTAIN).sum()
    assert binomtest(int(abstained), ENGINE_REPS, law["abstain"]).pvalue > LEVEL


def test_engine_harness_flags_radii_ten_percent_too_large():
    pred, rad, probs = _engine_certificates("linear-d5")
    failures = _failures(pred, rad * 1.1, _valid_limit(probs, SIGMA)).sum()
    assert _not_above(failures, ENGINE_REPS, ENGINE_ALPHA) < POWER_LEVEL


def _true_radius_of_the_middle_class(probs, lo, hi, x0):
    """g's exact l2 robust radius at x for the Intervals classifier when class 1 is on top.

    g depends on x only through x_0, so the radius is the distance along x_0 to the nearest point
    where class 1 stops winning: where it ties class 0 on the left, class 2 on the right.
    """
    def share(u):  # smoothed probabilities at x_0 = u
        p0, p2 = norm.cdf((lo - u) / SIGMA), norm.sf((hi - u) / SIGMA)
        return p0, 1 - p0 - p2, p2

    left = brentq(lambda u: share(u)[1] - share(u)[0], x0 - 20 * SIGMA, x0)
    right = brentq(lambda u: share(u)[1] - share(u)[2], x0, x0 + 20 * SIGMA)
    return min(x0 - left, right - x0)


def test_engine_intervals_certificates_are_true_at_the_true_radius():
    pred, rad, probs = _engine_certificates("intervals-K3")
    model, x, _, _ = ENGINE_CASES["intervals-K3"][0]()
    truth = _true_radius_of_the_middle_class(probs, float(model.lo), float(model.hi), float(x[0]))
    # Theorem 1 with p_B <= 1 - p_A: the true radius is at least the bound certificates aim at.
    assert truth >= SIGMA * norm.ppf(probs[1])
    wrong = ((pred != ABSTAIN) & ((pred != 1) | (rad > truth))).sum()
    assert _not_above(wrong, ENGINE_REPS, ENGINE_ALPHA) > LEVEL


ENGINE_COINS = {  # (classifier, nominal probabilities, n, seed)
    "two-class": (lambda: _threshold_case(0.5), (0.5, 0.5), 100, 201),
    "three-way": (lambda: _intervals_case(1 / 3, 1 / 3), (1 / 3, 1 / 3, 1 / 3), 99, 202),
}


@pytest.mark.parametrize("name", list(ENGINE_COINS))
def test_engine_predict_answers_a_coin_at_most_alpha(name):
    build, probs, n, seed = ENGINE_COINS[name]
    model, x, actual, kwargs = build()
    # The float32 interval ends move the three-way probabilities by ~1e-8, far below what 3000
    # repetitions resolve: the exact law of the tie they approximate is the one to compare with.
    np.testing.assert_allclose(actual, probs, atol=1e-7)
    smooth = Smooth(model, len(probs), SIGMA, seed=seed, backend="torch", **kwargs)
    pred = smooth.predict_batch(x.expand(ENGINE_REPS, *x.shape), n, ENGINE_ALPHA, batch_size=BATCH,
                                streams=np.arange(ENGINE_REPS))
    answered = (pred != ABSTAIN).sum()
    exact = _exact_wrong_answer(probs, n, ENGINE_ALPHA)
    assert exact <= ENGINE_ALPHA
    assert _not_above(answered, ENGINE_REPS, ENGINE_ALPHA) > LEVEL, f"answered {answered} of {ENGINE_REPS}"
    assert binomtest(int(answered), ENGINE_REPS, exact).pvalue > LEVEL


def test_engine_vote_counts_are_binomial_and_streams_independent():
    # Every guarantee above rests on n_A ~ Binomial(n, p_A), independently per stream.
    reps, n = 1000, 400
    model, x, probs, kwargs = _threshold_case(0.8)
    smooth = Smooth(model, 2, SIGMA, seed=301, backend="torch", **kwargs)
    n_a = smooth.sample_counts(x.expand(reps, *x.shape), n, batch_size=BATCH, streams=np.arange(reps))[:, 0]
    edges = np.unique(binom.ppf(np.linspace(0, 1, 16)[1:-1], n, probs[0])).astype(np.int64)  # ~equal mass
    observed = np.bincount(np.searchsorted(edges, n_a, side="left"), minlength=edges.size + 1)
    expected = np.diff(np.r_[0.0, binom.cdf(edges, n, probs[0]), 1.0]) * reps
    assert chisquare(observed, expected).pvalue > LEVEL
    lag_one = np.corrcoef(n_a[:-1], n_a[1:])[0, 1]  # neighbouring streams
    assert abs(lag_one) <= Z_LEVEL / np.sqrt(reps - 1)


def test_engine_radii_approach_the_true_radius():
    # Paper settings (n0 = 100, alpha = 0.001); fewer repetitions where n is large.
    alpha, margin = 0.001, 0.4
    model, x, probs, _ = _linear_case(norm.cdf(margin / SIGMA))
    truth = SIGMA * norm.ppf(probs[0])
    means, expected = [], []
    for n, reps, seed in [(1000, 200, 401), (10_000, 20, 402), (100_000, 4, 403)]:
        smooth = Smooth(model, 2, SIGMA, seed=seed, backend="torch")
        pred, rad = smooth.certify_batch(x.expand(reps, *x.shape), 100, n, alpha, batch_size=BATCH,
                                         streams=np.arange(reps))
        assert np.all(pred == 0) and np.all(rad < max_radius(SIGMA, n, alpha))
        law = _exact_certify_law(probs, 100, n, alpha, SIGMA)
        spread = np.sqrt(law["mean_square_radius"] - law["mean_radius"] ** 2)
        # The mean of `reps` radii is within Z_LEVEL standard errors of its exact expectation.
        assert abs(rad.mean() - law["mean_radius"]) <= Z_LEVEL * spread / np.sqrt(reps), n
        means.append(rad.mean())
        expected.append(law["mean_radius"])
    assert means[0] < means[1] < means[2]
    assert expected[0] < expected[1] < expected[2] < truth
    assert 0.97 * truth <= expected[2] and 0.97 * truth <= means[2] < truth
