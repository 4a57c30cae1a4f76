"""Training methods for certified robustness: each loss as its paper defines it.

Every method trains on ``m`` noisy copies of each input, drawn by the certification engine's
kernels (rsengine.training_noise), and differs in the loss it puts on them:

========================  =========================================================  ==========
method                    loss on the copies' logits ``[B, m, K]``                    passes
========================  =========================================================  ==========
``gaussian``              cross-entropy of a noisy copy (Cohen et al. 2019)            1
``consistency``           mean CE + lam KL(mean softmax || copy) + eta H(mean)         m (2)
                          (Jeong & Shin 2020)
``macer``                 CE of the mean softmax + lam sigma/2 hinge on the soft       k (16)
                          radius (Zhai et al. 2020)
``smoothadv``             CE of each copy at an l2 PGD attack on the smoothed soft     m (T + 1)
                          classifier (Salman et al. 2019)
``smoothmix``             CE + eta KL on mixes of x and an adversarial walk along the  m (T + 2)
                          smoothed classifier (Jeong et al. 2021)
``catrs``                 worst-of-m CE on hard inputs, consistency at an adversarial  m (T + 2)
                          copy on inputs the smoothed classifier gets right
                          (Jeong, Kim & Shin 2023)
========================  =========================================================  ==========

A method is a frozen dataclass of its hyperparameters; :func:`method_named` fills in the
published defaults for a data set and sigma (``DEFAULTS``, with their sources) and checks any
the caller overrides. The losses are pure functions of logits and labels (``consistency_loss``,
``macer_loss``, ``smoothmix_loss``, ``catrs_loss``), so each can be checked against a hand
computation; the attacks are functions of a :class:`Batch`.

Example:
    >>> method = method_named("consistency", "mnist", 0.5)
    >>> method
    Consistency(copies=2, lam=5.0, eta=0.5)
    >>> method_named("macer", "mnist", 0.25, lam=8).lam
    8.0
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DEFAULTS", "METHODS", "PUBLISHED_SIGMAS", "Batch", "CatRS", "Consistency", "Gaussian", "Macer", "Method",
           "SmoothAdv", "SmoothMix", "catrs_confidences", "catrs_loss", "consistency_loss", "kl_noise_attack",
           "macer_loss", "mean_softmax", "method_named", "method_of_record", "published_defaults",
           "smoothed_l2_attack", "smoothmix_loss", "smoothmix_walk"]


@dataclasses.dataclass
class Batch:
    """One training step's material, as a method's ``loss`` sees it.

    Attributes:
        x: [B, *shape] clean inputs in pixel space. y: [B] labels.
        noise: [B, m, *shape] pixel-space noise, ``m = method.copies`` (the engine's kernels).
        classify: pixels [N, *shape] -> logits [N, K]: normalization, model, logits (the
            model in its current mode).
        model: the network (an attack puts it in eval mode and freezes its parameters).
        epoch, epochs: the 0-based epoch and the run's epoch count (warm-ups, deferrals).
        sigma: the noise's standard deviation.
        index: [B] the inputs' positions in the data set (CAT-RS's pre-pass results).
    """

    x: torch.Tensor
    y: torch.Tensor
    noise: torch.Tensor
    classify: Callable[[torch.Tensor], torch.Tensor]
    model: nn.Module
    epoch: int
    epochs: int
    sigma: float
    index: torch.Tensor | None = None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, m, K] of every noisy copy of ``x`` [B, *shape] under this batch's noise."""
        batch, copies = self.noise.shape[:2]
        return self.classify((x.unsqueeze(1) + self.noise).flatten(0, 1)).view(batch, copies, -1)


