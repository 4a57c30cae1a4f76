"""What top-k's upper bounds at alpha/(2(k+1)) instead of alpha/(2K) give (issue 12, top-k).

``certify_top_k`` bounds every class's count at alpha/(2(k+1)): only the k + 1 truly largest
classes' bounds must hold (``rsengine/certificates.py``). The split it replaced, alpha/(2K), is
``_top_k_radii(..., num_uppers=K)``; both radii come from the same counts. Two settings, each
printed as a markdown table:

1. The embedded default (``rsengine certify`` with no arguments): the bundled MNIST CNN, 334
   inputs, sigma = 0.25, n0 = 100, n = 10,000, alpha = 0.001, seed 0, with the selection and
   estimation counts of ``two_sided_gain.embedded_counts`` (``Smooth.sample_counts``, the calls
   and streams ``certify_topk_batch`` uses), for k = 2 and 3. "True class's radius" is what
   ``rsengine certify --top-k`` writes (before its rounding to 3 digits): the true class's
   radius where it is a label and certified, else none. Sampling takes 2 to 5 minutes on 2 CPU
   cores.
2. ImageNet's K = 1000 at n = 100,000, alpha = 0.001, k = 5, sigma = 0.5: hand-made count rows
   (a label's votes, its 5 largest others, the rest spread evenly over the other 994 classes),
   to show the size of the change where K is large. Not a measurement of a real model.

Usage:
    python bench/top_k_gain.py [--inputs M]
"""
from __future__ import annotations

import argparse

import numpy as np

from rsengine.certificates import _top_k_radii, certify_top_k
from rsengine.options import EMBEDDED_DEFAULT, SAMPLING_DEFAULTS
from two_sided_gain import EMBEDDED_RADII, embedded_counts

SYNTHETIC = {"K": 1000, "n": 100_000, "alpha": 0.001, "k": 5, "sigma": 0.5}
# (label's votes, its 5 largest others' votes): the rest go evenly to the other 994 classes.
SYNTHETIC_ROWS = [(99_000, (200, 100, 50, 20, 10)), (80_000, (5_000, 2_000, 1_000, 500, 100)),
                  (50_000, (20_000, 10_000, 5_000, 2_000, 1_000)), (30_000, (25_000, 20_000, 10_000, 5_000, 10)),
                  (100_000, (0, 0, 0, 0, 0))]


def _true_class_radius(labels: np.ndarray, radii: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[M] the true class's radius where it is a certified label, else -1 (as the CLI's row -1)."""
    hit = labels == truth[:, None]
    radius = (radii * hit).sum(axis=1)
    return np.where(hit.any(axis=1) & (radius > 0), radius, -1.0)


def _accuracy(radius: np.ndarray) -> str:
    return " / ".join(f"{np.mean(radius >= r):.3f}" for r in EMBEDDED_RADII)


def _gain(gain: np.ndarray) -> str:
    return f"{gain.mean():+.4f} / {np.median(gain):+.4f} / {gain.max():+.4f}" if gain.size else "none"


def embedded_default(inputs: int | None) -> tuple[str, str]:
    n, alpha, sigma = EMBEDDED_DEFAULT["N"], SAMPLING_DEFAULTS["alpha"], EMBEDDED_DEFAULT["sigma"]
    _, truth, selection, counts, seconds = embedded_counts(inputs)
    num_classes = counts.shape[1]
    lines = ["| k | labels' radii larger / equal / smaller | gain where larger: mean / median / max "
             "| true class's radius where both certify it, mean old -> new | certified top-k accuracy at r = "
             f"{' / '.join(map(str, EMBEDDED_RADII))}, old | new |",
             "| --- | --- | --- | --- | --- | --- |"]
    for k in (2, 3):
        labels, new = certify_top_k(selection, counts, k, n, alpha, sigma)
        old = _top_k_radii(labels, counts, n, alpha, sigma, num_classes)
        gain = (new - old)[new > old]
        true_old, true_new = _true_class_radius(labels, old, truth), _true_class_radius(labels, new, truth)
        listed = (true_new >= 0) & (true_old >= 0)
        lines.append(
            f"| {k} | {(new > old).sum()} / {(new == old).sum()} / {(new < old).sum()} "
            f"| {_gain(gain)} "
            f"| {true_old[listed].mean():.4f} -> {true_new[listed].mean():.4f} "
            f"| {_accuracy(true_old)} | {_accuracy(true_new)} |")
    title = (f"Embedded default: {len(truth)} inputs, K = {num_classes}, sigma = {sigma}, n = {n}, "
             f"alpha = {alpha} (sampling {seconds:.0f} s); old split alpha/{2 * num_classes}, "
             f"new alpha/6 (k = 2) and alpha/8 (k = 3)")
    return title, "\n".join(lines)


def synthetic() -> tuple[str, str]:
    K, n, alpha, k, sigma = (SYNTHETIC[key] for key in ("K", "n", "alpha", "k", "sigma"))
    rows = []
    for votes, others in SYNTHETIC_ROWS:
        rest = n - votes - sum(others)
        spread = np.full(K - 1 - len(others), rest // (K - 1 - len(others)))
        spread[: rest % len(spread)] += 1
        rows.append(np.r_[votes, others, spread])
    counts = np.array(rows, dtype=np.int64)
    selection = np.zeros_like(counts)
    selection[:, : k] = np.arange(k, 0, -1)  # the labels: class 0 (the row's label) and its 4 largest others
    labels, new = certify_top_k(selection, counts, k, n, alpha, sigma)
    old = _top_k_radii(labels, counts, n, alpha, sigma, K)
    lines = ["| label's votes | its 5 largest others | radius, old split (alpha/2000) | new (alpha/12) | gain |",
             "| ---: | --- | ---: | ---: | ---: |"]
    for (votes, others), before, after in zip(SYNTHETIC_ROWS, old[:, 0], new[:, 0]):
        lines.append(f"| {votes:,} | {', '.join(f'{o:,}' for o in others)} | {before:.4f} | {after:.4f} "
                     f"| {after - before:+.4f} |")
    return f"K = {K}, n = {n:,}, alpha = {alpha}, k = {k}, sigma = {sigma} (hand-made rows)", "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=None, help="only the first M inputs (default: all 334)")
    args = parser.parse_args()
    for title, table in (embedded_default(args.inputs), synthetic()):
        print(f"{title}\n\n{table}\n")


if __name__ == "__main__":
    main()
