"""Anytime-valid adaptive certification: when an input has been sampled enough, and what it then gets.

The fixed-n CERTIFY spends n estimation samples on every input. Here n is a budget: the
estimation samples of an input are looked at after each of K checkpoints
``n_1 < n_2 < ... < n_K = n`` (a geometric grid), and sampling stops at the first checkpoint where
the question asked is answered. At checkpoint k, with ``n_A`` of the first ``n_k`` samples voting
for the guess ``c_A`` (from the separate n0 selection samples), the bounds are Clopper-Pearson's
at level ``alpha_k``::

    lower_k = BetaInv(alpha_k; n_A, n_k - n_A + 1),   upper_k = 1 - BetaInv(alpha_k; n_k - n_A, n_A + 1)

with ``alpha_1 + ... + alpha_K = alpha``. By the union bound, ``P(lower_k > p_A for some k) <=
alpha`` and ``P(upper_k < p_A for some k) <= alpha``: the lower bounds form a (1 - alpha)
confidence sequence on the grid (the staged construction of Horvath et al., ICLR 2022). So a
certificate ``sigma * PhiInv(lower_k)`` taken at *any* checkpoint, chosen by *any* rule that
looks at the data so far (including "stop now", a Ctrl-C, or a budget), is wrong with
probability at most alpha: exactly the guarantee of the fixed-n CERTIFY. Every bound is computed
by ``rsengine.stats`` (exact Clopper-Pearson, rounded towards no certificate), and the validity
suite computes the probability of a false certificate exactly, path by path, in closed form.

Two questions, two stopping rules:

- ``radius=r`` ("is g robust at r?", the question a certified-accuracy column asks): stop and
  certify once ``sigma * PhiInv(lower_k) >= r``; stop and abstain once even the optimistic
  projection cannot certify at the budget: the remaining ``n - n_k`` samples voting at the rate
  ``upper_k`` would still leave the bound at n below ``Phi(r / sigma)``.
- ``tolerance=t`` (estimate the radius): stop once the radius a fixed-n run at the budget would
  certify if the vote rate were ``upper_k`` exceeds the current certified radius by at most t;
  with probability at least 1 - alpha no later checkpoint could have done better by more than t
  than the fixed run's optimistic radius.

Both stop at the budget at the latest. Each question has its schedule, fixed before any sample
is drawn (so the union bound holds):

- radius: the geometric grid with alpha spread evenly (:meth:`Schedule.for_budget`). Inputs far
  from the threshold decide within a few hundred samples; the even spread costs them a level of
  alpha / K instead of alpha (477 instead of 300 samples at sigma = 0.25, r = 0.5, K = 34).
- tolerance: most of alpha on a look at half the budget and the rest on the budget
  (:meth:`Schedule.for_tolerance`). A tolerance run of an input that votes (nearly) always for
  its guess ends where the radius still to gain drops below t, which for small t is late: at
  sigma = 0.25, t = 0.05, alpha = 0.001 no bound at any level <= alpha can stop before 45,300 of
  a 100,000 budget, so an even spread over 34 looks would stop it at 80,779 and the half-budget
  look at 50,000 does.

Example:
    >>> schedule = Schedule.for_budget(100_000, 0.001)
    >>> int(schedule.checkpoints[0]), int(schedule.checkpoints[-1]), len(schedule)
    (64, 100000, 34)
    >>> done, pred, rad = radius_decision(np.array([3]), np.array([477]), 477, 0.001 / 34, 0.25, 0.5,
    ...                                   schedule)
    >>> bool(done[0]), int(pred[0]), bool(rad[0] >= 0.5)
    (True, 3, True)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from .stats import ABSTAIN, certify_from_counts, clopper_pearson_lower
from .validation import check_non_negative_float, check_positive_float, check_positive_int, check_probability

__all__ = ["Schedule", "FIRST_CHECKPOINT", "CHECKPOINT_RATIO", "TOLERANCE_SHARES", "radius_decision",
           "tolerance_decision", "certificate_so_far"]

# The grid: the first look after 64 samples (64 votes of 64 for the guess certify at r = 0 for any
# checkpoint level above 2**-64), then every 25% more: an input is sampled at most
# 25% beyond the checkpoint where it could first have stopped.
FIRST_CHECKPOINT = 64
CHECKPOINT_RATIO = 1.25
# Tolerance mode's spending: (the grid before half the budget, the half-budget look, the budget).
TOLERANCE_SHARES = (0.1, 0.6, 0.3)


@dataclass(frozen=True)
class Schedule:
    """Checkpoints ``n_1 < ... < n_K`` (int64 [K], the last one the budget) and their levels (float64 [K]).

    Build it with :meth:`for_budget`; ``alphas.sum() <= alpha``.
    """

    checkpoints: np.ndarray
    alphas: np.ndarray

    @classmethod
    def for_budget(cls, budget: int, alpha: float, first: int = FIRST_CHECKPOINT,
                   ratio: float = CHECKPOINT_RATIO) -> "Schedule":
        """The geometric grid from ``first`` to ``budget``, alpha spread evenly (radius mode).

        Example:
            >>> s = Schedule.for_budget(1000, 0.014)
            >>> s.checkpoints.tolist()
            [64, 80, 100, 125, 156, 195, 244, 305, 381, 477, 596, 745, 931, 1000]
            >>> bool(abs(s.alphas.sum() - 0.014) < 1e-15), float(s.alphas[-1])
            (True, 0.001)
        """
        budget = check_positive_int("n", budget)
        alpha = check_probability("alpha", alpha)
        checkpoints = cls._grid(budget, first, ratio)
        return cls(checkpoints, np.full(len(checkpoints), alpha / len(checkpoints)))

    @classmethod
    def for_tolerance(cls, budget: int, alpha: float) -> "Schedule":
        """Tolerance mode: the grid up to half the budget, then the budget; TOLERANCE_SHARES of alpha.

        Example:
            >>> s = Schedule.for_tolerance(100_000, 0.001)
            >>> s.checkpoints[-3:].tolist(), (s.alphas[-2:] / 0.001).round(6).tolist()
            ([41359, 50000, 100000], [0.6, 0.3])
        """
        budget = check_positive_int("n", budget)
        alpha = check_probability("alpha", alpha)
        half = budget // 2
        if half == 0:
            return cls(np.array([budget]), np.array([alpha]))
        early = cls._grid(half, FIRST_CHECKPOINT, CHECKPOINT_RATIO)[:-1] if half > FIRST_CHECKPOINT else []
        shares = np.array(TOLERANCE_SHARES if len(early) else (0.0, *TOLERANCE_SHARES[1:]))
        early_share, half_share, final_share = shares / shares.sum()  # no grid: the two looks share it all
        checkpoints = np.array([*early, half, budget], dtype=np.int64)
        alphas = np.array([*np.full(len(early), alpha * early_share / max(1, len(early))),
                           alpha * half_share, alpha * final_share])
        return cls(checkpoints, alphas)

    @staticmethod
    def _grid(budget: int, first: int, ratio: float) -> np.ndarray:
        grid, point = [], float(first)
        while round(point) < budget:
            if not grid or round(point) > grid[-1]:
                grid.append(round(point))
            point *= ratio
        # A last step shorter than a tenth of the grid's ratio only re-tests nearly the same data.
        if grid and budget < grid[-1] * (1 + (ratio - 1) / 10):
            grid.pop()
        return np.array([*grid, budget], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.checkpoints)

    @property
    def budget(self) -> int:
        return int(self.checkpoints[-1])


def _upper(n_a: np.ndarray, n: int, alpha: float) -> np.ndarray:
    # One-sided upper Clopper-Pearson bound: 1 - the lower bound of the complementary count.
    return 1.0 - clopper_pearson_lower(n - n_a, n, alpha)


def certificate_so_far(guess, n_a, n: int, alpha: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The certificate ``n_a`` of ``n`` votes support at level ``alpha`` (a checkpoint's): (pred [M], radius [M]).

    What an input interrupted after that checkpoint gets; :func:`rsengine.stats.certify_from_counts`.
    """
    return certify_from_counts(np.asarray(guess), np.asarray(n_a), n, alpha, sigma)


