"""Monte Carlo vote counting: noise kernel -> base classifier -> vote kernel, batch after batch.

One phase draws ``n`` noisy copies of each of M inputs. The M * n (input, sample) pairs are laid
out as one flat grid (row p is sample p % n of input p // n) and cut into batches of
``batch_size`` rows, so several inputs share a batch when n is small (the n0 = 100 selection
draws of many inputs fill one GPU batch). Counts stay on the device; the host reads them once,
at the end of the phase. Every row's noise is a function of (seed, stream, phase, sample index)
only, so the noise does not depend on the batch size or on how inputs are grouped; the counts do
not either as long as the classifier's logits for a row do not depend on the shape of its batch
or the row's place in it. BLAS and cuDNN choose kernels by shape, so a vote that sits on a
near-tie can flip: ``deterministic=True`` fixes the batch shape and each row's place in it.

Example:
    >>> import torch
    >>> from rsengine.backends import resolve_backend
    >>> from rsengine.sampler import NoiseSpec, count_votes
    >>> model = torch.nn.Linear(4, 3)
    >>> spec = NoiseSpec(sigma=0.5, seed=0)
    >>> counts, batch_size = count_votes(model, torch.zeros(2, 4), torch.tensor([0, 1]), n=10, phase=1,
    ...                                  num_classes=3, spec=spec, batch_size=8,
    ...                                  backend=resolve_backend("torch", torch.device("cpu")))
    >>> counts.shape, counts.sum(axis=1).tolist(), batch_size
    ((2, 3), [10, 10], 8)
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .backends import Backend
from .classifier import deterministic_algorithms, eval_mode, logits_of
from .normalization import per_channel

__all__ = ["BatchSizeReduced", "NoiseSpec", "NonFiniteLogitsError", "Sampler", "auto_batch_size", "count_votes",
           "cpu_batch_size", "forward_batch", "noisy_batch"]


class NonFiniteLogitsError(FloatingPointError):
    """The base classifier returned NaN or infinite logits: those samples cannot vote."""


@dataclass(frozen=True)
class NoiseSpec:
    """What the noise kernel needs besides the inputs.

    Attributes:
        sigma: the noise's standard deviation per coordinate, in input (pixel) units.
        seed: 64-bit seed of the Philox stream.
        mean, std: optional [C] or [1] float32 per-channel normalization, on the sampling device
            (one value serves every channel: :meth:`normalization`).
        dtype: dtype of the model's input batch.
        memory_format: memory format of the model's input batch.
        noise: one of ``rsengine.kernels.contract.NOISES``.
        sound_thresholds: sound mode (``rsengine.sound``) when given: the [2 S + 1] int64
            ``NoiseTable.signed_thresholds()`` on the sampling device; the inputs are then int32
            grid pixels and ``noise`` is "gaussian" (the rounded Gaussian of sigma).
        sound_support: the table's S.
    """

    sigma: float
    seed: int
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format = torch.contiguous_format
    noise: str = "gaussian"
    sound_thresholds: torch.Tensor | None = None
    sound_support: int = 0
    _per_channel: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def normalization(self, channels: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(mean, std) as [channels] tensors for inputs of ``channels`` channels, or (None, None):
        what every kernel is given (rsengine.normalization.per_channel, built once per count)."""
        if self.mean is None:
            return None, None
        if channels not in self._per_channel:
            self._per_channel[channels] = per_channel(self.mean, self.std, channels)
        return self._per_channel[channels]