class Method:
    """A training method: hyperparameters (the dataclass fields) and the loss on a Batch."""

    name: ClassVar[str]
    copies: int

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(the scalar loss to minimize, logits [B, m, K] of the noisy copies for the accuracy)."""
        raise NotImplementedError

    @property
    def plain(self) -> bool:
        """Whether this is plain noise augmentation, drawn from torch's generator (no engine copies)."""
        return False

    def hyperparameters(self) -> dict:
        """The hyperparameters by name (what a checkpoint records)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("data")}

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if field.metadata.get("data"):  # not a hyperparameter (CAT-RS's pre-pass results)
                continue
            value = getattr(self, field.name)
            if field.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise TypeError(f"Expected `{field.name}` of {self.name} to be an integer, got {value!r}")
                object.__setattr__(self, field.name, int(value))
            else:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(f"Expected `{field.name}` of {self.name} to be a number, got {value!r}")
                object.__setattr__(self, field.name, float(value))
            low, high = _RANGES.get(field.name, (0, math.inf))
            value = getattr(self, field.name)
            if not (low <= value <= high) or not math.isfinite(value):
                raise ValueError(f"Expected `{field.name}` of {self.name} in [{low}, {high}] and finite, got {value!r}")


# Ranges of the hyperparameters (inclusive); any other field is a finite number >= 0.
_RANGES = {"copies": (1, 2**20), "steps": (1, 10**4), "warmup_epochs": (0, 10**6), "deferred_fraction": (0, 1),
           "mix_step": (0, 10**4), "beta": (1e-12, math.inf), "gamma": (1e-12, math.inf),
           "prepass_sigma": (1e-12, math.inf), "prepass_n": (1, 2**31 - 1)}


def mean_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The smoothed soft classifier's estimate: softmax over K averaged over the m copies.

    Args: logits: [B, m, K]. Returns: [B, K].
    """
    return F.softmax(logits, dim=2).mean(1)


def _cross_entropy_of_copies(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The mean cross-entropy over the B x m copies, each labelled with its input's label.
    return F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(logits.shape[1]))


@dataclasses.dataclass(frozen=True)
class Gaussian(Method):
    """Noise augmentation (Cohen et al. 2019): the cross-entropy of noisy copies. With one copy
    (the default) ``train_model`` draws it from torch's generator, as the bundled checkpoint was
    trained; with ``copies`` > 1, the mean CE of m copies from the engine's kernels."""

    name: ClassVar[str] = "gaussian"
    copies: int = 1

    @property
    def plain(self) -> bool:
        return self.copies == 1

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = batch.logits(batch.x)
        return _cross_entropy_of_copies(logits, batch.y), logits


def consistency_loss(logits: torch.Tensor, y: torch.Tensor, lam: float, eta: float) -> torch.Tensor:
    """Consistency regularization (Jeong & Shin, NeurIPS 2020, eq. (8)).

    mean over inputs of: mean_j CE(copy j, y) + lam * mean_j KL(p_bar || p_j) + eta * H(p_bar),
    p_j the softmax of copy j, p_bar their mean (not detached, as the authors' code).

    Args: logits: [B, m, K]. y: [B]. lam, eta: the weights.
    Returns: a scalar tensor.
    """
    log_p = F.log_softmax(logits, dim=2)
    p_bar = log_p.exp().mean(1, keepdim=True)
    # KL(p_bar || p_j) = sum_k p_bar (log p_bar - log p_j), as F.kl_div(log p_j, p_bar) sums it.
    kl = F.kl_div(log_p, p_bar.expand_as(log_p), reduction="none").sum(2).mean(1)
    entropy = -(p_bar.squeeze(1) * torch.log(p_bar.squeeze(1).clamp(min=1e-20))).sum(1)
    return _cross_entropy_of_copies(logits, y) + lam * kl.mean() + eta * entropy.mean()


@dataclasses.dataclass(frozen=True)
class Consistency(Method):
    """Consistency regularization: :func:`consistency_loss` on the m copies of each input."""

    name: ClassVar[str] = "consistency"
    copies: int = 2
    lam: float = 10.0
    eta: float = 0.5

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = batch.logits(batch.x)
        return consistency_loss(logits, batch.y, self.lam, self.eta), logits


