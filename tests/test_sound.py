"""Sound mode (rsengine.sound): the table, the sampler's spec, the grid inputs, the radius, and
the float-rounding attack it closes. Runs in ~20 s on 2 cores."""
import bisect
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy.stats import chi2, norm

from rsengine import sound, stats
from rsengine.kernels.contract import noise_scale
from rsengine.kernels.reference import gaussian_noise, philox4x32_10


def _pmf_independent(k, scale, dps=80):
    # Through Phi (ncdf) at more digits, not erfc differences as sound.py does.
    with mpmath.workdps(dps):
        return mpmath.ncdf((k + mpmath.mpf(0.5)) / scale) - mpmath.ncdf((k - mpmath.mpf(0.5)) / scale)


# ---------------------------------------------------------------- noise_table


@pytest.mark.parametrize("sigma", [0.01, 0.12, 0.25], ids=lambda s: f"sigma={s}")
def test_noise_table_masses_are_floors_and_sum_exactly(sigma):
    table = sound.noise_table(sigma)
    masses, thresholds = table.masses, table.thresholds
    assert len(masses) == len(thresholds) == 2 * table.support + 1
    assert masses == masses[::-1] and min(masses) > 0
    assert thresholds[-1] == sum(masses)  # exact integers
    assert thresholds[-1] + table.escape_mass == 2**64 and table.escape_mass >= 1
    assert all(b > a for a, b in zip(thresholds, thresholds[1:]))
    with mpmath.workdps(80):
        scale = mpmath.mpf(255) * mpmath.mpf(sigma)  # exact here, not at mpmath's default 53 bits
        step = max(1, table.support // 60)
        ks = sorted(set(range(0, table.support + 1, step)) | {table.support})
        for k in ks:
            exact = _pmf_independent(k, scale) * 2**64
            m = masses[table.support + k]
            assert m <= exact < m + 1 + mpmath.mpf(2) ** -20, k
        # one past the support has no whole unit of mass
        assert _pmf_independent(table.support + 1, scale) * 2**64 < 1 + mpmath.mpf(2) ** -20
        # the escape covers at least the tails beyond the support
        tails = 2 * mpmath.ncdf(-(table.support + mpmath.mpf(0.5)) / scale)
        assert table.escape_mass >= tails * 2**64
    assert table.escape_probability * 2.0**64 >= table.escape_mass
    assert table.escape_probability < 1e-16


def test_noise_table_support_grows_with_sigma():
    supports = [sound.noise_table(s).support for s in (0.01, 0.12, 0.25, 0.5)]
    assert supports == sorted(supports)
    for sigma, support in zip((0.12, 0.25, 0.5), supports[1:]):
        assert 8.4 < support / (255 * sigma) < 9.0


# ---------------------------------------------------------------- discrete_noise


def test_discrete_noise_matches_the_spec_word_for_word():
    # Independent re-implementation with Python ints: block e // 2, words (w0, w1) or (w2, w3),
    # u = high * 2^32 + low, k = -support + bisect_right(thresholds, u).
    sigma, seed, phase, numel = 0.25, 0x1234_5678_9ABC, 1, 3
    table = sound.noise_table(sigma)
    streams = torch.tensor([7, 7, 2**32 - 1, 0], dtype=torch.int64)
    samples = torch.tensor([0, 1, 5, 2**33 + 1], dtype=torch.int64)  # odd starts: mid-block
    k = sound.discrete_noise(seed, streams, samples, phase, numel, sigma)
    for row, (stream, sample) in enumerate(zip(streams.tolist(), samples.tolist())):
        for j in range(numel):
            e = sample * numel + j
            q = e // 2
            words = [int(w) for w in philox4x32_10(
                (q & 0xFFFFFFFF, q >> 32, stream, phase), (seed & 0xFFFFFFFF, seed >> 32))]
            high, low = (words[0], words[1]) if e % 2 == 0 else (words[2], words[3])
            u = (high << 32) | low
            expected = bisect.bisect_right(table.thresholds, u) - table.support
            assert int(k[row, j]) == expected, (row, j)


def test_offsets_at_threshold_boundaries_and_escape():
    table = sound.noise_table(0.01)
    t = table.thresholds
    u = [0, t[0] - 1, t[0], t[1] - 1, t[-1] - 1, t[-1], 2**64 - 1]
    got = sound._offsets(torch.tensor([v - 2**63 for v in u], dtype=torch.int64), table).tolist()
    s = table.support
    assert got == [-s, -s, -s + 1, -s + 1, s, sound.ESCAPE, sound.ESCAPE]
    k = torch.tensor([[0, sound.ESCAPE], [1, 2]], dtype=torch.int32)
    assert sound.escaped_rows(k).tolist() == [True, False]


def test_discrete_noise_rows_do_not_depend_on_the_batch():
    streams = torch.tensor([3, 3, 9, 3], dtype=torch.int64)
    samples = torch.tensor([0, 1, 0, 17], dtype=torch.int64)
    together = sound.discrete_noise(5, streams, samples, 0, 1001, 0.5)
    for row in range(4):
        alone = sound.discrete_noise(5, streams[row:row + 1], samples[row:row + 1], 0, 1001, 0.5)
        assert torch.equal(alone[0], together[row])
    other_phase = sound.discrete_noise(5, streams, samples, 1, 1001, 0.5)
    assert not torch.equal(other_phase, together)


def test_discrete_noise_chi_square_against_the_rounded_gaussian():
    sigma = 0.05  # s = 12.75 grid steps
    table = sound.noise_table(sigma)
    rows, numel = 400, 500
    k = sound.discrete_noise(2024, torch.zeros(rows, dtype=torch.int64), torch.arange(rows), 1, numel, sigma)
    assert not sound.escaped_rows(k).any()
    values = k.flatten().numpy().astype(np.int64)
    total = values.size
    pmf = np.array([float(mpmath.mpf(m) / 2**64) for m in table.masses])
    counts = np.bincount(values + table.support, minlength=len(pmf))
    expected = total * pmf
    # Bins with >= 50 expected; the tails pooled into one bin each side.
    keep = np.flatnonzero(expected >= 50)
    lo, hi = keep[0], keep[-1]
    obs = np.concatenate([[counts[:lo].sum()], counts[lo:hi + 1], [counts[hi + 1:].sum()]])
    exp = np.concatenate([[expected[:lo].sum()], expected[lo:hi + 1], [expected[hi + 1:].sum()]])
    statistic = float(((obs - exp) ** 2 / exp).sum())
    df = len(obs) - 1
    threshold = chi2.isf(1e-6, df)
    assert statistic < threshold, (statistic, df, threshold)
    # and the sample variance is the rounded Gaussian's, s^2 + 1/12 to a good approximation
    s = 255 * sigma
    assert abs(values.var() / (s * s + 1 / 12) - 1) < 0.02


# ---------------------------------------------------------------- grid inputs


def test_sound_inputs_are_the_integer_sum_divided_once():
    i = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8)
    k = torch.tensor([[-300, 0, 1, -128, 1, 2000], [5, -1, 0, 0, 0, sound.ESCAPE]], dtype=torch.int32)
    out = sound.sound_inputs(i, k)
    total = i.to(torch.int64) + k.to(torch.int64)
    expected = (total.numpy().astype(np.float32) / np.float32(255)).astype(np.float32)
    assert out.dtype == torch.float32 and out.shape == (2, 6)
    assert np.array_equal(out[0].numpy(), expected[0])
    assert np.array_equal(out[1, :5].numpy(), expected[1, :5]) and torch.isnan(out[1, 5])
    # the same integer sum gives the same float whatever its split into i and k
    a = sound.sound_inputs(torch.tensor([10], dtype=torch.uint8), torch.tensor([[90]], dtype=torch.int32))
    b = sound.sound_inputs(torch.tensor([100], dtype=torch.uint8), torch.tensor([[0]], dtype=torch.int32))
    assert torch.equal(a, b)
    clipped = sound.sound_inputs(i, k[:1], clip=True)
    assert clipped.min() >= 0 and clipped.max() <= 1 and float(clipped[0, 5]) == 1.0
    # float32 i / 255 input and a batch of images [B, C, H, W]
    images = torch.randint(0, 256, (2, 3, 2, 2), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    kk = torch.randint(-50, 50, (2, 12), dtype=torch.int32, generator=torch.Generator().manual_seed(1))
    got = sound.sound_inputs(images.float() / 255, kk)
    assert got.shape == (2, 3, 2, 2)
    assert torch.equal(got, ((images.reshape(2, 12).int() + kk).float() / 255).reshape(2, 3, 2, 2))


def test_to_grid_rejects_values_off_the_grid():
    assert sound.to_grid(torch.arange(256, dtype=torch.int64).to(torch.uint8).float() / 255).tolist() == list(range(256))
    with pytest.raises(ValueError, match="`x`"):
        sound.to_grid(torch.tensor([0.5], dtype=torch.float32))
    with pytest.raises(TypeError, match="`x`"):
        sound.to_grid(torch.tensor([0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="`x`"):
        sound.to_grid(torch.tensor([256], dtype=torch.int64))


# ---------------------------------------------------------------- the radius


def _quantile_exact(p, dps=80):
    with mpmath.workdps(dps):
        return mpmath.findroot(lambda x: mpmath.ncdf(x) - mpmath.mpf(p), norm.ppf(p), tol=mpmath.mpf(10) ** -70)


def test_sound_radius_rounds_down_and_is_within_two_ulp():
    rng = np.random.default_rng(0)
    ps = np.concatenate([[0.5, 0.5 + 2**-53, 0.75, 0.99, 0.999, 1 - 1e-9, 1 - 2**-52, 1 - 2**-53],
                         rng.uniform(0.5, 1.0, 30), 1 - 10.0 ** -rng.uniform(1, 15, 30),
                         rng.uniform(0.0, 0.5, 10)])
    sigma = 0.37
    radii = sound.sound_radius(ps, sigma)
    for p, r in zip(ps, radii):
        exact = mpmath.mpf(sigma) * _quantile_exact(float(p))
        assert mpmath.mpf(float(r)) <= exact, p
        assert exact - mpmath.mpf(float(r)) <= 2 * math.ulp(abs(float(r))) + 1e-300, p
    assert sound.sound_radius(0.5, 1.0) == 0.0 and sound.sound_radius(0.0, 1.0) == -math.inf


def test_sound_radius_is_the_gaussian_radius_never_above():
    # Theory: the rounded Gaussian's grid certificate is Cohen's radius itself, so the only
    # difference from float mode's formula is rounding: sound <= exact, and float mode's
    # stats.radius (lowered by its 1e-9 margin) <= sound <= it + 1.3e-9 sigma.
    ps = np.array([0.51, 0.6, 0.9, 0.99, 0.9999, 1 - 1e-12])
    for sigma in (0.12, 0.25, 1.0):
        sound_r = sound.sound_radius(ps, sigma)
        float_r = stats.radius(ps, sigma)
        assert np.all(float_r <= sound_r)
        assert np.all(sound_r - float_r <= 1.3e-9 * sigma + 1e-15)
        assert np.all(sound_r <= sigma * norm.ppf(ps) * (1 + 1e-15))


def test_certify_sound_from_counts_agrees_with_float_certify():
    n, alpha, sigma = 100_000, 0.001, 0.25
    n_a = np.array([0, 50_000, 50_300, 50_400, 60_000, 99_000, 99_999, 100_000])
    c_hat = np.arange(len(n_a))
    pred, rad = sound.certify_sound_from_counts(c_hat, n_a, n, alpha, sigma)
    pred_f, rad_f = stats.certify_from_counts(c_hat, n_a, n, alpha, sigma)
    assert pred.dtype == np.int64 and rad.dtype == np.float64 and rad.shape == (len(n_a),)
    assert np.array_equal(pred, pred_f)
    assert np.all(np.abs(rad - rad_f) <= 4 * np.spacing(np.maximum(rad, 1e-300)))
    assert np.all(rad[pred == -1] == 0.0)
    assert np.all(rad < stats.max_radius(sigma, n, alpha))


def _worst_case_on_lattice(p, delta, pmf, support):
    """min Q_delta(A) over randomized A on Z with Q(A) = p (Neyman-Pearson on the 1-D lattice).

    The rounded Gaussian is log-concave (checked), so Q(j - delta) / Q(j) increases in j and the
    worst A is a lower tail {j <= t} plus a fraction of the next atom.
    """
    with mpmath.workdps(60):
        q = lambda j: pmf[j + support] if -support <= j <= support else mpmath.mpf(0)  # noqa: E731
        left, worst, j = mpmath.mpf(p), mpmath.mpf(0), -support
        while left > 0:
            take = min(left, q(j))
            worst += q(j - delta) * (take / q(j))
            left -= take
            j += 1
        return worst


def test_radius_against_brute_force_neyman_pearson_on_the_lattice():
    sigma = 0.02  # s = 5.1 grid steps: coarse enough for the lattice to matter
    with mpmath.workdps(60):
        s = mpmath.mpf(255) * mpmath.mpf(sigma)
        support = 60
        pmf = [_pmf_independent(j, s, 60) for j in range(-support, support + 1)]
        logs = [mpmath.log(v) for v in pmf]
        assert all(logs[j - 1] + logs[j + 1] <= 2 * logs[j] for j in range(1, len(logs) - 1))  # log-concave
        for p in (0.6, 0.9, 0.99, 0.999):
            radius = sound.sound_radius(p, sigma)
            largest_certified = math.ceil(radius * 255) - 1  # integer shifts with delta / 255 < R
            first_failing = None
            for delta in range(1, 40):
                worst = _worst_case_on_lattice(p, delta, pmf, support)
                # Cohen's bound on the real line is never above the lattice's exact worst case
                assert worst >= mpmath.ncdf(mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(p) - 1) - delta / s) - 1e-40
                if worst <= 0.5 and first_failing is None:
                    first_failing = delta
                if delta <= largest_certified:
                    assert worst > 0.5, (p, delta)  # the certificate is true
            # ... and tight: the lattice's exact robust radius is at most 1 grid step beyond it
            # (measured: equal at all four p)
            assert first_failing is not None and first_failing - 1 <= largest_certified + 1, (p, first_failing)


# ---------------------------------------------------------------- the attack


def _on_coarse_float_grid(y: torch.Tensor) -> torch.Tensor:
    # The attacker's classifier: class 0 iff the float32 input is a multiple of 2^-24, a
    # property of how x + noise rounded, not of where it lies. Class 1 otherwise.
    scaled = y.double() * 2**24
    return torch.where(scaled == torch.round(scaled), 0, 1)


def test_float_mode_gives_a_false_certificate_sound_mode_a_true_one():
    sigma, n, alpha = 0.3, 100_000, 0.001
    rows = torch.arange(n)
    zeros = torch.zeros(n, dtype=torch.int64)
    # Float mode: fl32(x + fl32(sigma * z)) at x0 = 1.0 (pixel 255) and x' = 0.0 (pixel 0).
    scale = noise_scale("gaussian", sigma)
    z_est = gaussian_noise(0, zeros, rows, 1, 1)[:, 0]
    votes = _on_coarse_float_grid(torch.tensor(1.0, dtype=torch.float32) + scale * z_est)
    pred, rad = stats.certify_from_counts([0], [int((votes == 0).sum())], n, alpha, sigma)
    assert pred.tolist() == [0] and rad[0] > 1.0  # claims: class 0 everywhere within 1.14 of x0
    z_other = gaussian_noise(0, torch.ones(n, dtype=torch.int64), rows, 1, 1)[:, 0]
    votes_other = _on_coarse_float_grid(torch.tensor(0.0, dtype=torch.float32) + scale * z_other)
    upper = 1 - stats.clopper_pearson_lower(int((votes_other == 1).sum()), n, 1e-9)
    assert upper < 0.5  # yet at x' = 0.0, distance 1.0 < R, class 1 wins: the certificate is false

    # Sound mode, same classifier on (i + k) / 255: exact class-0 probability of every grid point
    # from the table (a lower bound: escapes vote for no class), and the certificate checked
    # exhaustively over the grid points it covers.
    table = sound.noise_table(sigma)
    offsets = torch.arange(-table.support, table.support + 1, dtype=torch.int32)[None, :]
    masses = [mpmath.mpf(m) for m in table.masses]

    def p_class0(i):
        is0 = _on_coarse_float_grid(sound.sound_inputs(torch.tensor([i], dtype=torch.uint8), offsets.T))
        return sum((m for m, c in zip(masses, is0[:, 0].tolist()) if c == 0), mpmath.mpf(0)) / 2**64

    with mpmath.workdps(40):
        p0 = p_class0(255)
        radius = sound.sound_radius(float(p0) * (1 - 1e-15), sigma)
        assert 0 < radius < 1.0  # no claim about pixel 0
        covered = [i for i in range(256) if (255 - i) / 255 < radius]
        assert len(covered) > 100
        for i in covered:
            assert p_class0(i) > 0.5, i  # class 0 truly wins at every certified grid point
        # tight here: the first grid point outside the certificate is one class 0 loses
        assert min(covered) == 128 and p_class0(127) < 0.5 and p_class0(0) < 0.5

    # and the sampled pipeline's certificate is no larger than the exact one
    k = sound.discrete_noise(0, zeros, rows, 1, 1, sigma)
    assert not sound.escaped_rows(k).any()
    votes_sound = _on_coarse_float_grid(sound.sound_inputs(torch.tensor([255], dtype=torch.uint8), k))[:, 0]
    pred_s, rad_s = sound.certify_sound_from_counts([0], [int((votes_sound == 0).sum())], n, alpha, sigma)
    assert pred_s.tolist() == [0] and rad_s[0] <= radius * (1 + 1e-12)


# ---------------------------------------------------------------- argument errors


def _one_line(excinfo, name):
    message = str(excinfo.value)
    assert "\n" not in message and f"`{name}`" in message, message


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: sound.noise_table(0.0), ValueError, "sigma"),
        (lambda: sound.noise_table(float("nan")), ValueError, "sigma"),
        (lambda: sound.noise_table(11.0), ValueError, "sigma"),
        (lambda: sound.noise_table("0.5"), TypeError, "sigma"),
        (lambda: sound.sound_radius(1.0, 0.5), ValueError, "p_lower"),
        (lambda: sound.sound_radius([0.9, -0.1], 0.5), ValueError, "p_lower"),
        (lambda: sound.sound_radius("0.9", 0.5), TypeError, "p_lower"),
        (lambda: sound.sound_radius(0.9, -1.0), ValueError, "sigma"),
        (lambda: sound.certify_sound_from_counts([0], [11], 10, 0.001, 0.5), ValueError, "n_a"),
        (lambda: sound.certify_sound_from_counts([0, 1], [1], 10, 0.001, 0.5), ValueError, "n_a"),
        (lambda: sound.certify_sound_from_counts([0.5], [1], 10, 0.001, 0.5), TypeError, "c_hat"),
        (lambda: sound.certify_sound_from_counts([0], [1], 0, 0.001, 0.5), ValueError, "n"),
        (lambda: sound.certify_sound_from_counts([0], [1], 10, 1.5, 0.5), ValueError, "alpha"),
        (lambda: sound.certify_sound_from_counts([0], [1], 10, 0.001, 0), ValueError, "sigma"),
        (lambda: sound.discrete_noise(-1, torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), 1, 3, 0.5), ValueError, "seed"),
        (lambda: sound.discrete_noise(0, torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), 3, 3, 0.5), ValueError, "phase"),
        (lambda: sound.discrete_noise(0, torch.zeros(1), torch.zeros(1, dtype=torch.int64), 1, 3, 0.5), TypeError, "streams"),
        (lambda: sound.discrete_noise(0, torch.zeros(1, dtype=torch.int64), torch.zeros(2, dtype=torch.int64), 1, 3, 0.5), ValueError, "samples"),
        (lambda: sound.discrete_noise(0, torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), 1, 0, 0.5), ValueError, "numel"),
        (lambda: sound.discrete_noise(0, torch.full((1,), 2**32), torch.zeros(1, dtype=torch.int64), 1, 3, 0.5), ValueError, "streams"),
        (lambda: sound.discrete_noise(0, torch.zeros(1, dtype=torch.int64), torch.full((1,), -1), 1, 3, 0.5), ValueError, "samples"),
        (lambda: sound.sound_inputs(torch.zeros(3, dtype=torch.uint8), torch.zeros(1, 3)), TypeError, "k"),
        (lambda: sound.sound_inputs(torch.zeros(3, dtype=torch.uint8), torch.zeros(1, 4, dtype=torch.int32)), ValueError, "k"),
        (lambda: sound.sound_inputs(torch.zeros(3, dtype=torch.uint8), torch.zeros(1, 3, dtype=torch.int32), clip=1), TypeError, "clip"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_argument_errors_are_one_line_and_name_the_argument(call, error, name):
    with pytest.raises(error) as excinfo:
        call()
    _one_line(excinfo, name)
