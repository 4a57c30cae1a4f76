"""Adaptive certification of many inputs in refilled batches: no forward pass waits on a slow input.

Every input owes rows: first its n0 selection samples, then its estimation samples up to its next
checkpoint (``rsengine.sequential.Schedule``). Each forward batch takes the rows owed by the
undecided inputs, oldest input first, and admits new inputs while the rows owed fall short of a
batch; an input whose rows reach its next checkpoint is decided on the host, and leaves or owes
the rows to its following checkpoint. So batches stay full until the last inputs, whatever mix of
fast and slow inputs a data set has.

Each segment of a batch (one input's rows ``a .. a + c - 1`` of one phase) is drawn by the
backend's fused noise kernel as rows of a one-input grid, so sample s of an input is the same
noise whichever batch it lands in: an adaptive certificate is a function of (seed, stream, n0,
budget, alpha, the question) alone, like a fixed one, and its first n samples are those a fixed
run with n samples draws.

Example:
    >>> import torch
    >>> from rsengine import Smooth
    >>> smooth = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, 0.25)
    >>> preds, radii, samples = smooth.certify_batch(torch.rand(3, 4), 100, 10_000, 0.001, batch_size=500,
    ...                                              adaptive=True, radius=0.25)
    >>> bool((samples <= 100 + 10_000).all())
    True
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION
from .classifier import eval_mode
from .sampler import BatchSizeReduced, NonFiniteLogitsError, Sampler, forward_batch, noisy_batch
from .sequential import Schedule, certificate_so_far
from .stats import ABSTAIN

__all__ = ["AdaptiveResult", "AdaptiveInterrupted", "certify_adaptive"]

_WAITING, _SELECTING, _ESTIMATING, _DONE = 0, 1, 2, 3


@dataclass
class AdaptiveResult:
    """Certificates of M inputs from :func:`certify_adaptive`.

    Attributes:
        predictions: int64 [M], ABSTAIN where abstaining (or not reached).
        radii: float64 [M], 0.0 where abstaining.
        samples: int64 [M], the selection and estimation samples each certificate used.
        finished: bool [M], has a certificate (always all of them, unless interrupted).
        stopped_early: bool [M], the certificate of an input interrupted before its rule
            stopped it: what its samples up to its last checkpoint support (still valid).
    """

    predictions: np.ndarray
    radii: np.ndarray
    samples: np.ndarray
    finished: np.ndarray
    stopped_early: np.ndarray


class AdaptiveInterrupted(KeyboardInterrupt):
    """Ctrl-C during adaptive certification; ``result`` holds every certificate that can be given.

    A KeyboardInterrupt, so a program that does not look for it stops as on any Ctrl-C.
    """

    def __init__(self, result: AdaptiveResult):
        super().__init__("adaptive certification interrupted")
        self.result = result


class _Inputs:
    """Host-side state of every input: phase, rows drawn and owed, guess, last checkpoint's votes."""

    def __init__(self, count: int, n0: int, schedule: Schedule, sigma: float):
        self.n0, self.schedule, self.sigma = n0, schedule, sigma
        self.phase = np.full(count, _WAITING)
        self.drawn = np.zeros(count, dtype=np.int64)
        self.target = np.zeros(count, dtype=np.int64)
        self.stage = np.zeros(count, dtype=np.int64)
        self.guess = np.zeros(count, dtype=np.int64)
        self.last_votes = np.zeros(count, dtype=np.int64)
        self.predictions = np.full(count, ABSTAIN, dtype=np.int64)
        self.radii = np.zeros(count)
        self.samples = np.zeros(count, dtype=np.int64)
        self.active: list[int] = []
        self.next_waiting = 0

    def owed(self, i: int) -> int:
        return int(self.target[i] - self.drawn[i])

    def admit(self) -> None:
        i = self.next_waiting
        self.phase[i], self.target[i], self.drawn[i] = _SELECTING, self.n0, 0
        self.active.append(i)
        self.next_waiting += 1

    def finish(self, i: int, prediction: int, radius: float, estimation_samples: int) -> None:
        self.phase[i] = _DONE
        self.predictions[i], self.radii[i] = prediction, radius
        self.samples[i] = self.n0 + estimation_samples
        self.active.remove(i)

    def result(self, interrupted: bool) -> AdaptiveResult:
        finished = self.phase == _DONE
        stopped = np.zeros(len(self.phase), dtype=bool)
        if interrupted:  # inputs past a checkpoint keep what that checkpoint's bound supports
            for i in list(self.active):
                if self.phase[i] == _ESTIMATING and self.stage[i] > 0:
                    k = int(self.stage[i]) - 1
                    n, alpha = int(self.schedule.checkpoints[k]), float(self.schedule.alphas[k])
                    pred, rad = certificate_so_far([self.guess[i]], [self.last_votes[i]], n, alpha, self.sigma)
                    self.finish(i, int(pred[0]), float(rad[0]), n)
                    stopped[i] = True
            finished = self.phase == _DONE
        return AdaptiveResult(self.predictions.copy(), self.radii.copy(), self.samples.copy(), finished, stopped)


