"""Certificates beyond the paper's: Laplace and uniform noise, two-sided bounds, and top-k.

Everything works on vote counts, like :mod:`rsengine.stats`, whose Clopper-Pearson complements
it reuses; pure numpy + scipy, vectorized over M inputs. Every noise has standard deviation
``sigma`` per coordinate: Gaussian N(0, sigma^2) (l2 radii), Laplace of scale
``b = noise_scale("laplace", sigma)`` and uniform on ``[-lam, lam]``,
``lam = noise_scale("uniform", sigma)`` (l1 radii, :data:`NORMS`). Radii use those float32
scales, the distributions the kernels actually sample, and ``sigma`` itself for Gaussian noise.

Radii from a lower bound ``pA`` on the top class and an upper bound ``pB`` on every other class:

    noise     one-sided (pB = 1 - pA)          two-sided
    gaussian  sigma PhiInv(pA)                 sigma/2 (PhiInv(pA) - PhiInv(pB))  Cohen et al. 2019, Thm 1
    laplace   -b ln(2 (1 - pA))                b max(ln(pA/pB)/2, -ln(1 - pA + pB))  Teng et al. 2020, Thm 1
    uniform   2 lam (pA - 1/2)                 lam (pA - pB)                      Yang et al. 2020

The one-sided column is the two-sided one at ``pB = 1 - pA`` (for Laplace the second term is
the larger there, as ``4 q (1 - q) <= 1``), and that is how it is computed here. A certificate
is issued only where the radius is > 0; otherwise the class is ``ABSTAIN`` and the radius 0.0.

Two-sided bounds (:func:`certify_two_sided`): the Clopper-Pearson lower bound on ``pA`` at
``alpha/2`` and the upper bound of the largest other count at ``alpha/2``, with no split over
the ``K - 1`` other classes. The theorems need ``pB >= p_c`` for every ``c != A``, that is
``pB >= p_c*``, ``c* = argmax_{c != A} p_c``: a class fixed by the true probabilities and by
``A``, which the independent selection phase chose, not by these counts. With ``U_c`` each
class's upper bound at ``alpha/2``, ``pB = max_c U_c`` (the bound grows with the count: the
runner-up's), and ``max_c U_c < p_c*`` implies ``U_c* < p_c*``, of probability <= ``alpha/2``;
the union with ``pA``'s ``alpha/2`` fails with probability <= alpha. ``pB`` is capped at
``1 - pA``: where the lower bound holds (``pA <= p_A``, the true probability), ``p_c* <= 1 -
p_A <= 1 - pA``, so the capped bound holds on the same event; it keeps the radius at or above
the one-sided radius at ``alpha/2``. Every radius of the table grows with ``pA`` and falls with
``pB``, so bounds that hold give at most the radius of the true probabilities.

Top-k (:func:`certify_top_k`, Gaussian only): Jia, Cao, Wang & Gong, ICLR 2020, Theorem 1. For a
label ``l`` with lower bound ``p_l`` and the other labels' upper bounds sorted
``pbar_1 >= pbar_2 >= ...``, ``l`` stays in the smoothed top k for every ``||delta||_2 < R_l``,
``R_l = max_{u=1..k} sigma t_u`` where ``t_u`` solves

    Phi(PhiInv(p_l) - t) = Phi(PhiInv(S_u) + t) / u,   S_u = pbar_{k-u+1} + ... + pbar_k

(the u smallest of the k largest upper bounds; for u = 1, ``t_1 = (PhiInv(p_l) - PhiInv(pbar_k)) /
2``). This is the authors' code (github.com/jjy1994/Certify_Topk, ``topk.py``, which finds each
``t_u`` by bisection); the closed form ``(PhiInv(p_l) - PhiInv(S_u / u)) / 2`` is smaller for ``u >=
2`` (``x -> Phi(PhiInv(x) + t)`` is concave, so ``Phi(PhiInv(S/u) + t) >= Phi(PhiInv(S) + t) / u``).
Bounds: k lower bounds (the labels) at ``alpha/(2k)``, and an upper bound on every class at
``alpha/(2(k+1))`` for k >= 2 (at ``alpha/2`` for k = 1, by the two-sided argument above), not at
``alpha/(2K)``: the theorem's ``R_l`` depends on the upper bounds only through the k largest among
the classes ``!= l``, grows with ``p_l`` and does not rise with any of them (nor with any ``S_u``).
Let ``T`` be the k + 1 classes of the largest true probabilities (ties to the lower index; which of
tied classes is in it does not matter), fixed by the true probabilities alone. For every label
``l``, the k largest true probabilities among the classes ``!= l`` are those of k classes of ``T``
(``T`` less ``l``, or ``T``'s first k). Where ``U_c >= p_c`` for each ``c`` in ``T`` (failing with
probability <= ``(k+1) alpha/(2(k+1)) = alpha/2``), the m-th largest ``U`` among the classes ``!=
l`` is >= the m-th largest of those k classes' ``U``, >= the m-th largest true probability among the
classes ``!= l``, for m = 1..k: so ``R_l`` is at most the radius of the true probabilities, which
Theorem 1 certifies. (With one label, only ``argmax_{c != l} p_c`` matters: ``alpha/2``.) Every
upper bound and every ``S_u`` is capped at ``1 - p_l``, which holds where ``p_l``'s bound does. With
k = 1 this is exactly the Gaussian two-sided certificate. "Certified top-k at radius r": the true
class is among the labels and its radius is >= r.

Floating point. As in :mod:`rsengine.stats`, the lower bound is held as its complement
``q = 1 - pA`` (``_complement_bound``, relative error <= 2.7e-11) widened by the relative margin
1e-9; an upper bound is the complement of the failures' lower bound (``1 - BetaInv(beta; n -
n_j, n_j + 1)``, the same function, so as accurate relative to its own size, never formed as 1
minus something) and is widened up by the same margin. Where ``1 - pA`` enters, it is ``q``.
So each input moves in the safe direction by at least ~9.7e-10 of itself, which shifts each
term of the formulas by at least (``|PhiInv| <= 11.9``, ``|ln| <= 74`` for ``n <= 2**53``):

* ``PhiInv(pA) = norm.isf(q)`` and ``PhiInv(pB) = -norm.isf(pB)``: by >= 9.7e-10 q / phi >=
  9.7e-10 / 12.9 = 7.5e-11 (Mills' ratio), against norm.isf's 1.7 ulp (< 4e-15);
* ``ln(pA) = log1p(-q)``, ``ln(pB)``, ``ln(q + pB)``: by >= 9.7e-10 relative to ``q`` or ``pB``
  (absolute for the logarithm of ``pB`` and of the sum), against a few ulp of values <= 74;
* the top-k root ``t_u``: ``dt/dPhiInv(p_l)`` and ``-dt/dPhiInv(S_u)`` are weights summing to 1,
  so it drops by >= 7.5e-11, against its bisection on ``log_ndtr`` (an error of the equation's
  two sides of ~1e-13, whose slope in t is >= 0.8 at the root, as ``PhiInv(p_l) - t <= 0`` there).

Sums and products then add a relative 2**-52 of radii <= 74 scales, far below these shifts, so
every Gaussian and Laplace radius is at most the exact radius of the exact bounds. Uniform radii
are linear in ``q`` and ``pB``: a shift of 1e-9 ``q`` can be below an ulp of ``1 - q``
(``q = 6.9e-12`` at ``n = 10**12``), so each of its three operations is rounded down instead
(the float below a correctly rounded result is below the exact result).

Example:
    >>> import numpy as np
    >>> counts = np.array([[60_000] + [4_444] * 8 + [4_448], [99_990, 10] + [0] * 8])
    >>> pred, rad = certify_two_sided([0, 0], counts, 100_000, 0.001, 0.25)
    >>> pred.tolist(), rad.round(4).tolist()
    ([0, 0], [0.2398, 0.8695])
    >>> certify_one_sided([0, 0], counts[:, 0], 100_000, 0.001, 0.25)[1].round(4).tolist()
    [0.0602, 0.8726]
    >>> certify_one_sided([0, 0], counts[:, 0], 100_000, 0.001, 0.25, "uniform")[1].round(4).tolist()
    [0.0824, 0.4328]
"""
from __future__ import annotations

