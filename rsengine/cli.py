"""The ``rsengine`` command: certify, predict, analyze, train.

``certify`` and ``predict`` take the original scripts' arguments (DATASET BASE_CLASSIFIER SIGMA
OUTFILE, --batch, --skip, --max, --split, --N0, --N, --alpha) and write the same tab-separated
files. With no positional arguments they run the embedded default: the bundled MNIST CNN on the
MNIST digits shipped in the package (its run time: docs/cli.md, "The embedded default").

Errors are one line on stderr and exit status 2 (130 when interrupted); no traceback.

Example:
    >>> from rsengine.cli import build_parser
    >>> opts = build_parser().parse_args(["certify", "cifar10", "model.pt", "0.25", "out.tsv", "--N0", "50"])
    >>> opts.dataset, opts.sigma, opts.N0
    ('cifar10', 0.25, 50)
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

from . import __version__
from .analyze import DATA_FORMATS, PLOT_FORMATS, TABLE_FORMATS, plot_unavailable
from .backends import BACKENDS
from .checkpoints import bundled_checkpoint
from .data import DATASETS, SPLITS
from .distributed import launched_rank
from .inputs import BAD_INPUT_POLICIES
from .kernels.contract import NOISES
from .models import ARCHITECTURES
from .options import EMBEDDED_DEFAULT, ORIGINAL_DEFAULT, PRECISIONS, RANDOM_SEED, SAMPLING_DEFAULTS
from .sampler import CPU_BATCH_VALUES, DETERMINISTIC_BATCH_SIZE, cpu_batch_size
from .train import LR_SCHEDULES, TRAINING_DEFAULTS
from .training_methods import METHODS as TRAINING_METHODS

__all__ = ["QUIET_RANK_EXIT_DELAY_S", "build_parser", "console_main", "main"]

# How long a torchrun rank other than 0 waits before exiting on an error rank 0 reports.
QUIET_RANK_EXIT_DELAY_S = 30.0


def _either(name: str) -> str:
    # The help's "(default: ...)" of an option whose default depends on the kind of run.
    def shown(value):
        return (f"from free GPU memory; {CPU_BATCH_VALUES} input values on the CPU, {cpu_batch_size(784)} MNIST "
                "rows" if value is None else value)

    return f"default: {shown(ORIGINAL_DEFAULT[name])}; embedded: {shown(EMBEDDED_DEFAULT[name])}"


def _seed(text: str):
    if text == RANDOM_SEED:
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'random', got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _sampling_arguments(parser: argparse.ArgumentParser, certify: bool) -> None:
    parser.add_argument("dataset", nargs="?", metavar="DATASET",
                        help=f"{', '.join(DATASETS)} or an ImageFolder directory "
                             f"(default: {EMBEDDED_DEFAULT['dataset']}, embedded)")
    parser.add_argument("base_classifier", nargs="?", metavar="BASE_CLASSIFIER",
                        help="a checkpoint file (rsengine's, the original code's, PyTorch's ImageNet example's), or "
                             f"a model to build: {', '.join(ARCHITECTURES)}, torchvision:NAME, timm:NAME or "
                             "package.module:factory, with --weights (default: the bundled MNIST CNN)")
    kind = "certify" if certify else "predict"
    parser.add_argument("sigma", nargs="?", type=float, metavar="SIGMA",
                        help=f"the noise's standard deviation per input value (default: {EMBEDDED_DEFAULT['sigma']})")
    parser.add_argument("outfile", nargs="?", metavar="OUTFILE",
                        help=f"results file, tab-separated (default: ./{EMBEDDED_DEFAULT['outfile'][kind]})")
    parser.add_argument("--batch", type=int, help=f"noisy samples per forward pass ({_either('batch')})")
    parser.add_argument("--skip", type=int, help=f"certify every SKIP-th input ({_either('skip')})")
    parser.add_argument("--max", type=int, metavar="STOP",
                        help="stop index: inputs 0, SKIP, 2*SKIP, ... below STOP (default: all)")
    parser.set_defaults(**SAMPLING_DEFAULTS)
    parser.add_argument("--split", choices=SPLITS, help=f"data set split (default: {SAMPLING_DEFAULTS['split']})")
    if certify:
        parser.add_argument("--N0", type=int, help=f"selection samples (default: {SAMPLING_DEFAULTS['N0']})")
    parser.add_argument("--N", type=int,
                        help=f"{'estimation' if certify else 'prediction'} samples ({_either('N')})")
    parser.add_argument("--alpha", type=float, help=f"failure probability (default: {SAMPLING_DEFAULTS['alpha']})")
    parser.add_argument("--noise", choices=NOISES,
                        help="smoothing noise, standard deviation SIGMA: gaussian certifies l2 radii, laplace and "
                             f"uniform l1 radii (default: {SAMPLING_DEFAULTS['noise']})")
    parser.add_argument("--sound", action="store_true",
                        help="floating-point-sound mode (Voracek & Hein 2023, docs/sound_mode.md): the Gaussian "
                             "rounded to the 1/255 grid, drawn in integers, so results hold even for a classifier "
                             "that reads float rounding; inputs must be 8-bit images"
                             + (", radii are l2 radii for perturbations on the grid" if certify else "")
                             + "; gaussian noise, SIGMA <= 10" + (", no --two-sided, --top-k or --adaptive" if certify else ""))
    if certify:
        parser.add_argument("--two-sided", action="store_true",
                            help="bound the runner-up class from above too (alpha split in half) and certify "
                                 "Theorem 1's full radius: larger where the other classes share the rest")
        parser.add_argument("--top-k", type=int, metavar="K",
                            help="certify the K classes of most selection votes (Jia et al. 2020, Gaussian): predict "
                                 "lists them and radius is the true class's l2 radius within the smoothed top K, "
                                 "-1 and 0.0 where that class is not certified among them")
        parser.add_argument("--adaptive", action="store_true",
                            help="--N becomes a budget: each input stops as soon as an anytime-valid bound answers "
                                 "(same 1 - alpha guarantee); needs --radius or --tolerance; adds a samples column")
        parser.add_argument("--radius", type=float, metavar="R",
                            help="with --adaptive: decide 'is the input certified at radius R?'")
        parser.add_argument("--tolerance", type=float, metavar="T",
                            help="with --adaptive: stop once the budget could raise the radius by at most T")
    parser.add_argument("--seed", type=_seed,
                        help=f"noise seed, an integer in [0, 2**63) or '{RANDOM_SEED}' for a secret one from the "
                             f"operating system, recorded in OUTFILE.run.json (default: {SAMPLING_DEFAULTS['seed']}); "
                             "input i uses stream i")
    parser.add_argument("--deterministic", action="store_true",
                        help=f"bit-reproducible rows: fixed batch shape (--batch, default {DETERMINISTIC_BATCH_SIZE}) "
                             "of one input per forward pass, deterministic algorithms, no TF32; slower for small N0")
    parser.add_argument("--resume-with-changes", action="store_true",
                        help="resume OUTFILE even though its rows were computed with another backend, device, "
                             "batch size or library version (recorded; such changes can flip near-tie votes)")
    parser.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if present)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="kernels: auto = Triton on CUDA, the compiled CPU kernel on the CPU (PyTorch where "
                             f"no C compiler works); torch = the PyTorch reference (default: {SAMPLING_DEFAULTS['backend']})")
    parser.add_argument("--precision", choices=tuple(PRECISIONS),
                        help="classifier precision; certificates are about the classifier in this precision "
                             f"(default: {SAMPLING_DEFAULTS['precision']})")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                        help="run the classifier in channels_last: faster for conv nets on GPUs and CPUs "
                             f"({_either('channels_last')})")
    parser.add_argument("--data-dir", help="where cifar10/imagenet live (default: $RSENGINE_DATA, "
                                           "$IMAGENET_DIR, ./data)")
    model = parser.add_argument_group("the model (docs/cli.md#models)")
    model.add_argument("--weights", metavar="FILE",
                       help="with a model to build: its weights, a plain state dict or a checkpoint holding one "
                            "(torchvision's, timm's, rsengine's; default: random weights)")
    model.add_argument("--num-classes", type=int, metavar="K",
                       help="the model's classes (default: the checkpoint's or the weights' head, else the data set's)")
    model.add_argument("--mean", type=float, nargs="+", metavar="M",
                       help="per-channel mean the model expects, one value for all channels or one per channel "
                            "(default: the checkpoint's record, torchvision's or timm's, the data set's for rsengine's "
                            "architectures; a factory's or pickled model's: none); with --std")
    model.add_argument("--std", type=float, nargs="+", metavar="S", help="per-channel std, with --mean")
    model.add_argument("--trust-pickle", action="store_true",
                       help="WARNING: unsafe. Load a file that weights_only=True refuses (a whole pickled model, "
                            "other objects) with full pickle, which runs any code the file contains; only for "
                            "files you trust")
    images = parser.add_argument_group("images of folders and ImageNet (the vision extra)")
    images.add_argument("--resize", type=int, metavar="N",
                        help="resize each image's shorter side to N (PIL bilinear; default: 256 for imagenet, "
                             "none for a folder)")
    images.add_argument("--crop", type=int, metavar="N",
                        help="center-crop N x N (default: 224 for imagenet, none for a folder)")
    images.add_argument("--channels", type=int, choices=(1, 3),
                        help="convert every image to gray (1) or RGB (3) (default: 3 for imagenet; a folder: "
                             "1 if its first image is gray, else 3)")
    parser.add_argument("--on-bad-input", choices=BAD_INPUT_POLICIES, default=BAD_INPUT_POLICIES[0],
                        help="an input that cannot be read or used (a truncated file, another size, NaN, a label "
                             "outside the model's classes): stop there, naming it (the rows before it are kept), or "
                             "skip it: no row, listed in OUTFILE.run.json and counted in the summary (default: stop)")
    parser.add_argument("--retry-skipped", action="store_true",
                        help="when resuming, load the inputs an earlier run skipped again (default: they stay skipped)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTFILE even if it holds other results (default: resume a run of "
                             "the same arguments, refuse anything else)")
    if certify:
        parser.add_argument("--plot", help=f"save a certified-accuracy plot here ({' or '.join(PLOT_FORMATS)})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rsengine`` command."""
    parser = _Parser(prog="rsengine", description="Randomized-smoothing certification (Cohen et al. 2019).")
    parser.add_argument("--version", action="version", version=f"rsengine {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    certify = commands.add_parser("certify", help="certify a data set (no arguments: the embedded MNIST default)")
    _sampling_arguments(certify, certify=True)
    predict = commands.add_parser("predict", help="predict with the smoothed classifier on a data set")
    _sampling_arguments(predict, certify=False)

    analyze = commands.add_parser("analyze", help="certified-accuracy table and plot of results files")
    analyze.add_argument("files", nargs="+", metavar="FILE", help="results files of certify (or predict)")
    analyze.add_argument("--radii", nargs="+", type=float, metavar="R",
                         help="columns (default: 0 0.25 ... 2.25, up to the largest radius the files' runs could "
                              "certify where their run records say; predict files: 0)")
    analyze.add_argument("--format", choices=TABLE_FORMATS + DATA_FORMATS, default=TABLE_FORMATS[0],
                         help="markdown or latex tables for people; csv (a header row) or json (an object per "
                              "file) for tools, with each file's ACR (default: markdown)")
    analyze.add_argument("--plot", metavar="PATH",
                         help=f"save certified accuracy vs radius ({' or '.join(PLOT_FORMATS)})")

    train = commands.add_parser("train", help="train a base classifier for smoothing (noise augmentation, consistency, "
                                              "MACER, SmoothAdv, SmoothMix, CAT-RS)")
    train.add_argument("dataset", metavar="DATASET", help=f"{', '.join(DATASETS)} or an ImageFolder directory")
    train.add_argument("arch", metavar="ARCH", help=f"{', '.join(ARCHITECTURES)}, torchvision:NAME, timm:NAME or "
                                                    "package.module:factory")
    train.add_argument("outfile", metavar="OUTFILE", help="checkpoint to write (.pt)")
    train.add_argument("--sigma", type=float, required=True,
                       help="training noise's standard deviation (the certification sigma)")
    train.add_argument("--noise", choices=NOISES, default="gaussian",
                       help="training noise, the one the classifier will be certified with (default: gaussian)")
    train.add_argument("--method", choices=TRAINING_METHODS, default="gaussian",
                       help="the loss on the noisy copies (default: gaussian, noise augmentation); each takes its "
                            "paper's hyperparameters for the data set and sigma (docs/training.md)")
    train.add_argument("--hparam", action="append", default=[], metavar="NAME=VALUE",
                       help="set one of the method's hyperparameters, e.g. lam=5 (repeatable)")
    train.add_argument("--prepass-model", metavar="CKPT",
                       help="catrs: the Gaussian-trained checkpoint whose smoothed votes on the training set weigh the "
                            "loss (default for mnist: the bundled model)")
    train.add_argument("--epochs", type=int, default=TRAINING_DEFAULTS["epochs"])
    train.add_argument("--batch", type=int, default=TRAINING_DEFAULTS["batch_size"])
    train.add_argument("--lr", type=float, default=TRAINING_DEFAULTS["lr"])
    train.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=TRAINING_DEFAULTS["lr_schedule"],
                       help="step: x0.1 every third of the epochs (the paper's recipe); cosine")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", help="torch device (default: cuda if present)")
    train.add_argument("--data-dir", help="where cifar10/imagenet live")
    return parser


