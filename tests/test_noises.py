"""Laplace and uniform noise: one contract, three implementations, the right distribution.

The Triton kernels (interpreter here, the real compiler where a GPU is present), the compiled
CPU kernel and the PyTorch reference must follow the random-number contract of
``kernels/contract.py``: element e of a row takes word e % 4 of Philox block e // 4 through the
noise's inverse CDF, times ``noise_scale(noise, sigma)``. The first two write the same bits; the
reference agrees within ``noise_mismatch``; each transform is checked against float64 on the
words where float32 goes wrong, and the noise against scipy's distribution.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from exact_noise import ulps
from rsengine.kernels import cpu_noise
from rsengine.kernels import reference as ref
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION, check_noise, noise_scale
from rsengine.kernels.tolerance import noise_mismatch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
noise_kernels = pytest.importorskip("rsengine.kernels.noise")
inverse_cdf = pytest.importorskip("rsengine.kernels.inverse_cdf")

L1_NOISES = ["laplace", "uniform"]
SHAPES = [(5,), (3, 9, 11), (1, 28, 28), (3, 8, 8), (2, 4, 4), (4, 6, 6)]


def _batch(device, noise, shape, normalize, dtype=torch.float32, memory_format=torch.contiguous_format,
           start=3, count=9, n=4, seed=2**40 + 12345):
    """(CPU kernel, Triton kernel, reference) batches of rows start .. start + count - 1."""
    generator = torch.Generator().manual_seed(5)
    xs = torch.rand(((start + count - 1) // n + 1, *shape), generator=generator)
    streams = torch.tensor([7, 2**32 - 1, 0, 12345, 99, 3][:xs.shape[0]], dtype=torch.int64)
    norm = dict(mean=torch.linspace(0.3, 0.6, shape[0]), std=torch.linspace(0.2, 0.3, shape[0])) if normalize else {}
    kwargs = dict(start=start, count=count, n=n, sigma=0.37, seed=seed, phase=PHASE_ESTIMATION, noise=noise, **norm)
    cpu = cpu_noise.noise_normalize(xs, streams, dtype=dtype, memory_format=memory_format, **kwargs)
    moved = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in kwargs.items()}
    gpu = noise_kernels.noise_normalize(xs.to(device), streams.to(device), **moved).cpu()
    return cpu, gpu, ref.noise_normalize(xs, streams, **kwargs)


@pytest.mark.parametrize("normalize", [True, False], ids=["normalized", "raw"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("noise", L1_NOISES)
def test_triton_and_cpu_kernels_write_the_same_bits(device, noise, shape, normalize):
    cpu, gpu, want = _batch(device, noise, shape, normalize)
    assert torch.equal(cpu, gpu)
    assert noise_mismatch(cpu, want) <= 0


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("noise", L1_NOISES)
def test_low_precision_batches_round_the_float32_noise(device, noise, dtype, memory_format):
    cpu, gpu, _ = _batch(device, noise, (3, 8, 8), True, dtype=dtype, memory_format=memory_format)
    assert cpu.dtype == dtype and cpu.is_contiguous(memory_format=memory_format)
    assert torch.equal(cpu, gpu.to(dtype))  # the Triton batch is float32: round as a GPU stores


@pytest.mark.parametrize("noise", L1_NOISES)
def test_64_bit_counters_and_seeds(device, noise):
    # Sample indices near 2**31 put element indices past 2**33 (the counter's high word).
    cpu, gpu, want = _batch(device, noise, (3, 2, 2), True, start=2**31 - 4, count=6, n=2**31 - 1, seed=2**63 - 1)
    assert torch.equal(cpu, gpu) and noise_mismatch(cpu, want) <= 0


def _contract_words(seed, stream, phase, e):
    """Word e % 4 of Philox block e // 4: the word behind element e (int64 [N]) by the contract."""
    q = e // 4
    words = torch.stack(ref.philox4x32_10((q & 0xFFFFFFFF, q >> 32, stream, phase), (seed & 0xFFFFFFFF, seed >> 32)))
    return words.gather(0, (e % 4).unsqueeze(0)).squeeze(0)


@pytest.mark.parametrize("noise", L1_NOISES)
def test_element_e_is_word_e_mod_4_of_block_e_div_4_times_the_scale(device, noise):
    seed, stream, count, numel = 2**33 + 1, 11, 4, 1000
    xs = torch.zeros(1, numel, device=device)
    out = noise_kernels.noise_normalize(xs, torch.tensor([stream], device=device), 0, count, count, 0.5, seed,
                                        PHASE_SELECTION, noise=noise).reshape(-1).cpu()
    words = _contract_words(seed, stream, PHASE_SELECTION, torch.arange(count * numel))
    scale = torch.tensor(noise_scale(noise, 0.5), dtype=torch.float32)
    assert torch.equal(out, scale * cpu_noise.inverse_cdf_values(noise, words))


@triton.jit
def _inverse_cdf_kernel(words_ptr, out_ptr, size, LAPLACE: tl.constexpr, BLOCK: tl.constexpr):
    # The kernels' transform alone, on given words (stored as int32 bit patterns).
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < size
    w = tl.load(words_ptr + i, mask=mask).to(tl.uint32, bitcast=True)
    if LAPLACE:
        z = inverse_cdf.standard_laplace(w)
    else:
        z = inverse_cdf.standard_uniform(w)
    tl.store(out_ptr + i, z, mask=mask)


