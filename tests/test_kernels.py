"""The Triton kernels against their PyTorch references (interpreter on CPU, compiler on a GPU)."""
import pytest
import torch

from rsengine.kernels import reference as ref

noise = pytest.importorskip("rsengine.kernels.noise")
votes = pytest.importorskip("rsengine.kernels.votes")

# One unit in the last place of each storage dtype near 1: the fp32 noise of the two
# implementations differs by float rounding of log/cos/sin (~1e-6), which may move a stored
# bf16/fp16 value to the neighbouring representable number.
ULP = {torch.float32: 0.0, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def _compare_noise(device, shape, dtype=torch.float32, memory_format=torch.contiguous_format,
                   normalize=True, start=0, count=5, n=3, seed=1234, phase=ref.PHASE_ESTIMATION):
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
    scale = want.float().abs().clamp(min=1.0)
    assert ((got.float() - want.float()).abs() <= 1e-5 * scale + ULP[dtype] * scale).all()
    return got, want


@pytest.mark.parametrize("shape", [(1,), (3,), (1, 5, 7), (3, 5, 7), (1, 28, 28), (3, 9, 11)],
                         ids=lambda s: "x".join(map(str, s)))
def test_noise_normalize_matches_reference_shapes(device, shape):
    _compare_noise(device, shape)


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


def test_noise_normalize_large_seed(device):
    _compare_noise(device, (3, 2, 2), seed=2**62 + 12345)


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


def test_vote_count_non_contiguous_logits(device):
    logits = torch.randn(10, 16, generator=torch.Generator().manual_seed(2)).to(device)[:, ::2]
    got, want = (torch.zeros(1, 8, dtype=torch.int32, device=device) for _ in range(2))
    votes.vote_count(logits, 0, 10, got, torch.zeros(1, dtype=torch.int32, device=device))
    ref.vote_count(logits, 0, 10, want, torch.zeros(1, dtype=torch.int32, device=device))
    assert torch.equal(got, want)
