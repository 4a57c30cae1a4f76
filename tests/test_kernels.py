"""The Triton kernels against their PyTorch references (interpreter on CPU, compiler on a GPU)."""
import math

import numpy as np
import pytest
import torch

from exact_noise import edge_words, float64_box_muller, measured_model, ulps
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION
from rsengine.kernels import reference as ref
from rsengine.kernels.tolerance import noise_mismatch

noise = pytest.importorskip("rsengine.kernels.noise")
votes = pytest.importorskip("rsengine.kernels.votes")
triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")
from rsengine.kernels.box_muller import box_muller  # noqa: E402



def _compare_noise(device, shape, dtype=torch.float32, memory_format=torch.contiguous_format,
                   normalize=True, start=0, count=5, n=3, seed=1234, phase=PHASE_ESTIMATION):
    generator = torch.Generator().manual_seed(0)
    m = (start + count - 1) // n + 1
    xs = torch.rand((m, *shape), generator=generator).to(device)
    streams = torch.arange(7, 7 + m, dtype=torch.int64, device=device)
    kwargs = dict(start=start, count=count, n=n, sigma=0.37, seed=seed, phase=phase, dtype=dtype,
                  memory_format=memory_format)
    if normalize:
        kwargs["mean"] = torch.linspace(0.3, 0.6, shape[0], device=device)
        kwargs["std"] = torch.linspace(0.2, 0.3, shape[0], device=device)
    got = noise.noise_normalize(xs, streams, **kwargs)
    want = ref.noise_normalize(xs, streams, **kwargs)
    assert got.dtype == dtype and got.shape == want.shape
    assert got.is_contiguous(memory_format=memory_format)
    assert noise_mismatch(got, want) <= 0
    return got, want


# The real CIFAR and ImageNet shapes where the compiled kernels run: the interpreter costs ~10 ms
# per program, and the small shapes above already take every path there.
GPU_SHAPES = [(3, 32, 32), (3, 224, 224)] if torch.cuda.is_available() else []


# Shapes with H*W % 4 == 0 and at most 4 channels take the image kernel, the others the general
# rows kernel; 3x24x24 (576 pixels) spans two tiles, the second one ragged; a program covers 8
# tiles (4,096 pixels), so 1x72x72 and 3x68x64 split each row over two programs.
@pytest.mark.parametrize("shape", [(1,), (3,), (1, 5, 7), (3, 5, 7), (1, 28, 28), (3, 9, 11), (2, 4, 4), (3, 8, 8),
                                   (4, 4, 2), (3, 24, 24), (5, 4, 4), (1, 72, 72), (3, 68, 64), *GPU_SHAPES],
                         ids=lambda s: "x".join(map(str, s)))
def test_noise_normalize_matches_reference_shapes(device, shape):
    _compare_noise(device, shape)


@pytest.mark.parametrize("shape", [(2, 4, 4), (3, 8, 8), (4, 2, 6), (3, 24, 24), (3, 68, 64), (1, 4, 4), (3, 5, 7),
                                   (6, 4, 4), *GPU_SHAPES],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_noise_normalize_channels_last_tiles(device, shape, dtype):
    # 3 channels: 64-bit words of 4 pixels x 3 values (16- and 32-bit layouts); 2 or 4 channels:
    # a [pixels, channels] tile; 1 channel: the contiguous store (same memory); odd sizes or
    # more channels: the rows kernel at stride C.
    _compare_noise(device, shape, dtype=dtype, memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["contiguous", "channels_last"])
def test_noise_normalize_matches_reference_dtypes_and_formats(device, dtype, memory_format):
    _compare_noise(device, (3, 6, 5), dtype=dtype, memory_format=memory_format)


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "normalized"])
def test_noise_normalize_without_normalization(device, normalize):
    _compare_noise(device, (2, 4, 4), normalize=normalize)


def test_noise_normalize_ragged_rows_span_inputs(device):
    # Rows 4..16 of a grid of n = 5 samples per input: a batch that starts mid-input and
    # covers parts of three inputs.
    _compare_noise(device, (3, 4, 3), start=4, count=13, n=5)


def test_noise_normalize_64_bit_counters(device):
    # Sample indices near 2**31 with 12 elements per input put element indices past 2**33.
    _compare_noise(device, (3, 2, 2), start=2**31 - 3, count=3, n=2**31 - 1)