def macer_loss(logits: torch.Tensor, y: torch.Tensor, sigma: float, lam: float, beta: float,
               gamma: float) -> torch.Tensor:
    """MACER (Zhai et al., ICLR 2020, Algorithm 1): classification plus robustness loss.

    CE of the mean softmax (log of p_bar + 1e-10) plus ``lam * sigma / 2 * max(0, gamma - xi)``
    with ``xi = PhiInv(q_A) - PhiInv(q_B)``, the soft radius's gap between the top two classes of
    the mean softmax of ``beta x logits``, counted only for inputs whose top class is y and whose
    ``xi`` lies in [0, gamma] (outside it the hinge is 0, and so is its gradient); summed over
    inputs and divided by B, as the authors' code.

    Args: logits: [B, k, K]. y: [B]. sigma, lam, beta, gamma: the paper's.
    Returns: a scalar tensor.
    """
    batch = logits.shape[0]
    classification = F.nll_loss(torch.log(mean_softmax(logits) + 1e-10), y, reduction="sum")
    top_two, top_class = mean_softmax(beta * logits).topk(2, dim=1)
    correct = top_class[:, 0] == y
    normal = torch.distributions.Normal(0.0, 1.0)
    top_two = top_two[correct]
    with torch.no_grad():  # which inputs the hinge counts; PhiInv(1) = inf must not reach the gradient
        gap = normal.icdf(top_two[:, 0]) - normal.icdf(top_two[:, 1])
        inside = torch.isfinite(gap) & (gap <= gamma)
    top_two = top_two[inside]
    robustness = (gamma - (normal.icdf(top_two[:, 0]) - normal.icdf(top_two[:, 1]))).sum() * sigma / 2
    return (classification + lam * robustness) / batch


@dataclasses.dataclass(frozen=True)
class Macer(Method):
    """MACER; ``deferred_fraction``: the share of the epochs trained on the classification loss
    alone before the robustness term joins (the published runs: until the first learning-rate drop)."""

    name: ClassVar[str] = "macer"
    copies: int = 16
    lam: float = 12.0
    beta: float = 16.0
    gamma: float = 8.0
    deferred_fraction: float = 0.0

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = batch.logits(batch.x)
        # The first ceil(fraction x epochs) epochs, the float product's rounding aside (51/150 x 150).
        deferred = math.ceil(self.deferred_fraction * batch.epochs - 1e-9)
        lam = 0.0 if batch.epoch < deferred else self.lam
        return macer_loss(logits, batch.y, batch.sigma, lam, self.beta, self.gamma), logits