def noisy_batch(backend: Backend, spec: NoiseSpec, xs: torch.Tensor, streams: torch.Tensor, start: int, rows: int,
                n: int, phase: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's batch of rows ``start .. start + rows - 1``, and the rows that must not vote.

    Args:
        backend, spec: the kernels and the noise settings (sound mode when
            ``spec.sound_thresholds`` is set). xs, streams, start, rows, n, phase: as in
            :func:`count_votes` (rows = its batch's count).

    Returns:
        (batch [rows, *shape], None), or in sound mode (batch, [rows] int32 escape flags).
    """
    mean, std = spec.normalization(xs.shape[1])
    if spec.sound_thresholds is not None:
        return backend.sound_noise_normalize(xs, streams, start, rows, n, spec.sound_thresholds, spec.sound_support,
                                             spec.seed, phase, mean, std, spec.dtype, spec.memory_format)
    return backend.noise_normalize(xs, streams, start, rows, n, spec.sigma, spec.seed, phase, mean, std,
                                   spec.dtype, spec.memory_format, spec.noise), None


class BatchSizeReduced(RuntimeWarning):
    """The device ran out of memory; sampling went on with smaller batches."""


# Automatic batch size on the CPU: 2**18 input values a batch (1 MiB of float32), 16 to 1,000
# rows. A CPU's forward pass slows down once a batch's activations leave the caches: engine
# samples/s on 2 cores (bench/README.md, 2026-12-05), mnist_cnn 1x28x28 contiguous 40.7k at 250
# rows, 41.6k at 700, 28.2k at 1,000; cifar_resnet20 3x32x32 1,800 at 100 rows, 1,386 at 200, 640
# at 1,000. The rule gives 334 and 85 rows there. (The compiled noise kernel costs nothing per
# call to speak of, so small batches lose nothing to it.)
CPU_BATCH_VALUES = 2**18
MIN_CPU_BATCH_SIZE, MAX_CPU_BATCH_SIZE = 16, 1000
# Deterministic mode's batch when none is given, on every device: a fixed shape, not a measured one.
DETERMINISTIC_BATCH_SIZE = 1000
# The automatic batch's cap on a GPU, where throughput stops growing long before memory runs out.
MAX_AUTO_BATCH_SIZE = 4096
_PROBE_ROWS = 16
_MEMORY_SHARE = 0.5  # of the free memory, leaving room for the allocator's fragmentation


def cpu_batch_size(numel: int) -> int:
    """Rows per forward pass on the CPU for inputs of ``numel`` values: CPU_BATCH_VALUES of them.

    Example:
        >>> cpu_batch_size(784), cpu_batch_size(3 * 32 * 32), cpu_batch_size(3 * 224 * 224)
        (334, 85, 16)
    """
    return max(MIN_CPU_BATCH_SIZE, min(MAX_CPU_BATCH_SIZE, round(CPU_BATCH_VALUES / numel)))


def auto_batch_size(model, xs: torch.Tensor, spec: NoiseSpec, backend: Backend) -> int:
    """Rows per forward pass when the user gives none: from the free device memory.

    On a CUDA device one probe batch of 16 noisy rows measures the peak memory a row costs
    (noise batch, activations, logits); the batch then takes half of the free memory, at most
    MAX_AUTO_BATCH_SIZE rows. Elsewhere :func:`cpu_batch_size` of the input's size.
    """
    if xs.device.type != "cuda":
        return cpu_batch_size(xs.shape[1:].numel())
    device = xs.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), eval_mode(model):
        batch, _ = noisy_batch(backend, spec, xs, torch.zeros(xs.shape[0], dtype=torch.int64, device=device), 0,
                               _PROBE_ROWS, _PROBE_ROWS, 0)
        logits_of(model(batch), _PROBE_ROWS)
    per_row = max(1.0, (torch.cuda.max_memory_allocated(device) - before) / _PROBE_ROWS)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_AUTO_BATCH_SIZE, _MEMORY_SHARE * free / per_row)))


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def forward_batch(model, build, rows: int, num_classes: int, device: torch.device,
                  may_shrink: bool) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The one batch step of both schedulers: build the noisy batch, run the classifier, check its logits.

    Args:
        model: the classifier. build: ``build() -> (batch [B, *shape], skip [rows] or None)``.
        rows: the rows that vote (B may be larger: deterministic padding). num_classes: the
            expected logit width. device: the sampling device. may_shrink: out of memory means
            "retry smaller" (None is returned) rather than an error.

    Returns:
        (logits [B, num_classes], skip), or None when the device ran out of memory and the
        caller should halve its batch (the memory is released first).

    Raises:
        TypeError: the classifier's output holds no logits tensor (rsengine.classifier.logits_of).
        ValueError: the logits are not [B, num_classes].
    """
    try:
        batch, skip = build()
        output = model(batch)
    except RuntimeError as error:
        if not may_shrink or not _is_out_of_memory(error) or rows == 1:
            raise
        batch = output = None  # drop the references so the memory can be reused
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None
    return logits_of(output, batch.shape[0], num_classes), skip


def count_votes(model, xs: torch.Tensor, streams: torch.Tensor, n: int, phase: int, num_classes: int,
                spec: NoiseSpec, batch_size: int, backend: Backend, *,
                deterministic: bool = False) -> tuple[np.ndarray, int]:
    """Count the base classifier's votes on n noisy copies of each input.

    Args:
        model: base classifier, [B, *shape] normalized batch -> [B, num_classes] logits (a tensor,
            or a dict or object holding one as "logits": rsengine.classifier.logits_of).
        xs: [M, *shape] float32 contiguous inputs on the sampling device, pixel space (in sound
            mode int32 grid pixels, ``rsengine.sound.to_grid``).
        streams: [M] int64 stream index of each input, on the sampling device.
        n: noisy copies per input. phase: PHASE_* constant (selection, estimation, prediction).
        num_classes: expected logit width. spec: noise settings. batch_size: rows per forward.
        backend: kernels to run (see rsengine.backends).
        deterministic: the classifier sees exactly min(batch_size, n) rows per forward pass,
            all of one input (sample s at position s % batch_size; an input's last batch is
            padded with copies of its last row, whose votes are dropped), under
            :func:`deterministic_algorithms`; running out of memory is an error instead of a
            smaller batch. Then a row's logits, and so the counts, do not depend on which other
            inputs are sampled in the same call: only on (input, sample, batch_size, device).

    Returns:
        ([M, num_classes] int64 vote counts, each row summing to n (in sound mode n minus the
        input's escaped rows, which vote for no class); the batch size that ran).
        When the device runs out of memory the failed batch is halved and retried until it fits
        (noise depends on the row, not the batch, so the noise is unchanged; a classifier whose
        logits depend on the batch shape may vote differently); one BatchSizeReduced warning
        says so at the end of the phase.

    Raises:
        TypeError, ValueError: the classifier's output holds no [B, num_classes] logits tensor.
        NonFiniteLogitsError: some sample's logits were NaN or infinite.
        torch.OutOfMemoryError: in deterministic mode, when a batch does not fit.
    """
    total = xs.shape[0] * n
    counts = torch.zeros(xs.shape[0], num_classes, dtype=torch.int32, device=xs.device)
    nonfinite = torch.zeros(1, dtype=torch.int32, device=xs.device)
    start, first_failure = 0, None
    forward_rows = min(batch_size, n)  # deterministic mode's one batch shape per phase
    with torch.inference_mode(), eval_mode(model), \
            deterministic_algorithms() if deterministic else contextlib.nullcontext():
        while start < total:
            # Deterministic batches never cross from one input into the next.
            rows = min(batch_size, total - start, n - start % n if deterministic else total)

            def build():
                batch, skip = noisy_batch(backend, spec, xs, streams, start, rows, n, phase)
                if deterministic and rows < forward_rows:
                    padding = batch[-1:].expand(forward_rows - rows, *batch.shape[1:])
                    batch = torch.cat([batch, padding]).contiguous(memory_format=spec.memory_format)
                return batch, skip

            step = forward_batch(model, build, rows, num_classes, xs.device, may_shrink=not deterministic)
            if step is None:
                first_failure = first_failure or rows
                batch_size = rows // 2  # halve what failed (a short last batch may be far below batch_size)
                continue
            logits, skip = step
            backend.vote_count(logits[:rows], start, n, counts, nonfinite, skip)
            start += rows
    if first_failure is not None:  # said once, with the size that finally fit
        warnings.warn(BatchSizeReduced(f"out of memory at {first_failure} rows per batch; continued with "
                                       f"{batch_size}"), stacklevel=2)
    bad_rows = int(nonfinite.item())  # the phase's one host sync
    if bad_rows:
        raise NonFiniteLogitsError(f"The classifier returned NaN or infinite logits for {bad_rows} of "
                                   f"{total} noisy samples; rsengine refuses to count them")
    return counts.cpu().numpy().astype(np.int64), batch_size


class Sampler:
    """:func:`count_votes` for one smoothed classifier, choosing and remembering the batch size.

    A batch size the caller gives is used as is (capped after an out-of-memory error). None
    means :func:`auto_batch_size`, measured once per input shape; in deterministic mode it means
    DETERMINISTIC_BATCH_SIZE instead, since a size taken from the free memory would change the logits.
    Once a phase had to shrink its batches, later phases start at the size that fit.

    Example:
        >>> import torch
        >>> from rsengine.backends import resolve_backend
        >>> sampler = Sampler(torch.nn.Linear(4, 3), 3, NoiseSpec(sigma=0.5, seed=0),
        ...                   resolve_backend("torch", torch.device("cpu")))
        >>> sampler.counts(torch.zeros(2, 4), torch.tensor([0, 1]), n=10, phase=1).sum(axis=1).tolist()
        [10, 10]
    """

    def __init__(self, model, num_classes: int, spec: NoiseSpec, backend: Backend, deterministic: bool = False):
        self.model, self.num_classes, self.spec, self.backend = model, num_classes, spec, backend
        self.deterministic = deterministic
        self._auto_batch_sizes: dict[tuple, int] = {}
        self._out_of_memory_cap: int | None = None

    def counts(self, xs: torch.Tensor, streams: torch.Tensor, n: int, phase: int,
               batch_size: int | None = None) -> np.ndarray:
        """[M, num_classes] int64 vote counts; arguments as in :func:`count_votes`."""
        batch_size = self.batch_size(xs, xs.shape[0] * n, batch_size)
        counts, used = count_votes(self.model, xs, streams, n, phase, self.num_classes, self.spec, batch_size,
                                   self.backend, deterministic=self.deterministic)
        self.remember_batch_size(batch_size, used)
        return counts

    def batch_size(self, xs: torch.Tensor, rows: int, batch_size: int | None = None) -> int:
        """The rows per forward pass for sampling ``rows`` rows of inputs like ``xs`` (rules above)."""
        if batch_size is None and self.deterministic:
            batch_size = DETERMINISTIC_BATCH_SIZE
        elif batch_size is None:
            shape = tuple(xs.shape[1:])
            if shape not in self._auto_batch_sizes:
                self._auto_batch_sizes[shape] = auto_batch_size(self.model, xs, self.spec, self.backend)
            batch_size = min(rows, self._auto_batch_sizes[shape])
        if self._out_of_memory_cap is not None:
            batch_size = min(batch_size, self._out_of_memory_cap)
        return batch_size

    def remember_batch_size(self, tried: int, used: int) -> None:
        """After running out of memory at ``tried`` rows, later calls start at ``used``."""
        if used < tried:
            self._out_of_memory_cap = used
