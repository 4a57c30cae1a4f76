"""Exact law of a sequential rule: the probability that it certifies, summed over every vote path.

At checkpoint k the votes for the guess are Binomial(n_k, p), built from the previous checkpoint's
by adding an independent Binomial(n_k - n_{k-1}, p). The mass of paths a rule has not stopped yet
is carried from checkpoint to checkpoint (a convolution), and the mass it certifies or stops is
taken out: no sampling, no tolerance beyond the convolution's float error (~1e-16 per entry).

Example:
    >>> import numpy as np
    >>> from rsengine.sequential import Schedule
    >>> s = Schedule(np.array([2, 4]), np.array([0.5, 0.5]))
    >>> certify = lambda k, votes, n, alpha: (4 * votes >= 3 * n,) * 2   # (certified, done)
    >>> round(certified_probability(0.5, s, certify), 12)   # 2 of 2 votes, or 1 of 2 then 2 of 2 more
    0.375
"""
import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import binom


def certified_probability(p, schedule, rule):
    """P(the rule certifies at some checkpoint) when each vote is for the guess with probability p.

    rule(k, votes [n_k + 1] = 0..n_k, n_k, alpha_k) -> (certified bool [n_k + 1], done bool
    [n_k + 1]), certified implying done; paths that are done stop there.
    """
    mass, previous, total = np.ones(1), 0, 0.0
    for k, (n, alpha) in enumerate(zip(schedule.checkpoints.tolist(), schedule.alphas.tolist())):
        step = binom.pmf(np.arange(n - previous + 1), n - previous, p)
        mass = np.clip(fftconvolve(mass, step), 0.0, None)[:n + 1]
        certified, done = rule(k, np.arange(n + 1), n, alpha)
        total += mass[certified].sum()
        mass[done] = 0.0
        previous = n
    return float(total)
