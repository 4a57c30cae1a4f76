"""Smooth: certificates against classifiers whose smoothed behaviour is known in closed form,
reproducibility across batch sizes and backends, and argument validation."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from rsengine import ABSTAIN, InputRangeWarning, Smooth
from rsengine.questions import Predict
from rsengine.sampler import NonFiniteLogitsError
from rsengine.stats import max_radius


class LinearTwoClass(torch.nn.Module):
    """f(x) = 0 if w.x + b > 0 else 1: under N(0, sigma^2 I) noise, P(f = 0) = Phi(m / sigma)
    with m = (w.x + b) / |w| the signed distance to the boundary, which is also g's exact
    robust radius."""

    def __init__(self, w, b):
        super().__init__()
        w = torch.as_tensor(w, dtype=torch.float32)
        self.linear = torch.nn.Linear(w.numel(), 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.stack([w, -w]))
            self.linear.bias.copy_(torch.tensor([b, -b]))
        self.unit = w / w.norm()
        self.offset = b / w.norm().item()

    def forward(self, x):  # [B, d] -> [B, 2]
        return self.linear(x.flatten(1))

    def margin(self, x):
        return float(self.unit @ x.flatten() + self.offset)


def _model():
    return LinearTwoClass([3.0, -4.0, 0.0], 0.5)  # |w| = 5


def test_certify_is_close_to_the_true_radius_at_large_n():
    model, sigma = _model(), 0.5
    x = torch.tensor([0.3, -0.2, 0.9])
    truth = model.margin(x)  # (0.9 + 0.8 + 0.5) / 5 = 0.44
    label, radius = Smooth(model, 2, sigma, seed=1).certify(x, n0=100, n=100_000, alpha=0.001,
                                                            batch_size=25_000)
    assert label == 0
    assert 0.95 * truth <= radius <= truth
    assert radius <= max_radius(sigma, 100_000, 0.001)


def test_certify_overclaims_at_most_alpha_of_the_time():
    # 400 independent certificates of one input (one stream each) at alpha = 0.05: the number
    # claiming more than the true radius is Binomial(400, <= 0.05); 0.001 is the test's level.
    model, sigma, alpha, reps = _model(), 0.5, 0.05, 400
    x = torch.tensor([0.1, 0.0, 0.0])
    truth = model.margin(x)  # 0.16
    preds, radii = Smooth(model, 2, sigma, seed=3).certify_batch(x.expand(reps, 3), 50, 200, alpha,
                                                                 batch_size=20_000)
    wrong = int(np.sum((preds == 0) & (radii > truth)) + np.sum(preds == 1))
    assert sps.binomtest(wrong, reps, alpha, alternative="greater").pvalue > 0.001
    assert (preds == 0).mean() > 0.5  # and it is not vacuous: most runs certify


def test_certify_abstains_on_the_boundary():
    model = _model()
    x = torch.tensor([0.0, 0.125, 0.0])  # w.x + b = -0.5 + 0.5 = 0: a fair coin
    label, radius = Smooth(model, 2, 0.5, seed=0).certify(x, 100, 2000, 0.001, 1000)
    assert (label, radius) == (ABSTAIN, 0.0)


def test_predict_answers_on_a_coin_at_most_alpha_of_the_time():
    model, alpha, reps = _model(), 0.05, 300
    x = torch.tensor([0.0, 0.125, 0.0]).expand(reps, 3)
    preds = Smooth(model, 2, 0.5, seed=5).predict_batch(x, 100, alpha, batch_size=30_000)
    answered = int(np.sum(preds != ABSTAIN))
    assert sps.binomtest(answered, reps, alpha, alternative="greater").pvalue > 0.001


def test_predict_returns_the_smoothed_class_far_from_the_boundary():
    model = _model()
    assert Smooth(model, 2, 0.25).predict(torch.tensor([1.0, 0.0, 0.0]), 500, 0.001, 100) == 0
    assert Smooth(model, 2, 0.25).predict(torch.tensor([-1.0, 0.0, 0.0]), 500, 0.001, 100) == 1


def _batch_results(smooth_kwargs, batch_size, xs):
    smooth = Smooth(_model(), 2, 0.5, seed=11, **smooth_kwargs)
    return smooth.certify_batch(xs, 30, 300, 0.01, batch_size=batch_size)


XS = torch.tensor([[0.05, 0.0, 0.0], [0.02, 0.01, 0.3], [-0.2, 0.1, 0.0], [0.0, 0.12, 0.0]])


@pytest.mark.parametrize("batch_size", [1, 7, 64, 5000], ids=lambda b: f"bs{b}")
def test_certify_batch_is_invariant_to_batch_size(batch_size):
    want = _batch_results({}, 1000, XS)
    got = _batch_results({}, batch_size, XS)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_certify_batch_equals_one_by_one_with_the_same_streams():
    smooth = Smooth(_model(), 2, 0.5, seed=4)
    together = smooth.certify_batch(XS, 30, 300, 0.01, 100, streams=[10, 11, 12, 13])
    for i in range(4):
        alone = smooth.certify_batch(XS[i:i + 1], 30, 300, 0.01, 100, streams=[10 + i])
        assert (together[0][i], together[1][i]) == (alone[0][0], alone[1][0])


@pytest.mark.parametrize("other", ["torch", "cpu"])
def test_triton_and_the_other_backends_give_the_same_certificates(device, other):
    pytest.importorskip("triton")
    model = _model()
    xs = torch.tensor([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.125, 0.0]])
    # Small n: the CPU interpreter costs ~10 ms per noisy row. The CPU kernel runs on the CPU.
    other_results = Smooth(model, 2, 0.5, seed=11, backend=other).certify_batch(xs, 10, 60, 0.01, 512)
    triton_smooth = Smooth(model.to(device), 2, 0.5, seed=11, backend="triton")
    triton_results = triton_smooth.certify_batch(xs.to(device), 10, 60, 0.01, 512)
    assert (other_results[0] != ABSTAIN).any()  # some certificates, so radii are compared too
    np.testing.assert_array_equal(other_results[0], triton_results[0])
    np.testing.assert_array_equal(other_results[1], triton_results[1])


def test_the_cpu_backend_draws_the_triton_backends_noise_bit_for_bit(device):
    # The CPU kernel is the Triton kernel's arithmetic: a classifier that votes on the noise's
    # bits (the parity of the last mantissa bit of the first element) counts the same.
    pytest.importorskip("triton")

    def parity(batch):
        odd = (batch.reshape(batch.shape[0], -1)[:, 0].view(torch.int32) & 1).to(torch.float32)
        return torch.stack([1 - odd, odd], dim=1)

    xs = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    counts = [Smooth(parity, 2, 0.5, seed=3, backend=backend, device=where).sample_counts(xs.to(where), 40,
                                                                                       streams=[4, 5, 6])
              for backend, where in (("cpu", "cpu"), ("triton", device))]
    assert counts[0].tolist() == counts[1].tolist() and 0 < counts[0][:, 1].min() < 40


def test_same_seed_reproduces_and_successive_calls_draw_fresh_streams():
    x = torch.tensor([0.05, 0.0, 0.0])
    first = Smooth(_model(), 2, 0.5, seed=2)
    second = Smooth(_model(), 2, 0.5, seed=2)
    a = [first.sample_counts(x[None], 200).tolist() for _ in range(2)]
    b = [second.sample_counts(x[None], 200).tolist() for _ in range(2)]
    assert a == b
    assert a[0] != a[1]


def test_sample_counts_sum_to_n():
    counts = Smooth(_model(), 2, 0.5).sample_counts(XS, 123, batch_size=50)
    assert counts.shape == (4, 2) and counts.dtype == np.int64
    assert counts.sum(axis=1).tolist() == [123] * 4


def test_normalization_is_applied_after_the_noise():
    # With mean/std the classifier sees (x + sigma z - mean) / std: a classifier that undoes the
    # normalization must vote exactly as the raw one on the same noise.
    class Denormalize(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            return self.inner(z * 0.5 + 0.25)

    xs = XS[:, :, None, None] + 0.5  # 3 channels of 1x1 images, pixels in [0, 1]
    raw = Smooth(_model(), 2, 0.5, seed=8).sample_counts(xs, 300)
    normed = Smooth(Denormalize(_model()), 2, 0.5, seed=8, mean=[0.25] * 3, std=[0.5] * 3).sample_counts(xs, 300)
    np.testing.assert_array_equal(raw, normed)


def test_the_classifier_is_evaluated_in_eval_mode_and_restored():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.9), torch.nn.Identity())
    model.train()
    model[2].eval()  # a submodule the user keeps in eval mode stays so
    smooth = Smooth(model, 2, 0.5, seed=0)
    a = smooth.sample_counts(XS, 100, streams=[0, 1, 2, 3])
    b = smooth.sample_counts(XS, 100, streams=[0, 1, 2, 3])
    np.testing.assert_array_equal(a, b)  # dropout off while sampling
    assert [m.training for m in model.modules()] == [True, True, True, False]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_low_precision_classifier_gets_its_dtype(dtype):
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 2).to(dtype)

        def forward(self, x):
            seen.append(x.dtype)
            return self.linear(x)

    counts = Smooth(Recorder(), 2, 0.5).sample_counts(XS, 10)
    assert seen and set(seen) == {dtype} and counts.sum() == 40


def test_nonfinite_logits_raise():
    class Broken(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 2)
            out[0, 1] = float("nan")
            return out

    with pytest.raises(NonFiniteLogitsError, match="NaN or infinite logits for"):
        Smooth(Broken(), 2, 0.5).certify(torch.zeros(3), 10, 10, 0.01, 5)


def test_output_width_must_match_num_classes():
    with pytest.raises(ValueError, match=r"num_classes\] = \[5, 3\], got \[5, 2\]"):
        Smooth(_model(), 3, 0.5).predict(torch.zeros(3), 5, 0.01, 5)


BAD_CONSTRUCTOR = [
    (dict(num_classes=1), ValueError, "num_classes"),
    (dict(num_classes=2.0), TypeError, "num_classes"),
    (dict(sigma=0.0), ValueError, "sigma"),
    (dict(sigma=-1.0), ValueError, "sigma"),
    (dict(sigma=math.nan), ValueError, "sigma"),
    (dict(sigma=math.inf), ValueError, "sigma"),
    (dict(sigma="0.5"), TypeError, "sigma"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed=2**63), ValueError, "seed"),
    (dict(backend="cuda"), ValueError, "backend"),
    (dict(dtype=torch.int8), ValueError, "dtype"),
    (dict(mean=[0.5]), ValueError, "mean"),
    (dict(mean=[0.5], std=[0.0]), ValueError, "std"),
    (dict(mean=[0.5, 0.1], std=[0.2]), ValueError, "mean"),
    (dict(mean=[math.nan], std=[1.0]), ValueError, "mean"),
    (dict(mean="abc", std="abc"), TypeError, "mean"),
    (dict(base_classifier=3), TypeError, "base_classifier"),
]


@pytest.mark.parametrize("kwargs, error, name", BAD_CONSTRUCTOR, ids=lambda v: None)
def test_constructor_rejects_bad_arguments(kwargs, error, name):
    args = dict(base_classifier=_model(), num_classes=2, sigma=0.5) | kwargs
    with pytest.raises(error, match=f"`{name}`"):
        Smooth(**args)


def test_triton_backend_without_a_gpu_or_interpreter_is_an_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="backend='triton' cannot run here"):
        Smooth(_model(), 2, 0.5, backend="triton")


BAD_CALLS = [
    (dict(n0=0), ValueError, "n0"),
    (dict(n=0), ValueError, "n"),
    (dict(n=2**31), ValueError, "n"),
    (dict(n=10.5), TypeError, "n"),
    (dict(alpha=0.0), ValueError, "alpha"),
    (dict(alpha=1.0), ValueError, "alpha"),
    (dict(alpha=math.nan), ValueError, "alpha"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(x=torch.tensor([math.nan, 0.0, 0.0])), ValueError, "x"),
    (dict(x=torch.tensor([1, 2, 3])), TypeError, "x"),
    (dict(x=[0.0, 0.0, 0.0]), TypeError, "x"),
]


@pytest.mark.parametrize("kwargs, error, name", BAD_CALLS, ids=lambda v: None)
def test_certify_rejects_bad_arguments(kwargs, error, name):
    args = dict(x=torch.zeros(3), n0=10, n=10, alpha=0.01, batch_size=10) | kwargs
    with pytest.raises(error, match=f"`{name}`"):
        Smooth(_model(), 2, 0.5).certify(**args)


@pytest.mark.parametrize("streams", [[0, 0, 1, 2], [0, 1, 2], [-1, 0, 1, 2], [0, 1, 2, 2**32], ["a", "b", "c", "d"]],
                         ids=["repeated", "short", "negative", "too-large", "strings"])
def test_streams_are_validated(streams):
    with pytest.raises(ValueError, match="`streams`"):
        Smooth(_model(), 2, 0.5).certify_batch(XS, 10, 10, 0.01, 10, streams=streams)


def test_channels_last_needs_images():
    smooth = Smooth(_model(), 2, 0.5, memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="channels_last"):
        smooth.predict(torch.zeros(3), 10, 0.01, 10)


# --- the soundness audit's cases: eval mode, batch shape, float64 logits, sigma, streams, seeds --


def _batch_norm_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    with torch.no_grad():
        net[1].running_mean.fill_(0.3)  # far from any batch's mean: training mode would show
    return net.train()


class Holder:
    """A callable object around a network: nothing rsengine can find before the forward runs."""

    def __init__(self, net):
        self.net = net

    def __call__(self, batch):
        return self.net(batch)


@pytest.mark.parametrize("wrap", [lambda net: (lambda b: net(b)), lambda net: net.forward, Holder],
                         ids=["lambda", "bound-forward", "callable-object"])
def test_a_classifier_given_as_a_function_runs_its_network_in_eval_mode(wrap):
    # The audit: `lambda b: net(b)` around batch norm in training mode voted [461, 188, 351] at
    # batch size 1000 and [459, 201, 340] at 10, and certification moved the running statistics.
    net = _batch_norm_net()
    before = net[1].running_mean.clone()
    big, small = (Smooth(wrap(net), 3, 0.5, seed=0).sample_counts(XS, 1000, batch_size=size, streams=[0, 1, 2, 3])
                  for size in (1000, 10))
    np.testing.assert_array_equal(big, small)
    eval_counts = Smooth(net.eval(), 3, 0.5, seed=0).sample_counts(XS, 1000, batch_size=1000, streams=[0, 1, 2, 3])
    np.testing.assert_array_equal(big, eval_counts)
    assert torch.equal(net[1].running_mean, before)
    net.train()


def test_a_function_classifier_gets_its_networks_device_and_dtype():
    net = torch.nn.Linear(3, 2).to(torch.bfloat16)
    assert Smooth(lambda b: net(b), 2, 0.5).dtype == torch.bfloat16


def test_eval_mode_restores_every_module_and_leaves_other_threads_alone():
    import threading

    from rsengine.classifier import eval_mode

    net, other = _batch_norm_net(), torch.nn.Dropout(0.5).train()
    seen = {}
    with eval_mode(Holder(net)):
        net(torch.zeros(2, 3))  # the hook switches it as it runs
        seen["net"] = net[1].training
        thread = threading.Thread(target=lambda: seen.update(other=(other(torch.ones(1)), other.training)[1]))
        thread.start()
        thread.join()
    assert seen == {"net": False, "other": True}
    assert all(m.training for m in net.modules()) and other.training


def _near_tie_linear(features=784):
    # Two identical weight rows: the logits tie exactly in a matrix product, and whether they
    # still do depends on which BLAS kernel (picked by the batch's shape) computed them.
    torch.manual_seed(0)
    linear = torch.nn.Linear(features, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(features).expand(2, features))
        linear.bias.zero_()
    return linear


def test_deterministic_counts_do_not_depend_on_the_other_inputs_of_a_call():
    # Packed, the 20 inputs' 100-sample phases fill 33-row batches across input boundaries;
    # alone, each ends on a 1-row batch (a matrix-vector product): 9 of the 20 counts differed
    # here without deterministic mode.
    linear, xs = _near_tie_linear(), torch.rand(20, 784, generator=torch.Generator().manual_seed(1))
    smooth = Smooth(linear, 2, 0.25, seed=0, deterministic=True)
    packed = smooth.sample_counts(xs, 100, batch_size=33, streams=range(20))
    alone = np.concatenate([smooth.sample_counts(xs[i:i + 1], 100, batch_size=33, streams=[i]) for i in range(20)])
    np.testing.assert_array_equal(packed, alone)


def test_deterministic_mode_fixes_the_batch_shape_and_restores_global_flags():
    shapes, flags = [], []

    def classifier(batch):
        shapes.append(batch.shape[0])
        flags.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark))
        return torch.zeros(batch.shape[0], 2)

    Smooth(classifier, 2, 0.5, deterministic=True).sample_counts(XS[:2], 70, batch_size=30)
    assert shapes == [30] * 6  # per input: 30, 30, 10 padded to 30
    assert set(flags) == {(True, False)}
    assert not torch.are_deterministic_algorithms_enabled()


def test_deterministic_mode_runs_out_of_memory_instead_of_changing_the_batch():
    def classifier(batch):
        if batch.shape[0] > 50:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.zeros(batch.shape[0], 2)

    with pytest.raises(torch.OutOfMemoryError):
        Smooth(classifier, 2, 0.5, deterministic=True).sample_counts(XS[:1], 100, batch_size=100)


def test_float64_logits_vote_the_same_on_both_backends(device):
    # 1 + 1e-12 rounds to 1.0 in float32: a backend that rounds votes class 0, the other class 1.
    pytest.importorskip("triton")

    def classifier(batch):
        row = torch.tensor([1.0, 1.0 + 1e-12, 0.0], dtype=torch.float64, device=batch.device)
        return row.expand(batch.shape[0], 3)

    xs = XS[:2].to(device)
    counts = [Smooth(classifier, 3, 0.5, device=device, backend=backend).sample_counts(xs, 20, streams=[0, 1])
              for backend in ("torch", "triton")]
    counts.append(Smooth(classifier, 3, 0.5, backend="cpu").sample_counts(XS[:2], 20, streams=[0, 1]))
    assert counts[0].tolist() == counts[1].tolist() == counts[2].tolist() == [[0, 20, 0], [0, 20, 0]]


def test_radius_is_computed_for_the_float32_sigma_the_noise_applies():
    # float32(0.12) = 0.11999999731779099: a radius for 0.12 overstated the applied noise.
    from rsengine import stats
    from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION

    x, model = torch.tensor([0.3, -0.2, 0.9]), _model()
    smooth = Smooth(model, 2, 0.12, seed=5)
    assert smooth.noise_sigma == float(np.float32(0.12)) < 0.12
    preds, radii = smooth.certify_batch(x[None], 50, 2000, 0.001, streams=[7])
    guess = smooth.sample_counts(x[None], 50, PHASE_SELECTION, streams=[7]).argmax(axis=1)
    n_a = smooth.sample_counts(x[None], 2000, PHASE_ESTIMATION, streams=[7])[0, guess]
    assert preds[0] == guess[0]
    assert radii[0] == stats.certify_from_counts(guess, n_a, 2000, 0.001, smooth.noise_sigma)[1][0]
    assert radii[0] < stats.certify_from_counts(guess, n_a, 2000, 0.001, 0.12)[1][0]


class NoiseRecorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.batches = []

    def forward(self, batch):
        self.batches.append(batch.clone())
        return torch.zeros(batch.shape[0], 2)


def _noise_of(smooth, **kwargs):
    smooth.base_classifier.batches.clear()
    smooth.sample_counts(torch.zeros(1, 3), 4, **kwargs)
    return torch.cat(smooth.base_classifier.batches)


def test_explicit_streams_are_never_handed_out_again_by_the_default_counter():
    # The audit: certify_batch(x1, streams=[0]) then certify(x2) gave x2 stream 0, x1's noise.
    smooth = Smooth(NoiseRecorder(), 2, 0.5, seed=0)
    explicit = [_noise_of(smooth, streams=[s]) for s in (0, 2)]
    defaults = [_noise_of(smooth) for _ in range(3)]  # streams 1, 3, 4
    expected = [_noise_of(Smooth(NoiseRecorder(), 2, 0.5, seed=0), streams=[s]) for s in (1, 3, 4)]
    for got, want in zip(defaults, expected):
        assert torch.equal(got, want)
    assert not any(torch.equal(d, e) for d in defaults for e in explicit)


def test_seed_none_draws_a_secret_seed_that_is_kept():
    first, second = Smooth(NoiseRecorder(), 2, 0.5, seed=None), Smooth(NoiseRecorder(), 2, 0.5, seed=None)
    assert first.seed != second.seed and 0 <= first.seed < 2**63
    again = Smooth(NoiseRecorder(), 2, 0.5, seed=first.seed)
    assert torch.equal(_noise_of(first, streams=[3]), _noise_of(again, streams=[3]))


# --- the field's common mistakes: classifier outputs, normalized inputs, data sets, one mean --------


class Returning(torch.nn.Module):
    """_model()'s logits wrapped as ``wrap(logits)``: what many a model zoo's classifier returns."""

    def __init__(self, wrap):
        super().__init__()
        self.inner, self.wrap = _model(), wrap

    def forward(self, x):
        return self.wrap(self.inner(x))


class ModelOutput:
    """The shape of a Hugging Face ModelOutput that matters here: logits as an attribute."""

    def __init__(self, logits):
        self.logits, self.hidden_states = logits, None


@pytest.mark.parametrize("wrap", [lambda t: {"logits": t, "loss": None}, ModelOutput],
                         ids=["dict-with-logits", "object-with-logits"])
def test_logits_are_read_out_of_a_dict_or_a_model_output(wrap):
    expected = Smooth(_model(), 2, 0.5, seed=3).sample_counts(XS, 200)
    np.testing.assert_array_equal(Smooth(Returning(wrap), 2, 0.5, seed=3).sample_counts(XS, 200), expected)


@pytest.mark.parametrize("wrap, got", [
    (lambda t: (t,), "got a tuple"),
    (lambda t: {"scores": t}, r"got a dict with keys \['scores'\]"),
    (lambda t: [t], "got a list"),
    (lambda t: None, "got a NoneType"),
    (lambda t: {"logits": t.tolist()}, r"got a dict with keys \['logits'\]"),
], ids=["tuple", "dict-without-logits", "list", "none", "logits-not-a-tensor"])
def test_an_output_without_logits_is_refused_by_name(wrap, got):
    with pytest.raises(TypeError, match=f"Expected the classifier to return a tensor .* {got}"):
        Smooth(Returning(wrap), 2, 0.5).certify_batch(XS, 10, 20, 0.01)


def test_logits_must_be_two_dimensional():
    with pytest.raises(ValueError, match=r"\[batch, num_classes\] = \[40, 2\], got \[40, 2, 1\]"):
        Smooth(Returning(lambda t: t[..., None]), 2, 0.5).sample_counts(XS, 10)


def test_normalized_inputs_warn_once_per_smooth():
    smooth = Smooth(_model(), 2, 0.5, seed=0, mean=[0.5] * 3, std=[0.25] * 3)
    normalized = (XS + 0.5 - 0.5) / 0.25  # pixels XS + 0.5 after a Normalize in the transform: [-0.8, 1.2]
    with pytest.warns(InputRangeWarning) as caught:
        smooth.sample_counts(normalized, 10)
        smooth.certify_batch(normalized, 10, 20, 0.01)
    assert len(caught) == 1
    assert str(caught[0].message).startswith("the inputs lie in [-0.8, 1.2], but rsengine expects pixels in [0, 1]")
    assert "drop the Normalize" in str(caught[0].message)
    assert caught[0].filename == __file__  # the caller's line, not rsengine's


def test_pixels_in_range_and_inputs_without_mean_std_do_not_warn():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", InputRangeWarning)
        Smooth(_model(), 2, 0.5, mean=[0.5] * 3, std=[0.25] * 3).sample_counts(XS.clamp(0, 1), 10)
        Smooth(_model(), 2, 0.5, mean=[0.5] * 3, std=[0.25] * 3).sample_counts(
            torch.tensor([[-0.04, 0.5, 1.04]]), 10)  # a resize's overshoot
        Smooth(_model(), 2, 0.5).sample_counts(XS * 10, 10)  # raw values: the model's own business
        # Sound mode's 8-bit inputs, uint8 in [0, 255], are pixels too.
        Smooth(_model(), 2, 0.25, mean=[0.5] * 3, std=[0.25] * 3, sound=True).sample_counts(
            torch.tensor([[0, 128, 255]], dtype=torch.uint8), 10)


def test_the_range_warning_can_be_made_an_error():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", InputRangeWarning)
        with pytest.raises(InputRangeWarning, match=r"lie in \[0, 255\]"):
            Smooth(_model(), 2, 0.5, mean=[0.5] * 3, std=[0.25] * 3).predict_batch(
                torch.tensor([[0.0, 128.0, 255.0]]), 10, 0.01)


_DATA = torch.utils.data.TensorDataset(XS.clamp(0, 1), torch.tensor([0, 1, 0, 1]))
_CALLS = {
    "certify_batch": lambda s, d: s.certify_batch(d, 10, 20, 0.01),
    "predict_batch": lambda s, d: s.predict_batch(d, 20, 0.01),
    "certify_topk_batch": lambda s, d: s.certify_topk_batch(d, 1, 10, 20, 0.01),
    "sample_counts": lambda s, d: s.sample_counts(d, 20),
    "answer": lambda s, d: s.answer(Predict(20, 0.01), d),
    "certify": lambda s, d: s.certify(d, 10, 20, 0.01),
    "predict": lambda s, d: s.predict(d, 20, 0.01),
    "certify_topk": lambda s, d: s.certify_topk(d, 1, 10, 20, 0.01),
}


@pytest.mark.parametrize("data", [_DATA, torch.utils.data.DataLoader(_DATA, batch_size=2), list(_DATA)],
                         ids=["dataset", "dataloader", "pairs"])
@pytest.mark.parametrize("call", list(_CALLS))
def test_a_data_set_given_for_a_tensor_points_at_certify_dataset(call, data):
    got = r"got a (torch Dataset \(TensorDataset\)|torch DataLoader|list of \(x, label\) pairs)"
    with pytest.raises(TypeError, match=got + r": ask of a data set with rsengine\.certify_dataset\("):
        _CALLS[call](Smooth(LinearTwoClass([3.0, -4.0, 0.0, 1.0], 0.5), 3, 0.5), data)


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
@pytest.mark.parametrize("sound", [False, True], ids=["float", "sound"])
def test_one_mean_and_std_serve_every_channel(backend, sound):
    # Every backend's kernel is handed per-channel values: the counts are those of [0.4] * 3.
    xs = torch.tensor([[0, 51, 255], [102, 204, 0]], dtype=torch.uint8)[:, :, None, None]  # 3 channels, 1x1
    xs = xs if sound else xs / 255
    common = dict(seed=4, backend=backend, sound=sound)
    per_channel = Smooth(_model(), 2, 0.25, mean=[0.4] * 3, std=[0.2] * 3, **common).sample_counts(xs, 40)
    one = Smooth(_model(), 2, 0.25, mean=0.4, std=0.2, **common).sample_counts(xs, 40)
    np.testing.assert_array_equal(one, per_channel)
    shifted = Smooth(_model(), 2, 0.25, mean=-1.0, std=0.2, **common).sample_counts(xs, 40)
    assert not np.array_equal(shifted, per_channel)  # and the one value is applied, not dropped


@pytest.mark.parametrize("mean, std", [([0.4], (0.2,)), (torch.tensor([0.4]), torch.tensor([0.2])),
                                       (torch.tensor(0.4), np.float32(0.2))],
                         ids=["one-value-sequences", "one-value-tensors", "0-d-tensor-and-numpy-scalar"])
def test_one_mean_and_std_may_come_in_any_form(mean, std):
    per_channel = Smooth(_model(), 2, 0.25, seed=4, mean=[0.4] * 3, std=[0.2] * 3).sample_counts(XS + 0.5, 100)
    np.testing.assert_array_equal(Smooth(_model(), 2, 0.25, seed=4, mean=mean, std=std).sample_counts(XS + 0.5, 100),
                                  per_channel)


def test_mean_of_neither_one_nor_c_values_is_refused_naming_both():
    smooth = Smooth(_model(), 2, 0.5, mean=[0.1, 0.2], std=[0.3, 0.3])
    with pytest.raises(ValueError, match=r"1 value or one per channel \(x.shape\[0\] = 3\), got 2"):
        smooth.sample_counts(XS.clamp(0, 1), 10)
