"""Noise and Question objects: the native call answers what the original API returns, bit for bit."""
import math

import numpy as np
import pytest
import torch

from rsengine import Smooth
from rsengine.noises import Gaussian, Laplace, RoundedGaussian, Uniform, noise_named, noise_of_record
from rsengine.questions import (AdaptiveRadius, AdaptiveTolerance, Answer, Certify, Predict, TopK, TwoSided,
                                question_type_of_record)
from rsengine.resume import recorded_pa_noise

torch.manual_seed(0)
MODEL = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4))
XS = torch.rand(5, 6)
STREAMS = [3, 1, 4, 15, 9]


def _same(a, b):
    assert a.dtype == b.dtype and np.array_equal(a, b), (a, b)


@pytest.mark.parametrize("question, original", [
    (Certify(20, 300, 0.01), lambda s: s.certify_batch(XS, 20, 300, 0.01, 64, streams=STREAMS)),
    (TwoSided(20, 300, 0.01), lambda s: s.certify_batch(XS, 20, 300, 0.01, 64, streams=STREAMS, two_sided=True)),
    (TopK(2, 20, 300, 0.01), lambda s: s.certify_topk_batch(XS, 2, 20, 300, 0.01, 64, streams=STREAMS)),
    (AdaptiveRadius(20, 300, 0.01, radius=0.1),
     lambda s: s.certify_batch(XS, 20, 300, 0.01, 64, streams=STREAMS, adaptive=True, radius=0.1)),
    (AdaptiveTolerance(20, 300, 0.01, tolerance=0.2),
     lambda s: s.certify_batch(XS, 20, 300, 0.01, 64, streams=STREAMS, adaptive=True, tolerance=0.2)),
], ids=["certify", "two-sided", "top-k", "adaptive-radius", "adaptive-tolerance"])
def test_answer_is_what_the_original_methods_return(question, original):
    answer = Smooth(MODEL, 4, sigma=0.5, seed=7).answer(question, XS, streams=STREAMS, batch_size=64)
    expected = original(Smooth(MODEL, 4, sigma=0.5, seed=7))
    _same(answer.prediction, expected[0])
    _same(answer.radius, expected[1])
    if len(expected) == 3:
        _same(answer.samples, expected[2])
    else:
        assert answer.samples.tolist() == [320] * 5
    assert isinstance(answer, Answer)


def test_predict_answers_without_a_radius():
    answer = Smooth(MODEL, 4, sigma=0.5, seed=7).answer(Predict(300, 0.01), XS, streams=STREAMS)
    _same(answer.prediction, Smooth(MODEL, 4, sigma=0.5, seed=7).predict_batch(XS, 300, 0.01, streams=STREAMS))
    assert answer.radius is None and answer.samples.tolist() == [300] * 5


@pytest.mark.parametrize("noise, name, sound", [(Gaussian(0.5), "gaussian", False), (Laplace(0.5), "laplace", False),
                                               (Uniform(0.5), "uniform", False),
                                               (RoundedGaussian(0.5), "gaussian", True)])
def test_a_noise_object_is_the_noise_its_name_gives(noise, name, sound):
    xs = (XS * 255).round().to(torch.uint8) if sound else XS
    by_object = Smooth(MODEL, 4, noise=noise, seed=2).certify_batch(xs, 20, 300, 0.01, streams=STREAMS)
    by_name = Smooth(MODEL, 4, 0.5, noise=name, sound=sound, seed=2).certify_batch(xs, 20, 300, 0.01, streams=STREAMS)
    for a, b in zip(by_object, by_name):
        _same(a, b)
    assert noise_named(name, 0.5, sound) == noise
    assert noise_of_record(noise.record("certify")) == noise


