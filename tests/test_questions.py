"""Noise and Question objects: the native call answers what the original API returns, bit for bit."""
import numpy as np
import pytest
import torch

from rsengine import Smooth
from rsengine.noises import Gaussian, Laplace, RoundedGaussian, Uniform, noise_named, noise_of_record
from rsengine.questions import AdaptiveRadius, AdaptiveTolerance, Answer, Certify, Predict, TopK, TwoSided

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
