"""The questions asked of a smoothed classifier's votes, in the spirit of torchmetrics' task classes.

Each question owns its sampling plan, its decision, its results-file row, its run-record keys,
the largest radius it can give and its summary's title; every one answers with an :class:`Answer`.

- :class:`Certify`: the paper's CERTIFY (one-sided: ``pB = 1 - pA``).
- :class:`TwoSided`: CERTIFY with the runner-up bounded from above too (Theorem 1's full radius).
- :class:`TopK`: Jia et al.'s top-k certificate (Gaussian noise): k labels, a radius for each.
- :class:`Predict`: the paper's PREDICT (a class or an abstention, no radius).
- :class:`AdaptiveRadius` / :class:`AdaptiveTolerance`: CERTIFY with ``n`` as a budget, stopping
  each input once an anytime-valid bound answers "certified at r?" / "within t of the budget's
  radius?" (rsengine.sequential, rsengine.refill).

Example:
    >>> import torch
    >>> from rsengine import Smooth
    >>> from rsengine.questions import Certify, TopK
    >>> smooth = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, 0.25)
    >>> answer = smooth.answer(Certify(n0=100, n=1000, alpha=0.001), torch.rand(5, 4))
    >>> answer.prediction.shape, answer.radius.dtype, answer.samples.tolist()
    ((5,), dtype('float64'), [1100, 1100, 1100, 1100, 1100])
    >>> smooth.answer(TopK(k=2, n0=100, n=1000, alpha=0.001), torch.rand(5, 4)).prediction.shape
    (5, 2)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

import numpy as np

from . import certificates, sequential, stats
from .kernels.contract import PHASE_ESTIMATION, PHASE_PREDICTION, PHASE_SELECTION
from .refill import certify_adaptive
from .sequential import Schedule
from .validation import check_int_at_least, check_non_negative_float, check_positive_float, check_positive_int, \
    check_probability

__all__ = ["ADAPTIVE_CHUNK_SAMPLES", "AdaptiveRadius", "AdaptiveTolerance", "Answer", "Certify", "MAX_SAMPLES",
           "Predict", "Question", "TopK", "TwoSided", "check_samples", "question_type_of_record"]

MAX_SAMPLES = 2**31 - 1  # device vote counts are int32
# An adaptive data-set run plans its chunks as if each input used N0 + this many estimation samples
# (at most N): the order of what one uses on the embedded default (bench/README.md), so that a chunk
# keeps its refilled batches full for many batches before its last inputs run alone.
ADAPTIVE_CHUNK_SAMPLES = 1000


def check_samples(name: str, value) -> int:
    """A sample count: an integer in [1, 2**31 - 1] (int32 vote counts)."""
    value = check_positive_int(name, value)
    if value > MAX_SAMPLES:
        raise ValueError(f"Expected `{name}` <= {MAX_SAMPLES} (int32 vote counts), got {value}")
    return value


@dataclass(frozen=True)
class Answer:
    """What a question answers for M inputs.

    Attributes:
        prediction: int64 [M] classes, ABSTAIN (-1) where abstaining; a top-k answer's labels [M, k].
        radius: float64 [M] radii in the noise's norm (0.0 where abstaining); [M, k] for top-k
            (each label's own); None for :class:`Predict`.
        samples: int64 [M] noisy samples each input used (selection and estimation).
    """

    prediction: np.ndarray
    radius: Optional[np.ndarray]
    samples: np.ndarray


class Question:
    """A question asked of the votes of M inputs (subclasses are frozen dataclasses).

    Attributes:
        kind: the results file's kind, "certify" or "predict".
        feature: its name in rsengine.support's table (None: refused with nothing).
        samples_column: whether its results rows carry the samples an input used.
        abstention_unavailable: why its rows' ``predict == -1`` is not the abstention rate
            (None: it is).
        pa_lower_unavailable: why pA's lower bound cannot be read back from its radii with
            ``Noise.pa_lower`` (None: each certified row's radius is the noise's one-sided radius
            of that bound alone).
    """

    kind: ClassVar[str] = "certify"
    feature: ClassVar[Optional[str]] = None
    samples_column: ClassVar[bool] = False
    abstention_unavailable: ClassVar[Optional[str]] = None
    pa_lower_unavailable: ClassVar[Optional[str]] = None

    def ask(self, smooth, xs, streams, batch_size: int | None) -> Answer:
        """The answer for prepared inputs (``Smooth._prepare``); use ``Smooth.answer``."""
        raise NotImplementedError

    @property
    def samples_per_input(self) -> int:
        """The samples a data-set run plans for per input (its chunks hold about 16 batches)."""
        return self.n0 + self.n

    def row(self, answer: Answer, j: int, label: int) -> tuple:
        """Input j's results-file fields after ``idx``, ``label`` (``time`` is the run's)."""
        p = int(answer.prediction[j])
        return p, float(answer.radius[j]), int(p == label)

    def record(self) -> dict:
        """The run-record keys of this question (beside the noise's and the run's)."""
        return dict(N=self.n, alpha=self.alpha, N0=self.n0)

    def largest_radius(self, noise, num_classes: int) -> float:
        """The radius of n votes of n: no certificate of this question can exceed it."""
        return float(noise.certify([0], [self.n], self.n, self.alpha)[1][0])

    def title(self, noise) -> str:
        """What the summary's table counts."""
        return "certified accuracy (fraction of inputs certified correct"

    def _votes(self, smooth, xs, streams, n: int, phase: int, batch_size) -> np.ndarray:
        return smooth._sampler.counts(xs, streams, n, phase, batch_size)

    def _samples(self, count: int, n: int) -> np.ndarray:
        return np.full(count, n, dtype=np.int64)


