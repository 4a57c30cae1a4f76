"""Scale-out on the CPU: a 2-rank torchrun job (one thread each) against one rank (one thread).

The workload is the embedded default's (the bundled MNIST CNN, sigma 0.25, n0 = 100, N = 10,000,
the automatic CPU batch) on 100 inputs (every 10th of the first 1,000). Both runs are the same
command under ``torchrun --standalone`` with ``--nproc-per-node`` 1 and 2 and OMP_NUM_THREADS=1,
taken in turn for ROUNDS rounds (medians), so start-up costs the same on both sides and drift
hits both alike. Figures:

- wall time of each whole command (interpreter start, imports, rendezvous, the run) and their
  ratio (goal: 2 ranks at most 0.6x one rank);
- coordination: rank 0's rendezvous (joining the process group) and merging (its time at the
  per-round exchanges of rows, less its wait for slower ranks' chunks), as a share of the 2-rank
  wall time (goal: under 2%); the wait itself (load imbalance) is reported beside it.

Correctness first: the 2-rank file must hold the 1-rank file's rows (time aside) before anything
is reported. In the test suite (benchmarks disabled) it runs 6 inputs at N = 200 and records
nothing; with ``--benchmark-enable`` on a machine without a GPU it runs full size and appends a
``cpu_scaleout`` record to ``bench/results/cpu_<date>.json``. On a GPU machine it needs two GPUs
(ranks = GPUs), which the lent machines do not have; it is skipped there.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

import pytest
import torch

import records
from conftest import ON_GPU, env_int
from rsengine.checkpoints import bundled_checkpoint
from rsengine.sampler import cpu_batch_size

ROUNDS = env_int("RSENGINE_BENCH_SCALEOUT_ROUNDS", 2)
_COORDINATION = re.compile(r"(\d+) ranks?: rendezvous ([0-9.]+) s, merging rows ([0-9.]+) s, "
                           r"waiting for slower ranks ([0-9.]+) s, run ([0-9.]+) s")


def _job(ranks: int, out, n: int, stop: int) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               "-m", "rsengine", "--", "certify", "mnist", bundled_checkpoint(), "0.25", str(out), "--skip", "10",
               "--max", str(stop), "--N", str(n), "--overwrite"]
    began = time.perf_counter()
    job = subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                         timeout=1800)
    wall = time.perf_counter() - began
    assert job.returncode == 0, job.stderr
    found = _COORDINATION.search(job.stderr)
    assert found and int(found[1]) == ranks, job.stderr
    rendezvous, merging, waiting, run = map(float, found.groups()[1:])
    return dict(wall=wall, rendezvous=rendezvous, merging=merging, waiting=waiting, run=run)


def _rows_without_time(path):
    return [line.rsplit("\t", 1)[0] for line in open(path).read().splitlines()]


@pytest.mark.skipif(ON_GPU and torch.cuda.device_count() < 2, reason="ranks = GPUs: needs two GPUs")
def test_scaleout_two_ranks_against_one(benchmark, tmp_path):
    full = not ON_GPU and not benchmark.disabled
    n, stop = (10_000, 1000) if full else (200, 60)
    inputs = len(range(0, stop, 10))
    one, two = tmp_path / "one.tsv", tmp_path / "two.tsv"
    runs = {1: [], 2: []}
    for _ in range(ROUNDS if full else 1):
        runs[1].append(_job(1, one, n, stop))
        runs[2].append(_job(2, two, n, stop))
        assert _rows_without_time(two) == _rows_without_time(one) and len(_rows_without_time(one)) == inputs + 1
    benchmark.pedantic(lambda: None, rounds=1)
    median = {ranks: {key: statistics.median(run[key] for run in done) for key in done[0]}
              for ranks, done in runs.items()}
    coordination = median[2]["rendezvous"] + median[2]["merging"]
    record = records.make_record(
        "cpu_scaleout", model="mnist_cnn", input_shape=(1, 28, 28), dtype=torch.float32,
        batch_size=cpu_batch_size(784), n=n, inputs=inputs, ranks=2, threads=1, cpu=records.cpu_name(),
        one_rank_wall_s=median[1]["wall"], two_rank_wall_s=median[2]["wall"],
        wall_ratio=median[2]["wall"] / median[1]["wall"], speedup=median[1]["wall"] / median[2]["wall"],
        rendezvous_s=median[2]["rendezvous"], merging_s=median[2]["merging"], waiting_s=median[2]["waiting"],
        coordination_share=coordination / median[2]["wall"], rounds=len(runs[1]), one_rank_runs=runs[1],
        two_rank_runs=runs[2])
    benchmark.extra_info.update(record)
    if full:
        records.append_records([record], records.results_file(record["device"]))
    assert record["wall_ratio"] > 0
