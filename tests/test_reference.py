"""The pure-PyTorch kernels: Philox known answers, the noise's distribution and the RNG contract."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from exact_noise import float64_box_muller, ulps
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION
from rsengine.kernels import reference as ref

I64 = torch.int64


def _words(*values):
    return tuple(torch.tensor([v], dtype=I64) for v in values)


@pytest.mark.parametrize(
    "counter, key, expected",
    [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ],
    ids=["zeros", "ones", "pi"],
)
def test_philox4x32_10_known_answers(counter, key, expected):
    # Random123's published known-answer vectors for philox4x32-10.
    assert tuple(int(w) for w in ref.philox4x32_10(_words(*counter), key)) == expected


def _noise(seed=0, streams=(0,), samples=(0,), phase=PHASE_ESTIMATION, numel=10):
    return ref.gaussian_noise(seed, torch.tensor(streams, dtype=I64), torch.tensor(samples, dtype=I64),
                              phase, numel)


def test_gaussian_noise_is_standard_normal():
    z = _noise(samples=list(range(200)), streams=[3] * 200, numel=1001).double().flatten().numpy()
    n = z.size  # 200,200 normals
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(sps.skew(z)) < 5 * math.sqrt(6 / n)
    assert abs(sps.kurtosis(z)) < 5 * math.sqrt(24 / n)
    assert sps.kstest(z, "norm").pvalue > 1e-3


def test_gaussian_noise_tails_are_bounded_by_the_uniform_floor():
    z = _noise(samples=list(range(100)), numel=4000)
    # (u + 0.5) * 2**-32 >= 2**-33, so |z| <= sqrt(-2 ln 2**-33): no inf, no NaN, no clamp at 5.68.
    assert torch.isfinite(z).all()
    assert z.abs().max() <= math.sqrt(-2 * math.log(2.0**-33))


@pytest.mark.parametrize("other", [
    dict(phase=PHASE_SELECTION), dict(streams=(1,)), dict(seed=1), dict(samples=(1,)),
], ids=["phase", "stream", "seed", "sample"])
def test_gaussian_noise_streams_are_independent(other):
    base = dict(seed=0, streams=(0,), samples=(0,), phase=PHASE_ESTIMATION, numel=20000)
    a = _noise(**base).flatten().numpy()
    b = _noise(**{**base, **other}).flatten().numpy()
    assert not np.array_equal(a, b)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size)
    # Two-sample KS: both are draws of the same N(0, 1).
    assert sps.ks_2samp(a, b).pvalue > 1e-3


def test_gaussian_noise_same_seed_same_noise():
    assert torch.equal(_noise(seed=7, samples=[0, 5]), _noise(seed=7, samples=[0, 5]))


@pytest.mark.parametrize("numel", [1, 3, 10, 784, 1001], ids=lambda d: f"numel{d}")
def test_gaussian_noise_rows_are_chunking_invariant(numel):
    # A sample's noise depends only on its index: computing samples together or one by one,
    # in any order, gives the same numbers (batch size cannot change a certificate).
    together = _noise(samples=list(range(9)), streams=[4] * 9, numel=numel)
    for s in (0, 4, 8):
        assert torch.equal(together[s], _noise(samples=[s], streams=[4], numel=numel)[0])


def test_gaussian_noise_counter_is_64_bit():
    # At sample 2**31 with 3 elements per input the element index passes 2**32: a 32-bit counter
    # would wrap to the noise of an early sample.
    numel = 3
    late = 2**32 // numel + 1  # first element index (late * numel) >= 2**32
    wrapped = (late * numel - 2**32) // numel
    assert not torch.equal(_noise(samples=[late], numel=numel), _noise(samples=[wrapped], numel=numel))
    z = _noise(samples=list(range(late, late + 2000)), numel=numel).flatten().numpy()
    assert sps.kstest(z, "norm").pvalue > 1e-3


# The reference's float32 Box-Muller against float64 of the exact uniforms: torch's log1p/log,
# sqrt, cos/sin of pi t rounded twice (t, then pi t) and the product; at most 4.3 ulp measured on
# 16M random word pairs and on the edge words below.
REFERENCE_ULPS = 6


def test_gaussian_noise_word_near_two_pow_32_is_not_zero():
    # The audit's reproduction (issue 13, item 7): elements 436 and 437 of sample 142034 come from
    # w0 = 0xffffffcf, whose float32 uniform was exactly 1.0, so both normals were exactly 0.
    sample, element = 142034, 436
    z = _noise(samples=(sample,), numel=784)[0, element:element + 2]
    q = (sample * 784 + element) // 4
    w0, w1, _, _ = ref.philox4x32_10(_words(q & 0xFFFFFFFF, q >> 32, 0, PHASE_ESTIMATION), (0, 0))
    assert int(w0) == 0xFFFFFFCF
    exact = torch.cat(float64_box_muller(w0, w1))
    assert (z != 0).all() and (ulps(z, exact) <= REFERENCE_ULPS).all(), (z, exact)


def test_box_muller_smallest_radius_is_two_pow_minus_16():
    # w0 = 2**32 - 1: u0 = 1 - 2**-33, r = sqrt(-2 ln u0) = 2**-16 (1 + 2**-35), the smallest
    # radius, not 0. w1 = 0: the angle 2 pi 2**-33, so cos rounds to 1 and sin is r * pi 2**-32.
    z_cos, z_sin = ref.box_muller(torch.tensor([2**32 - 1]), torch.tensor([0]))
    assert float(z_cos) == 2.0**-16
    assert ulps(z_sin, torch.tensor([2.0**-16 * math.pi * 2.0**-32], dtype=torch.float64)).item() <= REFERENCE_ULPS


def test_box_muller_edge_words_match_float64():
    # Where float32 uniforms fail: u0 within 2**-20 of 1 (every word; the top 128 rounded to 1),
    # near 1/2 and 2/3 (where the logarithm changes formula in the kernels), near 0; u1 next to
    # the zeros of cos and sin (float32 2 pi u1 was off by millions of ulps there).
    w0 = torch.cat([2**32 - 1 - torch.arange(4096), torch.arange(256), 2**31 + torch.arange(-256, 256),
                    0xAAAAAA81 + torch.arange(-256, 256)])
    w1 = torch.tensor([0, 2**30 - 1, 2**30, 2**31 - 1, 2**31, 3 * 2**30 - 1, 3 * 2**30, 2**32 - 1, 2**29, 2**29 - 1])
    w0, w1 = w0.repeat_interleave(w1.numel()), w1.repeat(w0.numel())
    for z, exact in zip(ref.box_muller(w0, w1), float64_box_muller(w0, w1)):
        assert (z != 0).all() and (ulps(z, exact) <= REFERENCE_ULPS).all(), float(ulps(z, exact).max())


def test_noise_normalize_identity():
    xs = torch.rand(2, 3, 4, 5)
    mean, std = torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.3, 0.25])
    streams = torch.tensor([11, 12])
    out = ref.noise_normalize(xs, streams, start=1, count=5, n=3, sigma=0.5, seed=9, phase=1, mean=mean, std=std)
    rows = torch.arange(1, 6)
    z = ref.gaussian_noise(9, streams[rows // 3], rows % 3, 1, 60).view(5, 3, 4, 5)
    recovered = (out * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1) - xs[rows // 3]) / 0.5
    torch.testing.assert_close(recovered, z, atol=1e-5, rtol=0)


def test_vote_count_matches_argmax_and_bincount():
    torch.manual_seed(0)
    logits = torch.randint(0, 3, (50, 7)).float()  # many ties: lowest index must win
    counts = torch.zeros(7, 7, dtype=torch.int32)  # rows 20..69 belong to inputs 2..6
    nonfinite = torch.zeros(1, dtype=torch.int32)
    ref.vote_count(logits, 20, 10, counts, nonfinite)
    owner = (20 + torch.arange(50)) // 10
    expected = torch.zeros(7, 7, dtype=torch.int32)
    for row, winner in enumerate(logits.argmax(1).tolist()):
        expected[owner[row], winner] += 1
    assert torch.equal(counts, expected)
    assert counts.sum() == 50 and nonfinite.item() == 0


def test_vote_count_skips_and_counts_nonfinite_rows():
    logits = torch.zeros(4, 3)
    logits[1, 2] = float("nan")
    logits[3, 0] = float("-inf")
    counts = torch.zeros(1, 3, dtype=torch.int32)
    nonfinite = torch.zeros(1, dtype=torch.int32)
    ref.vote_count(logits, 0, 4, counts, nonfinite)
    assert counts.tolist() == [[2, 0, 0]] and nonfinite.item() == 2