@dataclass(frozen=True)
class Certify(Question):
    """CERTIFY: n0 selection samples guess the class, n estimation samples bound its probability at
    level alpha (one-sided), and the noise turns the bound into a radius."""

    n0: int
    n: int
    alpha: float

    def __post_init__(self):
        check_samples("n0", self.n0)
        check_samples("n", self.n)
        check_probability("alpha", self.alpha)

    def _guess_and_counts(self, smooth, xs, streams, batch_size):
        guess = self._votes(smooth, xs, streams, self.n0, PHASE_SELECTION, batch_size).argmax(axis=1)
        return guess, self._votes(smooth, xs, streams, self.n, PHASE_ESTIMATION, batch_size)

    def ask(self, smooth, xs, streams, batch_size=None) -> Answer:
        guess, counts = self._guess_and_counts(smooth, xs, streams, batch_size)
        pred, radius = smooth.noise.certify(guess, counts[np.arange(len(guess)), guess], self.n, self.alpha)
        return Answer(pred, radius, self._samples(len(guess), self.n0 + self.n))


@dataclass(frozen=True)
class TwoSided(Certify):
    """CERTIFY bounding pA from below and the runner-up's pB from above, alpha/2 each
    (rsengine.certificates.certify_two_sided): larger radii where many classes share the rest."""

    feature: ClassVar[str] = "two_sided"
    pa_lower_unavailable: ClassVar[str] = "two-sided radii depend on the runner-up's upper bound pB too"

    def ask(self, smooth, xs, streams, batch_size=None) -> Answer:
        guess, counts = self._guess_and_counts(smooth, xs, streams, batch_size)
        pred, radius = smooth.noise.certify_two_sided(guess, counts, self.n, self.alpha)
        return Answer(pred, radius, self._samples(len(guess), self.n0 + self.n))

    def record(self) -> dict:
        return {**super().record(), "two_sided": True}


@dataclass(frozen=True)
class TopK(Question):
    """Top-k CERTIFY (Jia et al., ICLR 2020; float Gaussian noise): the k classes of most selection
    votes, each with the l2 radius within which it stays in the smoothed top k."""

    k: int
    n0: int
    n: int
    alpha: float
    feature: ClassVar[str] = "top_k"
    # Its rows are about the true class (:meth:`row`): -1 is also a confident wrong top k.
    abstention_unavailable: ClassVar[str] = ("a top-k file writes -1 wherever the true class is not certified among "
                                             "its labels, abstaining or not")
    pa_lower_unavailable: ClassVar[str] = "top-k radii depend on the other classes' upper bounds too"

    def __post_init__(self):
        check_int_at_least("k", self.k, 1)
        check_samples("n0", self.n0)
        check_samples("n", self.n)
        check_probability("alpha", self.alpha)

    def ask(self, smooth, xs, streams, batch_size=None) -> Answer:
        selection = self._votes(smooth, xs, streams, self.n0, PHASE_SELECTION, batch_size)
        counts = self._votes(smooth, xs, streams, self.n, PHASE_ESTIMATION, batch_size)
        labels, radii = certificates.certify_top_k(selection, counts, self.k, self.n, self.alpha,
                                                   smooth.noise.applied_sigma)
        return Answer(labels, radii, self._samples(len(labels), self.n0 + self.n))

    def row(self, answer: Answer, j: int, label: int) -> tuple:
        """The K labels, the true class's own radius and 1 where it is among them and certified,
        else -1, 0.0, 0: a row is about the true class, as Jia et al.'s certified top-k accuracy is
        (the others' radii need not be positive: a confident input's runners-up never are)."""
        labels, radii = answer.prediction[j], answer.radius[j]
        position = np.flatnonzero(labels == label)
        if not len(position) or radii[position[0]] <= 0:
            return -1, 0.0, 0
        return (tuple(map(int, labels)) if len(labels) > 1 else int(labels[0])), float(radii[position[0]]), 1

    def record(self) -> dict:
        return {**super().record(), "top_k": self.k}

    def largest_radius(self, noise, num_classes: int) -> float:
        # A top-k radius can pass the one-sided one (staying among K is easier to keep than first place).
        votes = np.zeros((1, num_classes), dtype=np.int64)
        votes[0, 0] = self.n
        return float(certificates.certify_top_k(votes, votes, self.k, self.n, self.alpha,
                                                noise.applied_sigma)[1][0, 0])

    def title(self, noise) -> str:
        return (f"certified top-{self.k} accuracy (fraction of inputs whose class is certified among the "
                f"top {self.k}")


