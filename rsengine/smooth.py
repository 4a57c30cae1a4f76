"""The smoothed classifier: the paper's PREDICT and CERTIFY, drop-in for the original ``core.Smooth``.

g(x) = argmax_c P(f(x + e) = c), with e a noise of standard deviation sigma per coordinate
(rsengine.noises: Gaussian, Laplace, Uniform, sound mode's RoundedGaussian) added in input
(pixel) space before normalization. The native call is :meth:`Smooth.answer`, which asks a
question (rsengine.questions) of M inputs; ``certify``, ``predict``, ``certify_batch``,
``predict_batch``, ``certify_topk(_batch)`` and ``sample_counts`` are the original API, each a
short translation onto it. Which noise goes with which question: rsengine.support.

Example:
    >>> import torch
    >>> from rsengine import Smooth
    >>> from rsengine.noises import Laplace
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> smooth = Smooth(model, num_classes=3, sigma=0.25, seed=0)
    >>> label, radius = smooth.certify(torch.rand(4), n0=100, n=1000, alpha=0.001, batch_size=500)
    >>> preds, radii = smooth.certify_batch(torch.rand(5, 4), 100, 1000, 0.001, batch_size=500)
    >>> preds.shape, radii.dtype
    ((5,), dtype('float64'))
    >>> Smooth(model, num_classes=3, noise=Laplace(0.25)).norm
    'l1'
    >>> labels, radius = smooth.certify_topk(torch.rand(4), k=2, n0=100, n=1000, alpha=0.001)
    >>> len(labels)
    2
    >>> sound = Smooth(model, num_classes=3, sigma=0.25, sound=True)  # 8-bit inputs, integer noise
    >>> label, radius = sound.certify(torch.tensor([0, 64, 128, 255], dtype=torch.uint8), 100, 1000, 0.001)
"""
from __future__ import annotations

import copy
import secrets

import numpy as np
import torch

from .backends import resolve_backend
from .classifier import device_and_dtype
from .kernels.contract import PHASE_ESTIMATION, PHASES, check_noise
from .noises import Noise, check_sigma, noise_named
from .normalization import warn_if_normalized
from .questions import (AdaptiveRadius, AdaptiveTolerance, Answer, Certify, Predict, Question, TopK, TwoSided,
                        check_samples)
from .sampler import NoiseSpec, Sampler
from .stats import ABSTAIN
from .streams import Streams, check_seed
from .support import features, refuse
from .validation import (check_choice, check_flag, check_int_at_least, check_mean_std, check_not_a_data_set,
                         check_positive_int)

__all__ = ["ABSTAIN", "Smooth"]

