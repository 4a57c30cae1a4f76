"""Tests for rsengine.training_methods and rsengine.training_noise: each loss against a hand
computation, the attacks' promises (they raise the loss they attack and stay where they must),
the engine's training copies, the published defaults and their validation, and training runs."""
import dataclasses
import math

import pytest
import torch
from torch import nn

from test_train import _toy_dataset  # two classes an MNIST CNN separates quickly
from rsengine.data import TensorImageDataset
from rsengine.kernels import reference
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_TRAINING, PHASES
from rsengine.models import build_model
from rsengine.noises import Gaussian as GaussianNoise
from rsengine.noises import Laplace
from rsengine.train import train_model
from rsengine.training_methods import (DEFAULTS, METHODS, Batch, CatRS, Consistency, Gaussian, Macer, SmoothAdv,
                                       SmoothMix, catrs_loss, consistency_loss, kl_noise_attack, macer_loss,
                                       mean_softmax, method_named, method_of_record, smoothed_l2_attack,
                                       smoothmix_loss, smoothmix_walk)
from rsengine.training_noise import EngineNoise


def _softmax(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _batch(model, x, y, noise, epoch=0, epochs=1, sigma=0.5, index=None):
    def classify(pixels):
        return model(pixels)
    return Batch(x, y, noise, classify, model, epoch, epochs, sigma, index)


class _Linear(nn.Module):
    """A fixed linear classifier on [B, 1, 2, 2] inputs: 3 classes."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, -1.0, 0.5, 0.0], [-1.0, 2.0, 0.0, 0.5], [0.3, 0.3, -2.0, 1.0]]))
            self.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.0]))

    def forward(self, x):
        return self.fc(x.flatten(1))


# -- the losses, by hand -----------------------------------------------------------------------

LOGITS = [[[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], [[0.0, 0.0, 3.0], [1.0, -2.0, 0.5]]]  # [B=2, m=2, K=3]
LABELS = [0, 2]


def test_consistency_loss_by_hand():
    lam, eta = 3.0, 0.7
    expected = 0.0
    for copies, y in zip(LOGITS, LABELS):
        p = [_softmax(row) for row in copies]
        p_bar = [sum(col) / len(p) for col in zip(*p)]
        ce = sum(-math.log(pj[y]) for pj in p) / len(p)
        kl = sum(sum(b * (math.log(b) - math.log(q)) for b, q in zip(p_bar, pj)) for pj in p) / len(p)
        entropy = -sum(b * math.log(b) for b in p_bar)
        expected += (ce + lam * kl + eta * entropy) / len(LOGITS)
    got = consistency_loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS), lam, eta)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_consistency_without_its_terms_is_gaussian_augmentation_over_the_same_copies():
    torch.manual_seed(0)
    model, x, y = _Linear(), torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    noise = 0.5 * torch.randn(5, 3, 1, 2, 2)
    batch = _batch(model, x, y, noise)
    plain, _ = Gaussian(copies=3).loss(batch)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    regularized, _ = Consistency(copies=3, lam=0.0, eta=0.0).loss(batch)
    regularized_grads = torch.autograd.grad(regularized, list(model.parameters()))
    assert regularized.item() == pytest.approx(plain.item(), rel=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(plain_grads, regularized_grads))
    with_terms, _ = Consistency(copies=3, lam=1.0, eta=1.0).loss(batch)
    assert with_terms.item() > plain.item()


def test_smoothmix_loss_by_hand():
    mixed = [[[0.5, 0.5, -1.0], [2.0, -1.0, 0.0]], [[1.0, 1.0, 1.0], [-1.0, 0.0, 2.5]]]
    mix, eta = [0.25, 0.4], 2.0
    expected = 0.0
    for copies, mixed_copies, y, l in zip(LOGITS, mixed, LABELS, mix):
        p = [_softmax(row) for row in copies]
        p_bar = [sum(col) / 2 for col in zip(*p)]
        target = [(1 - l) * b + l / 3 for b in p_bar]
        ce = sum(-math.log(pj[y]) for pj in p) / 2
        right = max(range(3), key=lambda k: p_bar[k]) == y
        kl = sum(sum(t * (math.log(t) - math.log(q)) for t, q in zip(target, _softmax(row))) for row in mixed_copies)
        expected += ce / 2 + eta * right * kl / 4  # both means: CE over B x m, the KL over B x m
    got = smoothmix_loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(mixed, dtype=torch.float64),
                         torch.tensor(LABELS), torch.tensor(mix, dtype=torch.float64), eta)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_catrs_loss_by_hand():
    attacked = [[[0.0, 2.0, 0.0], [1.0, 1.0, 0.0]], [[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]]
    p_hat = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    lam, accepted = 0.5, [2, 1]  # input 0: every copy kept, and the KL term; input 1: its smallest CE
    expected = 0.0
    for copies, attacked_copies, y, p, k in zip(LOGITS, attacked, LABELS, p_hat, accepted):
        ces = sorted(-math.log(_softmax(row)[y]) for row in copies)
        low = sum(ces[:k]) / 2
        kl = max(sum(a * (math.log(a) - math.log(q)) for a, q in zip(p, _softmax(row))) for row in attacked_copies)
        expected += (low + lam * kl * (k == 2)) / 2
    got = catrs_loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(attacked, dtype=torch.float64),
                     torch.tensor(LABELS), torch.tensor(p_hat, dtype=torch.float64), torch.tensor(accepted), lam)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def _phi_inv(p):
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(p, dtype=torch.float64)).item()


def test_macer_loss_by_hand():
    sigma, lam, beta, gamma = 0.5, 2.0, 1.5, 8.0
    total = 0.0
    for copies, y in zip(LOGITS, LABELS):
        p_bar = [sum(col) / 2 for col in zip(*[_softmax(row) for row in copies])]
        total += -math.log(p_bar[y] + 1e-10)
        q_bar = [sum(col) / 2 for col in zip(*[_softmax([beta * v for v in row]) for row in copies])]
        first, second = sorted(q_bar, reverse=True)[:2]
        if q_bar.index(first) == y:
            gap = _phi_inv(first) - _phi_inv(second)
            if gap <= gamma:
                total += lam * sigma / 2 * (gamma - gap)
    got = macer_loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS), sigma, lam, beta, gamma)
    assert got.item() == pytest.approx(total / 2, rel=1e-10)


def test_macer_hinge_is_zero_outside_zero_to_gamma():
    y = torch.tensor([0])
    # One copy: q = softmax(beta * logits); a gap beyond gamma, or a wrong top class, adds nothing.
    far = torch.tensor([[[6.0, 0.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    classification = -torch.log(torch.softmax(far[0, 0], 0)[0] + 1e-10)
    loss = macer_loss(far, y, 0.5, 1.0, 1.0, gamma=0.5)
    assert loss.item() == pytest.approx(classification.item(), rel=1e-12)
    hinge_free, = torch.autograd.grad(classification, far)
    assert torch.allclose(torch.autograd.grad(loss, far)[0], hinge_free)  # and no gradient from the hinge
    wrong = torch.tensor([[[0.0, 0.1, 0.0]]], dtype=torch.float64)
    classification = -torch.log(torch.softmax(wrong[0, 0], 0)[0] + 1e-10)
    assert macer_loss(wrong, y, 0.5, 1.0, 1.0, gamma=8.0).item() == pytest.approx(classification.item(), rel=1e-12)
    near = torch.tensor([[[0.1, 0.0, 0.0]]], dtype=torch.float64)
    assert macer_loss(near, y, 0.5, 1.0, 1.0, gamma=8.0).item() > -torch.log(torch.softmax(near[0, 0], 0)[0]).item()


def test_macer_saturated_softmax_gives_finite_gradients():
    # beta x logits saturates the softmax: PhiInv(1) = inf must be filtered before the gradient.
    logits = torch.tensor([[[60.0, 0.0, 0.0], [50.0, 1.0, 0.0]]], requires_grad=True)
    macer_loss(logits, torch.tensor([0]), 0.5, 16.0, 16.0, 8.0).backward()
    assert torch.isfinite(logits.grad).all()


def test_macer_defers_its_robustness_term_for_a_share_of_the_epochs():
    model, x, y = _Linear(), torch.rand(4, 1, 2, 2), torch.tensor([0, 1, 2, 0])
    noise = 0.2 * torch.randn(4, 3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    method = Macer(copies=3, lam=5.0, deferred_fraction=0.5)
    logits = _batch(model, x, y, noise).logits(x)
    for epoch, lam in ((0, 0.0), (1, 0.0), (2, 5.0), (3, 5.0)):  # of 4 epochs: the first half without it
        got, _ = method.loss(_batch(model, x, y, noise, epoch=epoch, epochs=4))
        assert got.item() == pytest.approx(macer_loss(logits, y, 0.5, lam, 16.0, 8.0).item(), rel=1e-6)


def test_macer_defers_51_of_150_epochs_exactly():
    method = method_named("macer", "cifar10", 1.0)  # the published CIFAR-10 run at sigma 1.0
    x, y, noise = torch.zeros(1, 1, 2, 2), torch.tensor([0]), torch.zeros(1, 16, 1, 2, 2)
    fixed = torch.tensor([[0.05, 0.0, 0.0]]).repeat(16, 1)  # right, with a small margin: inside the hinge

    def loss_at(epoch):
        batch = Batch(x, y, noise, lambda pixels: fixed, _Linear(), epoch, 150, 1.0)
        return method.loss(batch)[0].item()

    without = macer_loss(fixed.view(1, 16, 3), y, 1.0, 0.0, 16.0, 8.0).item()
    with_term = macer_loss(fixed.view(1, 16, 3), y, 1.0, method.lam, 16.0, 8.0).item()
    assert with_term > without
    assert loss_at(50) == pytest.approx(without, rel=1e-9) and loss_at(51) == pytest.approx(with_term, rel=1e-9)


def test_smoothmix_warms_up_eta_and_the_clean_end():
    method = SmoothMix(warmup_epochs=4)
    assert [method.warmup(e) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert SmoothMix(warmup_epochs=0).warmup(0) == 1.0


# -- the attacks -------------------------------------------------------------------------------


def _attack_setup(seed=0):
    torch.manual_seed(seed)
    x = torch.rand(6, 1, 2, 2) * 0.8 + 0.1
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    return _Linear(), x, y, 0.3 * torch.randn(6, 4, 1, 2, 2)


def _smoothed_ce(model, x, y, noise):
    batch = _batch(model, x, y, noise)
    return -torch.log(mean_softmax(batch.logits(x))[torch.arange(len(y)), y]).detach()


def test_smoothadv_attack_raises_the_smoothed_loss_within_its_ball():
    model, x, y, noise = _attack_setup()
    model.train()
    attacked = smoothed_l2_attack(_batch(model, x, y, noise), epsilon=0.5, steps=5)
    assert ((attacked - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all()
    assert attacked.min() >= 0 and attacked.max() <= 1
    assert (_smoothed_ce(model, attacked, y, noise) > _smoothed_ce(model, x, y, noise)).all()
    assert model.training and all(p.requires_grad for p in model.parameters())  # restored


def test_smoothadv_epsilon_warms_up_linearly():
    method = SmoothAdv(epsilon=1.0, warmup_epochs=4)
    assert [method.epsilon_at(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_smoothmix_walk_raises_the_smoothed_loss_and_stays_in_its_balls():
    model, x, y, noise = _attack_setup(1)
    start, end = smoothmix_walk(_batch(model, x, y, noise), alpha=0.2, steps=3, mix_step=1, mix_radius=0.1)
    assert ((end - x).flatten(1).norm(dim=1) <= 3 * 0.2 + 1e-6).all()
    assert ((start - x).flatten(1).norm(dim=1) <= 0.1 + 1e-6).all()
    assert (_smoothed_ce(model, end, y, noise) > _smoothed_ce(model, x, y, noise)).all()
    same, _ = smoothmix_walk(_batch(model, x, y, noise), alpha=0.2, steps=3, mix_step=0, mix_radius=0.5)
    assert torch.equal(same, x)  # mix_step 0: the clean end is taken before the first step, x itself


def test_catrs_noise_attack_raises_the_kl_and_keeps_each_noise_mean():
    model, x, y, noise = _attack_setup(2)
    p_hat = torch.softmax(torch.randn(6, 3), 1)
    batch = _batch(model, x, y, noise)
    attacked = kl_noise_attack(batch, p_hat, epsilon=0.5, steps=4)

    def kl(n):
        log_q = torch.log_softmax(_batch(model, x, y, n).logits(x), 2)
        return (p_hat[:, None] * (p_hat[:, None].log() - log_q)).sum(2)

    assert (kl(attacked) > kl(noise)).all()
    # The authors' rescaling subtracts the mean but divides by the uncentred root mean square: the
    # mean is kept exactly, the level only where the mean is small against it (high dimensions).
    assert torch.allclose(attacked.flatten(2).mean(2), noise.flatten(2).mean(2), atol=1e-6)


def test_catrs_loss_by_hand_when_every_copy_is_right_or_wrong():
    # All copies right: K = m always, the loss is mean CE + lam max-KL; all wrong: K = 1, the
    # smallest CE over m, no KL term.
    model, x, y, noise = _attack_setup(3)
    batch = _batch(model, x, y, noise, index=torch.arange(6))
    logits = batch.logits(x).detach()
    top = logits.argmax(2)
    p_hat = torch.full((6, 3), 1 / 3)
    for labels, lam in ((top[:, 0], 0.0), ((top[:, 0] + 1) % 3, 0.0)):
        right = (top == labels[:, None]).all(1)
        wrong = (top != labels[:, None]).all(1)
        keep = right | wrong
        method = CatRS(copies=4, lam=lam, steps=1, confidences=p_hat)
        sub = _batch(model, x[keep], labels[keep], noise[keep], index=torch.arange(int(keep.sum())))
        got, _ = method.loss(sub)
        ce = torch.nn.functional.cross_entropy(logits[keep].flatten(0, 1), labels[keep].repeat_interleave(4),
                                               reduction="none").view(-1, 4)
        expected = torch.where(right[keep], ce.mean(1), ce.min(1).values / 4).mean()
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_catrs_method_with_an_unmoving_attack_is_its_loss_on_the_clean_noise():
    model, x, y, noise = _attack_setup(4)
    p_hat = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(1)), 1)
    batch = _batch(model, x, y, noise, index=torch.arange(6))
    logits = batch.logits(x).detach()
    labels = logits.argmax(2)[:, 0]
    right = (logits.argmax(2) == labels[:, None]).all(1)
    wrong = (logits.argmax(2) != labels[:, None]).all(1)
    keep = right | wrong  # K is certain there: m or 1
    sub = _batch(model, x[keep], labels[keep], noise[keep], index=torch.arange(int(keep.sum())))
    got, _ = CatRS(copies=4, lam=1.0, epsilon=0.0, steps=1, confidences=p_hat[keep]).loss(sub)
    accepted = torch.where(right[keep], 4, 1)
    expected = catrs_loss(logits[keep], logits[keep], labels[keep], p_hat[keep], accepted, 1.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_catrs_without_its_pre_pass_is_refused():
    model, x, y, noise = _attack_setup()
    with pytest.raises(ValueError, match="pre-pass"):
        CatRS(copies=4).loss(_batch(model, x, y, noise, index=torch.arange(6)))


# -- the engine's training copies --------------------------------------------------------------


def test_training_copies_are_the_engines_noise_in_the_training_phase():
    assert PHASE_TRAINING not in PHASES
    noise = Laplace(0.5)
    x = torch.zeros(3, 1, 4, 4)
    drawn = EngineNoise(noise, seed=5, device="cpu", backend="torch").draw(x, copies=2, first_stream=7)
    expected = reference.noise_normalize(x, torch.arange(7, 10), 0, 6, 2, noise.applied_sigma, 5, PHASE_TRAINING,
                                         noise="laplace").view(3, 2, 1, 4, 4)
    assert torch.equal(drawn, expected)
    certification = reference.noise_normalize(x, torch.arange(7, 10), 0, 6, 2, noise.applied_sigma, 5,
                                              PHASE_ESTIMATION, noise="laplace").view(3, 2, 1, 4, 4)
    assert not torch.isclose(drawn, certification).any()
    compiled = EngineNoise(noise, seed=5, device="cpu", backend="cpu").draw(x, copies=2, first_stream=7)
    assert torch.allclose(compiled, drawn, atol=1e-5)


def test_training_streams_are_the_inputs_numbers_in_the_run():
    class Spy(Consistency):
        seen = []

        def loss(self, batch):
            Spy.seen.append((batch.index.clone(), batch.noise.clone()))
            return super().loss(batch)

    images = (torch.arange(6 * 4) % 251).to(torch.uint8).view(6, 1, 2, 2)
    data = TensorImageDataset(images, torch.arange(6) % 2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    train_model(model, data, sigma=0.5, epochs=2, batch_size=4, method=Spy(copies=2), backend="torch")
    noise = GaussianNoise(0.5)
    for number, (index, drawn) in enumerate(Spy.seen):
        first = (number // 2) * 6 + (number % 2) * 4  # epoch * N + position of the batch's first input
        expected = EngineNoise(noise, 0, "cpu", "torch").draw(torch.zeros(len(index), 1, 2, 2), 2, first)
        assert torch.equal(drawn, expected)


# -- defaults, validation, records -------------------------------------------------------------


def test_every_method_has_published_defaults_for_mnist_and_cifar():
    for name in METHODS:
        for family in ("mnist", "cifar10"):
            assert (name, family) in DEFAULTS
            for sigma in (0.25, 0.5, 1.0):
                assert method_named(name, family, sigma).name == name
    assert method_named("consistency", "mnist", 0.25).lam == 10.0
    assert method_named("consistency", "cifar10", 0.25).lam == 20.0
    assert method_named("macer", "mnist", 1.0).lam == 6.0
    assert method_named("consistency", "mnist", 0.3).lam == 10.0  # the nearest published sigma, 0.25
    assert method_named("consistency", "imagenet", 0.5) == method_named("consistency", "cifar10", 0.5)


@pytest.mark.parametrize("name, overrides, error, match", [
    ("macer", {"lamda": 1.0}, ValueError, "Expected a hyperparameter of macer .*got 'lamda'"),
    ("consistency", {"copies": 0}, ValueError, "Expected `copies` of consistency in \\[1"),
    ("consistency", {"copies": 2.5}, TypeError, "Expected `copies` of consistency to be an integer"),
    ("macer", {"gamma": -1.0}, ValueError, "Expected `gamma` of macer"),
    ("smoothadv", {"epsilon": float("nan")}, ValueError, "Expected `epsilon` of smoothadv"),
    ("smoothmix", {"eta": "5"}, TypeError, "Expected `eta` of smoothmix to be a number"),
    ("macer", {"deferred_fraction": 1.5}, ValueError, "Expected `deferred_fraction` of macer in \\[0, 1\\]"),
    ("dropout", {}, ValueError, "Expected a training method among gaussian, consistency"),
    ("smoothmix", {"steps": 1}, ValueError, "Expected `mix_step` of smoothmix < steps = 1, got 1"),
])
def test_bad_hyperparameters_get_one_line_errors(name, overrides, error, match):
    with pytest.raises(error, match=match) as caught:
        method_named(name, "mnist", 0.5, **overrides)
    assert "\n" not in str(caught.value)


def test_methods_need_noise():
    data = TensorImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="Expected `sigma` > 0 for method 'consistency'"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, sigma=0.0, epochs=1, method="consistency")
    with pytest.raises(ValueError, match="Expected `noise` 'gaussian' for method 'macer'"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, sigma=0.5, epochs=1, method="macer",
                    noise="laplace")
    with pytest.raises(ValueError, match=r"Expected `seed` in \[0, 2\*\*63\) for the engine's training copies"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, sigma=0.5, epochs=1, method="consistency",
                    seed=-1)
    with pytest.raises(ValueError, match="Expected CAT-RS's pre-pass"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, sigma=0.5, epochs=1, method="catrs")
    short = CatRS(confidences=torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"Expected CAT-RS's confidences: a finite \[N = 4, K\] tensor.*got \[3, 2\]"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, sigma=0.5, epochs=1, method=short)
    with pytest.raises(TypeError, match="Expected `method`"):
        train_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), data, sigma=0.5, epochs=1, method=3)


def test_a_method_survives_its_record():
    method = method_named("smoothmix", "mnist", 1.0, eta=2.0)
    record = {"noise": "gaussian", "method": method.name, "hyperparameters": method.hyperparameters()}
    assert method_of_record(record) == method
    catrs = dataclasses.replace(method_named("catrs", "mnist", 0.5), confidences=torch.ones(3, 10))
    assert "confidences" not in catrs.hyperparameters()
    assert method_of_record({"method": "catrs", "hyperparameters": catrs.hyperparameters()}) == catrs
    assert method_of_record(None) is None and method_of_record({"noise": "laplace"}) is None
    with pytest.raises(ValueError, match="Expected the recorded hyperparameters of macer among beta, copies"):
        method_of_record({"method": "macer", "hyperparameters": {"lamda": 1.0}})


# -- training ----------------------------------------------------------------------------------


CHEAP = {"consistency": {}, "macer": {"copies": 4}, "smoothadv": {"copies": 2, "steps": 2},
         "smoothmix": {"copies": 2, "steps": 2}, "catrs": {"copies": 2, "steps": 1}}


@pytest.mark.parametrize("name", list(CHEAP))
def test_each_method_learns_and_reproduces_for_a_seed(name):
    data = _toy_dataset()
    method = method_named(name, "mnist", 0.25, **CHEAP[name])
    if name == "catrs":
        method = dataclasses.replace(method, confidences=torch.nn.functional.one_hot(data.labels, 10).float())
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model("mnist_cnn")
        history = train_model(model, data, sigma=0.25, epochs=4, batch_size=16, lr=0.05, method=method)
        runs.append((history, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert runs[0][0][-1]["loss"] < runs[0][0][0]["loss"]
    assert runs[0][0][-1]["accuracy"] > runs[0][0][0]["accuracy"] + 0.2
