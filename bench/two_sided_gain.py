"""How often the two-sided certificate beats the one-sided one, and by how much (issue 12, item 3).

Two settings, each printed as a markdown table:

1. The embedded default (``rsengine certify`` with no arguments): the bundled MNIST CNN, every
   3rd held-out image (334 inputs), sigma = 0.25, n0 = 100, n = 10,000, alpha = 0.001, seed 0,
   input i on stream i, channels_last, as ``rsengine.commands`` builds it. The selection and
   estimation counts come from ``Smooth.sample_counts``, the same call and streams
   ``certify_batch`` uses, and both radii are computed from the same counts:
   ``certify_one_sided`` (what ``rsengine certify`` writes, before its rounding to 3 digits) and
   ``certify_two_sided``. About a minute on 2 CPU cores.

2. The reference results' settings (../shared/reference-results/certify: the original code's
   CIFAR-10 ResNet-110 and ImageNet ResNet-50 files, n = 100,000, sigma from the file name).
   alpha: 0.001 as the paper and the code's default say where every printed radius is one
   alpha = 0.001 can print, else 0.01 (9 of the 13 files print radii only 0.01 can, e.g. 0.978 =
   0.25 x 3.91 where 0.001 stops at 0.25 x 3.81); the two-sided certificate is computed at the
   file's alpha. They hold no runner-up counts, so each row is bracketed. nA: every count whose
   one-sided radius, printed as the original printed it (``{:.3}`` of sigma PhiInv of
   statsmodels' Clopper-Pearson bound), is the row's radius; an abstention is every nA whose
   bound is below 1/2 (its best case: the largest). nB, the runner-up's count, lies between
   ceil((n - nA)/(K - 1)), the other votes spread evenly over the K - 1 classes (the most the
   two-sided certificate can gain; nB = 0 is impossible below nA = n), and n - nA, one other
   class holding them all (then the two-sided certificate is the one-sided one at alpha/2: it
   never gains). "could gain" counts rows where the best case over the bracket beats the row's
   radius; "break-even share" is the largest nB / (n - nA) at which the two-sided radius still
   reaches the one-sided one (median over the rows that could gain, at the nA of their largest
   gain). Certified accuracy is the fraction of rows with correct = 1 and radius >= r: the
   file's, and the two-sided at best and at worst; abstentions (class unknown) the two-sided
   certificate could certify are counted apart. About 15 seconds.

Usage:
    python bench/two_sided_gain.py [--inputs M] [--reference DIR]
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from rsengine import Smooth
from rsengine.certificates import certify_one_sided, certify_two_sided
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import dataset_num_classes, load_dataset
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION
from rsengine.options import EMBEDDED_DEFAULT, SAMPLING_DEFAULTS
from rsengine.results import read_results

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference-results" / "certify"
REFERENCE_N = 100_000
# The alpha the original code states (0.001) first: most files print only radii of alpha = 0.01.
REFERENCE_ALPHAS = (0.001, 0.01)
REFERENCE_CLASSES = {"cifar10": 10, "imagenet": 1000}
EMBEDDED_RADII = (0.0, 0.25, 0.5, 0.75)
REFERENCE_RADII = (0.25, 0.5, 1.0, 2.0)


def _accuracy(correct, radius, radii) -> str:
    return " / ".join(f"{np.mean(correct & (radius >= r)):.3f}" for r in radii)


# --- 1. the embedded default ---------------------------------------------------------------------


def embedded_counts(inputs: int | None):
    """``(streams, labels, selection, counts, seconds)`` of the embedded default's first ``inputs``
    inputs: ``selection`` [M, K] the n0 selection votes, ``counts`` [M, K] the n estimation votes."""
    n0, n = SAMPLING_DEFAULTS["N0"], EMBEDDED_DEFAULT["N"]
    sigma, dataset_name = EMBEDDED_DEFAULT["sigma"], EMBEDDED_DEFAULT["dataset"]
    checkpoint = load_checkpoint(bundled_checkpoint())
    dataset = load_dataset(dataset_name, SAMPLING_DEFAULTS["split"])
    streams = np.arange(0, len(dataset), EMBEDDED_DEFAULT["skip"])[:inputs]
    xs = torch.stack([dataset[int(i)][0] for i in streams])
    labels = np.array([dataset[int(i)][1] for i in streams])
    memory_format = torch.channels_last if EMBEDDED_DEFAULT["channels_last"] else torch.contiguous_format
    model = checkpoint.model.to(memory_format=memory_format).eval()
    smooth = Smooth(model, dataset_num_classes(dataset_name), sigma, mean=checkpoint.mean, std=checkpoint.std,
                    seed=SAMPLING_DEFAULTS["seed"], memory_format=memory_format)
    started = time.perf_counter()
    selection = smooth.sample_counts(xs, n0, PHASE_SELECTION, streams=streams)
    counts = smooth.sample_counts(xs, n, PHASE_ESTIMATION, streams=streams)
    return streams, labels, selection, counts, time.perf_counter() - started


def embedded_default(inputs: int | None) -> tuple[str, str]:
    n0, n, alpha = SAMPLING_DEFAULTS["N0"], EMBEDDED_DEFAULT["N"], SAMPLING_DEFAULTS["alpha"]
    sigma, dataset_name = EMBEDDED_DEFAULT["sigma"], EMBEDDED_DEFAULT["dataset"]
    streams, labels, selection, counts, seconds = embedded_counts(inputs)
    guess = selection.argmax(axis=1)
    rows = np.arange(len(guess))
    n_a = counts[rows, guess]
    one_pred, one = certify_one_sided(guess, n_a, n, alpha, sigma)
    two_pred, two = certify_two_sided(guess, counts, n, alpha, sigma)
    gain = two - one
    helped = two > one
    others = counts.copy()
    others[rows, guess] = -1
    share = others.max(axis=1)[n_a < n] / (n - n_a[n_a < n])  # the runner-up's share of the other votes
    cells = [
        ("inputs", f"{len(guess)} (streams 0, {EMBEDDED_DEFAULT['skip']}, ..., {streams[-1]}); "
                   f"sampling {seconds:.0f} s"),
        ("certified one-sided / two-sided", f"{(one_pred >= 0).sum()} / {(two_pred >= 0).sum()}"),
        ("two-sided > one-sided", f"{helped.sum()} ({helped.mean():.1%})"),
        ("two-sided < one-sided", f"{(two < one).sum()} ({(two < one).mean():.1%})"),
        ("gain two - one, all inputs: mean / median / min / max",
         f"{gain.mean():+.4f} / {np.median(gain):+.4f} / {gain.min():+.4f} / {gain.max():+.4f}"),
        ("gain where it helps: mean / median / max",
         (f"{gain[helped].mean():+.4f} / {np.median(gain[helped]):+.4f} / {gain[helped].max():+.4f}"
          if helped.any() else "none")),
        ("nA of inputs it helps: min / median / max",
         (f"{n_a[helped].min()} / {np.median(n_a[helped]):.0f} / {n_a[helped].max()}" if helped.any() else "none")),
        ("nA = n (every vote on the top class; two-sided loses there)", f"{(n_a == n).sum()}"),
        ("runner-up share nB / (n - nA) where nA < n: median / max",
         f"{np.median(share):.2f} / {share.max():.2f}" if len(share) else "none"),
        (f"certified accuracy one-sided at r = {' / '.join(map(str, EMBEDDED_RADII))}",
         _accuracy(one_pred == labels, one, EMBEDDED_RADII)),
        (f"certified accuracy two-sided at r = {' / '.join(map(str, EMBEDDED_RADII))}",
         _accuracy(two_pred == labels, two, EMBEDDED_RADII)),
    ]
    title = (f"Embedded default: {dataset_name}, sigma = {sigma}, n0 = {n0}, n = {n}, alpha = {alpha}, "
             f"seed {SAMPLING_DEFAULTS['seed']}")
    return title, "\n".join(["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in cells])


# --- 2. the reference results --------------------------------------------------------------------


def _printed_radii(n: int, alpha: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """For every nA in [0, n]: the radius the original code printed (``{:.3}``; 0.0: abstain) and nA."""
    n_a = np.arange(n + 1)
    p_lower = proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
    with np.errstate(divide="ignore"):
        radius = np.where(p_lower < 0.5, 0.0, sigma * norm.ppf(p_lower))
    return np.array([float(f"{r:.3}") for r in radius]), n_a


def _table(n_a: np.ndarray, n_b: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """[M, K'] counts rows (K' <= K): nA, then nB, then the rest in pieces of at most nB."""
    rest = n - n_a - n_b
    pieces = np.where(n_b > 0, -(-rest // np.maximum(n_b, 1)), 0)
    assert (pieces <= num_classes - 2).all(), "nB below the even spread"
    width = 2 + max(int(pieces.max(initial=0)), 1)
    j = np.arange(width - 2)
    spread = np.clip(rest[:, None] - j[None, :] * n_b[:, None], 0, n_b[:, None])
    return np.c_[n_a, n_b, spread]


def _two_sided(n_a, n_b, n, alpha, sigma, num_classes, chunk=4096) -> np.ndarray:
    radii = [certify_two_sided(np.zeros(len(n_a[i:i + chunk]), dtype=np.int64),
                               _table(n_a[i:i + chunk], n_b[i:i + chunk], n, num_classes), n, alpha, sigma)[1]
             for i in range(0, len(n_a), chunk)]
    return np.concatenate(radii) if radii else np.zeros(0)


def _even_spread(n_a, n, num_classes):
    return -(-(n - n_a) // (num_classes - 1))


def _break_even_share(n_a, n, alpha, sigma, num_classes) -> np.ndarray:
    """Largest nB / (n - nA) whose two-sided radius is >= the one-sided one (rows that could gain)."""
    target = certify_one_sided(np.zeros(len(n_a), dtype=np.int64), n_a, n, alpha, sigma)[1]
    low, high = _even_spread(n_a, n, num_classes), n - n_a  # two-sided >= one-sided at low, < at high
    while (high - low > 1).any():
        middle = (low + high) // 2
        ok = _two_sided(n_a, middle, n, alpha, sigma, num_classes) >= target
        low, high = np.where(ok, middle, low), np.where(ok, high, middle)
    return low / (n - n_a)


def reference_file(path: Path, printed_cache: dict) -> tuple[str, ...]:
    relative = path.relative_to(REFERENCE)
    dataset = relative.parts[0]
    sigma = float(re.fullmatch(r"sigma_([0-9.]+)", path.name).group(1))
    num_classes, n = REFERENCE_CLASSES[dataset], REFERENCE_N
    table = read_results(str(path))
    radius, correct = np.asarray(table.radius, dtype=np.float64), np.asarray(table.correct) == 1
    for alpha in REFERENCE_ALPHAS:  # the first alpha that can print every radius of the file
        if (sigma, alpha) not in printed_cache:
            printed_cache[sigma, alpha] = _printed_radii(n, alpha, sigma)
        printed, all_n_a = printed_cache[sigma, alpha]
        if np.isin(radius, printed).all():
            break
    else:
        raise ValueError(f"{path}: radii that no alpha of {REFERENCE_ALPHAS} prints at n = {n}")
    abstained = np.asarray(table.predict) == -1
    # Each row's bracket of nA, as a [rows] start and stop into all_n_a (printed is monotone).
    order = np.argsort(printed, kind="stable")
    start = np.searchsorted(printed[order], radius, side="left")
    stop = np.searchsorted(printed[order], radius, side="right")
    bracket = stop - start
    # An abstention's best case is its largest nA: the bound on pA rises and the even spread falls.
    start = np.where(abstained, stop - 1, start)
    row_of = np.repeat(np.arange(len(radius)), stop - start)
    n_a = np.concatenate([all_n_a[order][a:b] for a, b in zip(start, stop)])
    one = certify_one_sided(np.zeros(len(n_a), dtype=np.int64), n_a, n, alpha, sigma)[1]
    best = _two_sided(n_a, _even_spread(n_a, n, num_classes), n, alpha, sigma, num_classes)
    worst = certify_one_sided(np.zeros(len(n_a), dtype=np.int64), n_a, n, alpha / 2, sigma)[1]
    gain = best - one
    first = np.r_[0, np.cumsum(stop - start)[:-1]]
    by_gain = np.lexsort((-gain, row_of))[first]  # each row's nA of the largest best-case gain
    best_gain, best_n_a = gain[by_gain], n_a[by_gain]
    best_radius, worst_radius = np.zeros(len(radius)), np.full(len(radius), np.inf)
    np.maximum.at(best_radius, row_of, best)
    np.minimum.at(worst_radius, row_of, worst)
    could = best_gain > 0
    share = (_break_even_share(best_n_a[could & ~abstained], n, alpha, sigma, num_classes)
             if (could & ~abstained).any() else np.zeros(0))
    certified = ~abstained
    return (f"{dataset} {relative.parts[1]} {relative.parts[2]}/{relative.parts[3]} sigma {sigma:g}",
            f"{alpha:g}", f"{len(radius)}", f"{certified.sum()}",
            f"{(could & certified).sum()} ({np.mean(could & certified):.1%})",
            f"{(could & abstained).sum()}",
            (f"{np.median(best_gain[could & certified]):+.3f} / {best_gain[could & certified].max():+.3f}"
             if (could & certified).any() else "-"),
            f"{np.median(share):.2f}" if len(share) else "-",
            "0",
            _accuracy(correct, radius, REFERENCE_RADII),
            _accuracy(correct, np.where(certified, best_radius, 0.0), REFERENCE_RADII),
            _accuracy(correct, worst_radius, REFERENCE_RADII),
            f"{np.median(bracket[certified]):.0f}")


def reference_results(root: Path) -> tuple[str, str]:
    header = ("file", "alpha (fits)", "rows", "certified", "could gain (certified rows)",
              "abstentions it could certify",
              "best-case gain: median / max", "break-even share (median)", "sure gain (nB = n - nA)",
              f"cert. acc. file at r = {' / '.join(map(str, REFERENCE_RADII))}", "two-sided best", "two-sided worst",
              "nA per radius (median)")
    cache: dict = {}
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for path in sorted(p for p in root.rglob("sigma_*") if p.is_file()):
        lines.append("| " + " | ".join(reference_file(path, cache)) + " |")
    title = (f"Reference results: n = {REFERENCE_N}, alpha the file's, nA bracketed from the printed radius, nB "
             "from the even spread (best) to n - nA (worst)")
    return title, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, help="first M inputs of the embedded default only (default: all 334)")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help=f"(default: {REFERENCE})")
    opts = parser.parse_args()
    torch.manual_seed(0)
    for title, table in (reference_results(opts.reference), embedded_default(opts.inputs)):
        print(f"### {title}\n\n{table}\n", flush=True)


if __name__ == "__main__":
    main()
