"""Adaptive certification's statistics (rsengine.sequential), checked against exact answers.

The promise: the probability of certifying a radius larger than the truth is at most alpha under
the rule as run, and under every other stopping rule on the same checkpoints (the union bound
over the grid). Both are computed exactly here by summing over every vote path
(tests/exact_sequential.py), at the worst case: p_A just at the threshold a target radius needs.
A rule that peeks at the full alpha at every checkpoint fails the same computation.
"""
import itertools

import numpy as np
import pytest
from scipy.stats import norm

from exact_sequential import certified_probability
from rsengine.sequential import (CHECKPOINT_RATIO, FIRST_CHECKPOINT, Schedule, certificate_so_far, radius_decision,
                                 tolerance_decision)
from rsengine.stats import ABSTAIN


def _check_spending(s, budget, alpha):
    assert s.checkpoints[-1] == budget and s.budget == budget and len(s.alphas) == len(s)
    assert (np.diff(s.checkpoints) > 0).all() and s.checkpoints[0] >= 1
    assert (s.alphas >= 0).all() and s.alphas.sum() <= alpha * (1 + 1e-12)
    assert s.alphas.sum() == pytest.approx(alpha, rel=1e-12)


@pytest.mark.parametrize("budget", [1, 63, 64, 65, 1000, 100_000, 10**7])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_schedule_for_budget_spends_alpha_evenly_on_an_increasing_grid(budget, alpha):
    s = Schedule.for_budget(budget, alpha)
    _check_spending(s, budget, alpha)
    assert s.checkpoints[0] >= min(budget, FIRST_CHECKPOINT) and np.ptp(s.alphas) <= 1e-15
    # No step is more than the ratio (an input never runs far past where it could have stopped).
    assert (s.checkpoints[1:] <= np.ceil(s.checkpoints[:-1] * CHECKPOINT_RATIO) + 1).all()


@pytest.mark.parametrize("budget", [1, 2, 3, 127, 128, 1000, 100_000, 10**7 + 1])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_schedule_for_tolerance_looks_at_half_the_budget_and_at_the_budget(budget, alpha):
    s = Schedule.for_tolerance(budget, alpha)
    _check_spending(s, budget, alpha)
    if budget > 1:
        assert s.checkpoints[-2] == budget // 2 and s.alphas[-2] > s.alphas[-1] > 0


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`n`"):
        Schedule.for_budget(0, 0.01)
    with pytest.raises(ValueError, match="`alpha`"):
        Schedule.for_budget(100, 1.5)


def _radius_rule(schedule, sigma, target):
    guess = None

    def rule(k, votes, n, alpha):
        nonlocal guess
        guess = np.zeros(len(votes), dtype=np.int64)
        done, pred, _ = radius_decision(guess, votes, n, alpha, sigma, target, schedule)
        return pred != ABSTAIN, done
    return rule


def _any_checkpoint_certifies(sigma, true_radius):
    # Every stopping rule at once: a path counts the first time any checkpoint's certificate
    # exceeds the truth, whatever a rule would have done before.
    def rule(k, votes, n, alpha):
        pred, rad = certificate_so_far(np.zeros(len(votes), dtype=np.int64), votes, n, alpha, sigma)
        false = (pred != ABSTAIN) & (rad > true_radius)
        return false, false
    return rule


CASES = [  # (budget, alpha, sigma, target radius)
    (1000, 0.01, 0.25, 0.25),
    (10_000, 0.001, 0.25, 0.5),
    (100_000, 0.001, 0.25, 0.5),
    (100_000, 0.001, 0.5, 1.0),
    (20_000, 0.05, 1.0, 0.1),
]


@pytest.mark.parametrize("budget, alpha, sigma, target", CASES, ids=lambda v: str(v))
def test_radius_mode_false_certification_is_at_most_alpha_exactly(budget, alpha, sigma, target):
    # p_A = Phi(target / sigma): the true radius is exactly the target, and any p_A below it
    # certifies less often (the probability is increasing in p_A).
    s = Schedule.for_budget(budget, alpha)
    p = norm.cdf(target / sigma)
    as_run = certified_probability(p, s, _radius_rule(s, sigma, target))
    any_rule = certified_probability(p, s, _any_checkpoint_certifies(sigma, target * (1 - 1e-12)))
    assert as_run <= any_rule + 1e-12
    assert any_rule <= alpha


@pytest.mark.parametrize("p_a", [0.55, 0.8, 0.99, 0.9999])
@pytest.mark.parametrize("budget, alpha", [(2000, 0.01), (100_000, 0.001)])
@pytest.mark.parametrize("build", [Schedule.for_budget, Schedule.for_tolerance], ids=["radius", "tolerance"])
def test_no_stopping_rule_certifies_beyond_the_truth_more_than_alpha(p_a, budget, alpha, build):
    sigma = 0.5
    s = build(budget, alpha)
    assert certified_probability(p_a, s, _any_checkpoint_certifies(sigma, sigma * norm.ppf(p_a))) <= alpha


def _tolerance_rule(sigma, t, budget, alpha, true_radius):
    def rule(k, votes, n, alpha_k):
        done, pred, rad = tolerance_decision(np.zeros(len(votes), dtype=np.int64), votes, n, alpha_k, sigma, t,
                                             budget=budget, budget_alpha=alpha)
        return done & (pred != ABSTAIN) & (rad > true_radius), done
    return rule


