"""Every training method against Gaussian augmentation on the embedded MNIST: certified accuracy, ACR, cost.

The goal (issue "training for certified robustness beyond noise augmentation"): at sigma = 0.5
and 1.0 the best method's ACR at least 1.10x Gaussian augmentation's, same architecture and
epochs, with the whole table trained in under an hour on 2 CPU cores.

Each (sigma, method) trains ``mnist_cnn`` from the same initial weights (seed 0) on the 4,000
training digits (batch 64, SGD lr 0.05 divided by 10 after each third of ``--epochs``, the
published runs' step schedule), each method with its published MNIST hyperparameters (rsengine.training_methods,
DEFAULTS) except the warm-ups, which scale with the epochs (SmoothAdv's and SmoothMix's 10 of 90
epochs become ``max(1, epochs // 9)``; MACER's deferral is a fraction already). CAT-RS's pre-pass
runs once, through the engine, with the bundled Gaussian model (sigma = 0.25, the paper's
pre-pass model) at ``--prepass-n`` samples per digit. Then every ``--skip``-th held-out digit is
certified at N = ``--n`` (n0 = 100, alpha = 0.001, seed 0, input i on stream i) by
``certify_dataset``: certified accuracy at r = 0 .. 2, ACR, abstention rate, and the base
classifier's clean accuracy on all 1,000 held-out digits.

Usage:
    python bench/training_methods.py [--epochs 10] [--skip 5] [--n 10000] [--prepass-n 1000] [--out FILE]
    python bench/training_methods.py --table FILE [--write-docs]   # a record's markdown table (into docs/training.md)
    python bench/training_methods.py --epoch-times cuda --out F.json   # each method's CIFAR ResNet-20 epoch (GPU)

``--epoch-times`` times each method (CIFAR-10's sigma = 0.5 defaults) on CIFAR-shaped random
images with ``cifar_resnet20``: one warm-up epoch of one batch, then one timed epoch of
``--steps`` batches of 64, scaled to CIFAR-10's 50,000 images (CAT-RS without its pre-pass, a
certification job of its own). bench/device_check.sh runs it on a lent GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from rsengine import Smooth, certify_dataset
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import TensorImageDataset, dataset_stats, load_dataset
from rsengine.models import build_model
from rsengine.questions import Certify
from rsengine.train import train_model
from rsengine.training_methods import METHODS, catrs_confidences, method_named

from records import cpu_name  # bench/ is the script's directory

RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
SIGMAS = (0.25, 0.5, 1.0)
# The published MNIST runs' step schedule (/10 after each third of the epochs: MACER's robustness
# term, deferred to the first drop, then starts at a tenth of the rate), at the bundled model's
# rate for a short run. Under a cosine at 0.05 MACER's term switched on at 0.037 and collapsed
# the CNN to one class (10% accuracy; bench/README.md, 2026-12-08).
RECIPE = dict(batch_size=64, lr=0.05, lr_schedule="step")
OUT = Path(__file__).resolve().parent / "results" / "training"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "training.md"
MARKERS = ("<!-- training-table:start -->", "<!-- training-table:end -->")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _method(name: str, sigma: float, epochs: int, confidences):
    method = method_named(name, "mnist", sigma)
    changes = {}
    if hasattr(method, "warmup_epochs"):
        changes["warmup_epochs"] = max(1, epochs // 9)
    if name == "catrs":
        changes["confidences"] = confidences
    return dataclasses.replace(method, **changes)


def _clean_accuracy(model, test, mean, std) -> float:
    x = (test.images.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        return float((model(x).argmax(1) == test.labels).float().mean())


def run(args) -> None:
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    mean, std = dataset_stats("mnist")
    recipe = {**RECIPE, "lr": args.lr or RECIPE["lr"]}
    record = {"benchmark": "training_methods", "date": datetime.date.today().isoformat(), "commit": _commit(),
              "device": "cpu", "cpu": cpu_name(),
              "avx512": "avx512f" in Path("/proc/cpuinfo").read_text(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "epochs": args.epochs, **RECIPE, "n0": 100, "n": args.n, "alpha": 0.001,
              "certified_inputs": len(range(0, len(test), args.skip)), "prepass_n": args.prepass_n,
              "radii": list(RADII), "rows": []}
    if args.append:  # more rows for a record (another rate for one method): its settings stay
        record = json.loads(args.out.read_text())
    confidences, record["prepass_seconds"] = None, record.get("prepass_seconds", 0.0)
    if "catrs" in args.methods:
        start = time.perf_counter()
        prepass = load_checkpoint(bundled_checkpoint())
        confidences = catrs_confidences(prepass.model, train, 10, sigma=0.25, n=args.prepass_n, mean=prepass.mean,
                                        std=prepass.std)
        record["prepass_seconds"] = time.perf_counter() - start
    # One throwaway epoch of each loop on a few digits first: the first call's one-time costs
    # (allocator, thread pool, the CPU kernel's loading) would otherwise land in the first row's time.
    few = torch.utils.data.Subset(train, range(128))
    for name in ("gaussian", "consistency"):
        train_model(build_model("mnist_cnn"), few, sigma=0.5, epochs=1, mean=mean, std=std, method=name, **RECIPE)
    for sigma in args.sigmas:
        for name in args.methods:
            method = _method(name, sigma, args.epochs, confidences)
            torch.manual_seed(0)
            model = build_model("mnist_cnn")
            start = time.perf_counter()
            train_model(model, train, sigma=sigma, epochs=args.epochs, mean=mean, std=std, seed=0, method=method,
                        **recipe)
            train_seconds = time.perf_counter() - start
            smooth = Smooth(model, 10, sigma, mean=mean, std=std, seed=0)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as scratch:
                results = certify_dataset(smooth, test, Certify(n0=100, n=args.n, alpha=0.001),
                                          indices=range(0, len(test), args.skip), out=Path(scratch) / "r.tsv",
                                          quiet=True)
            row = {"sigma": sigma, "method": name, "lr": recipe["lr"], "commit": _commit(),
                   "hyperparameters": method.hyperparameters(),
                   "train_seconds": train_seconds, "certify_seconds": time.perf_counter() - start,
                   "certified_accuracy": results.certified_accuracy(list(RADII)).tolist(), "acr": results.acr,
                   "abstention_rate": float((results.table.predict == -1).mean()),
                   "clean_accuracy": _clean_accuracy(model, test, mean, std)}
            record["rows"].append(row)
            print(f"sigma {sigma} {name:12s} train {train_seconds:6.1f}s  ACR {row['acr']:.3f}  "
                  f"cert {[round(a, 3) for a in row['certified_accuracy']]}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, indent=1) + "\n")  # after each model: a partial run keeps its rows


def epoch_times(args) -> None:
    """Seconds per CIFAR-10 epoch of each method on ``args.epoch_times``, from ``args.steps`` timed steps."""
    device = torch.device(args.epoch_times)
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(64 * args.steps, 3, 32, 32, generator=gen) * 255).to(torch.uint8)
    data = TensorImageDataset(images, torch.randint(0, 10, (len(images),), generator=gen))
    mean, std = dataset_stats("cifar10")
    record = {"benchmark": "training_epoch_times", "date": datetime.date.today().isoformat(), "commit": _commit(),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
              "torch": torch.__version__, "model": "cifar_resnet20", "batch_size": 64, "timed_steps": args.steps,
              "sigma": 0.5, "rows": []}
    for name in args.methods:
        method = method_named(name, "cifar10", 0.5)
        if name == "catrs":
            method = dataclasses.replace(method, confidences=torch.full((len(data), 10), 0.1))
        model = build_model("cifar_resnet20")

        def epoch(dataset):
            train_model(model, dataset, sigma=0.5, epochs=1, batch_size=64, mean=mean, std=std, method=method,
                        device=device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        epoch(torch.utils.data.Subset(data, range(64)))  # warm-up: kernels, allocator
        start = time.perf_counter()
        epoch(data)
        seconds = (time.perf_counter() - start) / args.steps * math.ceil(50_000 / 64)
        record["rows"].append({"method": name, "hyperparameters": method.hyperparameters(), "epoch_seconds": seconds})
        print(f"{name:12s} {seconds:8.1f} s per CIFAR-10 epoch", flush=True)
    out = args.out or OUT / f"epoch_times_{record['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")


def table(record: dict) -> str:
    """The markdown table of a record: one row per (sigma, method), figures as measured."""
    radii = record["radii"]
    head = ("| sigma | method | " + " | ".join(f"r = {r:g}" for r in radii) +
            " | ACR | ACR / Gaussian | abstain | clean acc. | train time / Gaussian |")
    lines = [head, "|" + "---|" * (len(radii) + 7)]
    gaussian = {row["sigma"]: row for row in record["rows"] if row["method"] == "gaussian"}
    for row in record["rows"]:
        base = gaussian.get(row["sigma"])
        ratio = f"{row['acr'] / base['acr']:.2f}x" if base and base["acr"] > 0 else "-"
        cost = f"{row['train_seconds'] / base['train_seconds']:.1f}x" if base else "-"
        name = row["method"] if row.get("lr", record["lr"]) == record["lr"] else f"{row['method']} (lr {row['lr']:g})"
        cells = [f"{row['sigma']:g}", name, *(f"{a:.3f}" for a in row["certified_accuracy"]),
                 f"{row['acr']:.3f}", ratio, f"{row['abstention_rate']:.3f}", f"{row['clean_accuracy']:.3f}", cost]
        lines.append("| " + " | ".join(cells) + " |")
    total = sum(row["train_seconds"] for row in record["rows"]) + record.get("prepass_seconds", 0.0)
    later = sorted({row["commit"] for row in record["rows"] if row.get("commit", record["commit"]) != record["commit"]})
    commits = f"commit {record['commit']}" + (f"; rows added by {', '.join(later)}" if later else "")
    lines.append("")
    lines.append(f"{record['epochs']} epochs per model, batch {record['batch_size']}, lr {record['lr']} "
                 f"({record['lr_schedule']}); {record['certified_inputs']} "
                 f"held-out digits certified at N = {record['n']:,} (n0 = {record['n0']}, alpha = {record['alpha']}); "
                 f"CAT-RS pre-pass at {record['prepass_n']:,} samples per digit, "
                 f"{record.get('prepass_seconds', 0.0):.0f} s; all training {total / 60:.1f} min on "
                 f"{record['threads']} CPU threads ({record['cpu']}{', AVX-512' if record.get('avx512') else ''}, "
                 f"torch {record['torch']}, {commits}, "
                 f"{record['date']}).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip", type=int, default=5, help="certify every SKIP-th held-out digit")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--prepass-n", type=int, default=1_000)
    parser.add_argument("--lr", type=float, help=f"the base learning rate (default {RECIPE['lr']})")
    parser.add_argument("--append", action="store_true", help="add the rows to the --out record")
    parser.add_argument("--sigmas", type=float, nargs="+", default=list(SIGMAS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=Path, help="the record (default: results/training/mnist_DATE.json, "
                                                  "with --epoch-times epoch_times_DATE.json)")
    parser.add_argument("--table", type=Path, metavar="RECORD", help="print a record's markdown table and exit")
    parser.add_argument("--epoch-times", metavar="DEVICE", help="time each method's CIFAR ResNet-20 epoch on DEVICE")
    parser.add_argument("--steps", type=int, default=5, help="with --epoch-times: timed batches per method")
    parser.add_argument("--write-docs", action="store_true",
                        help="with --table: put it between docs/training.md's markers")
    args = parser.parse_args()
    if args.table:
        text = table(json.loads(args.table.read_text()))
        if args.write_docs:
            docs = DOCS.read_text()
            head, rest = docs.split(MARKERS[0])
            _, tail = rest.split(MARKERS[1])
            source = (f"Generated from `{args.table.as_posix()}` by "
                      "`python bench/training_methods.py --table ... --write-docs`.")
            DOCS.write_text(f"{head}{MARKERS[0]}\n{source}\n\n{text}\n{MARKERS[1]}{tail}")
        print(text)
    elif args.epoch_times:
        epoch_times(args)
    else:
        args.out = args.out or OUT / f"mnist_{datetime.date.today().isoformat()}.json"
        run(args)


if __name__ == "__main__":
    main()