_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class Smooth:
    """A smoothed classifier around ``base_classifier``.

    Args:
        base_classifier: maps a normalized batch [B, *shape] to logits [B, num_classes]: a tensor,
            a dict with a "logits" tensor, or an object with a ``.logits`` tensor (a Hugging Face
            ModelOutput); anything else is a TypeError (rsengine.classifier.logits_of).
        num_classes: number of classes (>= 2).
        sigma: the noise's standard deviation per coordinate in input units (> 0); the kernels
            apply the float32 nearest to it, ``noise_sigma``, and radii are computed for that.
        mean, std: optional per-channel normalization applied after the noise, in the fused
            kernel, so the noise is added in pixel space where the radius is measured: one value
            per channel, or one number (or 1-value sequence) for every channel. Inputs are then
            pixels in [0, 1]; inputs outside it (normalized already, by a Normalize in the data
            set's transform) get one rsengine.normalization.InputRangeWarning per Smooth.
        seed: 64-bit seed in [0, 2**63). None draws a secret one from the operating system
            (kept in ``seed``; use it when inputs may be chosen by someone who knows a fixed seed).
        backend: "auto", "triton" or "torch" (rsengine.backends). device: where sampling runs
            (default: the classifier's). dtype: the classifier's input dtype (default: its
            first floating parameter's). memory_format: contiguous (default) or channels_last.
        noise: "gaussian" (l2 radii), "laplace" or "uniform" (l1 radii), or a
            rsengine.noises.Noise (then ``sigma`` may be left out).
        sound: floating-point-sound mode (rsengine.noises.RoundedGaussian, docs/sound_mode.md):
            8-bit inputs, the Gaussian rounded to the 1/255 grid, radii for perturbations on it.
        deterministic: bit-reproducible logits (rsengine.sampler.count_votes): fixed batch
            shape of one input per forward pass, deterministic algorithms; no adaptive questions.

    Attributes:
        ABSTAIN: -1. noise: the rsengine.noises.Noise. norm: "l2" or "l1", the radii's norm.
    """

    ABSTAIN = ABSTAIN

    def __init__(self, base_classifier, num_classes: int, sigma: float | None = None, *, mean=None, std=None,
                 seed: int | None = 0, backend: str = "auto", device=None, dtype=None, memory_format=None,
                 noise: str | Noise = "gaussian", sound: bool = False, deterministic: bool = False):
        if not callable(base_classifier):
            raise TypeError(f"Expected `base_classifier` to be callable, got {base_classifier!r}")
        self.base_classifier = base_classifier
        self.num_classes = check_int_at_least("num_classes", num_classes, 2)
        if not isinstance(noise, Noise):  # sigma and the name first, sound mode last, as Smooth always checked
            check_sigma(sigma)
            check_noise(noise)
        self.seed_source = "random" if seed is None else "given"
        self.seed = secrets.randbits(63) if seed is None else check_seed(seed)
        model_device, model_dtype = device_and_dtype(base_classifier)
        self.device = torch.device(device) if device is not None else model_device
        self.dtype = model_dtype if dtype is None else dtype
        check_choice("dtype", self.dtype, tuple(_DTYPES))
        self.memory_format = torch.contiguous_format if memory_format is None else memory_format
        check_choice("memory_format", self.memory_format, (torch.contiguous_format, torch.channels_last))
        mean, std = check_mean_std(mean, std)
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32, device=self.device)
        self.backend = resolve_backend(backend, self.device)
        self.deterministic = check_flag("deterministic", deterministic)
        self.noise = self._noise(sigma, noise, sound)
        self._streams = Streams()
        self._sampler = self._make_sampler()
        self._warned_range = False

    @staticmethod
    def _noise(sigma, noise, sound) -> Noise:
        if not isinstance(noise, Noise):
            return noise_named(noise, sigma, sound)
        if sigma is not None and sigma != noise.sigma:
            raise ValueError(f"Expected `sigma` None or {noise.sigma} (the sigma of `noise`), got {sigma!r}")
        if check_flag("sound", sound) and not noise.sound:
            raise ValueError(f"Expected noise=RoundedGaussian(sigma) with sound=True, got noise={noise!r}")
        return noise

    def _make_sampler(self) -> Sampler:
        thresholds, support = self.noise.kernel_table(self.device)
        spec = NoiseSpec(self.noise_sigma, self.seed, self.mean, self.std, self.dtype, self.memory_format,
                         self.noise.name, thresholds, support)
        return Sampler(self.base_classifier, self.num_classes, spec, self.backend, self.deterministic)

    def with_seed(self, seed: int) -> "Smooth":
        """This smoothed classifier with another seed (fresh streams; the classifier is shared)."""
        other = copy.copy(self)
        other.seed, other.seed_source = check_seed(seed), "given"
        other._streams, other._sampler = Streams(), other._make_sampler()
        return other

    sigma = property(lambda self: self.noise.sigma, doc="The sigma asked for.")
    noise_sigma = property(lambda self: self.noise.applied_sigma, doc="The float32 sigma the noise applies.")
    norm = property(lambda self: self.noise.norm, doc='"l2" or "l1": the norm of every radius.')
    sound = property(lambda self: self.noise.sound, doc="Sound mode: radii for perturbations on the 1/255 grid.")

    def __repr__(self) -> str:
        return (f"Smooth(num_classes={self.num_classes}, sigma={self.sigma}, noise={self.noise.name!r}, "
                f"{'sound=True, ' if self.sound else ''}seed={self.seed}, "
                f"backend={self.backend.name!r}, device={str(self.device)!r}, "
                f"dtype={_DTYPES[self.dtype]})")

    # -- the native call ---------------------------------------------------------------------

    def answer(self, question: Question, xs, streams=None, batch_size: int | None = None) -> Answer:
        """Ask ``question`` of M inputs, their samples packed into shared batches.

        Args:
            question: an rsengine.questions.Question (Certify, TwoSided, TopK, Predict,
                AdaptiveRadius, AdaptiveTolerance).
            xs: [M, *shape] tensor (or a sequence of M same-shaped tensors), pixel space.
            streams: M distinct stream indices in [0, 2**32) (e.g. data set indices), making each
                answer a function of (seed, stream) alone; default: the next M fresh streams.
            batch_size: rows per forward pass; None chooses it from the free device memory (on
                the CPU from the input's size). Results do not depend on it.

        Returns:
            rsengine.questions.Answer: prediction [M] ([M, k]), radius [M] ([M, k]; None for
            Predict), samples [M].
        """
        if not isinstance(question, Question):
            raise TypeError(f"Expected `question` to be an rsengine.questions.Question, got {question!r}")
        present = features(self.noise, question.feature, self.deterministic)
        for feature in (question.feature, "sound"):
            refuse(feature, present, "api", noise=self.noise.name, sound=self.sound)
        if isinstance(question, TopK):
            self._check_k(question.k)
        batch_size = self._check_batch_size(batch_size)
        xs, stream_ids = self._prepare(xs, streams)
        return question.ask(self, xs, stream_ids, batch_size)

    # -- the original API --------------------------------------------------------------------

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int | None = None, *,
                two_sided: bool = False, adaptive: bool = False, radius: float | None = None,
                tolerance: float | None = None) -> tuple[int, float]:
        """CERTIFY one input x (no batch dimension): (class, radius in ``norm``) or (ABSTAIN, 0.0).

        n0 selection and n estimation samples, failure probability alpha. ``two_sided``: Theorem
        1's full radius (rsengine.questions.TwoSided). ``adaptive``: n is a budget, and exactly
        one of ``radius`` (AdaptiveRadius) or ``tolerance`` (AdaptiveTolerance) is asked.
        """
        preds, radii, *_ = self.certify_batch(self._as_batch(x), n0, n, alpha, batch_size, two_sided=two_sided,
                                              adaptive=adaptive, radius=radius, tolerance=tolerance)
        return int(preds[0]), float(radii[0])

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int | None = None) -> int:
        """PREDICT one input: g's class, or ABSTAIN; wrong with probability at most alpha."""
        return int(self.predict_batch(self._as_batch(x), n, alpha, batch_size)[0])

    def certify_batch(self, xs, n0: int, n: int, alpha: float, batch_size: int | None = None, streams=None, *,
                      two_sided: bool = False, adaptive: bool = False, radius: float | None = None,
                      tolerance: float | None = None):
        """CERTIFY M inputs [M, *shape] at once; arguments as in :meth:`certify` and :meth:`answer`.

        Returns:
            (predictions int64 [M], radii float64 [M]); adaptive: also samples int64 [M]. A
            KeyboardInterrupt of an adaptive call arrives as rsengine.refill.AdaptiveInterrupted.
        """
        question = Certify(n0, n, alpha)
        self._check_batch_size(batch_size)
        if check_flag("two_sided", two_sided) and not adaptive:
            question = TwoSided(n0, n, alpha)
        if check_flag("adaptive", adaptive):
            if (radius is None) == (tolerance is None):
                raise ValueError("Expected exactly one of `radius` or `tolerance` with adaptive=True")
            refuse("adaptive", features(self.noise, "adaptive", self.deterministic), "api", noise=self.noise.name)
            question = (AdaptiveRadius(n0, n, alpha, radius=radius) if radius is not None else
                        AdaptiveTolerance(n0, n, alpha, tolerance=tolerance))
            if two_sided:
                raise ValueError("Expected two_sided=False with adaptive=True: the adaptive bounds are one-sided")
        elif radius is not None or tolerance is not None:
            raise ValueError("Expected `radius`/`tolerance` only with adaptive=True")
        answer = self.answer(question, xs, streams, batch_size)
        return (answer.prediction, answer.radius, answer.samples) if adaptive else (answer.prediction, answer.radius)

    def certify_topk(self, x: torch.Tensor, k: int, n0: int, n: int, alpha: float,
                     batch_size: int | None = None) -> tuple[list[int], float]:
        """Top-k CERTIFY of one input (Jia et al.): the k labels and the smallest of their radii."""
        labels, radii = self.certify_topk_batch(self._as_batch(x), k, n0, n, alpha, batch_size)
        return labels[0].tolist(), float(radii[0].min())

    def certify_topk_batch(self, xs, k: int, n0: int, n: int, alpha: float, batch_size: int | None = None,
                           streams=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k CERTIFY of M inputs: (labels int64 [M, k], radii float64 [M, k]) (questions.TopK)."""
        refuse("top_k", features(self.noise, "top_k"), "api", noise=self.noise.name, sound=self.sound)
        self._check_k(check_int_at_least("k", k, 1))
        answer = self.answer(TopK(k, n0, n, alpha), xs, streams, batch_size)
        return answer.prediction, answer.radius

    def predict_batch(self, xs, n: int, alpha: float, batch_size: int | None = None, streams=None) -> np.ndarray:
        """PREDICT M inputs: int64 [M] classes, ABSTAIN where the top two counts are not
        significantly different."""
        return self.answer(Predict(n, alpha), xs, streams, batch_size).prediction

    def sample_counts(self, xs, n: int, phase: int = PHASE_ESTIMATION, batch_size: int | None = None,
                      streams=None) -> np.ndarray:
        """Raw vote counts [M, num_classes] (int64) of n noisy copies of each input, for custom
        statistics; ``phase`` is one of rsengine.kernels.contract.PHASES."""
        n = check_samples("n", n)
        check_choice("phase", phase, PHASES)
        batch_size = self._check_batch_size(batch_size)
        xs, stream_ids = self._prepare(xs, streams)
        return self._sampler.counts(xs, stream_ids, n, phase, batch_size)

    # -- internals ---------------------------------------------------------------------------

    def _check_k(self, k: int) -> None:
        if k >= self.num_classes:
            raise ValueError(f"Expected `k` < num_classes = {self.num_classes}, got {k}")

    @staticmethod
    def _check_batch_size(value) -> int | None:
        return None if value is None else check_positive_int("batch_size", value)

    @staticmethod
    def _as_batch(x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            check_not_a_data_set("x", x, "to be one input, a torch.Tensor")
            raise TypeError(f"Expected `x` to be a torch.Tensor, got {type(x).__name__}")
        return x.unsqueeze(0)

    def _prepare(self, xs, streams) -> tuple[torch.Tensor, torch.Tensor]:
        xs = self.noise.prepare(xs, self.device)
        if self.mean is not None:
            self._sampler.spec.normalization(xs.shape[1])  # refuses 2 values for 3 channels before any sampling
            # Sound mode's inputs are grid pixels already (to_grid refuses anything else).
            if not self.sound and not self._warned_range:
                self._warned_range = warn_if_normalized(xs)
        if self.memory_format == torch.channels_last and xs.ndim != 4:
            raise ValueError(f"Expected `x` of shape [C, H, W] for memory_format=channels_last, got "
                             f"{list(xs.shape[1:])}")
        return xs, torch.as_tensor(self._streams.take(streams, xs.shape[0]), device=self.device)
