"""End-to-end benchmarks: samples per second, seconds per certificate, and the engine's overhead.

For each workload (ResNet-50 at 3x224x224, CIFAR ResNet-110 at 3x32x32 on a GPU):

- the engine (fused Triton kernels, bf16, channels_last) counting ``n = batch x batches``
  estimation samples of one input, timed end to end (``Smooth.sample_counts``: noise, forward,
  votes, the final read of the counts);
- in the same run, the original-style loop (fp32, repeat + randn_like, argmax().cpu() and host
  counting per batch) and a plain-PyTorch bf16 channels_last loop with device-side counts, so
  that the engine's own contribution is visible apart from bf16's;
- seconds per n = 100k certificate: the measured n0 = 100 selection phase plus 100,000 samples at
  the measured rate; ``derived`` says whether the 100,000 were extrapolated from fewer samples.
- the engine's overhead: the share of its wall time spent outside the classifier's forward pass,
  1 - (the same forwards on one pre-generated batch) / (the engine's whole call).

Correctness first: the engine's counts for a fixed seed and stream must sum to n for the input
(and the baseline loops' to theirs) before anything is timed; those calls are the warm-up too.
"""
import numpy as np
import torch

import baseline
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION

CERTIFICATE_N0 = 100
CERTIFICATE_N = 100_000


def _engine_counts(smooth, workload, n: int, phase: int = PHASE_ESTIMATION) -> np.ndarray:
    # Stream 0 every call: the same noise each round, as a benchmark should.
    return smooth.sample_counts(workload.x, n, phase=phase, batch_size=workload.scenario.batch_size, streams=[0])


def test_end_to_end_samples_per_second(benchmark, workload, smooth, timer, recorder):
    scenario = workload.scenario
    x, sigma, num_classes = workload.x[0], smooth.sigma, scenario.num_classes

    counts = _engine_counts(smooth, workload, scenario.n)
    assert counts.shape == (1, num_classes) and counts.sum(axis=1).tolist() == [scenario.n]
    engine = timer.timed(lambda: _engine_counts(smooth, workload, scenario.n))
    benchmark.pedantic(engine, rounds=scenario.rounds)
    engine_s = engine.median_of_last(scenario.rounds)
    selection_s = timer.median_s(lambda: _engine_counts(smooth, workload, CERTIFICATE_N0, PHASE_SELECTION),
                                 warmup=1, rounds=scenario.rounds)

    def original():
        return baseline.original_counts(workload.fp32_model, x, scenario.baseline_n, sigma,
                                        scenario.baseline_batch_size, num_classes, scenario.mean, scenario.std)

    def plain():
        return baseline.plain_counts(workload.engine_model, x, scenario.n, sigma, scenario.batch_size,
                                          num_classes, scenario.mean, scenario.std)

    assert int(original().sum()) == scenario.baseline_n
    original_s = timer.median_s(original, warmup=0, rounds=scenario.rounds)
    assert int(plain().sum()) == scenario.n
    plain_s = timer.median_s(plain, warmup=0, rounds=scenario.rounds)

    samples_per_s = scenario.n / engine_s
    baseline_samples_per_s = scenario.baseline_n / original_s
    record = recorder(
        "end_to_end", model=scenario.arch, input_shape=scenario.input_shape, dtype=smooth.dtype,
        batch_size=scenario.batch_size, n=scenario.n,
        memory_format="channels_last", backend=smooth.backend.name,
        samples_per_s=samples_per_s, baseline_samples_per_s=baseline_samples_per_s,
        speedup=samples_per_s / baseline_samples_per_s,
        plain_bf16_samples_per_s=scenario.n / plain_s,
        baseline_dtype="float32", baseline_batch_size=scenario.baseline_batch_size, baseline_n=scenario.baseline_n,
        selection_s=selection_s, s_per_100k_certificate=selection_s + CERTIFICATE_N / samples_per_s,
        derived=scenario.n != CERTIFICATE_N, batches_timed=scenario.batches, rounds=scenario.rounds,
        cudnn_benchmark=torch.backends.cudnn.benchmark, cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
    )
    assert record["samples_per_s"] > 0 and record["baseline_samples_per_s"] > 0
    assert len(recorder.written) == int(recorder.write)  # one file on a GPU, nothing on a CPU


