"""The compiled CPU noise kernel: the Triton kernel's bits, the reference's values, any thread count.

The Triton kernel runs where the `device` fixture says: in Triton's CPU interpreter here, on the
real compiler where a GPU is present (then these tests compare the CPU kernel with the GPU's own
output). bf16 is compared with the Triton kernel's float32 batch rounded to nearest even, which
is what a GPU stores: Triton 3.9's interpreter truncates float32 -> bf16 instead.
"""
import numpy as np
import pytest
import torch

from exact_noise import edge_words, float64_box_muller, measured_model, ulps
from rsengine.kernels import cpu_noise
from rsengine.kernels import reference as ref
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_PREDICTION, PHASE_SELECTION
from rsengine.kernels.tolerance import noise_mismatch


def _inputs(shape, start, count, n, normalize, seed=0):
    generator = torch.Generator().manual_seed(seed)
    m = (start + count - 1) // n + 1
    xs = torch.rand((m, *shape), generator=generator)
    streams = torch.tensor([7, 2**32 - 1, 0, 12345][:m] + list(range(100, 100 + max(0, m - 4))), dtype=torch.int64)
    norm = {}
    if normalize:
        norm = dict(mean=torch.linspace(0.3, 0.6, shape[0]), std=torch.linspace(0.2, 0.3, shape[0]))
    return xs, streams, norm


def _triton_noise(device, xs, streams, **kwargs):
    noise = pytest.importorskip("rsengine.kernels.noise")
    moved = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in kwargs.items()}
    return noise.noise_normalize(xs.to(device), streams.to(device), **moved).cpu()


SHAPES = [(1,), (3,), (1, 5, 7), (3, 5, 7), (1, 28, 28), (2, 4, 4), (3, 8, 8), (4, 6, 6), (3, 24, 24), (5, 4, 4)]


@pytest.mark.parametrize("normalize", [True, False], ids=["normalized", "raw"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_noise_normalize_is_the_triton_kernels_bits(device, shape, normalize):
    # Rows 3..11 of n = 4 samples per input: a batch starting mid-input, across three inputs.
    xs, streams, norm = _inputs(shape, 3, 9, 4, normalize)
    kwargs = dict(start=3, count=9, n=4, sigma=0.37, seed=2**40 + 12345, phase=PHASE_ESTIMATION, **norm)
    got = cpu_noise.noise_normalize(xs, streams, **kwargs)
    assert torch.equal(got, _triton_noise(device, xs, streams, **kwargs))
    assert noise_mismatch(got, ref.noise_normalize(xs, streams, **kwargs)) <= 0


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(1, 28, 28), (2, 4, 4), (3, 5, 7), (3, 8, 8), (4, 6, 6)],
                         ids=lambda s: "x".join(map(str, s)))
def test_noise_normalize_dtypes_and_memory_formats(device, shape, dtype, memory_format):
    xs, streams, norm = _inputs(shape, 0, 6, 3, True)
    kwargs = dict(start=0, count=6, n=3, sigma=0.25, seed=99, phase=PHASE_SELECTION, **norm)
    got = cpu_noise.noise_normalize(xs, streams, dtype=dtype, memory_format=memory_format, **kwargs)
    assert got.dtype == dtype and got.is_contiguous(memory_format=memory_format)
    float32 = _triton_noise(device, xs, streams, **kwargs)
    assert torch.equal(got, float32.to(dtype))  # round to nearest even, as a GPU's store
    if dtype != torch.bfloat16 or device.type == "cuda":  # the interpreter truncates to bf16
        want = _triton_noise(device, xs, streams, dtype=dtype, memory_format=memory_format, **kwargs)
        assert torch.equal(got, want) and got.stride() == want.stride()


@pytest.mark.parametrize("seed", [0, 2**32 - 1, 2**62 + 2**31 + 5, 2**63 - 1], ids=hex)
def test_noise_normalize_64_bit_counters_and_seeds(device, seed):
    # Sample indices near 2**31 with 12 elements per input put element indices past 2**33 (the
    # counter's high word), and start_sample + row passes 2**31 into the next input.
    xs, streams, norm = _inputs((3, 2, 2), 2**31 - 4, 6, 2**31 - 1, True)
    kwargs = dict(start=2**31 - 4, count=6, n=2**31 - 1, sigma=0.5, seed=seed, phase=PHASE_PREDICTION, **norm)
    got = cpu_noise.noise_normalize(xs, streams, **kwargs)
    assert torch.equal(got, _triton_noise(device, xs, streams, **kwargs))
    assert noise_mismatch(got, ref.noise_normalize(xs, streams, **kwargs)) <= 0