@dataclass(frozen=True)
class Predict(Question):
    """PREDICT: the top class of n samples, or ABSTAIN unless a two-sided binomial test of the top
    two counts rejects a tie at level alpha (wrong with probability at most alpha)."""

    n: int
    alpha: float
    kind: ClassVar[str] = "predict"
    pa_lower_unavailable: ClassVar[str] = "predict files have no radii"

    def __post_init__(self):
        check_samples("n", self.n)
        check_probability("alpha", self.alpha)

    @property
    def samples_per_input(self) -> int:
        return self.n

    def ask(self, smooth, xs, streams, batch_size=None) -> Answer:
        counts = self._votes(smooth, xs, streams, self.n, PHASE_PREDICTION, batch_size)
        return Answer(stats.predict_from_counts(counts, self.alpha), None, self._samples(len(counts), self.n))

    def row(self, answer: Answer, j: int, label: int) -> tuple:
        p = int(answer.prediction[j])
        return p, int(p == label)

    def record(self) -> dict:
        return dict(N=self.n, alpha=self.alpha)


@dataclass(frozen=True)
class _Adaptive(Certify):
    """CERTIFY with n as a budget: each input stops at the first checkpoint of a geometric grid
    where an anytime-valid bound answers, with the same 1 - alpha guarantee (rsengine.sequential)."""

    feature: ClassVar[str] = "adaptive"
    samples_column: ClassVar[bool] = True

    @property
    def samples_per_input(self) -> int:
        return self.n0 + min(self.n, ADAPTIVE_CHUNK_SAMPLES)

    def ask(self, smooth, xs, streams, batch_size=None) -> Answer:
        """Raises rsengine.refill.AdaptiveInterrupted on Ctrl-C, with every certificate so far."""
        schedule = self._schedule()
        result = certify_adaptive(smooth._sampler, xs, streams, self.n0, schedule, self._decision(
            schedule, smooth.noise.applied_sigma), smooth.noise.applied_sigma, batch_size)
        return Answer(result.predictions, result.radii, result.samples)

    def row(self, answer: Answer, j: int, label: int) -> tuple:
        return (*super().row(answer, j, label), int(answer.samples[j]))

    def record(self) -> dict:
        return {**super().record(), "adaptive": dict(radius=self.goal("radius"), tolerance=self.goal("tolerance"))}

    def goal(self, name: str):
        return getattr(self, name, None)


@dataclass(frozen=True)
class AdaptiveRadius(_Adaptive):
    """Adaptive "is g robust at radius r?": the class with the radius its final bound supports
    (>= r) where certified at r, else (ABSTAIN, 0.0); radius mode spreads alpha over the grid."""

    radius: float = field(default=None)
    # -1 also where a bound above 1/2 falls short of r: neither abstentions nor pA < 1/2 alone.
    abstention_unavailable: ClassVar[str] = ("a radius-mode adaptive file writes -1 wherever the radius falls short "
                                             "of its target, abstaining or not")
    pa_lower_unavailable: ClassVar[str] = ("a radius-mode adaptive file writes -1 wherever the radius falls short of "
                                           "its target, whatever pA")

    def __post_init__(self):
        super().__post_init__()
        check_non_negative_float("radius", self.radius)

    def _schedule(self) -> Schedule:
        return Schedule.for_budget(self.n, self.alpha)

    def _decision(self, schedule: Schedule, sigma: float):
        return lambda guess, votes, n, alpha: sequential.radius_decision(guess, votes, n, alpha, sigma, self.radius,
                                                                         schedule)


@dataclass(frozen=True)
class AdaptiveTolerance(_Adaptive):
    """Adaptive within a tolerance t: stop once the budget could raise the radius by at most t
    (against a fixed run's optimistic radius at n); the radius so far."""

    tolerance: float = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        check_positive_float("tolerance", self.tolerance)

    def _schedule(self) -> Schedule:
        return Schedule.for_tolerance(self.n, self.alpha)

    def _decision(self, schedule: Schedule, sigma: float):
        return lambda guess, votes, n, alpha: sequential.tolerance_decision(
            guess, votes, n, alpha, sigma, self.tolerance, budget=self.n, budget_alpha=self.alpha)


def question_type_of_record(arguments: dict, kind: str) -> type[Question]:
    """The question a run record's arguments and its results file's ``kind`` say the run asked.

    Read from the keys each question's ``record`` writes; a record without them (none at all: a
    file of the original code) asked the paper's CERTIFY or PREDICT.

    Example:
        >>> question_type_of_record({"N": 1000, "top_k": 3}, "certify").__name__
        'TopK'
        >>> question_type_of_record({}, "predict").pa_lower_unavailable
        'predict files have no radii'
    """
    if kind == "predict":
        return Predict
    adaptive = arguments.get("adaptive")
    if isinstance(adaptive, dict):
        return AdaptiveRadius if adaptive.get("radius") is not None else AdaptiveTolerance
    if type(arguments.get("top_k")) is int:  # as rsengine.resume.recorded_top_k reads it
        return TopK
    return TwoSided if arguments.get("two_sided") is True else Certify
