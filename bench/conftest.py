"""Benchmark set-up: workloads, timers and the record writer shared by the bench/ tests.

Two workloads, ``imagenet`` and ``cifar``. On a GPU they are the issue's: ResNet-50 at 3x224x224
and CIFAR ResNet-110 at 3x32x32, random weights (speed does not depend on them). On a CPU both
shrink to a ResNet-20 on 3x8x8 inputs and a few hundred samples: a smoke test that runs every
code path, records included, in seconds, and writes nothing.

GPU sizes can be changed without editing code (all positive integers)::

    RSENGINE_BENCH_{IMAGENET,CIFAR}_BATCH             engine / plain-loop rows per forward
    RSENGINE_BENCH_{IMAGENET,CIFAR}_BATCHES           batches per timed engine call (n = BATCH x BATCHES)
    RSENGINE_BENCH_{IMAGENET,CIFAR}_BASELINE_BATCH    original-loop rows per forward (the paper's 400)
    RSENGINE_BENCH_{IMAGENET,CIFAR}_BASELINE_BATCHES  batches per timed original-loop call
    RSENGINE_BENCH_{IMAGENET,CIFAR}_KERNEL_ROWS       rows per kernel launch in the kernel benchmarks
    RSENGINE_BENCH_ROUNDS                             timed calls per figure (median taken)
    RSENGINE_BENCH_CUDNN_BENCHMARK=1                  torch.backends.cudnn.benchmark = True

``RSENGINE_BENCH_OUT`` (a directory) and ``RSENGINE_BENCH_COMMIT`` are read by ``records.py``.
"""
from __future__ import annotations

import copy
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

import records
from rsengine import Smooth
from rsengine.data import DATASET_STATS
from rsengine.models import build_model
from rsengine.vision import MissingExtraError
from rsengine.validation import check_positive_int

__all__ = ["ON_GPU", "SIGMA", "env_int", "ENGINE_BACKEND", "SCENARIOS", "Scenario", "Workload", "Timer", "TimedCall"]

ON_GPU = torch.cuda.is_available()
SIGMA = 0.25
# On a CPU the engine runs its PyTorch reference kernels: Triton's interpreter costs ~10 ms per
# program, far too slow for a whole certificate; the kernel benchmarks run the Triton kernels
# through the interpreter instead. On a GPU the Triton kernels or an error, never a fallback.
ENGINE_BACKEND = "triton" if ON_GPU else "torch"

_IMAGENET_NORM = DATASET_STATS["imagenet"]
_CIFAR_NORM = DATASET_STATS["cifar10"]


