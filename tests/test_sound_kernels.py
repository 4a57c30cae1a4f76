"""Sound mode's fused kernels: Triton (interpreter) and the compiled CPU kernel against the spec.

The reference is rsengine.sound (discrete_noise + sound_inputs, and its sound_noise_normalize);
the kernels must match it bit for bit before normalization, each other bit for bit always, and
their escapes must keep rows from voting. Then the sampler and Smooth end to end.
"""
import numpy as np
import pytest
import torch

from rsengine import Smooth, sound
from rsengine.backends import resolve_backend
from rsengine.kernels import cpu_noise, reference, sound_noise, votes
from rsengine.kernels.contract import search_steps
from rsengine.sampler import NoiseSpec, count_votes

KERNELS = {"triton": sound_noise.sound_noise_normalize, "cpu": cpu_noise.sound_noise_normalize}
SEED64 = 2**62 + 987_654_321


def _table(sigma=0.25):
    table = sound.noise_table(sigma)
    return table.signed_thresholds(), table.support


def _pixels(m, shape, seed=0):
    return torch.randint(0, 256, (m, *shape), dtype=torch.int32, generator=torch.Generator().manual_seed(seed))


def _rows(pixels, streams, start, count, n, seed, phase, sigma=0.25):
    # The spec's pipeline row by row: discrete_noise, then sound_inputs (NaN where escaped).
    rows = start + torch.arange(count)
    k = sound.discrete_noise(seed, streams[rows // n], rows % n, phase, pixels[0].numel(), sigma)
    return sound.sound_inputs(pixels.reshape(len(pixels), -1)[rows // n].to(torch.uint8), k).reshape(count, *pixels.shape[1:])


# (3, 17, 21): an odd row of 1,071 elements over 3 Triton programs, rows starting mid-block.
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 5, 7), (5,), (2, 3, 3), (3, 17, 21)], ids=str)
@pytest.mark.parametrize("start, count, n", [(0, 12, 4), (3, 7, 5), (1, 8, 3)])
def test_kernels_are_the_spec_bit_for_bit(shape, start, count, n):
    thresholds, support = _table()
    pixels, streams = _pixels(3, shape), torch.tensor([5, 9, 2**32 - 1])
    want = _rows(pixels, streams, start, count, n, 12345, 1)
    for name, kernel in KERNELS.items():
        got, escaped = kernel(pixels, streams, start, count, n, thresholds, support, 12345, 1)
        assert torch.equal(got, want), name
        assert escaped.dtype == torch.int32 and escaped.tolist() == [0] * count
    ref, _ = sound.sound_noise_normalize(pixels, streams, start, count, n, thresholds, support, 12345, 1)
    assert torch.equal(ref, want)


def test_64_bit_element_indices_and_seed():
    # Sample 2**31 - 2 of a 3x224x224 input: e ~ 3.2e14, block indices far past 32 bits.
    thresholds, support = _table(1.0)
    pixels, streams = _pixels(1, (3, 224, 224)), torch.tensor([77])
    n = 2**31 - 1
    want = _rows(pixels, streams, n - 2, 2, n, SEED64, 2, sigma=1.0)
    for name, kernel in KERNELS.items():
        got, _ = kernel(pixels, streams, n - 2, 2, n, thresholds, support, SEED64, 2)
        assert torch.equal(got, want), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "cl"])