def test_noise_normalize_agrees_with_the_reference_on_a_large_batch():
    # No Triton needed: 200 rows of MNIST's shape, against the PyTorch reference's float rounding.
    xs, streams, norm = _inputs((1, 28, 28), 0, 200, 100, True)
    kwargs = dict(start=0, count=200, n=100, sigma=0.25, seed=5, phase=PHASE_ESTIMATION, **norm)
    assert noise_mismatch(cpu_noise.noise_normalize(xs, streams, **kwargs),
                          ref.noise_normalize(xs, streams, **kwargs)) <= 0


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("count", [1, 37, 400], ids=lambda c: f"{c}rows")
def test_noise_normalize_does_not_depend_on_the_thread_count(restore_threads, count):
    # A 3x64x64 row is 12,288 elements: 400 rows split over the threads mid-row and mid-block,
    # 1 row stays on one thread.
    xs, streams, norm = _inputs((3, 64, 64), 5, count, 500, True)
    kwargs = dict(start=5, count=count, n=500, sigma=0.3, seed=3, phase=PHASE_ESTIMATION, **norm)
    batches = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        batches.append(cpu_noise.noise_normalize(xs, streams, **kwargs))
    assert all(torch.equal(batch, batches[0]) for batch in batches[1:])
    if count == 400:
        assert cpu_noise.threads_for(count * 3 * 64 * 64) == 3  # it did split


def test_box_muller_is_bitwise_the_measured_model_and_within_two_ulp():
    # The accuracy bench/noise_accuracy.py measured (2.07 ulp at worst) is this kernel's: it
    # computes the model's bits, here on edge words and a million random pairs.
    w0, w1 = edge_words()
    generator = torch.Generator().manual_seed(7)
    w0 = torch.cat([w0, torch.randint(0, 2**32, (2**20,), generator=generator)])
    w1 = torch.cat([w1, torch.randint(0, 2**32, (2**20,), generator=generator)])
    z_cos, z_sin = cpu_noise.box_muller_pairs(w0, w1)
    model_cos, model_sin = measured_model().box_muller(w0.numpy().astype(np.uint32), w1.numpy().astype(np.uint32))
    assert np.array_equal(z_cos.numpy(), model_cos) and np.array_equal(z_sin.numpy(), model_sin)
    exact_cos, exact_sin = float64_box_muller(w0, w1, t_as_float32=True)
    for z, exact in ((z_cos, exact_cos), (z_sin, exact_sin)):
        assert (z != 0).all() and (ulps(z, exact) <= 2).all(), float(ulps(z, exact).max())


def test_box_muller_smallest_radius_is_two_pow_minus_16():
    z_cos, _ = cpu_noise.box_muller_pairs(torch.tensor([2**32 - 1]), torch.tensor([0]))
    assert float(z_cos[0]) == 2.0**-16


@pytest.mark.parametrize("case, match", [
    (dict(xs=torch.zeros(1, 3, 4, 4, dtype=torch.float64)), "float32"),
    (dict(xs=torch.zeros(1, 4, 3).transpose(1, 2)), "contiguous"),
    (dict(seed=2**63), "seed"),
    (dict(n=0), "n, count"),
    (dict(count=3, n=2), "start \\+ count"),
], ids=["float64", "strided", "seed", "n", "rows"])
def test_noise_normalize_rejects_what_it_cannot_run(case, match):
    kwargs = dict(xs=torch.zeros(1, 3, 4, 4), streams=torch.zeros(1, dtype=torch.int64), start=0, count=1, n=1,
                  sigma=0.5, seed=0, phase=PHASE_ESTIMATION)
    kwargs.update(case)
    with pytest.raises(ValueError, match=match):
        cpu_noise.noise_normalize(**kwargs)


def test_box_muller_pairs_rejects_unequal_shapes():
    with pytest.raises(ValueError, match="one shape"):
        cpu_noise.box_muller_pairs(torch.zeros(2), torch.zeros(3))
