"""A data-set run against ``certify_batch`` of the same inputs at once.

The goal (issue "rsengine as a library backend"): a data-set run, through the API
(``certify_dataset``, its results file written row by row) and through the CLI, within 10% of
``certify_batch`` on the same inputs at once (the CLI's start-up alone: ``bench/startup.py``). The
workload is the one the issue measured: 20 held-out digits of the embedded default (every 3rd,
the bundled CNN, sigma = 0.25, N0 = 100, N = 10,000, channels_last, the automatic batch size),
seed 0, input i on stream i. The three ways alternate, round after round, in one process (the
CLI as a subprocess, whose wall time includes its start-up) and the minimum of each is reported,
with the instruction set and thread count (CPU ratios depend on them).

Usage:
    python bench/dataset_run.py [--rounds 3] [--write-record]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from records import append_records, cpu_name, make_record, results_file  # noqa: E402

from rsengine import Smooth, certify_dataset  # noqa: E402
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint  # noqa: E402
from rsengine.data import load_dataset  # noqa: E402
from rsengine.questions import Certify  # noqa: E402

INPUTS, SKIP, SIGMA, N0, N, ALPHA = 20, 3, 0.25, 100, 10_000, 0.001
STOP = INPUTS * SKIP


def _smooth() -> Smooth:
    checkpoint = load_checkpoint(bundled_checkpoint())
    model = checkpoint.model.to(memory_format=torch.channels_last).eval()
    return Smooth(model, 10, SIGMA, mean=checkpoint.mean, std=checkpoint.std, seed=0,
                  memory_format=torch.channels_last)


def _timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-record", action="store_true", help="append a cpu_dataset_run record")
    args = parser.parse_args()
    smooth, dataset = _smooth(), load_dataset("mnist", "test")
    indices = range(0, STOP, SKIP)
    xs = torch.stack([dataset[i][0] for i in indices])
    question = Certify(N0, N, ALPHA)
    smooth.certify_batch(xs[:1], N0, 200, ALPHA, streams=[0])  # warm-up: the CPU kernel's build, the batch size
    times = {"at_once": [], "api": [], "cli": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            times["at_once"].append(_timed(lambda: smooth.certify_batch(xs, N0, N, ALPHA, streams=list(indices))))
            out = os.path.join(folder, f"api{round_}.tsv")
            times["api"].append(_timed(lambda: certify_dataset(smooth, dataset, question, indices, out, quiet=True)))
            cli = [sys.executable, "-m", "rsengine", "certify", "--overwrite"]
            times["cli"].append(_timed(lambda: subprocess.run(cli + ["--max", str(STOP)], cwd=folder, check=True,
                                                              capture_output=True)))
    best = {name: min(values) for name, values in times.items()}
    host = f"{torch.get_num_threads()} threads of {cpu_name()}, {torch.backends.cpu.get_cpu_capability()}"
    print(f"{INPUTS} inputs at N = {N:,}, min of {args.rounds} rounds ({host}):")
    for name, seconds in best.items():
        print(f"  {name:9s} {seconds:6.2f} s  ({seconds / best['at_once']:.2f}x certify_batch at once)")
    if args.write_record:
        samples = INPUTS * (N0 + N)
        record = make_record("cpu_dataset_run", model="mnist_cnn", input_shape=xs.shape[1:], dtype=torch.float32,
                             batch_size=smooth._sampler.batch_size(xs, samples), n=N, inputs=INPUTS,
                             at_once_s=best["at_once"], api_s=best["api"], cli_s=best["cli"],
                             api_ratio=best["api"] / best["at_once"],
                             cli_ratio=best["cli"] / best["at_once"], rounds=args.rounds,
                             threads=torch.get_num_threads(), cpu=cpu_name(),
                             cpu_capability=torch.backends.cpu.get_cpu_capability())
        print(f"recorded in {append_records([record], results_file('cpu'))}")


if __name__ == "__main__":
    main()