class _Frozen:
    """Eval mode and no parameter gradients while an attack runs; restored after."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.training = self.model.training
        self.flags = [p.requires_grad for p in self.model.parameters()]
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def __exit__(self, *exc):
        self.model.train(self.training)
        for p, flag in zip(self.model.parameters(), self.flags):
            p.requires_grad_(flag)


def _smoothed_cross_entropy(batch: Batch, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    # -log of the mean softmax's true-class probability, clamped at 1e-20 (SmoothAdv's attack loss).
    return F.nll_loss(torch.log(mean_softmax(batch.logits(x)).clamp(min=1e-20)), batch.y, reduction=reduction)


def _row_norms(t: torch.Tensor) -> torch.Tensor:
    # Each input's l2 norm, [B, 1, ...]: broadcastable against t [B, ...].
    return t.flatten(1).norm(dim=1).view(-1, *(1,) * (t.ndim - 1))


def _unit(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Per-input l2 normalization; returns (unit directions, norms [B]).
    norms = _row_norms(grad)
    return grad / norms.clamp(min=1e-30), norms.flatten()


def smoothed_l2_attack(batch: Batch, epsilon: float, steps: int) -> torch.Tensor:
    """SmoothAdv's attack (Salman et al., NeurIPS 2019, "PGD with m noise samples"): ``steps`` of
    l2 PGD from x on the smoothed soft classifier's loss, -log mean_j softmax(x' + noise_j)_y,
    with the batch's m noise copies fixed; step 2 epsilon / steps along the normalized gradient
    (a standard normal vector where the gradient is 0, as the authors' code), then x' clamped
    to [0, 1] and projected into the l2 ball of radius epsilon around x. Model in eval mode,
    parameters frozen.

    Returns: x' [B, *shape], detached, ||x' - x||_2 <= epsilon per input.
    """
    x = batch.x.detach()
    if epsilon == 0:
        return x
    delta = torch.zeros_like(x)
    step = 2 * epsilon / steps
    with _Frozen(batch.model):
        for _ in range(steps):
            delta.requires_grad_(True)
            grad, = torch.autograd.grad(_smoothed_cross_entropy(batch, x + delta), delta)
            direction, norms = _unit(grad)
            flat = norms == 0
            if bool(flat.any()):  # as the authors' code: a standard normal step, not normalized
                direction[flat] = torch.randn_like(grad[flat])
            delta = ((x + delta.detach() + step * direction).clamp(0, 1) - x)
            delta = delta.renorm(p=2, dim=0, maxnorm=epsilon)
    return (x + delta).detach()


@dataclasses.dataclass(frozen=True)
class SmoothAdv(Method):
    """SmoothAdv: cross-entropy of the m copies at the attacked input; epsilon grows linearly
    to its value over the first ``warmup_epochs`` epochs (epoch e uses min(1, (e + 1) / warmup))."""

    name: ClassVar[str] = "smoothadv"
    copies: int = 4
    epsilon: float = 1.0
    steps: int = 10
    warmup_epochs: int = 10

    def epsilon_at(self, epoch: int) -> float:
        if self.warmup_epochs == 0:
            return self.epsilon
        return min(self.epsilon, (epoch + 1) * self.epsilon / self.warmup_epochs)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        attacked = smoothed_l2_attack(batch, self.epsilon_at(batch.epoch), self.steps)
        logits = batch.logits(attacked)
        return _cross_entropy_of_copies(logits, batch.y), logits


def _renorm(delta: torch.Tensor, maxnorm: float) -> torch.Tensor:
    # Each input's l2 norm capped at maxnorm (torch.renorm over dim 0).
    return delta.renorm(p=2, dim=0, maxnorm=maxnorm)


def smoothmix_walk(batch: Batch, alpha: float, steps: int, mix_step: int,
                   mix_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SmoothMix's adversarial walk (Jeong et al., NeurIPS 2021, the authors' SmoothMix_PGD).

    ``steps`` steps of length ``alpha`` from x along the normalized gradient (+1e-8) of the
    smoothed soft classifier's summed loss -log mean_j softmax(x' + noise_j)_y, each clamped to
    [0, 1], with no ball around x (so ||x' - x|| <= steps * alpha). The walk's point after
    ``mix_step`` steps is the mix's other end, projected into the l2 ball of ``mix_radius``
    around x and clamped to [0, 1]. Model in eval mode, parameters frozen.

    Returns: (the mix's clean end [B, *shape], the walk's end [B, *shape]), detached.
    """
    x = batch.x.detach()
    adversary, start = x, x
    with _Frozen(batch.model):
        for i in range(steps):
            if i == mix_step:
                start = adversary
            adversary = adversary.detach().requires_grad_(True)
            grad, = torch.autograd.grad(_smoothed_cross_entropy(batch, adversary, reduction="sum"), adversary)
            adversary = (adversary + alpha * grad / (_row_norms(grad) + 1e-8)).clamp(0, 1).detach()
    start = (x + _renorm(start - x, mix_radius)).clamp(0, 1) if mix_radius > 0 else x
    return start.detach(), adversary


@dataclasses.dataclass(frozen=True)
class SmoothMix(Method):
    """SmoothMix: CE of the m copies of x, plus ``eta`` times the KL from the mixed target to the
    copies of a mix of the walk's two ends, on inputs the smoothed soft classifier gets right.

    The mix is (1 - l) start + l end with l ~ U(0, 1/2) per input, its target (1 - l) p_bar +
    l (uniform), p_bar the mean softmax of the clean copies (not detached, as the authors');
    ``eta`` and the clean end's radius ``alpha * mix_step`` grow to their values over the first
    ``warmup_epochs`` epochs.
    """

    name: ClassVar[str] = "smoothmix"
    copies: int = 2
    steps: int = 4
    alpha: float = 1.0
    eta: float = 5.0
    mix_step: int = 1
    warmup_epochs: int = 10

    def __post_init__(self):
        super().__post_init__()
        if self.mix_step >= self.steps:  # the walk's start is set inside its loop (the authors' code)
            raise ValueError(f"Expected `mix_step` of smoothmix < steps = {self.steps}, got {self.mix_step}")

    def warmup(self, epoch: int) -> float:
        """The share of eta and of the clean end's radius at ``epoch`` (0-based)."""
        return 1.0 if self.warmup_epochs == 0 else min(1.0, (epoch + 1) / self.warmup_epochs)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        warmup = self.warmup(batch.epoch)
        start, end = smoothmix_walk(batch, self.alpha, self.steps, self.mix_step, warmup * self.alpha * self.mix_step)
        logits = batch.logits(batch.x)
        mix = torch.rand(len(batch.x), device=batch.x.device) / 2
        mixed_logits = batch.logits(torch.lerp(start, end, mix.view(-1, *(1,) * (start.ndim - 1))))
        return smoothmix_loss(logits, mixed_logits, batch.y, mix, self.eta * warmup), logits


def smoothmix_loss(logits: torch.Tensor, mixed_logits: torch.Tensor, y: torch.Tensor, mix: torch.Tensor,
                   eta: float) -> torch.Tensor:
    """SmoothMix's loss (Jeong et al., NeurIPS 2021, the authors' train.py).

    mean CE of the copies + eta * mean over inputs and copies of 1[argmax p_bar = y] *
    KL(t || softmax(mixed copy j)), t = (1 - mix) p_bar + mix / K, p_bar the copies' mean softmax.

    Args: logits: [B, m, K] of the clean copies. mixed_logits: [B, m, K] of the mix's copies.
        y: [B]. mix: [B] the mixing weights, in [0, 1/2). eta: the weight (its warm-up applied).
    Returns: a scalar tensor.
    """
    p_bar = mean_softmax(logits)
    target = (1 - mix)[:, None] * p_bar + mix[:, None] / p_bar.shape[1]
    log_q = F.log_softmax(mixed_logits, dim=2)
    kl = F.kl_div(log_q, target[:, None].expand_as(log_q), reduction="none").sum(2)  # [B, m]
    correct = (p_bar.argmax(1) == y).float()[:, None]
    return _cross_entropy_of_copies(logits, y) + eta * (correct * kl).mean()


def kl_noise_attack(batch: Batch, confidences: torch.Tensor, epsilon: float, steps: int) -> torch.Tensor:
    """CAT-RS's attack on the noise (Jeong, Kim & Shin, AAAI 2023, the authors' KL_PGD).

    Each noisy copy's noise moves ``steps`` steps of 2 epsilon / steps along the normalized
    gradient (+1e-8) of the summed KL(p_hat || softmax(x + noise_j)) / m, p_hat the input's
    pre-pass confidences; after each step the move is projected into the l2 ball of ``epsilon``
    around the copy's own noise, then the noise is recentred and rescaled as the authors' code
    does, (noise - mean) / rms * rms0 + mean0 (rms: the uncentred root mean square): it keeps
    its mean exactly and its level where its mean is small against it, as for a Gaussian copy
    of many elements; the rescaling can move the noise outside the ball of ``epsilon``, as in the
    authors' code. No clamp to [0, 1]. Model in eval mode, frozen.

    Args: confidences: [B, K] p_hat. Returns: the attacked noise [B, m, *shape], detached.
    """
    batch_size, copies = batch.noise.shape[:2]
    start = batch.noise.detach().flatten(0, 1)  # [B m, *shape]
    rows = start.flatten(1)
    mean0, rms0 = rows.mean(1), rows.square().mean(1).sqrt()
    shape = (-1, *(1,) * (start.ndim - 1))
    inputs = batch.x.detach().repeat_interleave(copies, dim=0)
    target = confidences.repeat_interleave(copies, dim=0)
    noise, step = start, 2 * epsilon / steps
    with _Frozen(batch.model):
        for _ in range(steps):
            noise = noise.detach().requires_grad_(True)
            log_q = F.log_softmax(batch.classify(inputs + noise), dim=1)
            grad, = torch.autograd.grad(F.kl_div(log_q, target, reduction="sum") / copies, noise)
            noise = noise + step * grad / (_row_norms(grad) + 1e-8)
            noise = start + _renorm(noise - start, epsilon)
            flat = noise.flatten(1)
            mean, rms = flat.mean(1).view(shape), flat.square().mean(1).sqrt().view(shape)
            noise = ((noise - mean) / rms * rms0.view(shape) + mean0.view(shape)).detach()
    return noise.view_as(batch.noise)


@dataclasses.dataclass(frozen=True)
class CatRS(Method):
    """CAT-RS: confidence-aware training. Per input, K ~ Binomial(m, w) (at least 1), w the share
    of its m clean noisy copies the model classifies right; the loss is the sum of the K
    smallest cross-entropies over m, plus, where K = m, ``lam`` times the largest
    KL(p_hat || copy) over copies whose noise ``kl_noise_attack`` moved. p_hat: the pre-pass,
    the smoothed hard-vote frequencies of every training input under a Gaussian-trained model
    at ``prepass_sigma`` with ``prepass_n`` samples (``catrs_confidences``, the engine's job),
    given as ``confidences`` [N, K].
    """

    name: ClassVar[str] = "catrs"
    copies: int = 4
    lam: float = 1.0
    epsilon: float = 1.0
    steps: int = 4
    prepass_sigma: float = 0.25
    prepass_n: int = 10_000
    confidences: torch.Tensor | None = dataclasses.field(default=None, repr=False, compare=False,
                                                         metadata={"data": True})

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.confidences is None:
            raise ValueError("CAT-RS needs its pre-pass: CatRS(..., confidences=catrs_confidences(...))")
        p_hat = self.confidences[batch.index.cpu()].to(batch.x.device)  # [B, K]: this batch's rows only
        logits = batch.logits(batch.x)  # [B, m, K], with gradients
        copies = logits.shape[1]
        share = (logits.detach().argmax(2) == batch.y[:, None]).float().mean(1)
        accepted = torch.binomial(torch.full_like(share, copies), share).long().clamp(min=1)
        attacked = Batch(batch.x, batch.y, kl_noise_attack(batch, p_hat, self.epsilon, self.steps), batch.classify,
                         batch.model, batch.epoch, batch.epochs, batch.sigma, batch.index)
        return catrs_loss(logits, attacked.logits(batch.x), batch.y, p_hat, accepted, self.lam), logits


def catrs_loss(logits: torch.Tensor, attacked_logits: torch.Tensor, y: torch.Tensor, p_hat: torch.Tensor,
               accepted: torch.Tensor, lam: float) -> torch.Tensor:
    """CAT-RS's loss (Jeong, Kim & Shin, AAAI 2023, the authors' train_catrs.py).

    mean over inputs of: (the K smallest of the m copies' CEs, summed) / m + lam * 1[K = m] *
    max_j KL(p_hat || softmax(attacked copy j)).

    Args: logits: [B, m, K] of the clean copies. attacked_logits: [B, m, K] of the copies whose
        noise the attack moved. y: [B]. p_hat: [B, K] the pre-pass's frequencies. accepted: [B]
        the K of each input, in [1, m]. lam: the weight.
    Returns: a scalar tensor.
    """
    copies = logits.shape[1]
    ce = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(copies),
                         reduction="none").view(-1, copies).sort(dim=1).values
    keep = torch.arange(copies, device=ce.device)[None] < accepted[:, None]
    low = (ce * keep).mean(1)  # the K smallest over m, not over K (the authors' code)
    log_q = F.log_softmax(attacked_logits, dim=2)
    kl = F.kl_div(log_q, p_hat[:, None].expand_as(log_q), reduction="none").sum(2).max(1).values
    return (low + lam * kl * (accepted == copies)).mean()


