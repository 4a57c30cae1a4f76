"""The pure-PyTorch kernels: Philox known answers, the noise's distribution and the RNG contract."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

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


def _noise(seed=0, streams=(0,), samples=(0,), phase=ref.PHASE_ESTIMATION, numel=10):
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
    dict(phase=ref.PHASE_SELECTION), dict(streams=(1,)), dict(seed=1), dict(samples=(1,)),
], ids=["phase", "stream", "seed", "sample"])
def test_gaussian_noise_streams_are_independent(other):
    base = dict(seed=0, streams=(0,), samples=(0,), phase=ref.PHASE_ESTIMATION, numel=20000)
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