import numpy as np

# scipy.special and scipy.stats are imported inside the functions that use them, as in
# rsengine.stats: scipy.stats takes 0.4 s to import, and most runs need neither from here.
from .kernels.contract import check_noise, noise_scale
from .stats import (
    ABSTAIN,
    _as_counts,
    _as_vector,
    _certify_arguments,
    _check_trials,
    _complement_bound,
    _widened,
    certify_from_counts,
)
from .validation import check_positive_float, check_positive_int, check_probability, reject

__all__ = ["NORMS", "certify_one_sided", "certify_two_sided", "certify_top_k"]

NORMS = {"gaussian": "l2", "laplace": "l1", "uniform": "l1"}
"""The norm each noise's radii are measured in."""

# Halvings of the top-k root's bracket (at most 2 * 11.9 + isf(1 / 4K) < 40 wide): 40 / 2^64 =
# 2e-18, below an ulp of any radius that matters and far below the margin's shift.
_ROOT_STEPS = 64


def _check_common(n, alpha, sigma) -> tuple[int, float, float]:
    n = check_positive_int("n", n)
    _check_trials("n", n)
    return n, check_probability("alpha", alpha), check_positive_float("sigma", sigma)


def _check_table(name: str, value, n: int, min_classes: int) -> np.ndarray:
    """``value`` as an int64 [M, K] table of counts >= 0 with K >= min_classes, rows summing to n."""
    table = _as_counts(name, value, 0)
    if table.ndim != 2 or table.shape[1] < min_classes:
        reject(name, f"to be a 2-D array [M, K] with K >= {min_classes}", f"shape {table.shape}")
    sums = table.sum(axis=1)
    if (sums != n).any():
        reject(name, f"rows summing to `n` = {n}", f"a row summing to {sums[sums != n][0]}")
    return table


