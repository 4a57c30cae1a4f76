"""CPU benchmarks: the engine against the original loop and the forward pass, side by side in one run.

Most first runs, every test and the embedded default run on a CPU, where the classifier's
forward pass is the ceiling. Two workloads, the issue's: the bundled MNIST CNN (``mnist_cnn``,
1x28x28, its own normalization) on a held-out digit, and a CIFAR ResNet-20 (3x32x32, random
weights, CIFAR-10 normalization) on a random image; fp32, sigma 0.25, on
RSENGINE_BENCH_CPU_THREADS threads (default 2, the issue's setting). Each in two configurations:
the issue's (contiguous batches of 1,000 rows) and the engine's own default on a CPU
(channels_last, the automatic batch of ``rsengine.sampler.cpu_batch_size``: 334 and 85 rows).
Per round, one after the other so that drift hits all alike:

- the engine: ``Smooth.sample_counts`` (backend "auto": the compiled CPU kernel) on n samples;
- the original loop (``baseline.original_counts``: ``x.repeat``, ``randn_like``, NormalizeLayer,
  ``argmax().cpu()`` and host counting per batch; contiguous, as it ran) on the same n and batch;
- a plain PyTorch loop in the engine's memory format (``baseline.plain_counts``: ``randn_like``,
  normalization, device-side counts), which separates the layout's gain from the engine's own;
- the forward pass alone in the engine's format: the same number of forwards on one
  pre-generated batch (the ceiling).

Medians over the rounds give samples/s, the ratio engine / original loop, and the share of the
engine's time outside the forward pass. A second benchmark times the noise kernels alone on one
1,000-row MNIST batch: the CPU kernel, the PyTorch reference and ``torch.randn``.

In the test suite (pytest-benchmark disabled) both run at smoke sizes and record nothing; with
``--benchmark-enable`` on a machine without a GPU they run at full size and append records to
``bench/results/cpu_<date>.json`` (on a GPU machine they stay smoke tests: the GPU run measures
the GPU). Correctness first: the engine's counts must sum to n, and the CPU kernel's batch must
agree with the reference's, before anything is timed.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import pytest
import torch

import baseline
import records
from conftest import ON_GPU, SIGMA, env_int
from rsengine import Smooth
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import DATASET_STATS, load_dataset
from rsengine.kernels import reference
from rsengine.kernels.contract import NOISES, PHASE_ESTIMATION
from rsengine.kernels.tolerance import noise_mismatch
from rsengine.models import build_model
from rsengine.sampler import cpu_batch_size

BATCH = 1000
THREADS = env_int("RSENGINE_BENCH_CPU_THREADS", 2)


@dataclass(frozen=True)
class CpuWorkload:
    """A model, one input and the sizes of one benchmark run.

    Attributes:
        name: "mnist" or "cifar". arch: architecture. model: fp32, eval. x: [1, C, H, W] pixels.
        mean, std: the model's normalization. num_classes: logit width.
        n: samples per timed call. rounds: timed rounds (median taken).
    """

    name: str
    arch: str
    model: torch.nn.Module
    x: torch.Tensor
    mean: tuple
    std: tuple
    num_classes: int
    n: int
    rounds: int


@pytest.fixture
def full_size(benchmark) -> bool:
    """Full sizes and written records: benchmarks enabled on a machine without a GPU."""
    return not ON_GPU and not benchmark.disabled


@pytest.fixture(autouse=True)
def cpu_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


def _workload(name: str, full: bool) -> CpuWorkload:
    if name == "mnist":
        checkpoint = load_checkpoint(bundled_checkpoint())
        x, _ = load_dataset("mnist", "test")[0]
        model, mean, std, arch = checkpoint.model, checkpoint.mean, checkpoint.std, "mnist_cnn"
        n, rounds = (20_000, 5) if full else (200, 1)
    else:
        torch.manual_seed(0)
        model, (mean, std), arch = build_model("cifar_resnet20", 10), DATASET_STATS["cifar10"], "cifar_resnet20"
        x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
        n, rounds = (2_000, 3) if full else (200, 1)
    return CpuWorkload(name, arch, model.eval(), x[None].contiguous(), tuple(mean), tuple(std), 10, n, rounds)


def _alternating_medians(calls: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each call over ``rounds`` rounds, the calls taken in turn within a round."""
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in seconds.items()}


CONFIGURATIONS = {"contiguous-1000": (torch.contiguous_format, BATCH), "channels_last-auto": (torch.channels_last, None)}