def test_normalized_batches_agree_across_kernels(dtype, memory_format):
    thresholds, support = _table(0.5)
    pixels, streams = _pixels(2, (3, 6, 10), seed=1), torch.tensor([0, 1])
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    args = (pixels, streams, 2, 9, 6, thresholds, support, 3, 0, mean, std, dtype, memory_format)
    triton_batch, _ = KERNELS["triton"](*args)
    cpu_batch, _ = KERNELS["cpu"](*args)
    ref_batch, _ = sound.sound_noise_normalize(*args)
    for batch in (triton_batch, cpu_batch, ref_batch):
        assert batch.dtype == dtype and batch.is_contiguous(memory_format=memory_format)
    if dtype != torch.bfloat16:  # Triton's interpreter truncates to bf16; a GPU's store rounds to nearest even
        assert torch.equal(triton_batch, cpu_batch)
    triton_float32, _ = KERNELS["triton"](*args[:-2], torch.float32, memory_format)
    assert torch.equal(cpu_batch, triton_float32.to(dtype))
    # The kernels' fma(x, 1/std, -mean/std) and the reference's (x - mean) / std against the
    # exact value: 1/std, -mean/std and the result each round once (eps/2 relative), so the error
    # is at most 2 eps (|x| + mean) / std in absolute terms (not relative: the terms cancel).
    x = _rows(pixels, streams, 2, 9, 6, 3, 0, sigma=0.5).double()
    mean64, std64 = mean.double().view(1, 3, 1, 1), std.double().view(1, 3, 1, 1)
    exact = (x - mean64) / std64
    bound = 2 * torch.finfo(torch.float32).eps * (x.abs() + mean64) / std64
    if dtype == torch.float32:
        assert ((cpu_batch.double() - exact).abs() <= bound).all()
        assert ((ref_batch.double() - exact).abs() <= bound).all()


def _toy_table(u_values, length=None):
    # A table whose thresholds are words themselves (int64 u - 2^63), sorted: T_j <= u must count
    # them. `length` of them spread over the values (odd: 2 S + 1), else all (one dropped if even).
    values = torch.tensor(sorted(set(u_values)), dtype=torch.int64)
    if length is None:
        length = len(values) - (1 - len(values) % 2)
    thresholds = values[torch.linspace(len(values) - 1, 0, length).round().long().flip(0)]  # the last kept
    return thresholds, (length - 1) // 2


@pytest.fixture
def threads_split_rows(monkeypatch):
    # Four CPU threads from 8 elements on, so the compiled kernel's threads split rows mid-row
    # (and share their escape flags); restored afterwards.
    threads = torch.get_num_threads()
    monkeypatch.setattr(cpu_noise, "MIN_ELEMENTS_PER_THREAD", 8)
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(threads)