@pytest.mark.parametrize("seed", [2**62 + 12345, 2**32 - 1, 2**62 + 2**31 + 5, 2**63 - 1], ids=hex)
def test_noise_normalize_large_seed(device, seed):
    # Seed words at and above 2**31 travel as negative int32 and are reinterpreted in the kernel.
    _compare_noise(device, (3, 2, 2), seed=seed)
    _compare_noise(device, (3, 4, 4), seed=seed)


@pytest.mark.parametrize("shape", [(3, 2, 2), (3, 4, 4)], ids=lambda s: "x".join(map(str, s)))
def test_noise_normalize_row_index_past_int32(device, shape):
    # The kernels split rows into (input, sample) in unsigned 32-bit arithmetic: start_sample +
    # row here passes 2**31, and the batch crosses into the second input.
    _compare_noise(device, shape, start=2**31 - 4, count=6, n=2**31 - 1)


def _contract_words(seed, stream, phase, e):
    """The Philox words (w0, w1) behind elements e (int64 [N], sample * numel + element) by the
    contract's definition: int64 [N] each, and whether the element is the pair's sine."""
    q, lane = e // 4, e % 4
    words = torch.stack(ref.philox4x32_10((q & 0xFFFFFFFF, q >> 32, stream, phase),
                                          (seed & 0xFFFFFFFF, seed >> 32)))  # [4, count * numel]
    pair = lane // 2  # lanes 0, 1 use words 0, 1; lanes 2, 3 use words 2, 3
    w0 = torch.where(pair == 0, words[0], words[2])
    w1 = torch.where(pair == 0, words[1], words[3])
    return w0, w1, lane % 2 == 1