def test_records_hold_what_earlier_runs_wrote():
    assert Gaussian(0.25).record("certify") == {"sigma": 0.25}
    assert Laplace(0.25).record("predict") == {"sigma": 0.25, "noise": "laplace"}
    assert Uniform(0.25).record("certify") == {"sigma": 0.25, "noise": "uniform", "radius_norm": "l1"}
    assert RoundedGaussian(0.25).record("certify") == {"sigma": 0.25, "sound": True}
    assert TopK(3, 100, 1000, 0.001).record() == {"N": 1000, "alpha": 0.001, "N0": 100, "top_k": 3}
    assert AdaptiveRadius(100, 1000, 0.001, radius=0.5).record()["adaptive"] == {"radius": 0.5, "tolerance": None}
    assert Predict(1000, 0.001).record() == {"N": 1000, "alpha": 0.001}


def test_noise_and_sigma_must_agree_and_questions_check_their_fields():
    with pytest.raises(ValueError, match="the sigma of `noise`"):
        Smooth(MODEL, 4, 0.25, noise=Laplace(0.5))
    with pytest.raises(ValueError, match="RoundedGaussian"):
        Smooth(MODEL, 4, noise=Gaussian(0.5), sound=True)
    with pytest.raises(ValueError, match="Expected `n` <= 2147483647"):
        Certify(100, 2**31, 0.001)
    with pytest.raises(ValueError, match="Expected `radius`"):
        AdaptiveRadius(100, 1000, 0.001, radius=-1.0)
    with pytest.raises(ValueError, match="Expected `k` < num_classes = 4"):
        Smooth(MODEL, 4, 0.5).answer(TopK(4, 20, 100, 0.01), XS)
    with pytest.raises(TypeError, match="rsengine.questions.Question"):
        Smooth(MODEL, 4, 0.5).answer("certify", XS)


def test_with_seed_changes_the_noise_only():
    smooth = Smooth(MODEL, 4, sigma=0.5, seed=1)
    other = smooth.with_seed(9)
    assert other.seed == 9 and smooth.seed == 1 and other.base_classifier is smooth.base_classifier
    _same(other.sample_counts(XS, 200, streams=STREAMS), Smooth(MODEL, 4, 0.5, seed=9).sample_counts(XS, 200,
                                                                                                      streams=STREAMS))


# -- reading pA's lower bound back from a radius --------------------------------------------------


def _phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_pa_lower_inverts_each_noises_one_sided_radius_by_hand():
    # Gaussian and sound mode: R = sigma PhiInv(p); Laplace: R = -b ln(2 (1 - p)); uniform: R = 2 lam (p - 1/2).
    np.testing.assert_allclose(Gaussian(0.5).pa_lower([0.0, 0.5, 1.0]), [0.5, _phi(1.0), _phi(2.0)], rtol=1e-15)
    np.testing.assert_allclose(RoundedGaussian(0.5).pa_lower(0.5), _phi(1.0), rtol=1e-15)
    laplace, uniform = Laplace(0.25), Uniform(0.25)
    np.testing.assert_allclose(laplace.pa_lower([laplace.scale * math.log(5.0)]), [0.9], rtol=1e-15)
    np.testing.assert_allclose(uniform.pa_lower([0.8 * uniform.scale, 3 * uniform.scale]), [0.9, 1.0], rtol=1e-15)
    assert Gaussian(0.5).pa_lower(0.5).shape == () and Gaussian(0.5).pa_lower([[0.5]]).shape == (1, 1)


@pytest.mark.parametrize("noise", [Gaussian(0.12), Laplace(0.25), Uniform(0.5), RoundedGaussian(0.25)],
                         ids=lambda noise: repr(noise))
def test_pa_lower_of_a_certified_radius_is_its_clopper_pearson_bound(noise):
    from rsengine.stats import clopper_pearson_lower, floor_significant

    votes = np.array([600, 900, 990, 1000])
    _, radius = noise.certify(np.zeros(4, int), votes, 1000, 0.001)
    # The radius came from the bound widened by 1e-9 (rsengine.stats): back at the bound, from below.
    bound = clopper_pearson_lower(votes, 1000, 0.001)
    got = noise.pa_lower(radius)
    assert np.all(got <= bound + 1e-15) and np.allclose(got, bound, rtol=1e-8)
    # The file's radius (3 significant digits, rounded down) gives a lower bound on that bound.
    assert np.all(noise.pa_lower([floor_significant(r) for r in radius]) <= got)