def _lower_complement(votes, n: int, alpha: float) -> np.ndarray:
    """Widened complement ``q >= 1 - p_lower`` of the one-sided Clopper-Pearson lower bound."""
    return np.minimum(_widened(_complement_bound(votes, np.int64(n), np.float64(alpha))), 1.0)


def _upper(votes, n: int, alpha: float) -> np.ndarray:
    """Widened one-sided Clopper-Pearson upper bound: the complement of the failures' lower bound."""
    return _lower_complement(n - votes, n, alpha)


def _below(x: np.ndarray) -> np.ndarray:
    # The float below a correctly rounded result is below the exact result.
    return np.nextafter(x, -np.inf)


def _radius(noise: str, scale: float, q_a: np.ndarray, p_b: np.ndarray) -> np.ndarray:
    """Two-sided radius from ``q_a >= 1 - pA`` and ``p_b >= pB`` (``p_b <= q_a``); > 0: certified."""
    from scipy.stats import norm  # deferred: see the imports

    with np.errstate(divide="ignore"):  # q_a = 1 (no votes): PhiInv(pA) and ln(pA) are -inf
        if noise == "gaussian":
            # 0.5 * scale * 2x is scale * x exactly, so at p_b = q_a this is certify_from_counts.
            return 0.5 * scale * (norm.isf(q_a) + norm.isf(p_b))
        if noise == "laplace":
            ratio_term = 0.5 * (np.log1p(-q_a) - np.log(p_b))
            return scale * np.maximum(ratio_term, -np.log(q_a + p_b))
    return _below(scale * _below(_below(1.0 - q_a) - p_b))