def catrs_confidences(model: nn.Module, dataset, num_classes: int, *, sigma: float, n: int, mean=None, std=None,
                      seed: int = 0, device="cpu", backend: str = "auto", batch_size: int | None = None,
                      log: Callable[[str], None] | None = None) -> torch.Tensor:
    """CAT-RS's pre-pass through the certification engine: vote frequencies [N, K] (float32).

    Row i is counts / n of training input i's n noisy copies under ``model`` (a classifier
    trained with Gaussian noise at ``sigma``, as the paper's), drawn as a smoothed prediction of
    stream i (phase PHASE_PREDICTION, ``seed``): the same votes ``Smooth.sample_counts`` gives.
    """
    from .smooth import Smooth
    from .kernels.contract import PHASE_PREDICTION

    smooth = Smooth(model, num_classes, sigma, mean=mean, std=std, seed=seed, backend=backend, device=device)
    rows, chunk = [], 256
    for first in range(0, len(dataset), chunk):
        xs = torch.stack([dataset[i][0] for i in range(first, min(first + chunk, len(dataset)))])
        counts = smooth.sample_counts(xs, n, PHASE_PREDICTION, batch_size=batch_size,
                                      streams=list(range(first, first + len(xs))))
        rows.append(torch.from_numpy(counts).float() / n)
        if log is not None:
            log(f"CAT-RS pre-pass: {first + len(xs)}/{len(dataset)} inputs")
    return torch.cat(rows)