def env_int(name: str, default: int) -> int:
    """The positive integer in environment variable ``name``, else ``default``; a one-line error if malformed."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"Expected `{name}` to be an integer >= 1, got {raw!r}") from None
    return check_positive_int(name, value)


@dataclass(frozen=True)
class Scenario:
    """One benchmark workload and its sizes.

    Attributes:
        name: "imagenet" or "cifar". arch: ``rsengine.models`` architecture.
        input_shape: [C, H, W] of one input. num_classes: logit width.
        mean, std: per-channel normalization, applied after the noise.
        batch_size, batches: engine (and plain loop) rows per forward and batches per timed call.
        baseline_batch_size, baseline_batches: the same for the original-style loop.
        kernel_rows: rows per launch in the kernel benchmarks.
        rounds: timed calls per figure; the median is reported.
    """

    name: str
    arch: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    batch_size: int
    batches: int
    baseline_batch_size: int
    baseline_batches: int
    kernel_rows: int
    rounds: int

    @property
    def n(self) -> int:
        """Samples per timed engine call."""
        return self.batch_size * self.batches

    @property
    def baseline_n(self) -> int:
        """Samples per timed original-loop call."""
        return self.baseline_batch_size * self.baseline_batches


def _scenario(name: str, arch: str, input_shape, num_classes: int, norm, batch_size: int, batches: int,
              baseline_batch_size: int, baseline_batches: int, kernel_rows: int, rounds: int) -> Scenario:
    prefix = f"RSENGINE_BENCH_{name.upper()}_"
    return Scenario(
        name, arch, input_shape, num_classes, *norm,
        batch_size=env_int(prefix + "BATCH", batch_size),
        batches=env_int(prefix + "BATCHES", batches),
        baseline_batch_size=env_int(prefix + "BASELINE_BATCH", baseline_batch_size),
        baseline_batches=env_int(prefix + "BASELINE_BATCHES", baseline_batches),
        kernel_rows=env_int(prefix + "KERNEL_ROWS", kernel_rows),
        rounds=env_int("RSENGINE_BENCH_ROUNDS", rounds),
    )


def _scenarios() -> dict[str, Scenario]:
    if ON_GPU:
        # ResNet-50: 20 batches of 1000 after warm-up give a stable rate in a few seconds; a full
        # n = 100k would take ~5x longer per round, so its certificate time is derived.
        # ResNet-110 on CIFAR: 20 batches of 5000 are a whole n = 100k estimation phase.
        return {
            "imagenet": _scenario("imagenet", "resnet50", (3, 224, 224), 1000, _IMAGENET_NORM,
                                  1000, 20, 400, 10, 1000, 3),
            "cifar": _scenario("cifar", "cifar_resnet110", (3, 32, 32), 10, _CIFAR_NORM,
                               5000, 20, 400, 25, 5000, 3),
        }
    # Tiny: ResNet-20 on 3x8x8 costs ~0.5 ms a sample on 2 CPU cores; 4 kernel rows keep the
    # interpreted noise kernel at ~70 ms a launch.
    return {
        "imagenet": _scenario("imagenet", "cifar_resnet20", (3, 8, 8), 1000, _IMAGENET_NORM,
                              100, 3, 40, 3, 4, 2),
        "cifar": _scenario("cifar", "cifar_resnet20", (3, 8, 8), 10, _CIFAR_NORM,
                           100, 3, 40, 3, 4, 2),
    }


SCENARIOS = _scenarios()


class TimedCall:
    """``fn`` wrapped so that every call's wall time is kept in ``seconds``.

    On a GPU each call is bracketed by CUDA events and waits for its end event, so a figure
    includes the device work and any host gaps between launches; on a CPU, perf_counter.
    """

    def __init__(self, fn: Callable, cuda: bool):
        self.fn = fn
        self.cuda = cuda
        self.seconds: list[float] = []

    def __call__(self):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = self.fn()
            end.record()
            end.synchronize()
            self.seconds.append(start.elapsed_time(end) / 1e3)
        else:
            began = time.perf_counter()
            result = self.fn()
            self.seconds.append(time.perf_counter() - began)
        return result

    def median_of_last(self, rounds: int) -> float:
        """Median of the last ``rounds`` calls (fewer if fewer were made)."""
        return statistics.median(self.seconds[-rounds:])


class Timer:
    """Median timings after warm-up, by the right clock for the device."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        # pytest-benchmark rounds around a kernel launch: cheap on a GPU, ~70 ms interpreted.
        self.kernel_rounds = 20 if cuda else 1

    def timed(self, fn: Callable) -> TimedCall:
        """``fn`` wrapped to record each call's time (see :class:`TimedCall`)."""
        return TimedCall(fn, self.cuda)

    def median_s(self, fn: Callable, warmup: int, rounds: int) -> float:
        """Median seconds of ``rounds`` calls of ``fn`` after ``warmup`` untimed ones."""
        calls = self.timed(fn)
        for _ in range(warmup + rounds):
            calls()
        return calls.median_of_last(rounds)

    def kernel_median_s(self, fn: Callable) -> float:
        """Median seconds of one launch of a short kernel ``fn``.

        GPU: ``triton.testing.do_bench`` (25 ms warm-up, 100 ms of repetitions, L2 flushed
        between them); CPU: 3 calls after one warm-up.
        """
        if self.cuda:
            import triton.testing

            return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median") / 1e3
        return self.median_s(fn, warmup=1, rounds=3)


@dataclass
class Workload:
    """A scenario's models and input, built once per module.

    Attributes:
        scenario: the sizes. x: [1, C, H, W] fp32 input in pixel space, on the device.
        engine_model: bf16, channels_last, eval: what the engine and the plain loop run.
        fp32_model: the same weights in fp32, contiguous, eval: what the original loop ran.
    """

    scenario: Scenario
    x: torch.Tensor
    engine_model: torch.nn.Module
    fp32_model: torch.nn.Module


@pytest.fixture(scope="session", autouse=True)
def _cudnn_settings():
    if os.environ.get("RSENGINE_BENCH_CUDNN_BENCHMARK") == "1":
        torch.backends.cudnn.benchmark = True


@pytest.fixture(scope="module", params=list(SCENARIOS), ids=str)
def scenario(request) -> Scenario:
    """Each workload in turn (imagenet, cifar)."""
    return SCENARIOS[request.param]


@pytest.fixture(scope="module")
def workload(scenario, device) -> Workload:
    """The scenario's models (random weights, seed 0) and one random input."""
    torch.manual_seed(0)
    try:
        model = build_model(scenario.arch, scenario.num_classes).eval()
    except MissingExtraError as error:  # ResNet-50 is torchvision's: bench/device_check.sh says how to carry it
        pytest.skip(str(error))
    fp32_model = copy.deepcopy(model).to(device)
    engine_model = model.to(device=device, dtype=torch.bfloat16, memory_format=torch.channels_last)
    x = torch.rand((1, *scenario.input_shape), generator=torch.Generator().manual_seed(0)).to(device)
    return Workload(scenario, x, engine_model, fp32_model)


@pytest.fixture
def smooth(workload) -> Smooth:
    """The engine around the workload's bf16 channels_last model (normalization in the kernel)."""
    scenario = workload.scenario
    return Smooth(workload.engine_model, scenario.num_classes, SIGMA, mean=scenario.mean, std=scenario.std,
                  seed=0, backend=ENGINE_BACKEND, memory_format=torch.channels_last)


@pytest.fixture(scope="session")
def timer(device) -> Timer:
    """Median timings: CUDA events / do_bench on a GPU, perf_counter on a CPU."""
    return Timer(device.type == "cuda")


@pytest.fixture
def recorder(benchmark) -> records.Recorder:
    """Records of this test: written on a GPU with benchmarks enabled, else only validated."""
    return records.Recorder(benchmark.extra_info, write=ON_GPU and not benchmark.disabled)