# Lengths around powers of two: the search's depth (search_steps) and its last, partial level.
@pytest.mark.parametrize("length", [1, 3, 7, 9, 15, 17, 31, 33, 1131])
def test_threshold_boundaries_and_escapes_are_the_spec(length, threads_split_rows):
    # 42 rows of 61 elements: odd rows start mid-block, and 4 threads split 2,562 elements at
    # 640, 1281 and 1921, inside rows.
    pixels, streams = _pixels(2, (1, 61), seed=2), torch.tensor([4, 8])
    n, count = 21, 42
    rows = torch.arange(count)
    u = sound._signed_uniforms(7, streams[rows // n], rows % n, 1, 61)  # [42, 61] int64 words
    # Thresholds on words below the 99.5th percentile: about 13 elements escape, so some rows
    # are flagged and most are not; some elements sit exactly on a threshold.
    cut = int(u.flatten().sort().values[int(0.995 * u.numel())])
    thresholds, support = _toy_table([v for v in u.flatten().tolist() if v <= cut], length)
    assert thresholds.unique().numel() == length  # a real table: distinct thresholds
    counts = torch.searchsorted(thresholds, u, right=True)
    want_escape = counts == length
    flagged = want_escape.any(dim=1)
    assert 0 < int(flagged.sum()) < count and bool(torch.isin(u, thresholds).any())
    k = torch.where(want_escape, 0, counts - support)
    want = ((pixels.reshape(2, -1)[rows // n] + k).float() / 255).reshape(count, 1, 61)
    for name, kernel in {**KERNELS, "reference": sound.sound_noise_normalize}.items():
        got, escaped = kernel(pixels, streams, 0, count, n, thresholds, support, 7, 1)
        assert torch.equal(got, want), name
        assert escaped.tolist() == flagged.int().tolist(), name


def test_search_steps_is_the_bit_length():
    assert [search_steps(length) for length in (1, 2, 3, 1131, 4441, 43_033)] == [1, 2, 2, 11, 13, 16]


@pytest.mark.parametrize("backend", ["triton", "reference"])  # the CPU backend uses the reference's
def test_vote_count_skips_flagged_rows(backend):
    logits = torch.tensor([[0.0, 1, 0], [2, 2, 0], [float("nan"), 0, 1], [5, 0, 0], [0, 0, 1], [1, 0, 0],
                           [0, float("inf"), 0]])
    skip = torch.tensor([0, 1, 1, 0, 0, 1, 0], dtype=torch.int32)
    counts, bad = torch.zeros(3, 3, dtype=torch.int32), torch.zeros(1, dtype=torch.int32)
    vote = votes.vote_count if backend == "triton" else reference.vote_count
    vote(logits, 0, 3, counts, bad, skip)
    # The skipped NaN row neither votes nor counts as non-finite; the unskipped inf row does count.
    assert counts.tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]] and bad.item() == 1
    vote(logits, 0, 3, counts, bad)
    assert bad.item() == 3 and counts.sum() == 3 + 5  # without skip every finite row votes


@pytest.mark.parametrize("backend", ["triton", "cpu", "torch"])
@pytest.mark.parametrize("deterministic", [False, True], ids=["packed", "deterministic"])
def test_escaped_rows_vote_for_no_class_through_the_sampler(backend, deterministic):
    # Thresholds on words below the 90th percentile: about a third of the 4-element rows escape;
    # counts must sum to n minus each input's escaped rows (deterministic mode pads the last
    # batch of each input: the padding must not vote either).
    pixels, streams = _pixels(2, (1, 2, 2), seed=3), torch.tensor([0, 1])
    u = sound._signed_uniforms(11, streams.repeat_interleave(40), torch.arange(40).repeat(2), 1, 4)
    cut = int(u.flatten().sort().values[int(0.9 * u.numel())])
    thresholds, support = _toy_table([v for v in u.flatten().tolist() if v <= cut])
    flagged = (torch.searchsorted(thresholds, u, right=True) == len(thresholds)).any(dim=1).reshape(2, 40)
    spec = NoiseSpec(0.25, 11, sound_thresholds=thresholds, sound_support=support)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    counts, _ = count_votes(model, pixels, streams, 40, 1, 3, spec, 16, resolve_backend(backend, torch.device("cpu")),
                            deterministic=deterministic)
    assert 10 < int(flagged.sum()) < 70
    assert counts.sum(axis=1).tolist() == (40 - flagged.sum(dim=1)).tolist()


def _embedded():
    from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
    from rsengine.data import load_dataset

    checkpoint = load_checkpoint(bundled_checkpoint())
    dataset = load_dataset("mnist", "test")
    xs = torch.stack([dataset[i][0] for i in range(6)])
    return checkpoint, xs


def test_smooth_sound_certificates_are_the_counts_certified_soundly():
    checkpoint, xs = _embedded()
    smooth = Smooth(checkpoint.model, 10, 0.25, mean=checkpoint.mean, std=checkpoint.std, seed=5, backend="cpu",
                    sound=True)
    preds, radii = smooth.certify_batch(xs, 50, 500, 0.001, streams=np.arange(6))
    guess = smooth.sample_counts(xs, 50, phase=0, streams=np.arange(6)).argmax(axis=1)
    counts = smooth.sample_counts(xs, 500, phase=1, streams=np.arange(6))
    want = sound.certify_sound_from_counts(guess, counts[np.arange(6), guess], 500, 0.001, smooth.noise_sigma)
    assert preds.tolist() == want[0].tolist() and radii.tolist() == want[1].tolist()
    assert (preds >= 0).sum() >= 4  # the embedded classifier certifies most of these digits
    # uint8 pixels are the same inputs
    again = Smooth(checkpoint.model, 10, 0.25, mean=checkpoint.mean, std=checkpoint.std, seed=5, backend="torch",
                   sound=True)
    preds8, radii8 = again.certify_batch((xs * 255).round().to(torch.uint8), 50, 500, 0.001, streams=np.arange(6))
    assert preds8.tolist() == preds.tolist() and np.array_equal(radii8, radii)


def test_sound_and_float_modes_agree_on_a_natural_classifier():
    # Same classifier, two noises differing by the rounding to the grid (variance s^2 + 1/12 in
    # grid units): the smoothed classifier barely changes, so the vote shares agree to within
    # sampling error (n = 4000 each: a share's standard error is <= 0.008).
    checkpoint, xs = _embedded()
    shares = []
    for sound_flag in (False, True):
        smooth = Smooth(checkpoint.model, 10, 0.25, mean=checkpoint.mean, std=checkpoint.std, seed=9, backend="cpu",
                        sound=sound_flag)
        counts = smooth.sample_counts(xs, 4000, streams=np.arange(6))
        shares.append(counts / 4000)
    assert (shares[0].argmax(axis=1) == shares[1].argmax(axis=1)).all()
    assert np.abs(shares[0] - shares[1]).max() < 6 * 0.008


@pytest.mark.parametrize("kwargs, call, error, match", [
    ({"noise": "laplace"}, None, ValueError, "noise='gaussian'"),
    ({"sigma": 11.0}, None, ValueError, "`sigma`"),
    ({"sound": 1}, None, TypeError, "`sound`"),
    ({}, lambda s, x: s.certify(x, 10, 20, 0.01, two_sided=True), ValueError, "sound=True"),
    ({}, lambda s, x: s.certify(x, 10, 20, 0.01, adaptive=True, radius=0.1), ValueError, "sound=True"),
    ({}, lambda s, x: s.certify_topk(x, 2, 10, 20, 0.01), ValueError, "sound=False"),
    ({}, lambda s, x: s.certify(x + 0.001, 10, 20, 0.01), ValueError, "`x`"),
])
def test_smooth_sound_refuses_what_it_cannot_certify(kwargs, call, error, match):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    arguments = {"sigma": 0.25, "sound": True, "backend": "cpu", **kwargs}
    sigma = arguments.pop("sigma")
    with pytest.raises(error, match=match) as excinfo:
        smooth = Smooth(model, 3, sigma, **arguments)
        call(smooth, torch.full((1, 2, 2), 0.0))
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("case, match", [
    (lambda t, s: (torch.zeros(1, 4), t, s), "pixels"),
    (lambda t, s: (torch.zeros(1, 4, dtype=torch.int32), t.to(torch.int32), s), "thresholds"),
    (lambda t, s: (torch.zeros(1, 4, dtype=torch.int32), t, s + 1), "support"),
])
def test_kernels_reject_bad_launches(case, match):
    thresholds, support = _table()
    pixels, table, support = case(thresholds, support)
    for kernel in (*KERNELS.values(), sound.sound_noise_normalize):
        with pytest.raises(ValueError, match=match):
            kernel(pixels, torch.tensor([0]), 0, 2, 2, table, support, 0, 1)


@pytest.mark.parametrize("skip", [torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.uint8),
                                  torch.zeros(3, dtype=torch.int32)], ids=["bool", "uint8", "short"])
def test_vote_count_rejects_a_skip_it_would_misread(skip):
    for vote in (votes.vote_count, reference.vote_count):
        with pytest.raises(ValueError, match="`skip`"):
            vote(torch.zeros(2, 3), 0, 2, torch.zeros(1, 3, dtype=torch.int32), torch.zeros(1, dtype=torch.int32), skip)