METHODS = {method.name: method for method in (Gaussian, Consistency, Macer, SmoothAdv, SmoothMix, CatRS)}
PUBLISHED_SIGMAS = (0.25, 0.5, 1.0)

# The published hyperparameters: (method, "mnist" | "cifar10") -> (values shared by every sigma,
# {sigma: values at that sigma}, source). Epsilons the scripts give in 1/256 units are written as
# the paper's (255/256 -> 1.0). The papers' batching (each loader batch split into m SGD steps of
# B/m inputs) is not copied: here each SGD step sees ``batch_size`` inputs x m copies.
DEFAULTS = {
    ("gaussian", "mnist"): ({}, {}, "Cohen et al. 2019"),
    ("gaussian", "cifar10"): ({}, {}, "Cohen et al. 2019"),
    ("consistency", "mnist"): (dict(copies=2, eta=0.5), {0.25: dict(lam=10.0), 0.5: dict(lam=5.0), 1.0: dict(lam=5.0)},
                               "jh-jeong/smoothing-consistency EXPERIMENTS.MD (MNIST, LeNet)"),
    ("consistency", "cifar10"): (dict(copies=2, eta=0.5),
                                 {0.25: dict(lam=20.0), 0.5: dict(lam=10.0), 1.0: dict(lam=10.0)},
                                 "alinlab/smoothing-catrs EXPERIMENTS.MD (CIFAR-10, ResNet-110)"),
    # The MNIST runs defer the robustness term at every sigma (--deferred: lam = 0 until the first
    # learning-rate drop, 31 of 90 epochs); CIFAR-10's only at sigma = 1.0.
    ("macer", "mnist"): (dict(copies=16, beta=16.0, gamma=8.0, deferred_fraction=31 / 90),
                         {0.25: dict(lam=16.0), 0.5: dict(lam=16.0), 1.0: dict(lam=6.0)},
                         "jh-jeong/smoothing-consistency EXPERIMENTS.MD, train_macer.py (MNIST)"),
    ("macer", "cifar10"): (dict(copies=16, beta=16.0, gamma=8.0),
                           {0.25: dict(lam=12.0), 0.5: dict(lam=6.0), 1.0: dict(lam=12.0, deferred_fraction=51 / 150)},
                           "alinlab/smoothing-catrs EXPERIMENTS.MD (CIFAR-10); RuntianZ/macer"),
    ("smoothadv", "mnist"): (dict(copies=4, epsilon=1.0, steps=10, warmup_epochs=10), {},
                             "jh-jeong/smoothing-consistency EXPERIMENTS.MD (SmoothAdv on MNIST, epsilon 255/256)"),
    ("smoothadv", "cifar10"): (dict(steps=10, warmup_epochs=10),
                               {0.25: dict(copies=4, epsilon=1.0), 0.5: dict(copies=8, epsilon=1.0),
                                1.0: dict(copies=2, epsilon=2.0)},
                               "alinlab/smoothing-catrs EXPERIMENTS.MD (SmoothAdv on CIFAR-10)"),
    ("smoothmix", "mnist"): (dict(copies=4, alpha=1.0, eta=5.0, warmup_epochs=10),
                             {0.25: dict(steps=2, mix_step=0), 0.5: dict(steps=4, mix_step=1),
                              1.0: dict(steps=8, mix_step=1)},
                             "jh-jeong/smoothmix EXPERIMENTS.MD (MNIST; eta = 5 rows)"),
    ("smoothmix", "cifar10"): (dict(copies=2, steps=4, eta=5.0, warmup_epochs=10),
                               {0.25: dict(alpha=0.5, mix_step=0), 0.5: dict(alpha=1.0, mix_step=1),
                                1.0: dict(alpha=2.0, mix_step=1)},
                               "jh-jeong/smoothmix EXPERIMENTS.MD, alinlab/smoothing-catrs (CIFAR-10)"),
    # MNIST's CAT-RS runs are published at sigma = 0.25 only; at 0.5 and 1.0 CIFAR-10's lam.
    ("catrs", "mnist"): (dict(copies=4, epsilon=1.0, steps=4, prepass_sigma=0.25, prepass_n=10_000),
                         {0.25: dict(lam=1.0), 0.5: dict(lam=1.0), 1.0: dict(lam=2.0)},
                         "alinlab/smoothing-catrs certify paths (MNIST, sigma 0.25); CIFAR-10's lam above"),
    ("catrs", "cifar10"): (dict(copies=4, epsilon=1.0, steps=4, prepass_sigma=0.25, prepass_n=10_000),
                           {0.25: dict(lam=0.5), 0.5: dict(lam=1.0), 1.0: dict(lam=2.0)},
                           "alinlab/smoothing-catrs EXPERIMENTS.MD (CIFAR-10)"),
}