@pytest.mark.parametrize("p_a", [0.7, 0.99, 0.99999])
def test_tolerance_mode_as_run_certifies_beyond_the_truth_at_most_alpha(p_a):
    budget, alpha, sigma = 100_000, 0.001, 0.25
    s = Schedule.for_tolerance(budget, alpha)
    assert certified_probability(p_a, s, _tolerance_rule(sigma, 0.05, budget, alpha, sigma * norm.ppf(p_a))) <= alpha


def test_peeking_at_full_alpha_is_caught_by_the_exact_law():
    # The same computation flags the classic mistake: testing at alpha at every checkpoint.
    s = Schedule.for_budget(100_000, 0.001)
    peeking = Schedule(s.checkpoints, np.full(len(s), 0.001))
    p = norm.cdf(2.0)
    assert certified_probability(p, peeking, _any_checkpoint_certifies(0.25, 0.5 * (1 - 1e-12))) > 2 * 0.001


def test_exact_law_matches_brute_force_enumeration():
    s = Schedule(np.array([3, 5, 8]), np.array([0.2, 0.2, 0.2]))
    rule = lambda k, votes, n, alpha: (votes >= n - (k == 2), votes >= n - 1)  # noqa: E731
    p = 0.7
    brute = 0.0
    for path in itertools.product([0, 1], repeat=8):
        for k, n in enumerate(s.checkpoints):
            votes = sum(path[:n])
            certified, done = rule(k, np.array([votes]), n, 0.2)
            if done[0]:
                brute += certified[0] * p ** sum(path) * (1 - p) ** (8 - sum(path))
                break
    assert certified_probability(p, s, rule) == pytest.approx(brute, rel=1e-12)


def _stop_when_all_vote_for_the_guess(decision, s):
    # p_A = 1: every sample votes for the guess; the first checkpoint where the rule stops.
    for n, alpha in zip(s.checkpoints.tolist(), s.alphas.tolist()):
        done, pred, rad = decision(s, n, alpha)
        if done[0]:
            return n, int(pred[0]), float(rad[0])


def test_radius_mode_decides_a_sure_input_in_a_few_hundred_samples():
    # sigma = 0.25, r = 0.5 needs p_A > Phi(2) = 0.977: a fixed bound needs ln(1000) / -ln(0.977)
    # = 300 votes of 300; the union bound's level alpha / 34 needs 453, the next checkpoint is 477.
    n, pred, rad = _stop_when_all_vote_for_the_guess(
        lambda s, n, alpha: radius_decision([7], [n], n, alpha, 0.25, 0.5, s), Schedule.for_budget(100_000, 0.001))
    assert (n, pred) == (477, 7) and rad >= 0.5


def test_radius_mode_refutes_a_hopeless_input_at_the_first_checkpoint():
    s = Schedule.for_budget(100_000, 0.001)
    done, pred, rad = radius_decision([1, 1], [32, 0], 64, float(s.alphas[0]), 0.25, 0.5, s)
    assert done.tolist() == [True, True] and pred.tolist() == [ABSTAIN, ABSTAIN] and rad.tolist() == [0.0, 0.0]


def test_radius_mode_keeps_sampling_near_the_threshold_and_ends_at_the_budget():
    s = Schedule.for_budget(100_000, 0.001)
    n = 1000
    votes = round(norm.cdf(2.0) * n) + 5  # just above Phi(2): undecided after 1000 samples
    done, _, _ = radius_decision([0], [votes], n, 1e-5, 0.25, 0.5, s)
    assert not done[0]
    done, pred, _ = radius_decision([0], [round(norm.cdf(2.0) * s.budget)], s.budget, float(s.alphas[-1]), 0.25, 0.5, s)
    assert done[0] and pred[0] == ABSTAIN


def test_tolerance_mode_stops_once_the_budget_cannot_add_more_than_t():
    budget, alpha, sigma, t = 100_000, 0.001, 0.25, 0.05
    n, pred, rad = _stop_when_all_vote_for_the_guess(
        lambda s, n, alpha_k: tolerance_decision([3], [n], n, alpha_k, sigma, t, budget=budget, budget_alpha=alpha),
        Schedule.for_tolerance(budget, alpha))
    # The fixed run's best radius at the budget is sigma * PhiInv(alpha ** (1/n)) = 0.953; at
    # level 0.6 alpha the half-budget look certifies 0.905 from 50,000 votes of 50,000.
    best = sigma * norm.isf(-np.expm1(np.log(alpha) / budget))
    assert (n, pred) == (50_000, 3) and best - t <= rad < best


@pytest.mark.parametrize("tolerance", [0.0, -1.0, float("nan")])
def test_tolerance_mode_rejects_a_non_positive_tolerance(tolerance):
    with pytest.raises(ValueError, match="`tolerance`"):
        tolerance_decision([0], [10], 10, 0.001, 0.25, tolerance, budget=100, budget_alpha=0.001)


def test_radius_mode_rejects_a_negative_radius():
    s = Schedule.for_budget(100, 0.001)
    with pytest.raises(ValueError, match="`radius`"):
        radius_decision([0], [10], 64, 0.001, 0.25, -0.1, s)