def _decide(classes: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    certified = radii > 0
    return (np.where(certified, classes, ABSTAIN).astype(np.int64),
            np.where(certified, radii, 0.0).astype(np.float64))


def _scale(noise: str, sigma: float) -> float:
    return sigma if noise == "gaussian" else noise_scale(noise, sigma)


def certify_one_sided(c_hat, n_a, n, alpha, sigma, noise="gaussian"):
    """CERTIFY with ``pB = 1 - pA``: the certified class and radius (in ``NORMS[noise]``) of each input.

    Gaussian: exactly :func:`rsengine.stats.certify_from_counts`. Laplace: ``-b ln(2 (1 - pA))``;
    uniform: ``2 lam (pA - 1/2)``; both from the widened complement of the lower bound at
    ``alpha`` (module docstring), at most the exact radius.

    Args:
        c_hat: [M] integer classes >= 0 guessed from the independent selection phase.
        n_a: [M] integer votes for ``c_hat`` among the ``n`` estimation samples, in [0, n].
        n: number of estimation samples, an integer in [1, 2**53].
        alpha: one-sided miscoverage in (0, 1).
        sigma: the noise's standard deviation per coordinate, a finite number > 0.
        noise: one of "gaussian", "laplace", "uniform".

    Returns:
        ``(pred, radius)``: int64 [M] classes (``ABSTAIN`` = -1 where abstaining) and float64
        [M] radii (0.0 where abstaining).

    Raises:
        TypeError, ValueError: naming the argument of the wrong type or out of range.

    Example:
        >>> pred, rad = certify_one_sided([2, 5], [100, 60], 100, 0.001, 0.5, "laplace")
        >>> pred.tolist(), rad.round(4).tolist()
        ([2, -1], [0.712, 0.0])
    """
    noise = check_noise(noise)
    if noise == "gaussian":
        return certify_from_counts(c_hat, n_a, n, alpha, sigma)
    n, a, s, classes, votes = _certify_arguments(c_hat, n_a, n, alpha, sigma)
    q_a = _lower_complement(votes, n, a)
    return _decide(classes, _radius(noise, _scale(noise, s), q_a, q_a))


def _two_sided_bounds(classes: np.ndarray, votes: np.ndarray, n: int, alpha: float):
    """``(q_a, p_b)``: widened ``1 - pA_lower`` at alpha/2 and capped ``pB_upper``, each [M]."""
    rows = np.arange(len(classes))
    others = votes.copy()
    others[rows, classes] = -1
    # The Clopper-Pearson upper bound grows with the count: the largest is the runner-up's.
    q_a = _lower_complement(votes[rows, classes], n, alpha / 2)
    p_b = _upper(others.max(axis=1), n, alpha / 2)  # no split over the K - 1: module docstring
    return q_a, np.minimum(p_b, q_a)


def certify_two_sided(c_hat, counts, n, alpha, sigma, noise="gaussian"):
    """CERTIFY with a lower bound on ``pA`` and an upper bound on the runner-up ``pB`` at once.

    Bounds as in the module docstring (``alpha/2`` for ``pA``, ``alpha/2`` for the largest other
    count, ``pB`` capped at ``1 - pA``), so the certificate holds with probability >= 1 - alpha
    overall. Never below :func:`certify_one_sided` at ``alpha/2``, equal to it where the cap
    binds (always for K = 2); larger where the rest of the mass is spread over many classes,
    and it may certify a ``pA`` below 1/2.

    Args:
        c_hat: [M] integer classes in [0, K) guessed from the independent selection phase.
        counts: [M, K] integer estimation votes per class, K >= 2, each row summing to ``n``.
        n, alpha, sigma, noise: as in :func:`certify_one_sided`.

    Returns:
        ``(pred, radius)``: int64 [M] classes (``ABSTAIN`` where abstaining) and float64 [M]
        radii in ``NORMS[noise]`` (0.0 where abstaining).

    Raises:
        TypeError, ValueError: naming the argument of the wrong type or out of range.

    Example:
        >>> pred, rad = certify_two_sided([0, 1], [[450, 30, 20], [250, 250, 0]], 500, 0.001, 0.5)
        >>> pred.tolist(), rad.round(4).tolist()
        ([0, -1], [0.574, 0.0])
    """
    noise = check_noise(noise)
    n, a, s = _check_common(n, alpha, sigma)
    classes = _as_vector("c_hat", _as_counts("c_hat", c_hat, 0))
    votes = _check_table("counts", counts, n, 2)
    if votes.shape[0] != classes.shape[0]:
        reject("counts", f"to have one row per `c_hat` ({classes.shape[0]})", f"shape {votes.shape}")
    if (classes >= votes.shape[1]).any():
        reject("c_hat", f"in [0, {votes.shape[1]})", repr(classes[classes >= votes.shape[1]][0].item()))
    q_a, p_b = _two_sided_bounds(classes, votes, n, a)
    return _decide(classes, _radius(noise, _scale(noise, s), q_a, p_b))


def _top_k_root(a: np.ndarray, b: np.ndarray, u: int) -> np.ndarray:
    """Largest float t >= 0 found to solve Phi(a - t) = Phi(b + t) / u (u >= 2), else 0.

    ``g(t) = log Phi(a - t) - log Phi(b + t) + log u`` decreases; it is < 0 at
    ``high = max(a + isf(1/(4u)), -b, 0)``, where Phi(a - t) <= 1/(4u) < 1/(2u) <= Phi(b + t) / u.
    Bisection keeps ``low`` where g > 0, so ``low`` never passes the root as computed.
    """
    from scipy import special  # deferred: see the imports
    from scipy.stats import norm

    def g(t):
        return special.log_ndtr(a - t) - special.log_ndtr(b + t) + np.log(u)

    with np.errstate(invalid="ignore", divide="ignore"):  # a = -inf where p_l = 0: g = -inf
        low = np.zeros(np.broadcast(a, b).shape)
        high = np.maximum(np.maximum(a + norm.isf(1 / (4 * u)), -b), 0.0)
        high = np.where(g(low) > 0, high, 0.0)
        for _ in range(_ROOT_STEPS):
            middle = 0.5 * (low + high)
            above = g(middle) > 0
            low = np.where(above, middle, low)
            high = np.where(above, high, middle)
    return low


def _largest_others(labels: np.ndarray, uppers: np.ndarray, q_l: np.ndarray) -> np.ndarray:
    """Each label's k largest of the upper bounds ``uppers`` [M, K] among the other classes,
    capped at its ``q_l = 1 - p_l`` [M, k] and descending: [M, k, k] (``labels``: int [M, k])."""
    k, num_classes = labels.shape[1], uppers.shape[1]
    capped = np.minimum(uppers[:, None, :], q_l[:, :, None])
    # A label's own bound is set to 0, below every upper bound (>= 1 - alpha^(1/n) > 0), so it
    # is not among the k largest of its K - 1 >= k others.
    own = labels[:, :, None] == np.arange(num_classes)
    return -np.sort(-np.where(own, 0.0, capped), axis=2)[:, :, :k]


def _jia_radii(q_l: np.ndarray, largest: np.ndarray, sigma: float) -> np.ndarray:
    """Jia et al.'s R_l, float64 [M, k] (0.0: not certified), of ``q_l = 1 - p_l`` [M, k] and
    each label's k largest other upper bounds [M, k, k] (:func:`_largest_others`)."""
    from scipy.stats import norm  # deferred: see the imports

    sums = np.minimum(np.cumsum(largest[:, :, ::-1], axis=2), q_l[:, :, None])  # S_1 .. S_k
    radius = _radius("gaussian", sigma, q_l, sums[:, :, 0])
    a_l = norm.isf(q_l)
    for u in range(2, largest.shape[2] + 1):
        radius = np.maximum(radius, sigma * _top_k_root(a_l, -norm.isf(sums[:, :, u - 1]), u))
    return np.where(radius > 0, radius, 0.0)


def _top_k_radii(labels: np.ndarray, votes: np.ndarray, n: int, alpha: float, sigma: float,
                 num_uppers: int) -> np.ndarray:
    """R_l [M, k] of ``labels`` (int [M, k]) from ``votes`` [M, K]: the labels' lower bounds at
    alpha/(2k) and every class's upper bound at alpha/(2 num_uppers)."""
    q_l = _lower_complement(np.take_along_axis(votes, labels, axis=1), n, alpha / (2 * labels.shape[1]))
    return _jia_radii(q_l, _largest_others(labels, _upper(votes, n, alpha / (2 * num_uppers)), q_l), sigma)


def certify_top_k(selection_counts, counts, k, n, alpha, sigma):
    """Top-k CERTIFY (Jia et al., ICLR 2020, Theorem 1; Gaussian noise, l2 radii).

    The labels are the k classes with the most selection votes (most first, ties to the lower
    class index). Label ``labels[i, j]`` stays in the smoothed top k of input i within l2 radius
    ``radii[i, j]``; with probability >= 1 - alpha all of these hold at once (bounds and split in
    the module docstring). The input is certified top-k at radius r when its true class is among
    its labels with radius >= r. With k = 1 this is :func:`certify_two_sided`'s Gaussian radius.

    Args:
        selection_counts: [M, K] integer votes per class >= 0 of the independent selection phase.
        counts: [M, K] integer estimation votes per class, each row summing to ``n``.
        k: number of labels, an integer in [1, K).
        n, alpha, sigma: as in :func:`certify_one_sided`.

    Returns:
        ``(labels, radii)``: int64 [M, k] classes and float64 [M, k] radii (0.0: not certified),
        each at most the exact radius of the exact bounds.

    Raises:
        TypeError, ValueError: naming the argument of the wrong type or out of range.

    Example:
        >>> labels, radii = certify_top_k([[10, 50, 40]], [[100, 5000, 4900]], 2, 10_000, 0.001, 0.5)
        >>> labels.tolist(), radii.round(4).tolist()
        ([[1, 2]], [[0.5378, 0.5316]])
    """
    n, a, s = _check_common(n, alpha, sigma)
    votes = _check_table("counts", counts, n, 2)
    selection = _as_counts("selection_counts", selection_counts, 0)
    if selection.shape != votes.shape:
        reject("selection_counts", f"to have the shape of `counts` {votes.shape}", f"shape {selection.shape}")
    num_classes = votes.shape[1]
    k = check_positive_int("k", k)
    if k >= num_classes:
        reject("k", f"< the number of classes K = {num_classes}", repr(k))
    labels = np.argsort(-selection, axis=1, kind="stable")[:, :k]  # [M, k]
    # Only the k + 1 truly largest classes' bounds must hold (k = 1: the runner-up's): module docstring.
    return labels.astype(np.int64), _top_k_radii(labels, votes, n, a, s, k + 1 if k > 1 else 1)
