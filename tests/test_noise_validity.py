"""Certificates of every noise against closed-form truth: a classifier that thresholds one coordinate.

f(x) = 1 if x_0 > t else 0. Its smoothed classifier depends on x_0 alone, so it keeps its class
exactly within distance d = |x_0 - t| of x in every norm, and its top-class probability is
pA = 1 - F(-d) for the noise's CDF F: Phi(d / sigma) (Gaussian), 1 - exp(-d / b) / 2 (Laplace),
1/2 + d / (2 lambda) for d <= lambda (uniform). Each noise's one-sided radius of the exact pA is
d itself, so certificates must exceed d at most at the alpha rate and approach d as n grows.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from rsengine import Smooth
from rsengine.certificates import NORMS, certify_one_sided
from rsengine.kernels.contract import NOISES, noise_scale

SIGMA = 0.5


def _top_probability(noise: str, d: float) -> float:
    """pA of the threshold classifier at distance d > 0 from its threshold, sigma = SIGMA."""
    scale = noise_scale(noise, SIGMA)  # the scale the kernels sample with
    if noise == "gaussian":
        return float(stats.norm.cdf(d / scale))
    if noise == "laplace":
        return 1.0 - 0.5 * math.exp(-d / scale)
    return min(1.0, 0.5 + d / (2.0 * scale))


def _allowed_failures(trials: int, alpha: float) -> int:
    # Failures above this count have probability < 1e-6 when the true failure rate is alpha.
    return int(stats.binom.ppf(1.0 - 1e-6, trials, alpha))


@pytest.mark.parametrize("noise", NOISES)
def test_certificates_exceed_the_truth_at_most_at_the_alpha_rate(noise):
    # 4000 independent runs per distance at n = 1000 and alpha = 0.05: a radius above d is a
    # false certificate, allowed in at most alpha of the runs.
    rng = np.random.default_rng(12)
    trials, n, alpha = 4000, 1000, 0.05
    for d in (0.05, 0.2, 0.4):
        p_a = _top_probability(noise, d)
        votes = rng.binomial(n, p_a, size=trials)
        _, radii = certify_one_sided(np.ones(trials, dtype=np.int64), votes, n, alpha, SIGMA, noise)
        assert (radii > d).sum() <= _allowed_failures(trials, alpha), (d, (radii > d).mean())


@pytest.mark.parametrize("noise", NOISES)
def test_certificates_reach_85_percent_of_the_truth_at_large_n(noise):
    rng = np.random.default_rng(3)
    n, alpha = 10**7, 0.001
    for d in (0.05, 0.2, 0.4):
        votes = rng.binomial(n, _top_probability(noise, d), size=200)
        _, radii = certify_one_sided(np.ones(200, dtype=np.int64), votes, n, alpha, SIGMA, noise)
        assert radii.min() >= 0.85 * d, (d, radii.min())


class Threshold(torch.nn.Module):
    """Logits [B, 2] of x_0 > t: class 1 above the threshold."""

    def __init__(self, t: float):
        super().__init__()
        self.t = t

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        above = (batch.flatten(1)[:, 0] > self.t).float()
        return torch.stack([1.0 - above, above], dim=1)


@pytest.mark.parametrize("noise", NOISES)
def test_smooth_samples_the_closed_form_probability_and_certifies_below_the_truth(noise):
    # End to end through the noise kernel: the vote share of class 1 at x_0 = t + d must be the
    # closed-form pA (within 5 binomial standard deviations), and the certificate below d.
    t, d, n = 0.3, 0.2, 40_000
    smooth = Smooth(Threshold(t), num_classes=2, sigma=SIGMA, noise=noise, seed=5)
    assert smooth.norm == NORMS[noise] == ("l2" if noise == "gaussian" else "l1")
    x = torch.zeros(6)
    x[0] = t + d
    votes = smooth.sample_counts(x[None], n)[0]
    p_a = _top_probability(noise, d)
    assert abs(votes[1] / n - p_a) <= 5 * math.sqrt(p_a * (1 - p_a) / n), (votes[1] / n, p_a)
    label, radius = smooth.certify(x, n0=100, n=n, alpha=0.001)
    assert label == 1 and 0.7 * d <= radius <= d