def test_engine_overhead_share_of_wall_time(benchmark, workload, smooth, timer, recorder):
    scenario = workload.scenario
    model = workload.engine_model
    streams = torch.zeros(1, dtype=torch.int64, device=workload.x.device)
    batch = smooth.backend.noise_normalize(workload.x, streams, 0, scenario.batch_size, scenario.n, smooth.sigma,
                                           smooth.seed, PHASE_ESTIMATION, smooth.mean, smooth.std, smooth.dtype,
                                           smooth.memory_format)

    def forward_only():
        with torch.inference_mode():
            for _ in range(scenario.batches):
                model(batch)

    assert _engine_counts(smooth, workload, scenario.n).sum() == scenario.n
    engine = timer.timed(lambda: _engine_counts(smooth, workload, scenario.n))
    benchmark.pedantic(engine, rounds=scenario.rounds)
    total_s = engine.median_of_last(scenario.rounds)
    forward_s = timer.median_s(forward_only, warmup=1, rounds=scenario.rounds)

    # Not clamped: a negative share means the two timings are within each other's noise.
    record = recorder(
        "engine_overhead", model=scenario.arch, input_shape=scenario.input_shape, dtype=smooth.dtype,
        batch_size=scenario.batch_size, n=scenario.n, memory_format="channels_last", backend=smooth.backend.name,
        overhead_share=1 - forward_s / total_s, total_s=total_s, forward_s=forward_s,
        samples_per_s=scenario.n / total_s, forward_samples_per_s=scenario.n / forward_s,
        batches_timed=scenario.batches, rounds=scenario.rounds,
    )
    assert record["forward_samples_per_s"] > 0


def test_sound_mode_end_to_end_against_float_mode(benchmark, workload, smooth, timer, recorder):
    # Sound mode (integer noise on the 1/255 grid) against float mode on the same classifier and
    # input (quantized to the grid), rounds alternating. The goal: at most 10% slower.
    # The sound kernel costs more per element than the Gaussian one; what moves the ratio is that
    # cost's share of a forward pass (small for ResNet-50, larger for the small CIFAR network).
    from rsengine import Smooth

    scenario = workload.scenario
    x = (workload.x * 255).round() / 255
    sound_smooth = Smooth(workload.engine_model, scenario.num_classes, smooth.sigma, mean=scenario.mean, std=scenario.std,
                          seed=0, backend=smooth.backend.name, memory_format=torch.channels_last, sound=True)

    def counts(engine):
        return engine.sample_counts(x, scenario.n, batch_size=scenario.batch_size, streams=[0])

    assert counts(sound_smooth).sum() == scenario.n and counts(smooth).sum() == scenario.n  # warm-up too
    seconds = {"float": [], "sound": []}
    for _ in range(scenario.rounds):
        seconds["float"].append(timer.median_s(lambda: counts(smooth), warmup=0, rounds=1))
        seconds["sound"].append(timer.median_s(lambda: counts(sound_smooth), warmup=0, rounds=1))
    benchmark.pedantic(timer.timed(lambda: counts(sound_smooth)), rounds=1)
    float_s, sound_s = float(np.median(seconds["float"])), float(np.median(seconds["sound"]))
    record = recorder(
        "end_to_end_sound", model=scenario.arch, input_shape=scenario.input_shape, dtype=smooth.dtype,
        batch_size=scenario.batch_size, n=scenario.n, memory_format="channels_last", backend=smooth.backend.name,
        samples_per_s=scenario.n / sound_s, float_samples_per_s=scenario.n / float_s,
        relative_to_float=sound_s / float_s, rounds=scenario.rounds,
    )
    assert record["samples_per_s"] > 0