def _kernel_normals(device, seed, stream, phase, count, numel):
    """The kernel's z itself: sigma 1, x = 0, no normalization, float32 output."""
    xs = torch.zeros(1, 1, 64, numel // 64, device=device)
    out = noise.noise_normalize(xs, torch.tensor([stream], device=device), 0, count, count, 1.0, seed, phase)
    return out.reshape(-1).cpu()


def test_noise_normalize_within_two_ulp_of_float64_box_muller(device):
    # The kernels' Box-Muller (kernels/box_muller.py) against float64 of the words' exact u0 (so
    # a float32 u0, whose logarithm loses all precision as u0 -> 1, fails here), in float32 ulps
    # of the exact value.
    seed, stream, phase, count, numel = 2**40 + 7, 3, PHASE_ESTIMATION, 8, 4096
    z = _kernel_normals(device, seed, stream, phase, count, numel)
    w0, w1, is_sin = _contract_words(seed, stream, phase, torch.arange(count * numel))
    z_cos, z_sin = float64_box_muller(w0, w1, t_as_float32=True)
    error = ulps(z, torch.where(is_sin, z_sin, z_cos))
    assert (error <= 2).all(), float(error.max())


def test_noise_normalize_is_bitwise_the_measured_model(device):
    # bench/noise_accuracy.py measured its numpy model of the transform against float64 (every
    # word for -2 ln u0 and for the angle, 1e8 random pairs); the kernel must compute exactly that
    # model, bit for bit, in the interpreter and on a GPU alike (fp fusion off, sqrt_rn, no
    # approximate instructions).
    model = measured_model()
    seed, stream, phase, count, numel = 12345, 2**32 - 1, PHASE_SELECTION, 8, 4096
    z = _kernel_normals(device, seed, stream, phase, count, numel).numpy()
    w0, w1, is_sin = _contract_words(seed, stream, phase, torch.arange(count * numel))
    z_cos, z_sin = model.box_muller(w0.numpy().astype(np.uint32), w1.numpy().astype(np.uint32))
    expected = np.where(is_sin.numpy(), z_sin, z_cos)
    assert np.array_equal(z, expected), int((z != expected).sum())


def test_noise_normalize_word_near_two_pow_32_is_not_zero(device):
    # The audit's reproduction (issue 13, item 7): seed 0, stream 0, estimation phase, sample
    # 142034 of a 784-element input; elements 436 and 437 come from w0 = 0xffffffcf, whose float32
    # uniform was exactly 1.0, so both normals were exactly 0.
    sample = 142034
    xs = torch.zeros(1, 1, 28, 28, device=device)
    z = noise.noise_normalize(xs, torch.zeros(1, dtype=torch.int64, device=device), sample, 1, sample + 1, 1.0, 0,
                              PHASE_ESTIMATION).reshape(-1)[436:438].cpu()
    w0, w1, _ = _contract_words(0, 0, PHASE_ESTIMATION, torch.tensor([sample * 784 + 436]))
    assert int(w0) == 0xFFFFFFCF
    exact = torch.cat(float64_box_muller(w0, w1, t_as_float32=True))
    assert (z != 0).all() and (ulps(z, exact) <= 2).all(), (z, exact)


@triton.jit
def _box_muller_kernel(w0_ptr, w1_ptr, cos_ptr, sin_ptr, size, BLOCK: tl.constexpr):
    # The kernels' box_muller alone, on given words (stored as int32 bit patterns).
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < size
    w0 = tl.load(w0_ptr + i, mask=mask).to(tl.uint32, bitcast=True)
    w1 = tl.load(w1_ptr + i, mask=mask).to(tl.uint32, bitcast=True)
    z_cos, z_sin = box_muller(w0, w1)
    tl.store(cos_ptr + i, z_cos, mask=mask)
    tl.store(sin_ptr + i, z_sin, mask=mask)


def _box_muller_of_words(device, w0, w1):
    """(z_cos, z_sin) float32 [N] of the kernels' box_muller on int64 words [N]."""
    bits = [torch.from_numpy(w.numpy().astype(np.uint32).view(np.int32)).to(device) for w in (w0, w1)]
    z = torch.empty(2, w0.numel(), device=device)
    block = 4096
    _box_muller_kernel[(triton.cdiv(w0.numel(), block),)](*bits, z[0], z[1], w0.numel(), BLOCK=block,
                                                         enable_fp_fusion=False)
    return z[0].cpu(), z[1].cpu()


def test_box_muller_edge_words_within_two_ulp_of_float64(device):
    w0, w1 = edge_words()
    z_cos, z_sin = _box_muller_of_words(device, w0, w1)
    exact_cos, exact_sin = float64_box_muller(w0, w1, t_as_float32=True)
    for z, exact in ((z_cos, exact_cos), (z_sin, exact_sin)):
        assert (z != 0).all() and (ulps(z, exact) <= 2).all(), float(ulps(z, exact).max())
    model_cos, model_sin = measured_model().box_muller(w0.numpy().astype(np.uint32), w1.numpy().astype(np.uint32))
    assert np.array_equal(z_cos.numpy(), model_cos) and np.array_equal(z_sin.numpy(), model_sin)


def test_box_muller_smallest_radius_is_two_pow_minus_16(device):
    # w0 = 2**32 - 1: u0 = 1 - 2**-33, r = sqrt(-2 ln u0) = 2**-16 (1 + 2**-35): the smallest
    # radius, not 0. w1 = 0: the angle 2 pi 2**-33, so cos rounds to 1 and sin is r * pi 2**-32.
    z_cos, z_sin = _box_muller_of_words(device, torch.tensor([2**32 - 1]), torch.tensor([0]))
    assert float(z_cos[0]) == 2.0**-16
    assert ulps(z_sin, torch.tensor([2.0**-16 * math.pi * 2.0**-32], dtype=torch.float64)).item() <= 2


def test_noise_normalize_rejects_what_it_cannot_launch(device):
    xs = torch.zeros(1, 3, 4, 4, device=device)
    streams = torch.zeros(1, dtype=torch.int64, device=device)
    with pytest.raises(ValueError, match="seed"):
        noise.noise_normalize(xs, streams, 0, 1, 1, 0.5, 2**63 + 5, 1)
    # 2**26 + 5 elements in one row need more than 65,535 programs of the general kernel
    # (torch.empty: the pages are never touched).
    huge = torch.empty(1, 1, 2**26 + 5, device=device)
    with pytest.raises(ValueError, match="65535 programs"):
        noise.noise_normalize(huge, streams, 0, 1, 1, 0.5, 0, 1)


@pytest.mark.parametrize("num_classes", [2, 10, 1000, 1001], ids=lambda k: f"K{k}")
@pytest.mark.parametrize("rows", [1, 33, 70], ids=lambda b: f"B{b}")
def test_vote_count_matches_reference(device, num_classes, rows):
    generator = torch.Generator().manual_seed(num_classes + rows)
    # Small integers make ties common, including ties across the kernel's class blocks.
    logits = torch.randint(0, 4, (rows, num_classes), generator=generator).float().to(device)
    start, n = 3, 4
    m = (start + rows - 1) // n + 1
    got, want = (torch.zeros(m, num_classes, dtype=torch.int32, device=device) for _ in range(2))
    bad_got, bad_want = (torch.zeros(1, dtype=torch.int32, device=device) for _ in range(2))
    votes.vote_count(logits, start, n, got, bad_got)
    ref.vote_count(logits, start, n, want, bad_want)
    assert torch.equal(got, want)
    assert got.sum().item() == rows and bad_got.item() == 0


def test_vote_count_ties_across_class_blocks_go_to_lowest_index(device):
    logits = torch.zeros(2, 1001, device=device)
    logits[0, [300, 700]] = 5.0  # equal maxima in different BLOCK_K steps
    logits[1, 1000] = 1.0
    counts = torch.zeros(2, 1001, dtype=torch.int32, device=device)
    votes.vote_count(logits, 0, 1, counts, torch.zeros(1, dtype=torch.int32, device=device))
    assert counts.nonzero().tolist() == [[0, 300], [1, 1000]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_vote_count_low_precision_logits(device, dtype):
    logits = torch.randn(40, 10, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    got, want = (torch.zeros(4, 10, dtype=torch.int32, device=device) for _ in range(2))
    flags = [torch.zeros(1, dtype=torch.int32, device=device) for _ in range(2)]
    votes.vote_count(logits, 0, 10, got, flags[0])
    ref.vote_count(logits, 0, 10, want, flags[1])
    assert torch.equal(got, want)


def test_vote_count_flags_nonfinite_rows(device):
    logits = torch.zeros(5, 300, device=device)
    logits[1, 299] = float("nan")
    logits[2, 0] = float("inf")
    logits[4, 17] = float("-inf")
    counts = torch.zeros(1, 300, dtype=torch.int32, device=device)
    nonfinite = torch.zeros(1, dtype=torch.int32, device=device)
    votes.vote_count(logits, 0, 5, counts, nonfinite)
    assert nonfinite.item() == 3
    assert counts.sum().item() == 2 and counts[0, 0].item() == 2


def test_vote_count_float64_logits_are_not_rounded(device):
    # 1 + 1e-12 rounds to 1.0 in float32, which would tie it with class 0.
    logits = torch.tensor([[1.0, 1.0 + 1e-12, 0.0], [0.5, 0.5, 0.5]], dtype=torch.float64, device=device)
    got, want = (torch.zeros(2, 3, dtype=torch.int32, device=device) for _ in range(2))
    votes.vote_count(logits, 0, 1, got, torch.zeros(1, dtype=torch.int32, device=device))
    ref.vote_count(logits, 0, 1, want, torch.zeros(1, dtype=torch.int32, device=device))
    assert got.tolist() == want.tolist() == [[0, 1, 0], [1, 0, 0]]


def test_vote_count_row_index_past_int32(device):
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(3)).to(device)
    start, n = 2**31 - 4, 2**31 - 1  # rows 2 and later belong to the second input
    got, want = (torch.zeros(2, 5, dtype=torch.int32, device=device) for _ in range(2))
    votes.vote_count(logits, start, n, got, torch.zeros(1, dtype=torch.int32, device=device))
    ref.vote_count(logits, start, n, want, torch.zeros(1, dtype=torch.int32, device=device))
    assert torch.equal(got, want) and got.sum(axis=1).tolist() == [3, 3]


def test_vote_count_non_contiguous_logits(device):
    logits = torch.randn(10, 16, generator=torch.Generator().manual_seed(2)).to(device)[:, ::2]
    got, want = (torch.zeros(1, 8, dtype=torch.int32, device=device) for _ in range(2))
    votes.vote_count(logits, 0, 10, got, torch.zeros(1, dtype=torch.int32, device=device))
    ref.vote_count(logits, 0, 10, want, torch.zeros(1, dtype=torch.int32, device=device))
    assert torch.equal(got, want)