@pytest.mark.parametrize("configuration", list(CONFIGURATIONS))
@pytest.mark.parametrize("name", ["mnist", "cifar"])
def test_cpu_end_to_end_against_the_original_loop_and_the_forward_pass(benchmark, full_size, name, configuration):
    workload = _workload(name, full_size)
    memory_format, batch = CONFIGURATIONS[configuration]
    batch = min(batch or cpu_batch_size(workload.x[0].numel()), workload.n)
    # The original loop runs a contiguous copy, as the original code did: conv layers with
    # channels_last weights would run channels_last on its contiguous batches too.
    original_model = copy.deepcopy(workload.model)
    model = workload.model.to(memory_format=memory_format)
    smooth = Smooth(model, workload.num_classes, SIGMA, mean=workload.mean, std=workload.std, seed=0,
                    memory_format=memory_format)
    noisy = smooth.backend.noise_normalize(workload.x, torch.zeros(1, dtype=torch.int64), 0, batch, workload.n,
                                           smooth.noise_sigma, 0, PHASE_ESTIMATION, smooth.mean, smooth.std,
                                           memory_format=memory_format)
    batches = -(-workload.n // batch)
    n = batches * batch  # whole batches, so the forward-only figure runs exactly the engine's forwards

    def engine():
        return smooth.sample_counts(workload.x, n, batch_size=batch, streams=[0])

    def original():
        return baseline.original_counts(original_model, workload.x[0], n, SIGMA, batch, workload.num_classes,
                                        workload.mean, workload.std)

    def plain():
        return baseline.plain_counts(model, workload.x[0], n, SIGMA, batch, workload.num_classes, workload.mean,
                                     workload.std, dtype=torch.float32, memory_format=memory_format)

    def forward():
        with torch.inference_mode():
            for _ in range(batches):
                model(noisy)

    # Correctness and warm-up: every call once before any is timed.
    assert engine().sum() == n and original().sum() == n and plain().sum() == n
    forward()
    medians = _alternating_medians(dict(engine=engine, original=original, plain=plain, forward=forward),
                                   workload.rounds)
    benchmark.pedantic(engine, rounds=1)
    record = records.make_record(
        "cpu_end_to_end", model=workload.arch, input_shape=workload.x.shape[1:], dtype=torch.float32,
        batch_size=batch, n=n, backend=smooth.backend.name, memory_format=configuration.split("-")[0],
        samples_per_s=n / medians["engine"], baseline_samples_per_s=n / medians["original"],
        speedup=medians["original"] / medians["engine"], plain_samples_per_s=n / medians["plain"],
        forward_samples_per_s=n / medians["forward"], overhead_share=1 - medians["forward"] / medians["engine"],
        threads=torch.get_num_threads(), cpu=records.cpu_name(), rounds=workload.rounds, seconds=medians)
    benchmark.extra_info.update(record)
    if full_size:
        records.append_records([record], records.results_file(record["device"]))
    assert record["samples_per_s"] > 0 and smooth.backend.name in ("cpu", "torch")


def test_cpu_noise_kernel_normals_per_second(benchmark, full_size):
    workload = _workload("mnist", full_size)
    rows = BATCH if full_size else 100
    streams = torch.zeros(1, dtype=torch.int64)
    smooth = Smooth(workload.model, 10, SIGMA, mean=workload.mean, std=workload.std, seed=0)
    arguments = (workload.x, streams, 0, rows, 100_000, smooth.noise_sigma, 0, PHASE_ESTIMATION, smooth.mean,
                 smooth.std)
    assert noise_mismatch(smooth.backend.noise_normalize(*arguments), reference.noise_normalize(*arguments)) <= 0
    normals = rows * workload.x[0].numel()
    kernel_rounds = 20 if full_size else 1
    medians = _alternating_medians(dict(
        kernel=lambda: smooth.backend.noise_normalize(*arguments),
        reference=lambda: reference.noise_normalize(*arguments),
        randn=lambda: torch.randn(rows, *workload.x.shape[1:])), kernel_rounds)
    benchmark.pedantic(lambda: smooth.backend.noise_normalize(*arguments), rounds=1)
    record = records.make_record(
        "cpu_noise", model=None, input_shape=workload.x.shape[1:], dtype=torch.float32, batch_size=rows, n=rows,
        backend=smooth.backend.name, normals_per_s=normals / medians["kernel"],
        reference_normals_per_s=normals / medians["reference"], randn_normals_per_s=normals / medians["randn"],
        speedup=medians["reference"] / medians["kernel"], threads=torch.get_num_threads(), cpu=records.cpu_name(),
        rounds=kernel_rounds, seconds=medians)
    benchmark.extra_info.update(record)
    if full_size:
        records.append_records([record], records.results_file(record["device"]))
    assert record["normals_per_s"] > 0



def test_cpu_noise_kernel_each_noise(benchmark, full_size):
    # The compiled CPU kernel per noise on one MNIST batch, the noises taken in turn in each
    # round. Expected: Laplace about as fast as Gaussian (one logarithm per value, as Box-Muller
    # has one per two values plus a sine and cosine), uniform clearly faster (no logarithm).
    workload = _workload("mnist", full_size)
    rows = BATCH if full_size else 100
    streams = torch.zeros(1, dtype=torch.int64)
    smooth = Smooth(workload.model, 10, SIGMA, mean=workload.mean, std=workload.std, seed=0)
    arguments = (workload.x, streams, 0, rows, 100_000, smooth.noise_sigma, 0, PHASE_ESTIMATION, smooth.mean,
                 smooth.std, torch.float32, torch.contiguous_format)
    for noise in NOISES:
        assert noise_mismatch(smooth.backend.noise_normalize(*arguments, noise),
                              reference.noise_normalize(*arguments, noise)) <= 0
    rounds = 20 if full_size else 1
    medians = _alternating_medians({noise: (lambda noise=noise: smooth.backend.noise_normalize(*arguments, noise))
                                    for noise in NOISES}, rounds)
    benchmark.pedantic(lambda: smooth.backend.noise_normalize(*arguments, "laplace"), rounds=1)
    values = rows * workload.x[0].numel()
    made = [records.make_record(
        "cpu_noise_each", model=None, input_shape=workload.x.shape[1:], dtype=torch.float32, batch_size=rows,
        n=rows, backend=smooth.backend.name, noise=noise, values_per_s=values / medians[noise],
        relative_to_gaussian=medians[noise] / medians["gaussian"], threads=torch.get_num_threads(),
        cpu=records.cpu_name(), rounds=rounds, seconds=medians[noise]) for noise in NOISES]
    benchmark.extra_info.update(made[1])
    if full_size:
        records.append_records(made, records.results_file(made[0]["device"]))
    assert all(record["values_per_s"] > 0 for record in made)


def test_cpu_sound_mode_against_float_mode(benchmark, full_size):
    # Sound mode on the bundled MNIST CNN against float mode, in turn each round: the compiled
    # kernels alone on one batch, and Smooth.sample_counts end to end (the goal: at most
    # 10% slower). Expected: the sound kernel about as fast as Box-Muller per value (one Philox
    # block per two values and an 11-step search where Gaussian has a logarithm, a square root,
    # sine and cosine per two), so end to end within a few percent.
    from rsengine import sound

    workload = _workload("mnist", full_size)
    rows = BATCH if full_size else 100
    streams = torch.zeros(1, dtype=torch.int64)
    engines = {mode: Smooth(workload.model, 10, SIGMA, mean=workload.mean, std=workload.std, seed=0,
                            sound=mode == "sound") for mode in ("float", "sound")}
    float_engine = engines["float"]
    pixels = sound.to_grid(workload.x)
    table = sound.noise_table(float_engine.noise_sigma)
    sound_args = (pixels, streams, 0, rows, 100_000, table.signed_thresholds(), table.support, 0, PHASE_ESTIMATION,
                  float_engine.mean, float_engine.std)
    got, escaped = float_engine.backend.sound_noise_normalize(*sound_args)
    want, want_escaped = sound.sound_noise_normalize(*sound_args)
    assert int(escaped.sum()) == int(want_escaped.sum()) == 0
    assert (got - want).abs().max() <= 1e-5  # normalized: the kernel's fma against (x - mean) / std
    float_args = (workload.x, streams, 0, rows, 100_000, float_engine.noise_sigma, 0, PHASE_ESTIMATION,
                  float_engine.mean, float_engine.std)
    n = workload.n
    calls = {
        "float_kernel": lambda: float_engine.backend.noise_normalize(*float_args),
        "sound_kernel": lambda: float_engine.backend.sound_noise_normalize(*sound_args),
        "float_engine": lambda: engines["float"].sample_counts(workload.x, n, batch_size=BATCH, streams=[0]),
        "sound_engine": lambda: engines["sound"].sample_counts(workload.x, n, batch_size=BATCH, streams=[0]),
    }
    assert calls["sound_engine"]().sum() == n and calls["float_engine"]().sum() == n
    medians = _alternating_medians(calls, 20 if full_size else 1)
    benchmark.pedantic(calls["sound_engine"], rounds=1)
    values = rows * workload.x[0].numel()
    record = records.make_record(
        "cpu_sound", model=workload.arch, input_shape=workload.x.shape[1:], dtype=torch.float32, batch_size=BATCH,
        n=n, backend=float_engine.backend.name, kernel_values_per_s=values / medians["sound_kernel"],
        kernel_relative_to_gaussian=medians["sound_kernel"] / medians["float_kernel"],
        samples_per_s=n / medians["sound_engine"], float_samples_per_s=n / medians["float_engine"],
        relative_to_float=medians["sound_engine"] / medians["float_engine"], threads=torch.get_num_threads(),
        cpu=records.cpu_name(), rounds=20 if full_size else 1, seconds=medians)
    benchmark.extra_info.update(record)
    if full_size:
        records.append_records([record], records.results_file(record["device"]))
    assert record["samples_per_s"] > 0
