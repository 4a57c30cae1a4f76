"""Adaptive certification against the fixed n = 100,000 run, on the embedded default: samples and answers.

The goals (issue "anytime-valid adaptive certification"): at r = 0.5 with a budget of 100,000,
at least 50x fewer samples per input than the fixed run, with certified accuracy at r no lower
than the fixed run's minus 0.02; in tolerance mode with t = 0.05, at least 2x fewer samples with
a mean radius loss of at most 0.05 (fixed radius minus adaptive radius, abstentions as 0).
Samples are device-independent, so a CPU run measures them; wall time counts only on a GPU.

Every run uses the real engine on the bundled MNIST CNN (every 3rd held-out image, 334 inputs,
sigma = 0.25, alpha = 0.001, n0 = 100, seed 0, input i on stream i). The fixed run's rows are
``certify_from_counts`` of its selection and estimation counts, exactly what ``rsengine certify
--N 100000`` computes; they take 25 minutes on 2 CPU cores, so ``--fixed-counts`` can reuse a
file this script saved (``--save-fixed-counts``).

Usage:
    python bench/adaptive_goals.py [--fixed-counts F.npz | --save-fixed-counts F.npz] [--out DIR]
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from rsengine import Smooth
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import load_dataset
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION
from rsengine.stats import ABSTAIN, certify_from_counts

N0, BUDGET, ALPHA, SIGMA, SKIP = 100, 100_000, 0.001, 0.25, 3
RADIUS, TOLERANCE = 0.5, 0.05
OUT = Path(__file__).resolve().parent / "results" / "adaptive"


def _setup():
    checkpoint = load_checkpoint(bundled_checkpoint())
    dataset = load_dataset("mnist", "test")
    indices = list(range(0, len(dataset), SKIP))
    xs = torch.stack([dataset[i][0] for i in indices])
    labels = np.array([dataset[i][1] for i in indices])
    smooth = Smooth(checkpoint.model.eval(), 10, SIGMA, mean=checkpoint.mean, std=checkpoint.std, seed=0)
    return smooth, xs, labels, np.array(indices)


def _fixed_counts(smooth, xs, streams):
    selection = smooth.sample_counts(xs, N0, PHASE_SELECTION, streams=streams)
    estimation = np.concatenate([smooth.sample_counts(xs[j:j + 10], BUDGET, PHASE_ESTIMATION, streams=streams[j:j + 10])
                                 for j in range(0, len(streams), 10)])
    return selection, estimation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed-counts", type=Path, help="reuse the fixed run's counts saved earlier")
    parser.add_argument("--save-fixed-counts", type=Path, help="save the fixed run's counts here")
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args()
    torch.manual_seed(0)
    smooth, xs, labels, streams = _setup()
    if opts.fixed_counts:
        saved = np.load(opts.fixed_counts)
        assert (saved["idx"] == streams).all(), "the counts belong to other inputs"
        selection, estimation, fixed_seconds = saved["sel"], saved["est"], None
    else:
        started = time.perf_counter()
        selection, estimation = _fixed_counts(smooth, xs, streams)
        fixed_seconds = time.perf_counter() - started
        if opts.save_fixed_counts:
            np.savez(opts.save_fixed_counts, idx=streams, labels=labels, sel=selection, est=estimation)
    guess = selection.argmax(axis=1)
    fixed_pred, fixed_radius = certify_from_counts(guess, estimation[np.arange(len(guess)), guess], BUDGET, ALPHA, SIGMA)
    fixed_samples = N0 + BUDGET

    record = dict(benchmark="adaptive_goals", device="cpu", date=datetime.date.today().isoformat(),
                  commit=subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
                  inputs=len(streams), n0=N0, budget=BUDGET, alpha=ALPHA, sigma=SIGMA, fixed_samples=fixed_samples,
                  fixed_seconds=fixed_seconds)
    for mode, question in (("radius", dict(radius=RADIUS)), ("tolerance", dict(tolerance=TOLERANCE))):
        started = time.perf_counter()
        pred, radius, samples = smooth.certify_batch(xs, N0, BUDGET, ALPHA, streams=streams, adaptive=True, **question)
        seconds = time.perf_counter() - started
        figures = dict(mean_samples=float(samples.mean()), max_samples=int(samples.max()),
                       fewer_samples=fixed_samples / float(samples.mean()), seconds=seconds)
        if mode == "radius":
            figures.update(certified_accuracy=float(((pred == labels) & (radius >= RADIUS)).mean()),
                           fixed_certified_accuracy=float(((fixed_pred == labels) & (fixed_radius >= RADIUS)).mean()),
                           answers_differ=int(((pred != ABSTAIN) != ((fixed_pred != ABSTAIN) & (fixed_radius >= RADIUS))).sum()))
        else:
            loss = fixed_radius - radius
            figures.update(mean_radius_loss=float(loss.mean()), max_radius_loss=float(loss.max()),
                           mean_radius=float(radius.mean()), fixed_mean_radius=float(fixed_radius.mean()))
        record[mode] = figures
        print(mode, json.dumps(figures))
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / f"cpu_{record['date']}.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*runs, record], indent=1) + "\n")
    print(f"record appended to {path}")


if __name__ == "__main__":
    main()
