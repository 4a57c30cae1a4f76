"""The smoothed classifier: the paper's PREDICT and CERTIFY, drop-in for the original ``core.Smooth``.

g(x) = argmax_c P(f(x + e) = c), e Gaussian N(0, sigma^2 I) (or Laplace, or uniform, with
standard deviation sigma per coordinate), added in input (pixel) space before normalization.
``certify`` returns a class and a radius (l2 for Gaussian noise, l1 for the others: ``norm``)
such that, with probability at least 1 - alpha over the sampling, g predicts that class
everywhere within the radius; ``predict`` returns g's class or abstains, being wrong with
probability at most alpha. ``certify(..., two_sided=True)`` also bounds the runner-up class
(Theorem 1's full radius); ``certify_topk`` certifies the k most likely classes (Jia et al.);
``Smooth(..., sound=True)`` certifies soundly in floating point (Voracek & Hein; rsengine.sound).

Example:
    >>> import torch
    >>> from rsengine import Smooth
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> smooth = Smooth(model, num_classes=3, sigma=0.25, seed=0)
    >>> label, radius = smooth.certify(torch.rand(4), n0=100, n=1000, alpha=0.001, batch_size=500)
    >>> preds, radii = smooth.certify_batch(torch.rand(5, 4), 100, 1000, 0.001, batch_size=500)
    >>> preds.shape, radii.dtype
    ((5,), dtype('float64'))
    >>> laplace = Smooth(model, num_classes=3, sigma=0.25, noise="laplace")
    >>> laplace.norm
    'l1'
    >>> labels, radius = smooth.certify_topk(torch.rand(4), k=2, n0=100, n=1000, alpha=0.001)
    >>> len(labels)
    2
    >>> sound = Smooth(model, num_classes=3, sigma=0.25, sound=True)  # 8-bit inputs, integer noise
    >>> label, radius = sound.certify(torch.tensor([0, 64, 128, 255], dtype=torch.uint8), 100, 1000, 0.001)
"""
from __future__ import annotations

import secrets

import numpy as np
import torch

from . import certificates, sequential, stats
from . import sound as sound_mode  # the module; `sound` is Smooth's flag
from .stats import ABSTAIN
from .backends import resolve_backend
from .kernels.contract import PHASE_ESTIMATION, PHASE_PREDICTION, PHASE_SELECTION, PHASES, check_noise
from .refill import certify_adaptive
from .sampler import NoiseSpec, Sampler, reachable_modules
from .sequential import Schedule
from .validation import (check_choice, check_int_at_least, check_mean_std, check_non_negative_float,
                         check_positive_float, check_positive_int, check_probability)

__all__ = ["ABSTAIN", "Smooth"]

_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
_MAX_STREAM = 2**32  # the stream index fills one 32-bit Philox counter word
_MAX_SAMPLES = 2**31 - 1  # device vote counts are int32


def _model_device_and_dtype(model) -> tuple[torch.device, torch.dtype]:
    tensors = [t for module in reachable_modules(model) for t in (*module.parameters(), *module.buffers())]
    floating = [t for t in tensors if t.is_floating_point()]
    device = tensors[0].device if tensors else torch.device("cpu")
    return device, (floating[0].dtype if floating else torch.float32)