def published_defaults(name: str, dataset: str | None, sigma: float) -> tuple[dict, float, str]:
    """(hyperparameters, the published sigma they are for, their source) of method ``name`` on
    ``dataset`` ("mnist"; anything else takes CIFAR-10's) at the published sigma nearest ``sigma``."""
    if name not in METHODS:
        raise ValueError(f"Expected a training method among {', '.join(METHODS)}, got {name!r}")
    shared, per_sigma, source = DEFAULTS[name, "mnist" if dataset == "mnist" else "cifar10"]
    nearest = min(PUBLISHED_SIGMAS, key=lambda published: abs(math.log(published / sigma)) if sigma > 0 else published)
    return {**shared, **per_sigma.get(nearest, {})}, nearest, source


def method_named(name: str, dataset: str | None, sigma: float, **overrides) -> Method:
    """The method ``name`` with its published defaults for ``dataset`` at the published sigma
    nearest ``sigma`` (0.25, 0.5, 1.0, on a log scale), then ``overrides``, each checked.

    Raises:
        ValueError: an unknown method or hyperparameter, or a value out of range.
        TypeError: a value of the wrong type.
    """
    values, _, _ = published_defaults(name, dataset, sigma)
    cls = METHODS[name]
    known = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("data")]
    for key in overrides:
        if key not in known:
            raise ValueError(f"Expected a hyperparameter of {name} ({', '.join(known) or 'none'}), got {key!r}")
    return cls(**{**values, **overrides})


def method_of_record(extra) -> Method | None:
    """The method a checkpoint's ``extra`` records (``train_model``'s record), None if none."""
    if not isinstance(extra, dict) or extra.get("method") not in METHODS:
        return None
    cls, values = METHODS[extra["method"]], extra.get("hyperparameters", {})
    known = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("data")}
    if not isinstance(values, dict) or set(values) - known:
        raise ValueError(f"Expected the recorded hyperparameters of {cls.name} among {', '.join(sorted(known))}, got "
                         f"{values!r}")
    return cls(**values)