def radius_decision(guess, n_a, n: int, alpha: float, sigma: float, target: float,
                    schedule: Schedule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radius mode at a checkpoint: is each input certified at ``target``, refuted, or undecided?

    Args:
        guess: [M] selection guesses. n_a: [M] votes for them among the first ``n`` estimation
            samples. n, alpha: the checkpoint and its level (from ``schedule``).
        sigma: noise level. target: the radius r asked about (>= 0). schedule: the run's grid.

    Returns:
        (done bool [M], pred int64 [M], radius float64 [M]): where done, pred is the guess and
        radius >= target if certified, else ABSTAIN and 0.0. At the budget every input is done.
    """
    target = check_non_negative_float("radius", target)
    pred, rad = certificate_so_far(guess, n_a, n, alpha, sigma)
    certified = (pred != ABSTAIN) & (rad >= target)
    budget = schedule.budget
    if n >= budget:
        done = np.ones(len(pred), dtype=bool)
    else:
        # Optimistic projection: the rest of the budget votes at the upper bound's rate.
        more = np.ceil(_upper(np.asarray(n_a), n, alpha) * (budget - n)).astype(np.int64)
        projected = np.minimum(np.asarray(n_a) + more, budget)
        reach_pred, reach = certify_from_counts(np.asarray(guess), projected, budget, float(schedule.alphas[-1]), sigma)
        hopeless = (reach_pred == ABSTAIN) | (reach < target)
        done = certified | hopeless
    pred = np.where(certified, pred, ABSTAIN).astype(np.int64)
    return done, pred, np.where(certified, rad, 0.0)


def tolerance_decision(guess, n_a, n: int, alpha: float, sigma: float, tolerance: float, *, budget: int,
                       budget_alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tolerance mode at a checkpoint: could the budget still raise a radius by more than ``tolerance``?

    Args:
        guess, n_a, n, alpha, sigma: as in :func:`radius_decision`. tolerance: t > 0.
        budget: the largest n. budget_alpha: the level a fixed run at the budget uses (alpha).

    Returns:
        (done bool [M], pred int64 [M], radius float64 [M]): the certificate so far where done
        (ABSTAIN and 0.0 where it certifies nothing).
    """
    tolerance = check_positive_float("tolerance", tolerance)
    pred, rad = certificate_so_far(guess, n_a, n, alpha, sigma)
    if n >= budget:
        return np.ones(len(pred), dtype=bool), pred, rad
    best_rate = _upper(np.asarray(n_a), n, alpha)
    best_votes = np.minimum(np.ceil(best_rate * budget).astype(np.int64), budget)
    best_pred, best = certify_from_counts(np.asarray(guess), best_votes, budget, budget_alpha, sigma)
    gain = np.where(best_pred == ABSTAIN, 0.0, best) - rad
    return gain <= tolerance, pred, rad