@pytest.mark.parametrize("radius", [-0.1, float("nan"), float("inf")])
def test_pa_lower_refuses_a_radius_that_is_no_radius(radius):
    with pytest.raises(ValueError, match=r"Expected `radius` to be finite numbers >= 0, got"):
        Gaussian(0.5).pa_lower([0.2, radius])


@pytest.mark.parametrize("arguments, kind, question", [
    ({}, "certify", Certify), ({}, "predict", Predict), ({"two_sided": True}, "certify", TwoSided),
    ({"top_k": 1}, "certify", TopK), ({"adaptive": {"radius": 0.25, "tolerance": None}}, "certify", AdaptiveRadius),
    ({"adaptive": {"radius": None, "tolerance": 0.1}}, "certify", AdaptiveTolerance),
], ids=["certify", "predict", "two-sided", "top-1", "adaptive-radius", "adaptive-tolerance"])
def test_question_type_of_record_reads_the_keys_each_question_writes(arguments, kind, question):
    assert question_type_of_record(arguments, kind) is question
    if question not in (Predict,):  # what each question's own record writes reads back as it
        built = {Certify: Certify(10, 100, 0.01), TwoSided: TwoSided(10, 100, 0.01), TopK: TopK(1, 10, 100, 0.01),
                 AdaptiveRadius: AdaptiveRadius(10, 100, 0.01, radius=0.25),
                 AdaptiveTolerance: AdaptiveTolerance(10, 100, 0.01, tolerance=0.1)}[question]
        assert question_type_of_record(built.record(), kind) is question


def test_only_one_sided_radii_give_pa_and_only_top_k_and_radius_mode_hide_abstentions():
    gives_pa = {q.__name__: q.pa_lower_unavailable is None
                for q in (Certify, TwoSided, TopK, Predict, AdaptiveRadius, AdaptiveTolerance)}
    assert gives_pa == dict(Certify=True, TwoSided=False, TopK=False, Predict=False, AdaptiveRadius=False,
                            AdaptiveTolerance=True)
    abstains = {q.__name__: q.abstention_unavailable is None
                for q in (Certify, TwoSided, TopK, Predict, AdaptiveRadius, AdaptiveTolerance)}
    assert abstains == dict(Certify=True, TwoSided=True, TopK=False, Predict=True, AdaptiveRadius=False,
                            AdaptiveTolerance=True)


@pytest.mark.parametrize("record, noise, reason", [
    (None, None, "no run record says its noise and sigma"),
    ({"arguments": {"sigma": 0.25, "N": 100}}, Gaussian(0.25), None),
    ({"arguments": {"sigma": 0.25, "noise": "laplace"}}, Laplace(0.25), None),
    ({"arguments": {"sigma": 0.25, "sound": True}}, RoundedGaussian(0.25), None),
    ({"arguments": {"sigma": 0.25, "two_sided": True}}, None, "two-sided radii depend on the runner-up"),
    ({"arguments": {"sigma": 0.25, "top_k": 2}}, None, "top-k radii depend"),
    ({"arguments": {"N": 100}}, None, "names no noise and sigma"),
    ({"arguments": "junk"}, None, "names no noise and sigma"),
], ids=["no-record", "gaussian", "laplace", "sound", "two-sided", "top-k", "no-sigma", "malformed"])
def test_recorded_pa_noise_names_the_noise_or_why_not(record, noise, reason):
    got, why = recorded_pa_noise(record, "certify")
    assert got == noise and type(got) is type(noise)
    assert (why is None) if reason is None else (reason in why)