class Smooth:
    """A smoothed classifier around ``base_classifier`` with noise of standard deviation ``sigma``.

    Args:
        base_classifier: maps a normalized batch [B, *shape] to logits [B, num_classes].
        num_classes: number of classes (>= 2).
        sigma: the noise's standard deviation per coordinate in input units (> 0, finite). The
            noise kernels apply the float32 nearest to it (0.12 becomes 0.11999999731779099),
            ``noise_sigma``, times the noise's scale rounded to float32 (see
            rsengine.kernels.contract.noise_scale), and radii are computed for that value, so
            they are never larger than the applied noise supports.
        mean, std: optional per-channel normalization applied after the noise, inside the fused
            kernel; pass them instead of a normalize layer in the classifier, so the noise is
            added in pixel space where the certified radius is measured.
        seed: 64-bit seed (0 <= seed < 2**63). A new Smooth with the same seed reproduces the same
            results; successive calls on one Smooth draw fresh streams. None draws a secret seed
            from the operating system (``secrets``), kept in ``self.seed``: use it when inputs
            may be chosen by someone who could know a fixed seed (see the README).
        backend: "auto", "triton" or "torch" (see rsengine.backends).
        device: where sampling runs; default: the classifier's parameters' device, else CPU.
        dtype: the classifier's input dtype (float32, bfloat16, float16); default: the dtype of
            its first floating parameter, else float32.
        memory_format: torch.contiguous_format (default) or torch.channels_last for image batches.
        noise: "gaussian" (l2 radii, the paper's), "laplace" (l1 radii, -b ln(2(1 - pA)) with
            b = sigma / sqrt(2); Teng et al. 2020) or "uniform" on [-lambda, lambda] (l1 radii,
            2 lambda (pA - 1/2) with lambda = sigma sqrt(3); Yang et al. 2020).
        sound: floating-point-sound mode (Voracek & Hein 2023; rsengine.sound, docs/sound_mode.md):
            inputs must be 8-bit images (uint8, or float32 values exactly i / 255), the noise is
            the Gaussian of ``sigma`` rounded to the 1/255 grid, drawn in integers from 64
            Philox bits per element, the classifier sees float32(i + k) / 255, and radii are
            l2 radii for perturbations on the grid, computed in high precision and rounded
            down. Gaussian noise only, sigma <= 10; no two-sided, top-k or adaptive certificates.
        deterministic: bit-reproducible logits (see ``rsengine.sampler.count_votes``): every
            forward pass has exactly ``batch_size`` rows (1000 when None, whatever the free
            memory) of a single input, deterministic algorithms, no TF32, no cuDNN autotuning,
            and no smaller batch after running out of memory. Costs the packing of small phases.

    Attributes:
        ABSTAIN: -1, the class returned when the smoothed classifier abstains.
        norm: "l2" or "l1", the norm every radius of this Smooth is measured in.
        sound: whether this Smooth is in sound mode (radii for perturbations on the 1/255 grid).
    """

    ABSTAIN = ABSTAIN

    def __init__(self, base_classifier, num_classes: int, sigma: float, *, mean=None, std=None,
                 seed: int | None = 0, backend: str = "auto", device=None, dtype=None, memory_format=None,
                 noise: str = "gaussian", sound: bool = False, deterministic: bool = False):
        if not callable(base_classifier):
            raise TypeError(f"Expected `base_classifier` to be callable, got {base_classifier!r}")
        self.base_classifier = base_classifier
        self.num_classes = check_int_at_least("num_classes", num_classes, 2)
        self.sigma = check_positive_float("sigma", sigma)
        self.noise_sigma = float(np.float32(self.sigma))
        if not 0.0 < self.noise_sigma < float("inf"):
            raise ValueError(f"Expected `sigma` within float32 range (1.4e-45 to 3.4e38), got {sigma!r}")
        self.noise = check_noise(noise)
        self.norm = certificates.NORMS[self.noise]
        self.seed = secrets.randbits(63) if seed is None else check_int_at_least("seed", seed, 0)
        if self.seed >= 2**63:
            raise ValueError(f"Expected `seed` to be an integer in [0, 2**63), got {seed!r}")
        model_device, model_dtype = _model_device_and_dtype(base_classifier)
        self.device = torch.device(device) if device is not None else model_device
        self.dtype = model_dtype if dtype is None else dtype
        check_choice("dtype", self.dtype, tuple(_DTYPES))
        self.memory_format = torch.contiguous_format if memory_format is None else memory_format
        check_choice("memory_format", self.memory_format, (torch.contiguous_format, torch.channels_last))
        mean, std = check_mean_std(mean, std)
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32, device=self.device)
        self.backend = resolve_backend(backend, self.device)
        if not isinstance(deterministic, bool):
            raise TypeError(f"Expected `deterministic` to be True or False, got {deterministic!r}")
        self.deterministic = deterministic
        self.sound = self._check_sound(sound)
        self._next_stream = 0
        self._explicit_streams: set[int] = set()  # never handed out by the default counter
        table = sound_mode.noise_table(self.noise_sigma) if self.sound else None
        spec = NoiseSpec(self.noise_sigma, self.seed, self.mean, self.std, self.dtype, self.memory_format, self.noise,
                         table.signed_thresholds(self.device) if table else None, table.support if table else 0)
        self._sampler = Sampler(base_classifier, self.num_classes, spec, self.backend, deterministic)

    def _check_sound(self, sound) -> bool:
        if not isinstance(sound, bool):
            raise TypeError(f"Expected `sound` to be True or False, got {sound!r}")
        if sound and self.noise != "gaussian":
            raise ValueError(f"Expected noise='gaussian' with sound=True (the rounded Gaussian on the grid), "
                             f"got noise={self.noise!r}")
        if sound and self.noise_sigma > sound_mode.MAX_SIGMA:
            raise ValueError(f"Expected `sigma` <= {sound_mode.MAX_SIGMA} with sound=True, got {self.sigma!r}")
        return sound

    def __repr__(self) -> str:
        return (f"Smooth(num_classes={self.num_classes}, sigma={self.sigma}, noise={self.noise!r}, "
                f"{'sound=True, ' if self.sound else ''}seed={self.seed}, "
                f"backend={self.backend.name!r}, device={str(self.device)!r}, "
                f"dtype={_DTYPES[self.dtype]})")

    # -- the paper's algorithms, one input ---------------------------------------------------

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int | None = None, *,
                two_sided: bool = False, adaptive: bool = False, radius: float | None = None,
                tolerance: float | None = None) -> tuple[int, float]:
        """CERTIFY: a class and a certified radius (in ``self.norm``) for one input, or (ABSTAIN, 0.0).

        Args:
            x: one input without batch dimension, e.g. [C, H, W], pixel space.
            n0: selection samples (guess the top class). n: estimation samples (bound its
                probability). alpha: failure probability. batch_size: rows per forward pass;
                None chooses it from the free device memory, on the CPU from the input's size
                (rsengine.sampler.cpu_batch_size: 334 MNIST rows). If the device runs out of
                memory the batch is halved until it fits and the run goes on (one
                BatchSizeReduced warning); results do not depend on the batch size.
            two_sided: bound pA from below and the runner-up's pB from above at once (alpha/2
                each, no split over the other classes: rsengine.certificates.certify_two_sided)
                and use the radius of both, larger than the one-sided radius where pB is well
                below 1 - pA (many classes share the rest), smaller (alpha/2) where it is not.

            adaptive: n becomes a budget: sampling stops at the first checkpoint where an
                anytime-valid bound answers the question asked (rsengine.sequential), with the
                same 1 - alpha guarantee. Ask exactly one of:
            radius: r >= 0, "is g robust at r?": the class if certified at r (with the radius
                the final bound supports, >= r), else (ABSTAIN, 0.0).
            tolerance: t > 0: stop once the budget could raise the radius by at most t (against
                a fixed run's optimistic radius at n); the radius so far.

        Returns:
            (class, radius); (ABSTAIN, 0.0) unless the lower bound on pA is above 1/2.
            :meth:`certify_batch` also returns the samples an adaptive certificate used.
        """
        preds, radii, *_ = self.certify_batch(self._as_batch(x), n0, n, alpha, batch_size, two_sided=two_sided,
                                              adaptive=adaptive, radius=radius, tolerance=tolerance)
        return int(preds[0]), float(radii[0])

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int | None = None) -> int:
        """PREDICT: the smoothed classifier's class for one input, or ABSTAIN.

        Args:
            x: one input without batch dimension. n: samples. alpha: the probability of
                returning a class other than g(x) is at most alpha. batch_size: rows per forward.
        """
        return int(self.predict_batch(self._as_batch(x), n, alpha, batch_size)[0])

    # -- many inputs, samples packed into shared batches -------------------------------------

    def certify_batch(self, xs, n0: int, n: int, alpha: float, batch_size: int | None = None,
                      streams=None, *, two_sided: bool = False, adaptive: bool = False,
                      radius: float | None = None, tolerance: float | None = None):
        """CERTIFY for M inputs at once, their samples packed into shared batches.

        Args:
            xs: [M, *shape] tensor (or a sequence of M same-shaped tensors), pixel space.
            n0, n, alpha, batch_size: as in :meth:`certify`.
            streams: optional M distinct stream indices in [0, 2**32) (e.g. data set indices),
                making each certificate a function of (seed, stream) alone; default: the next M
                fresh streams of this Smooth, never one passed here before.

            two_sided, adaptive, radius, tolerance: as in :meth:`certify`. The inputs' rows are
                packed into batches refilled as inputs finish (rsengine.refill) when adaptive.

        Returns:
            (predictions int64 [M], radii float64 [M]); ABSTAIN and 0.0 where abstaining.
            Adaptive: (predictions, radii, samples int64 [M]), samples being the n0 selection
            plus the estimation samples each certificate used. A KeyboardInterrupt arrives as
            rsengine.refill.AdaptiveInterrupted, whose ``result`` has every certificate so far.
        """
        n0 = self._check_samples("n0", n0)
        n = self._check_samples("n", n)
        alpha = check_probability("alpha", alpha)
        batch_size = self._check_batch_size(batch_size)
        if not isinstance(two_sided, bool):
            raise TypeError(f"Expected `two_sided` to be True or False, got {two_sided!r}")
        decide = self._adaptive_rule(adaptive, radius, tolerance, n, alpha)
        if decide is not None and two_sided:
            raise ValueError("Expected two_sided=False with adaptive=True: the adaptive bounds are one-sided")
        if self.sound and (two_sided or decide is not None):
            raise ValueError("Expected two_sided=False and adaptive=False with sound=True: sound mode's "
                             "certificate is the one-sided CERTIFY")
        xs, stream_ids = self._prepare(xs, streams)
        if decide is not None:
            schedule = (Schedule.for_budget if radius is not None else Schedule.for_tolerance)(n, alpha)
            result = certify_adaptive(self._sampler, xs, stream_ids, n0, schedule, decide(schedule),
                                      self.noise_sigma, batch_size)
            return result.predictions, result.radii, result.samples
        guess = self._counts(xs, stream_ids, n0, PHASE_SELECTION, batch_size).argmax(axis=1)
        counts = self._counts(xs, stream_ids, n, PHASE_ESTIMATION, batch_size)
        if two_sided:
            return certificates.certify_two_sided(guess, counts, n, alpha, self.noise_sigma, self.noise)
        n_a = counts[np.arange(len(guess)), guess]
        if self.sound:
            return sound_mode.certify_sound_from_counts(guess, n_a, n, alpha, self.noise_sigma)
        return certificates.certify_one_sided(guess, n_a, n, alpha, self.noise_sigma, self.noise)

    def certify_topk(self, x: torch.Tensor, k: int, n0: int, n: int, alpha: float,
                     batch_size: int | None = None) -> tuple[list[int], float]:
        """Top-k CERTIFY (Jia et al., ICLR 2020; Gaussian noise): k classes and an l2 radius.

        Args:
            x: one input without batch dimension, pixel space. k: classes to certify, in
                [1, num_classes). n0, n, alpha, batch_size: as in :meth:`certify`.

        Returns:
            (labels, radius): the k classes with the most selection votes (most first), and a
            radius within which the smoothed top k keeps the true class if it is among them,
            with probability >= 1 - alpha: the smallest of the labels' radii, 0.0 where one of
            them is not certified. :meth:`certify_topk_batch` gives each label's own radius.
        """
        labels, radii = self.certify_topk_batch(self._as_batch(x), k, n0, n, alpha, batch_size)
        return labels[0].tolist(), float(radii[0].min())

    def certify_topk_batch(self, xs, k: int, n0: int, n: int, alpha: float, batch_size: int | None = None,
                           streams=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k CERTIFY for M inputs. Arguments as in :meth:`certify_topk` and :meth:`certify_batch`.

        Returns:
            (labels int64 [M, k], radii float64 [M, k]): label j of input i stays in the
            smoothed top k within l2 radius radii[i, j] (0.0: not certified), all at once with
            probability >= 1 - alpha (rsengine.certificates.certify_top_k). The certified top-k
            accuracy at r counts inputs whose true class is a label with radius >= r.
        """
        if self.noise != "gaussian" or self.sound:
            raise ValueError(f"Expected noise='gaussian' and sound=False for top-k certificates (Jia et al.'s "
                             f"theorem is for float Gaussian noise), this Smooth has noise={self.noise!r}, "
                             f"sound={self.sound}")
        k = check_int_at_least("k", k, 1)
        if k >= self.num_classes:
            raise ValueError(f"Expected `k` < num_classes = {self.num_classes}, got {k}")
        n0 = self._check_samples("n0", n0)
        n = self._check_samples("n", n)
        alpha = check_probability("alpha", alpha)
        batch_size = self._check_batch_size(batch_size)
        xs, stream_ids = self._prepare(xs, streams)
        selection = self._counts(xs, stream_ids, n0, PHASE_SELECTION, batch_size)
        counts = self._counts(xs, stream_ids, n, PHASE_ESTIMATION, batch_size)
        return certificates.certify_top_k(selection, counts, k, n, alpha, self.noise_sigma)

    def predict_batch(self, xs, n: int, alpha: float, batch_size: int | None = None, streams=None) -> np.ndarray:
        """PREDICT for M inputs at once. Arguments as in :meth:`certify_batch`.

        Returns:
            int64 [M] classes, ABSTAIN where the top two counts are not significantly different.
        """
        n = self._check_samples("n", n)
        alpha = check_probability("alpha", alpha)
        batch_size = self._check_batch_size(batch_size)
        xs, stream_ids = self._prepare(xs, streams)
        return stats.predict_from_counts(self._counts(xs, stream_ids, n, PHASE_PREDICTION, batch_size), alpha)

    def sample_counts(self, xs, n: int, phase: int = PHASE_ESTIMATION, batch_size: int | None = None,
                      streams=None) -> np.ndarray:
        """Raw vote counts [M, num_classes] (int64) of n noisy copies of each input.

        For custom statistics; ``phase`` is one of rsengine.kernels.contract.PHASES.
        """
        n = self._check_samples("n", n)
        check_choice("phase", phase, PHASES)
        batch_size = self._check_batch_size(batch_size)
        xs, stream_ids = self._prepare(xs, streams)
        return self._counts(xs, stream_ids, n, phase, batch_size)

    # -- internals ---------------------------------------------------------------------------

    def _adaptive_rule(self, adaptive, radius, tolerance, n: int, alpha: float):
        """None for a fixed-n run; else ``schedule -> decide`` for rsengine.refill."""
        if not isinstance(adaptive, bool):
            raise TypeError(f"Expected `adaptive` to be True or False, got {adaptive!r}")
        if not adaptive:
            if radius is not None or tolerance is not None:
                raise ValueError("Expected `radius`/`tolerance` only with adaptive=True")
            return None
        if (radius is None) == (tolerance is None):
            raise ValueError("Expected exactly one of `radius` or `tolerance` with adaptive=True")
        if self.deterministic:
            raise ValueError("Expected deterministic=False with adaptive=True: refilled batches mix inputs, "
                             "which deterministic mode forbids")
        if self.noise != "gaussian":
            raise ValueError(f"Expected noise='gaussian' with adaptive=True (its sequential radii are l2 "
                             f"radii), this Smooth has noise={self.noise!r}")
        sigma = self.noise_sigma
        if radius is not None:
            target = check_non_negative_float("radius", radius)
            return lambda schedule: lambda guess, votes, k_n, k_alpha: sequential.radius_decision(
                guess, votes, k_n, k_alpha, sigma, target, schedule)
        t = check_positive_float("tolerance", tolerance)
        return lambda schedule: lambda guess, votes, k_n, k_alpha: sequential.tolerance_decision(
            guess, votes, k_n, k_alpha, sigma, t, budget=n, budget_alpha=alpha)


    @staticmethod
    def _check_batch_size(value) -> int | None:
        return None if value is None else check_positive_int("batch_size", value)

    @staticmethod
    def _check_samples(name: str, value) -> int:
        value = check_positive_int(name, value)
        if value > _MAX_SAMPLES:
            raise ValueError(f"Expected `{name}` <= {_MAX_SAMPLES} (int32 vote counts), got {value}")
        return value

    @staticmethod
    def _as_batch(x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"Expected `x` to be a torch.Tensor, got {type(x).__name__}")
        return x.unsqueeze(0)

    def _prepare(self, xs, streams) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(xs, (list, tuple)):
            if not xs or not all(isinstance(x, torch.Tensor) for x in xs):
                raise TypeError("Expected `xs` to be a tensor [M, *shape] or a non-empty sequence of tensors")
            if len({tuple(x.shape) for x in xs}) != 1:
                raise ValueError(f"Expected all inputs in `xs` to share one shape, got "
                                 f"{sorted({tuple(x.shape) for x in xs})}")
            xs = torch.stack([x.to(self.device) for x in xs])
        if not isinstance(xs, torch.Tensor):
            raise TypeError(f"Expected `xs` to be a torch.Tensor, got {type(xs).__name__}")
        if xs.ndim < 2 or xs.shape[0] == 0 or xs.shape[1:].numel() == 0:
            raise ValueError(f"Expected `xs` of shape [M >= 1, *input_shape], got {list(xs.shape)}")
        if self.sound:  # integer pixels: uint8, or float32 exactly i / 255 (anything else is refused)
            xs = sound_mode.to_grid(xs.to(self.device)).contiguous()
        elif not xs.is_floating_point():
            raise TypeError(f"Expected `x` to be a floating-point tensor, got dtype {xs.dtype}")
        else:
            xs = xs.to(device=self.device, dtype=torch.float32).contiguous()
            if not bool(torch.isfinite(xs).all()):
                raise ValueError("Expected `x` to be finite, got NaN or infinite entries")
        if self.mean is not None and self.mean.numel() != xs.shape[1]:
            raise ValueError(f"Expected `mean`/`std` with one value per channel (x.shape[0] = "
                             f"{xs.shape[1]}), got {self.mean.numel()}")
        if self.memory_format == torch.channels_last and xs.ndim != 4:
            raise ValueError(f"Expected `x` of shape [C, H, W] for memory_format=channels_last, got "
                             f"{list(xs.shape[1:])}")
        return xs, self._stream_ids(streams, xs.shape[0])

    def _stream_ids(self, streams, count: int) -> torch.Tensor:
        if streams is None:
            ids = self._fresh_streams(count)
        else:
            ids = np.asarray(streams)
            if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(f"Expected `streams` to hold {count} integers (one per input), got {streams!r}")
            if ids.min() < 0 or ids.max() >= _MAX_STREAM:
                raise ValueError(f"Expected `streams` in [0, 2**32), got {streams!r}")
            if len(np.unique(ids)) != count:
                raise ValueError("Expected distinct `streams`: inputs sharing a stream would share noise")
            self._explicit_streams.update(ids.tolist())
        return torch.as_tensor(ids.astype(np.int64), device=self.device)

    def _fresh_streams(self, count: int) -> np.ndarray:
        # The next `count` streams from the counter, skipping any passed explicitly before, so
        # two inputs never share noise by accident (explicit streams may repeat on purpose).
        skipped = sum(1 for s in self._explicit_streams if s >= self._next_stream)
        window = np.arange(self._next_stream, min(self._next_stream + count + skipped, _MAX_STREAM), dtype=np.int64)
        ids = window[~np.isin(window, list(self._explicit_streams))][:count]
        if len(ids) < count:
            raise ValueError(f"This Smooth has used all {_MAX_STREAM} streams; create a new one with another seed")
        self._next_stream = int(ids[-1]) + 1
        return ids

    def _counts(self, xs, stream_ids, n, phase, batch_size) -> np.ndarray:
        return self._sampler.counts(xs, stream_ids, n, phase, batch_size)