def _triton_values(device, noise, words):
    bits = torch.from_numpy(words.numpy().astype(np.uint32).view(np.int32)).to(device)
    out = torch.empty(words.numel(), device=device)
    block = 4096
    _inverse_cdf_kernel[(triton.cdiv(words.numel(), block),)](bits, out, words.numel(), LAPLACE=noise == "laplace",
                                                              BLOCK=block, enable_fp_fusion=False)
    return out.cpu()


def _edge_words():
    """int64 words [N]: both ends (v -> 0, the largest magnitudes), both sides of 2**31 (v -> 1, the
    smallest), of 2**30 and 3 * 2**30 (where -ln v switches to the complement), and random ones."""
    generator = torch.Generator().manual_seed(21)
    centres = torch.tensor([0, 2**30, 2**31, 3 * 2**30, 2**32])
    around = (centres.unsqueeze(1) + torch.arange(-2048, 2048)).reshape(-1)
    return torch.cat([around[(around >= 0) & (around < 2**32)], torch.randint(0, 2**32, (20000,), generator=generator)])


def _exact_laplace(words):
    """float64 s * (-ln v) of the exact v = (m + 0.5) * 2**-31, from log1p of 1 - v near v = 1."""
    upper = words >= 2**31
    m = torch.where(upper, 2**32 - 1 - words, words).double()
    minus_log = torch.where(m >= 2**30, -torch.log1p(-(2**31 - m - 0.5) * 2.0**-31), -torch.log((m + 0.5) * 2.0**-31))
    return torch.where(upper, minus_log, -minus_log)


def test_laplace_within_two_ulp_of_the_exact_inverse_cdf(device):
    words = _edge_words()
    got = _triton_values(device, "laplace", words)
    assert torch.equal(got, cpu_noise.inverse_cdf_values("laplace", words))
    exact = _exact_laplace(words)
    assert (got != 0).all() and (torch.sign(got) == torch.sign(exact)).all()
    assert (ulps(got, exact) <= 2).all(), float(ulps(got, exact).max())
    assert noise_mismatch(ref.laplace_from_words(words), got) <= 0


def test_laplace_extremes_are_two_pow_minus_32_and_ln_two_pow_32(device):
    # No point mass at 0: the smallest magnitudes are at w = 2**31 - 1 and 2**31 (v = 1 - 2**-32),
    # -ln v = 2**-32 (1 + 2**-33) in float32; the largest at w = 0 and 2**32 - 1 (v = 2**-32).
    got = _triton_values(device, "laplace", torch.tensor([2**31 - 1, 2**31, 0, 2**32 - 1]))
    assert got[:2].tolist() == [-2.0**-32, 2.0**-32]
    assert (ulps(got[2:], torch.tensor([-32 * math.log(2), 32 * math.log(2)], dtype=torch.float64)) <= 2).all()


def test_uniform_is_the_exact_value_rounded_once(device):
    # 2 u - 1 = (w - 2**31 + 0.5) * 2**-31 is exact in float64: one fma rounds it once to float32.
    words = _edge_words()
    got = _triton_values(device, "uniform", words)
    exact = (words - 2**31).double().add(0.5).mul(2.0**-31)
    assert torch.equal(got, exact.float())
    assert torch.equal(got, cpu_noise.inverse_cdf_values("uniform", words))
    assert torch.equal(ref.uniform_from_words(words), got)
    assert got.abs().max() == 1.0 and (got != 0).all()


@pytest.mark.parametrize("noise, distribution", [
    ("laplace", lambda s: stats.laplace(scale=noise_scale("laplace", s))),
    ("uniform", lambda s: stats.uniform(-noise_scale("uniform", s), 2 * noise_scale("uniform", s))),
])
def test_noise_has_the_distribution_and_the_standard_deviation_sigma(noise, distribution):
    # 400000 values of the CPU kernel (the Triton kernel's bits, tested above) from one input
    # at 0: Kolmogorov-Smirnov against scipy's distribution, and the sample variance against
    # sigma^2 within 5 standard errors of its estimate (var of s^2 ~ (mu4 - sigma^4) / N).
    sigma, count, numel = 0.4, 400, 1000
    values = cpu_noise.noise_normalize(torch.zeros(1, numel), torch.tensor([3]), 0, count, count, sigma, 77,
                                       PHASE_ESTIMATION, noise=noise).reshape(-1).double().numpy()
    assert stats.kstest(values, distribution(sigma).cdf).pvalue > 1e-3
    variance, kurtosis = distribution(sigma).var(), distribution(sigma).stats(moments="k") + 3
    standard_error = math.sqrt((kurtosis - 1) * variance**2 / values.size)
    assert abs(values.var() - sigma**2) <= 5 * standard_error + abs(variance - sigma**2)
    assert abs(variance - sigma**2) <= 1e-7 * sigma**2  # the float32 scale is sigma's to 2**-24


def test_unknown_noise_is_a_one_line_error():
    with pytest.raises(ValueError, match="noise.*gaussian, laplace, uniform.*'cauchy'"):
        check_noise("cauchy")
    with pytest.raises(ValueError, match="noise"):
        cpu_noise.noise_normalize(torch.zeros(1, 4), torch.tensor([0]), 0, 1, 1, 0.5, 0, PHASE_ESTIMATION,
                                  noise="cauchy")
    with pytest.raises(TypeError, match="noise"):
        ref.noise_normalize(torch.zeros(1, 4), torch.tensor([0]), 0, 1, 1, 0.5, 0, PHASE_ESTIMATION, noise=1)
