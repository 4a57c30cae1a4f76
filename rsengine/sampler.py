"""Monte Carlo vote counting: noise kernel -> base classifier -> vote kernel, batch after batch.

One phase draws ``n`` noisy copies of each of M inputs. The M * n (input, sample) pairs are laid
out as one flat grid (row p is sample p % n of input p // n) and cut into batches of
``batch_size`` rows, so several inputs share a batch when n is small (the n0 = 100 selection
draws of many inputs fill one GPU batch). Counts stay on the device; the host reads them once,
at the end of the phase. Because every row's noise is a function of (seed, stream, phase,
sample index) only, the counts do not depend on the batch size or on how inputs are grouped.

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
from dataclasses import dataclass

import numpy as np
import torch

from .backends import Backend

__all__ = ["BatchSizeReduced", "NoiseSpec", "NonFiniteLogitsError", "auto_batch_size", "count_votes"]


class NonFiniteLogitsError(FloatingPointError):
    """The base classifier returned NaN or infinite logits: those samples cannot vote."""


@dataclass(frozen=True)
class NoiseSpec:
    """What the noise kernel needs besides the inputs.

    Attributes:
        sigma: noise level in input (pixel) units.
        seed: 64-bit seed of the Philox stream.
        mean, std: optional [C] float32 per-channel normalization, on the sampling device.
        dtype: dtype of the model's input batch.
        memory_format: memory format of the model's input batch.
    """

    sigma: float
    seed: int
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format = torch.contiguous_format


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module):
    # Dropout or batch-norm statistics in training mode would make f random or batch-dependent;
    # afterwards every submodule gets back its own mode (a blanket train() would not).
    modes = {module: module.training for module in model.modules()} if isinstance(model, torch.nn.Module) else {}
    for module in modes:
        module.training = False
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


class BatchSizeReduced(RuntimeWarning):
    """The device ran out of memory; sampling went on with smaller batches."""


# Automatic batch size: rows per forward when sampling on the CPU (large enough to amortize
# per-op overhead of the reference kernels, small enough to stay in cache-friendly sizes), and the
# cap on a GPU, where throughput stops growing long before memory runs out.
CPU_BATCH_SIZE = 1000
MAX_AUTO_BATCH_SIZE = 4096
_PROBE_ROWS = 16
_MEMORY_SHARE = 0.5  # of the free memory, leaving room for the allocator's fragmentation


def auto_batch_size(model, xs: torch.Tensor, spec: NoiseSpec, backend: Backend) -> int:
    """Rows per forward pass when the user gives none: from the free device memory.

    On a CUDA device one probe batch of 16 noisy rows measures the peak memory a row costs
    (noise batch, activations, logits); the batch then takes half of the free memory, at most
    MAX_AUTO_BATCH_SIZE rows. Elsewhere CPU_BATCH_SIZE.
    """
    if xs.device.type != "cuda":
        return CPU_BATCH_SIZE
    device = xs.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), _eval_mode(model):
        batch = backend.noise_normalize(xs, torch.zeros(xs.shape[0], dtype=torch.int64, device=device), 0,
                                        _PROBE_ROWS, _PROBE_ROWS, spec.sigma, spec.seed, 0, spec.mean, spec.std,
                                        spec.dtype, spec.memory_format)
        model(batch)
    per_row = max(1.0, (torch.cuda.max_memory_allocated(device) - before) / _PROBE_ROWS)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_AUTO_BATCH_SIZE, _MEMORY_SHARE * free / per_row)))


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def count_votes(model, xs: torch.Tensor, streams: torch.Tensor, n: int, phase: int,
                num_classes: int, spec: NoiseSpec, batch_size: int, backend: Backend) -> tuple[np.ndarray, int]:
    """Count the base classifier's votes on n noisy copies of each input.

    Args:
        model: base classifier, [B, *shape] normalized batch -> [B, num_classes] logits.
        xs: [M, *shape] float32 contiguous inputs on the sampling device, pixel space.
        streams: [M] int64 stream index of each input, on the sampling device.
        n: noisy copies per input. phase: PHASE_* constant (selection, estimation, prediction).
        num_classes: expected logit width. spec: noise settings. batch_size: rows per forward.
        backend: kernels to run (see rsengine.backends).

    Returns:
        ([M, num_classes] int64 vote counts, each row summing to n; the batch size that ran).
        When the device runs out of memory the failed batch is halved and retried until it fits
        (noise depends on the row, not the batch, so the counts are unchanged); one
        BatchSizeReduced warning says so at the end of the phase.

    Raises:
        ValueError: the classifier's output is not [B, num_classes].
        NonFiniteLogitsError: some sample's logits were NaN or infinite.
    """
    total = xs.shape[0] * n
    counts = torch.zeros(xs.shape[0], num_classes, dtype=torch.int32, device=xs.device)
    nonfinite = torch.zeros(1, dtype=torch.int32, device=xs.device)
    start, first_failure = 0, None
    with torch.inference_mode(), _eval_mode(model):
        while start < total:
            rows = min(batch_size, total - start)
            try:
                batch = backend.noise_normalize(xs, streams, start, rows, n, spec.sigma, spec.seed, phase,
                                                spec.mean, spec.std, spec.dtype, spec.memory_format)
                logits = model(batch)
            except RuntimeError as error:
                if not _is_out_of_memory(error) or rows == 1:
                    raise
                batch = logits = None  # drop the references so the memory can be reused
                if xs.device.type == "cuda":
                    torch.cuda.empty_cache()
                first_failure = first_failure or rows
                batch_size = rows // 2  # halve what failed (a short last batch may be far below batch_size)
                continue
            if logits.ndim != 2 or logits.shape != (rows, num_classes):
                raise ValueError(f"Expected the classifier's output to be [batch, num_classes] = "
                                 f"[{rows}, {num_classes}], got {list(logits.shape)}")
            backend.vote_count(logits, start, n, counts, nonfinite)
            start += rows
    if first_failure is not None:  # said once, with the size that finally fit
        warnings.warn(BatchSizeReduced(f"out of memory at {first_failure} rows per batch; continued with "
                                       f"{batch_size}"), stacklevel=2)
    bad_rows = int(nonfinite.item())  # the phase's one host sync
    if bad_rows:
        raise NonFiniteLogitsError(f"The classifier returned NaN or infinite logits for {bad_rows} of "
                                   f"{total} noisy samples; rsengine refuses to count them")
    return counts.cpu().numpy().astype(np.int64), batch_size