def certify_adaptive(sampler: Sampler, xs: torch.Tensor, streams: torch.Tensor, n0: int, schedule: Schedule,
                     decide, sigma: float, batch_size: int | None = None) -> AdaptiveResult:
    """Certify M inputs, each sampled until ``decide`` says it is done or its budget is spent.

    Args:
        sampler: the smoothed classifier's sampler (model, noise settings, backend).
        xs: [M, *shape] float32 contiguous inputs on the sampling device. streams: [M] int64.
        n0: selection samples per input. schedule: the estimation checkpoints and levels.
        decide: ``decide(guess [m], votes [m], n, alpha) -> (done [m], pred [m], radius [m])``
            at checkpoint n with level alpha (``rsengine.sequential``'s rules); must be done at
            the budget.
        sigma: the noise level the radii are computed for.
        batch_size: rows per forward pass (None: the sampler's automatic size).

    Returns:
        AdaptiveResult with every input finished.

    Raises:
        AdaptiveInterrupted: on KeyboardInterrupt, with the certificates so far.
        NonFiniteLogitsError, ValueError: as :func:`rsengine.sampler.count_votes`.
    """
    inputs = _Inputs(xs.shape[0], n0, schedule, sigma)
    batch_size = sampler.batch_size(xs, xs.shape[0] * (n0 + schedule.budget), batch_size)
    backend, num_classes = sampler.backend, sampler.num_classes
    votes = {PHASE_SELECTION: torch.zeros(xs.shape[0], num_classes, dtype=torch.int32, device=xs.device),
             PHASE_ESTIMATION: torch.zeros(xs.shape[0], num_classes, dtype=torch.int32, device=xs.device)}
    phase_rows = {PHASE_SELECTION: n0, PHASE_ESTIMATION: schedule.budget}
    nonfinite = torch.zeros(1, dtype=torch.int32, device=xs.device)
    first_failure, tried = None, batch_size
    try:
        with torch.inference_mode(), eval_mode(sampler.model):
            while True:
                owed = sum(inputs.owed(i) for i in inputs.active)
                while owed < batch_size and inputs.next_waiting < xs.shape[0]:
                    inputs.admit()
                    owed += n0
                if not inputs.active:
                    break
                segments, room = [], batch_size
                for i in inputs.active:
                    take = min(room, inputs.owed(i))
                    if take:
                        phase = PHASE_SELECTION if inputs.phase[i] == _SELECTING else PHASE_ESTIMATION
                        segments.append((i, phase, int(inputs.drawn[i]), take))
                        room -= take
                    if not room:
                        break
                step = forward_batch(sampler.model, lambda: _noisy_segments(sampler, xs, streams, segments, phase_rows),
                                     batch_size, num_classes, xs.device, may_shrink=not sampler.deterministic)
                if step is None:
                    first_failure = first_failure or batch_size
                    batch_size //= 2
                    continue
                logits, skip = step
                offset = 0
                for i, phase, start, take in segments:
                    backend.vote_count(logits[offset:offset + take], start, phase_rows[phase],
                                       votes[phase][i:i + 1], nonfinite,
                                       None if skip is None else skip[offset:offset + take])
                    offset += take
                    inputs.drawn[i] += take
                del logits, step
                _look(inputs, [i for i, *_ in segments if inputs.owed(i) == 0], votes, nonfinite, decide)
    except KeyboardInterrupt:
        raise AdaptiveInterrupted(inputs.result(interrupted=True)) from None
    finally:
        sampler.remember_batch_size(tried, batch_size)
    if first_failure is not None:
        warnings.warn(BatchSizeReduced(f"out of memory at {first_failure} rows per batch; continued with "
                                       f"{batch_size}"), stacklevel=2)
    return inputs.result(interrupted=False)


def _noisy_segments(sampler: Sampler, xs, streams, segments, phase_rows):
    """One batch of segments (input i's rows ``start .. start + take - 1`` of a phase), each drawn
    as rows of a one-input grid by the sampler's noisy-batch path: (batch, skip or None)."""
    parts = [noisy_batch(sampler.backend, sampler.spec, xs[i:i + 1], streams[i:i + 1], start, take, phase_rows[phase],
                         phase) for i, phase, start, take in segments]
    if len(parts) == 1:
        return parts[0]
    batches, skips = zip(*parts)
    batch = torch.cat(batches).contiguous(memory_format=sampler.spec.memory_format)
    return batch, None if skips[0] is None else torch.cat(skips)


def _look(inputs: _Inputs, reached: list[int], votes, nonfinite, decide) -> None:
    """Decide every input whose rows reached a checkpoint (the batch's one host sync)."""
    if not reached:
        return
    bad_rows = int(nonfinite.item())
    if bad_rows:
        raise NonFiniteLogitsError(f"The classifier returned NaN or infinite logits for {bad_rows} noisy "
                                   "samples; rsengine refuses to count them")
    index = torch.as_tensor(reached, device=votes[PHASE_SELECTION].device)
    selection = votes[PHASE_SELECTION][index].cpu().numpy()
    estimation = votes[PHASE_ESTIMATION][index].cpu().numpy()
    schedule = inputs.schedule
    by_stage: dict[int, list[int]] = {}
    for row, i in enumerate(reached):
        if inputs.phase[i] == _SELECTING:
            inputs.guess[i] = int(selection[row].argmax())
            inputs.phase[i], inputs.drawn[i], inputs.stage[i] = _ESTIMATING, 0, 0
            inputs.target[i] = schedule.checkpoints[0]
        else:
            inputs.last_votes[i] = estimation[row, inputs.guess[i]]
            by_stage.setdefault(int(inputs.stage[i]), []).append(i)
    for k, group in by_stage.items():
        n, alpha = int(schedule.checkpoints[k]), float(schedule.alphas[k])
        done, pred, rad = decide(inputs.guess[group], inputs.last_votes[group], n, alpha)
        for i, finished, p, r in zip(group, done, pred, rad):
            inputs.stage[i] = k + 1
            if finished:
                inputs.finish(i, int(p), float(r), n)
            else:
                inputs.target[i] = schedule.checkpoints[k + 1]