def _fill_defaults(opts) -> None:
    if opts.command not in ("certify", "predict"):
        return
    embedded = opts.dataset is None
    if embedded:
        opts.dataset, opts.sigma = EMBEDDED_DEFAULT["dataset"], EMBEDDED_DEFAULT["sigma"]
        opts.outfile = EMBEDDED_DEFAULT["outfile"][opts.command]
        if opts.command == "certify" and opts.plot is None:
            # Without the plot extra the default still runs: its plot is skipped, with a note at the end.
            opts.plot_skipped = plot_unavailable()
            opts.plot = EMBEDDED_DEFAULT["plot"] if opts.plot_skipped is None else None
    elif opts.outfile is None:
        raise ValueError("DATASET BASE_CLASSIFIER SIGMA OUTFILE go together: give all four, or none for "
                         "the embedded MNIST default")
    if opts.base_classifier is None:
        opts.base_classifier = bundled_checkpoint()
    for name in ("skip", "N", "batch", "channels_last"):
        if getattr(opts, name) is None:  # batch None: chosen from free memory
            setattr(opts, name, (EMBEDDED_DEFAULT if embedded else ORIGINAL_DEFAULT)[name])


def main(argv=None) -> int:
    """Run the ``rsengine`` command; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--"]:  # `torchrun ... -m rsengine -- certify ...` (torchrun passes the -- on)
        argv = argv[1:]
    opts = parser.parse_args(argv)
    # Under torchrun every rank meets the same errors (a failing step on one rank fails them all,
    # see rsengine.distributed): rank 0 alone says so, once.
    speak = launched_rank() == 0
    try:
        _fill_defaults(opts)
        from . import commands

        {"certify": commands.run_certify, "predict": commands.run_predict,
         "analyze": commands.run_analyze, "train": commands.run_train}[opts.command](opts)
    except KeyboardInterrupt:
        kept = (f"; finished rows are in {opts.outfile}: run the same command again to resume"
                if opts.command in ("certify", "predict") and os.path.exists(opts.outfile or "") else "")
        if speak:
            print(f"rsengine {opts.command}: interrupted{kept}", file=sys.stderr)
        return 130
    # Bad input (ValueError, including rsengine's data, checkpoint and results errors; TypeError,
    # e.g. a classifier returning neither logits nor an object holding them), missing or unreadable
    # files (OSError), a missing extra or model module (ImportError), non-finite logits, and a
    # classifier that fails on the data (RuntimeError from torch) all end the run with one line.
    except (ValueError, TypeError, OSError, ImportError, ArithmeticError, RuntimeError) as error:
        message = " ".join(str(error).split())  # one line, whatever the source
        if speak:
            print(f"rsengine {opts.command}: error: {message}", file=sys.stderr)
        else:
            # torchrun stops every worker as soon as one exits with an error: a quiet rank that
            # got there first would have rank 0 stopped before it says why (seen on a loaded
            # machine). So it waits; rank 0's exit ends the wait, torchrun stopping this rank.
            time.sleep(QUIET_RANK_EXIT_DELAY_S)
        return 2
    return 0


def console_main() -> int:
    """The ``rsengine`` console script and ``python -m rsengine``: :func:`main`, then a quick exit.

    Python's last garbage collection at shutdown walks every object torch created on import:
    0.5 s of a 2-second ``rsengine certify --max 0`` on 2 cores. Freezing them first skips the
    walk; every file is closed by then, and the process ends at once. Not for in-process callers
    of :func:`main` (frozen objects are never collected).
    """
    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(console_main())
