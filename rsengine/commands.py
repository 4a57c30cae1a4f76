"""What the command-line subcommands do, given their parsed options (see ``rsengine.cli``).

Each ``run_*`` function takes an ``argparse.Namespace`` whose fields are the options' names and
returns nothing; it raises ``ValueError``/``FileNotFoundError`` subclasses with one-line
messages, which ``rsengine.cli.main`` prints without a traceback.

Example:
    >>> import torch
    >>> from rsengine.commands import chunk_size
    >>> chunk_size(1000, 100 + 1000, torch.device("cpu"), 784)
    14
"""
from __future__ import annotations

import contextlib
import os
import platform
import secrets
import sys
import time
from importlib import metadata

import numpy as np
import torch

from . import __version__, analyze, certificates, distributed
from . import sound as sound_mode  # the module; `opts.sound` is the flag
from .checkpoints import load_checkpoint, save_checkpoint
from .data import dataset_num_classes, dataset_stats, load_dataset
from .lock import ResultsLock
from .models import build_model
from .options import PRECISIONS, RANDOM_SEED
from .results import read_results
from .refill import AdaptiveInterrupted
from .resume import file_digest, mark_complete, mark_stopped_early, open_results, read_run_record
from .sampler import MAX_AUTO_BATCH_SIZE, cpu_batch_size
from .smooth import Smooth
from .stats import floor_significant, max_radius
from .train import train_model
from .validation import (check_choice, check_int_at_least, check_non_negative_float, check_positive_float,
                         check_positive_int, check_probability)

__all__ = ["CHUNK_BATCHES", "chunk_size", "check_plot_path", "resolve_device", "run_certify", "run_predict",
           "run_analyze", "run_train"]


def resolve_device(name: str | None) -> torch.device:
    """The device named on the command line, default CUDA when present; errors if absent."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Expected `--device` to name a torch device such as cpu or cuda:0, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"CUDA device {name!r} is not available here (torch.cuda.is_available() is False); "
                             "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"CUDA device {name!r} does not exist: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return device


def _indices(length: int, skip: int, stop: int | None) -> range:
    # --max is a stop index: inputs 0, skip, 2 * skip, ... below min(stop, length). (The
    # original stopped only when the index hit --max exactly, i.e. on multiples of --skip.)
    return range(0, length if stop is None else min(stop, length), skip)


def check_plot_path(path: str | None) -> None:
    """Refuse a plot file name analyze cannot write, before hours of work, not after."""
    if path is not None:
        check_choice("--plot extension", os.path.splitext(path)[1].lower(), analyze.PLOT_FORMATS)


def _smoothed_model(opts, seed: int | None = None, device_name: str | None = None):
    """Check the sampling options, load the checkpoint and data set; build the Smooth.

    seed: default opts.seed. device_name: default opts.device (a torchrun rank passes its own).
    """
    check_plot_path(getattr(opts, "plot", None))
    sigma = check_positive_float("SIGMA", opts.sigma)
    if opts.batch is not None:
        check_positive_int("--batch", opts.batch)
    check_positive_int("--skip", opts.skip)
    check_positive_int("--N", opts.N)
    if getattr(opts, "N0", None) is not None:
        check_positive_int("--N0", opts.N0)
    check_probability("--alpha", opts.alpha)
    if opts.max is not None:
        check_int_at_least("--max", opts.max, 0)
    device = resolve_device(opts.device if device_name is None else device_name)
    dtype = PRECISIONS[opts.precision]
    checkpoint = load_checkpoint(opts.base_classifier, device=device, trust_pickle=opts.trust_pickle)
    dataset = load_dataset(opts.dataset, opts.split, opts.data_dir)
    num_classes = dataset_num_classes(opts.dataset)
    if checkpoint.num_classes != num_classes:
        raise ValueError(f"Checkpoint {opts.base_classifier} has {checkpoint.num_classes} classes but data set "
                         f"{opts.dataset!r} has {num_classes}")
    top_k = getattr(opts, "top_k", None)
    if top_k is not None and top_k >= num_classes:  # every class is always in a top K of K
        raise ValueError(f"Expected `--top-k` < the number of classes of {opts.dataset!r} ({num_classes}), got {top_k}")
    # The checkpoint says how its classifier normalizes (original checkpoints get their data
    # set's statistics when loaded); None means it takes pixels as they are.
    mean, std = checkpoint.mean, checkpoint.std
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
    model = checkpoint.model.to(device=device, dtype=dtype, memory_format=memory_format).eval()
    smooth = Smooth(model, num_classes, sigma, mean=mean, std=std, seed=opts.seed if seed is None else seed,
                    backend=opts.backend, device=device, dtype=dtype, memory_format=memory_format,
                    noise=opts.noise, sound=getattr(opts, "sound", False), deterministic=opts.deterministic)
    _check_compatible(smooth, dataset, opts)
    return smooth, dataset


def _check_compatible(smooth: Smooth, dataset, opts) -> None:
    # One noisy forward pass before any row is written: a checkpoint that cannot take this
    # data set's inputs fails here with one clear line instead of inside the run.
    if not len(dataset):
        raise ValueError(f"Data set {opts.dataset!r} ({opts.split} split) is empty")
    x, _ = dataset[0]
    if smooth.sound:  # before the results file: a data set that is not 8-bit fails here, not at its first row
        _check_on_grid(x[None], [0], opts)
    try:
        smooth.sample_counts(x[None], 1, streams=[0])
    except RuntimeError as error:
        raise ValueError(f"The classifier in {opts.base_classifier} cannot take inputs of data set "
                         f"{opts.dataset!r} (shape {list(x.shape)}): {error}") from None


def _check_on_grid(xs, indices, opts) -> None:
    """Refuse, naming the input, a sound run's input that is not an 8-bit image (``sound.to_grid``)."""
    for x, index in zip(xs, indices):
        try:
            sound_mode.to_grid(x)
        except (ValueError, TypeError) as error:  # TypeError: not float32 or integer pixels
            raise ValueError(f"--sound needs 8-bit images (float32 values i / 255): input {index} of data set "
                             f"{opts.dataset!r} is off the 1/255 grid ({error})") from None


def _progress(total: int, desc: str):
    from tqdm import tqdm

    # disable=None: a bar on a terminal, nothing in logs and pipes (where \r-redrawn bars are noise).
    return tqdm(total=total, desc=desc, unit="input", file=sys.stderr, dynamic_ncols=True, disable=None,
                mininterval=1.0)


def _resolve_seed(opts) -> tuple[int, str]:
    """The run's seed and where it came from: given, or drawn from the OS (reused on resume)."""
    if opts.seed != RANDOM_SEED:
        return opts.seed, "given"
    previous = None if opts.overwrite else read_run_record(opts.outfile)
    arguments = previous.get("arguments") if previous else None
    if isinstance(arguments, dict) and arguments.get("seed_source") == "random" and type(arguments.get("seed")) is int:
        return arguments["seed"], "random"  # resuming: the seed the run drew
    seed = secrets.randbits(63)
    print(f"seed {seed}, drawn from the operating system (recorded in {opts.outfile}.run.json)", file=sys.stderr)
    return seed, "random"


def _run_environment(smooth: Smooth, opts) -> dict:
    """What can change a row only through float rounding: a resume must share it or say so."""
    device = smooth.device
    # The device's type, not its index: the ranks of a job (and a restart on other GPUs of the
    # same model) compute alike on cuda:0 and cuda:3.
    environment = dict(backend=smooth.backend.name, device=device.type,
                       device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
                       cpu_capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads(),
                       batch=opts.batch, torch=torch.__version__)
    if device.type == "cuda":
        environment["cudnn"] = torch.backends.cudnn.version()
    if smooth.backend.name == "triton":
        environment["triton"] = metadata.version("triton")
    return environment


def _run_arguments(opts, kind: str, seed: int, seed_source: str) -> dict:
    """The arguments that determine a run's rows (what a resumed run must share)."""
    dataset = os.path.abspath(opts.dataset) if os.path.isdir(opts.dataset) else opts.dataset
    # Where the data came from too: the same name may point at another copy next time.
    data_dir = opts.data_dir or os.environ.get("IMAGENET_DIR" if opts.dataset == "imagenet" else "RSENGINE_DATA")
    arguments = dict(dataset=dataset, data_dir=os.path.abspath(data_dir) if data_dir else None, split=opts.split,
                     checkpoint_sha256=file_digest(opts.base_classifier), sigma=opts.sigma, N=opts.N,
                     alpha=opts.alpha, seed=seed, seed_source=seed_source, skip=opts.skip, max=opts.max,
                     precision=opts.precision, channels_last=opts.channels_last, deterministic=opts.deterministic,
                     rsengine=__version__)
    if opts.deterministic:  # the batch shape is part of what a deterministic row is a function of
        arguments["batch"] = opts.batch
    if kind == "certify":
        arguments["N0"] = opts.N0
    if getattr(opts, "adaptive", False):  # absent from fixed runs' records, which stay as they were
        arguments["adaptive"] = dict(radius=opts.radius, tolerance=opts.tolerance)
    # Likewise absent for the Gaussian one-sided runs every earlier record holds (l2 radii).
    if opts.noise != "gaussian":
        arguments["noise"] = opts.noise
        if kind == "certify":
            arguments["radius_norm"] = certificates.NORMS[opts.noise]
    if getattr(opts, "two_sided", False):
        arguments["two_sided"] = True
    if getattr(opts, "top_k", None) is not None:
        arguments["top_k"] = opts.top_k
    if getattr(opts, "sound", False):  # absent from float-mode records, which stay as they were
        arguments["sound"] = True
    return arguments


# Work per chunk of inputs, in forward batches: enough that the n0 = 100 selection draws of
# several inputs share batches (with --batch 1000 and N = 1,000: 14 inputs, one 1,400-row selection
# phase instead of 14 of 100 rows), few enough that a killed run loses little and the progress
# bar moves. At n = 10,000 and more a chunk is usually one input: packing gains nothing there.
CHUNK_BATCHES = 16
# An adaptive chunk is sized as if each input used N0 + this many estimation samples (at most N):
# the order of what one uses on the embedded default (bench/README.md), so that a chunk keeps
# its refilled batches full for many batches before its last inputs run alone.
ADAPTIVE_CHUNK_SAMPLES = 1000


def chunk_size(batch: int | None, samples_per_input: int, device: torch.device, numel: int) -> int:
    """Inputs certified together: about CHUNK_BATCHES batches of samples, at least one input.

    Args:
        batch: --batch (None: the automatic size). samples_per_input: N0 + N (or N).
        device: where sampling runs. numel: values per input (the CPU's automatic size needs it).

    Example:
        >>> chunk_size(1000, 100 + 1000, torch.device("cpu"), 784), chunk_size(None, 100 + 10_000, torch.device("cpu"), 784)
        (14, 1)
    """
    if batch is None:  # the automatic size: its cap on a GPU (the usual outcome), by input size on the CPU
        batch = MAX_AUTO_BATCH_SIZE if device.type == "cuda" else cpu_batch_size(numel)
    return max(1, CHUNK_BATCHES * batch // samples_per_input)


def _chunks(items: list, size: int) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


class ChunkInterrupted(KeyboardInterrupt):
    """Ctrl-C inside ``decide``: ``rows`` maps a chunk position to its row fields (inputs that have
    a certificate), ``stopped`` lists the positions whose certificate stopped early."""

    def __init__(self, rows: dict, stopped: list):
        super().__init__("interrupted")
        self.rows, self.stopped = rows, stopped


def _run(opts, kind: str, samples_per_input: int, decide, *, samples_column: bool = False) -> bool:
    """Write ``decide(smooth, xs, indices, labels)`` (one tuple of row fields per input) for every
    selected input, a chunk of inputs at a time so that their samples share batches.

    With ``samples_column`` each tuple's last field (the samples an input used) goes after
    ``time``. A ChunkInterrupted from ``decide`` (one process) writes the rows it carries, lists
    the stopped-early ones in the run record, and ends the run as a Ctrl-C.

    Rows are those of a one-input-at-a-time run (input i uses stream i); each chunk's rows are
    written when it finishes, and ``time`` is the chunk's wall time shared equally by its inputs.
    Resumes: rows already in the results file of the same run are kept and skipped. Under
    torchrun the ranks take the chunks in turn (round r: chunk r * ranks + rank) and rank 0
    writes every round's rows in chunk order, so the file is always a prefix of the one a single
    process writes, whatever the number of ranks, and a restart of any size completes it.

    Returns:
        Whether this process wrote the results file (rank 0; the only process outside torchrun).
    """
    group = distributed.join()
    try:
        with contextlib.ExitStack() as held:
            return _run_ranks(group, held, opts, kind, samples_per_input, decide, samples_column)
    finally:
        group.close()


def _run_ranks(group: distributed.Group, held: contextlib.ExitStack, opts, kind: str, samples_per_input: int,
               decide, samples_column: bool) -> bool:
    started = time.perf_counter()
    writer = None  # rank 0's; ``held`` closes it, then releases the lock

    def claim():  # before any slow step: the results file is ours, and the seed its run uses
        held.enter_context(ResultsLock(opts.outfile))
        return _resolve_seed(opts)

    seed, seed_source = group.first_rank(claim)
    (smooth, dataset), environments = group.every_rank(
        lambda: _smoothed_model(opts, seed, distributed.rank_device(opts.device, group.local_rank)),
        report=lambda built: _run_environment(built[0], opts))
    indices = _indices(len(dataset), opts.skip, opts.max)

    def open_file():  # every rank takes the chunks from here, so that all agree on them
        nonlocal writer
        writer, done = open_results(opts.outfile, kind, _run_arguments(opts, kind, seed, seed_source),
                                    environments, opts.overwrite, opts.resume_with_changes, samples=samples_column)
        held.enter_context(writer)
        todo = [i for i in indices if i not in done]
        if done:
            print(f"resuming {opts.outfile}: {len(indices) - len(todo)} of {len(indices)} inputs already done",
                  file=sys.stderr)
        return _chunks(todo, chunk_size(opts.batch, samples_per_input, smooth.device, dataset[0][0].numel()))

    chunks = group.first_rank(open_file)
    computed = sum(map(len, chunks))
    progress = held.enter_context(_progress(computed, kind)) if group.is_writer else None
    waited = 0.0  # rank 0's time at the exchanges spent waiting for slower ranks' chunks
    after_time = 1 if samples_column else 0
    interrupted: ChunkInterrupted | None = None

    def compute(chunk):
        nonlocal interrupted
        start = time.perf_counter()
        if not chunk:
            return 0.0, []
        xs, labels = zip(*(dataset[i] for i in chunk))
        try:
            rows = dict(enumerate(decide(smooth, torch.stack(xs), chunk, list(labels))))
        except ChunkInterrupted as interrupt:
            if group.world_size > 1:  # the job's ranks stop together; finished chunks are on disk
                raise
            interrupted, rows = interrupt, interrupt.rows
        seconds = time.perf_counter() - start
        split = lambda fields: (*fields[:len(fields) - after_time], seconds / len(chunk),  # noqa: E731
                                *fields[len(fields) - after_time:])
        return seconds, [(chunk[j], labels[j], *split(rows[j])) for j in sorted(rows)]

    for first in range(0, len(chunks), group.world_size):
        mine = chunks[first + group.rank] if first + group.rank < len(chunks) else []
        (own_seconds, _), reports = group.every_rank(lambda: compute(mine), report=lambda result: result)
        waited += max(seconds for seconds, _ in reports) - own_seconds
        if writer is not None:
            for _, rows in reports:
                for row in rows:
                    writer.write_row(*row)
                progress.update(len(rows))
        if interrupted is not None:
            stopped = [mine[j] for j in interrupted.stopped]
            mark_stopped_early(opts.outfile, stopped)
            print(f"\ninterrupted: wrote {len(interrupted.rows)} certificates of this chunk, {len(stopped)} of "
                  "them stopped early (valid, from fewer samples; listed in the run record, redone on resume)",
                  file=sys.stderr)
            raise KeyboardInterrupt
    if not group.is_writer:
        return False
    progress.close()
    writer.close()
    mark_complete(opts.outfile)
    if distributed.launched_by_torchrun():
        _report_coordination(group, waited, time.perf_counter() - started)
    print(f"{len(indices)} inputs in {os.path.abspath(opts.outfile)} ({computed} computed now)")
    return True


def _report_coordination(group: distributed.Group, waited: float, total: float) -> None:
    # What the ranks cost beyond their share of the work: joining, and passing rows to rank 0
    # (its time at the exchanges less its wait for slower ranks' chunks, which is load imbalance).
    merging = max(0.0, group.exchange_seconds - waited)
    print(f"{group.world_size} rank{'s' * (group.world_size > 1)}: rendezvous {group.setup_seconds:.3f} s, merging rows {merging:.3f} s, "
          f"waiting for slower ranks {waited:.3f} s, run {total:.3f} s", file=sys.stderr)


def _warn_if_nothing_can_be_certified(opts, top_k: int | None = None) -> None:
    # With alpha ** (1/N) <= 1/2 even N votes out of N give a bound of at most 1/2: every row
    # abstains. Said before the work, not discovered after it.
    sigma, n = check_positive_float("SIGMA", opts.sigma), check_positive_int("--N", opts.N)
    alpha = check_probability("--alpha", opts.alpha)
    if top_k is None:
        if max_radius(sigma, n, alpha) <= 0:
            print(f"warning: at N = {n} and alpha = {alpha} no input can be certified (even N of N votes bound pA "
                  f"by alpha ** (1/N) = {alpha ** (1 / n):.3g}, not above 1/2): every row will abstain; raise --N or "
                  "--alpha", file=sys.stderr)
        return
    # Staying among K needs no majority, so the one-sided limit does not apply: ask the top-k rule.
    try:
        num_classes = dataset_num_classes(opts.dataset)
    except (ValueError, OSError):  # the run itself says what is wrong with the data set
        return
    if top_k < num_classes and _largest_radius(sigma, n, alpha, "gaussian", top_k, num_classes) <= 0:
        print(f"warning: at N = {n} and alpha = {alpha} no top-{top_k} certificate can be issued (even N of N votes "
              "give radius 0): every row will abstain; raise --N or --alpha", file=sys.stderr)


def _check_adaptive(opts) -> dict | None:
    """The adaptive question (``radius=`` or ``tolerance=``) of a certify run, None for a fixed run."""
    adaptive = getattr(opts, "adaptive", False)
    radius, tolerance = getattr(opts, "radius", None), getattr(opts, "tolerance", None)
    if not adaptive:
        if radius is not None or tolerance is not None:
            raise ValueError("--radius and --tolerance need --adaptive")
        return None
    if (radius is None) == (tolerance is None):
        raise ValueError("--adaptive needs exactly one of --radius R or --tolerance T")
    if opts.deterministic:
        raise ValueError("--adaptive cannot be --deterministic: its refilled batches mix inputs")
    if opts.noise != "gaussian":
        raise ValueError(f"--adaptive needs --noise gaussian (its sequential radii are l2), got --noise {opts.noise}")
    if opts.two_sided:
        raise ValueError("--adaptive cannot be --two-sided: its anytime-valid bounds are one-sided")
    if radius is not None:
        return dict(radius=check_non_negative_float("--radius", radius))
    return dict(tolerance=check_positive_float("--tolerance", tolerance))


def _check_sound(opts) -> bool:
    """Whether a run is ``--sound``; refuses what sound mode cannot certify, before any work."""
    if not getattr(opts, "sound", False):
        return False
    if opts.noise != "gaussian":
        raise ValueError(f"--sound needs --noise gaussian (the rounded Gaussian on the 1/255 grid), got --noise "
                         f"{opts.noise}")
    given = [name for name, used in (("--two-sided", getattr(opts, "two_sided", False)),
                                     ("--top-k", getattr(opts, "top_k", None) is not None),
                                     ("--adaptive", getattr(opts, "adaptive", False))) if used]
    if given:
        raise ValueError(f"--sound cannot be {given[0]}: sound mode's certificate is the one-sided CERTIFY")
    sigma = check_positive_float("SIGMA", opts.sigma)
    if float(np.float32(sigma)) > sound_mode.MAX_SIGMA:  # Smooth's test: the float32 sigma the noise uses
        raise ValueError(f"--sound needs SIGMA <= {sound_mode.MAX_SIGMA:g} (its noise table is tested that far), "
                         f"got {opts.sigma}")
    return True


def _check_top_k(opts) -> int | None:
    """The K of a ``--top-k`` run, None for a run without it (K < the classes: ``_smoothed_model``)."""
    k = getattr(opts, "top_k", None)
    if k is None:
        return None
    k = check_positive_int("--top-k", k)
    if opts.noise != "gaussian":
        raise ValueError(f"--top-k needs --noise gaussian (Jia et al.'s theorem is Gaussian, l2), got --noise {opts.noise}")
    if opts.two_sided:
        raise ValueError("--top-k cannot be --two-sided: its bounds are two-sided already (--top-k 1 is the "
                         "two-sided certificate)")
    if getattr(opts, "adaptive", False):
        raise ValueError("--top-k cannot be --adaptive: the anytime-valid bounds certify one class")
    return k


def _top_k_row(labels, radii, label: int) -> tuple:
    """One row of a top-k run: the labels, the true class's radius and correct, or an abstention.

    A row is about the true class, as Jia et al.'s certified top-k accuracy is: it holds the K
    labels and the true class's own radius (the others' radii need not be positive: the runners-up
    of a confident input never are) where that class is among them and certified, else -1, 0.0.
    """
    position = np.flatnonzero(labels == label)
    if not len(position) or radii[position[0]] <= 0:
        return -1, 0.0, 0
    return (tuple(map(int, labels)) if len(labels) > 1 else int(labels[0])), float(radii[position[0]]), 1


def run_certify(opts) -> None:
    """CERTIFY every selected input of a data set; one results row per input."""
    sound = _check_sound(opts)
    top_k = _check_top_k(opts)
    question = _check_adaptive(opts)
    if distributed.launched_rank() == 0:  # once per job, not once per rank
        _warn_if_nothing_can_be_certified(opts, top_k)

    def decide(smooth, xs, indices, labels):
        if sound:
            _check_on_grid(xs, indices, opts)
        preds, radii = smooth.certify_batch(xs, opts.N0, opts.N, opts.alpha, opts.batch, streams=indices,
                                            two_sided=opts.two_sided)
        return [(int(p), float(r), int(p == label)) for p, r, label in zip(preds, radii, labels)]

    def decide_adaptive(smooth, xs, indices, labels):
        try:
            preds, radii, samples = smooth.certify_batch(xs, opts.N0, opts.N, opts.alpha, opts.batch,
                                                         streams=indices, adaptive=True, **question)
        except AdaptiveInterrupted as interrupt:
            r = interrupt.result
            rows = {j: (int(r.predictions[j]), float(r.radii[j]), int(r.predictions[j] == labels[j]),
                        int(r.samples[j])) for j in range(len(labels)) if r.finished[j]}
            raise ChunkInterrupted(rows, [j for j in rows if r.stopped_early[j]]) from None
        return [(int(p), float(r), int(p == label), int(s)) for p, r, label, s in zip(preds, radii, labels, samples)]

    def decide_top_k(smooth, xs, indices, labels):
        sets, radii = smooth.certify_topk_batch(xs, top_k, opts.N0, opts.N, opts.alpha, opts.batch, streams=indices)
        return [_top_k_row(s, r, label) for s, r, label in zip(sets, radii, labels)]

    if question is not None:
        finished = _run(opts, "certify", opts.N0 + min(opts.N, ADAPTIVE_CHUNK_SAMPLES), decide_adaptive,
                        samples_column=True)
    else:
        finished = _run(opts, "certify", opts.N0 + opts.N, decide if top_k is None else decide_top_k)
    if finished:
        _summarize(opts.outfile, opts.plot, opts.sigma, opts.N, opts.alpha, opts.noise,
                   top_k=top_k, num_classes=dataset_num_classes(opts.dataset) if top_k else 0, sound=sound)


def run_predict(opts) -> None:
    """PREDICT every selected input of a data set; one results row per input."""
    sound = _check_sound(opts)

    def decide(smooth, xs, indices, labels):
        if sound:
            _check_on_grid(xs, indices, opts)
        preds = smooth.predict_batch(xs, opts.N, opts.alpha, opts.batch, streams=indices)
        return [(int(p), int(p == label)) for p, label in zip(preds, labels)]

    if not _run(opts, "predict", opts.N, decide):
        return
    table = read_results(opts.outfile)
    if len(table):
        print(f"smoothed accuracy {table.correct.mean():.3f} ({len(table)} inputs{', sound mode' * sound})")


def _recorded_arguments(record: dict | None) -> dict:
    """The arguments a run record holds ({} without a record or with a malformed one); the
    ``_recorded_*`` readers below take them, so that a file's record is read once."""
    return record["arguments"] if record is not None and isinstance(record.get("arguments"), dict) else {}


def _recorded_question(arguments: dict) -> dict:
    """The adaptive run's question ({"radius": r, ...}), {} for a fixed run."""
    question = arguments.get("adaptive")
    return question if isinstance(question, dict) else {}


def _samples_note(path: str, table, arguments: dict) -> str | None:
    # An adaptive file's cost, and which of its columns answer the question it asked.
    if table.samples is None:
        return None
    note = (f"{path}: {table.samples.mean():,.0f} samples per input on average (min {table.samples.min():,}, "
            f"max {table.samples.max():,}; adaptive)")
    target = _recorded_question(arguments).get("radius")
    if isinstance(target, (int, float)):
        note += (f"; it decided radius {target} only, so its other columns are lower bounds on what a "
                 "fixed run certifies")
    return note


def _radius_norm(arguments: dict) -> str:
    """The norm of a certify run's radii: "l2" unless its arguments name another noise."""
    noise = arguments.get("noise", "gaussian")
    return certificates.NORMS.get(noise, "l2") if isinstance(noise, str) else "l2"


def _recorded_top_k(arguments: dict) -> int | None:
    """The K of a top-k certify run; None for any other run."""
    k = arguments.get("top_k")
    return k if type(k) is int else None


def _recorded_sound(arguments: dict) -> bool:
    """Whether a run is ``--sound``."""
    return arguments.get("sound") is True


def _largest_radius(sigma: float, n: int, alpha: float, noise: str, top_k: int | None, num_classes: int,
                    sound: bool = False) -> float:
    """The radius of n votes of n, the largest any certificate of the run can reach."""
    sigma = float(np.float32(sigma))  # the noise the kernels draw
    if sound:  # the same formula in high precision, rounded down: up to 1.3e-9 sigma above the float one
        return float(sound_mode.certify_sound_from_counts([0], [n], n, alpha, sigma)[1][0])
    if top_k is None:
        return float(certificates.certify_one_sided([0], [n], n, alpha, sigma, noise)[1][0])
    # A top-k radius can pass the one-sided one (staying among K is easier to keep than first place).
    votes = np.zeros((1, num_classes), dtype=np.int64)
    votes[0, 0] = n
    return float(certificates.certify_top_k(votes, votes, top_k, n, alpha, sigma)[1][0, 0])


def _summarize(path: str, plot: str | None, sigma: float, n: int, alpha: float, noise: str, *,
               top_k: int | None = None, num_classes: int = 0, sound: bool = False) -> None:
    table = read_results(path)
    if not len(table):
        return
    # Columns stop at the largest radius n and alpha allow (n votes of n): beyond it every value
    # is 0 by design.
    ceiling = _largest_radius(sigma, n, alpha, noise, top_k, num_classes, sound)
    norm = certificates.NORMS[noise]
    radii = [r for r in analyze.default_radii() if r <= ceiling] or [0.0]
    arguments = _recorded_arguments(read_run_record(path))
    target = _recorded_question(arguments).get("radius")
    if isinstance(target, (int, float)) and target not in radii:
        radii = sorted([*radii, target])
    limit = (f"no certificate can exceed {floor_significant(ceiling)}" if ceiling > 0 else
             "no input can be certified")
    what = ("certified accuracy (fraction of inputs certified correct" if top_k is None else
            f"certified top-{top_k} accuracy (fraction of inputs whose class is certified among the top {top_k}")
    mode = "; sound mode: radii for perturbations on the 1/255 grid" if sound else ""
    print(f"\n{what} at {norm} radius >= r, {noise} noise{mode}); {limit} at sigma = {sigma}, N = {n}, "
          f"alpha = {alpha}\n")
    print(analyze.format_table([path], analyze.certified_accuracy(table, radii)[None], radii))
    note = _samples_note(os.path.basename(path), table, arguments)
    if note:
        print(note)
    if plot:
        analyze.plot_certified_accuracy([table], plot, names=[os.path.basename(path)], norm=norm)
        print(f"plot saved to {os.path.abspath(plot)}")


def _warn_if_unfinished(path: str, record: dict | None) -> None:
    # A results file of a run that stopped early looks like any other: say so (on stderr, so
    # the table on stdout stays clean). record: None for files of the original code: nothing to say.
    if record is not None and record.get("complete") is False:
        print(f"note: {path} is from a run that has not finished; rerun its command to complete it",
              file=sys.stderr)


def run_analyze(opts) -> None:
    """Certified-accuracy table (and optional plot) of one or more results files."""
    check_plot_path(opts.plot)
    tables = [read_results(path) for path in opts.files]
    records = [read_run_record(path) for path in opts.files]
    arguments = [_recorded_arguments(record) for record in records]
    for path, table, record in zip(opts.files, tables, records):
        _warn_if_unfinished(path, record)
        if not len(table):
            raise ValueError(f"{path}: no rows yet (a run stopped before its first input)")
    kinds = {table.kind for table in tables}
    norms = {_radius_norm(args) for args, table in zip(arguments, tables) if table.kind == "certify"}
    if len(norms) > 1:
        raise ValueError(f"the files' radii are in different norms ({' and '.join(sorted(norms))}): analyze them "
                         "separately")
    norm = norms.pop() if norms else "l2"
    if norm != "l2":
        print(f"radii are {norm} radii (from the files' run records)", file=sys.stderr)
    if opts.plot and kinds != {"certify"}:
        raise ValueError("--plot needs certify results files (predict files have no radii)")
    radii = opts.radii
    if radii is None:
        # A prediction carries no radius: with predict files only clean accuracy makes sense.
        radii = [0.0] if "predict" in kinds else analyze.default_radii()
    accuracies = [analyze.certified_accuracy(table, radii) for table in tables]
    print(analyze.format_table(opts.files, accuracies, radii, fmt=opts.format))
    for path, table, args in zip(opts.files, tables, arguments):
        k = _recorded_top_k(args)
        note = _samples_note(path, table, args)
        if k is not None:  # another question than the other rows': say which
            print(f"{path}: certified top-{k} accuracy (its true class certified among {k} labels)", file=sys.stderr)
        if _recorded_sound(args):  # another guarantee: on the grid, against any classifier
            print(f"{path}: sound mode" + (": radii for perturbations on the 1/255 grid" if table.kind == "certify"
                                           else " (the smoothed classifier on the 1/255 grid)"), file=sys.stderr)
        if note:
            print(note, file=sys.stdout if opts.format == "markdown" else sys.stderr)  # LaTeX stays clean
    if opts.plot:
        analyze.plot_certified_accuracy(tables, opts.plot, names=opts.files, norm=norm)
        print(f"plot saved to {os.path.abspath(opts.plot)}")


def run_train(opts) -> None:
    """Train an architecture with noise augmentation (--noise) and save a checkpoint."""
    device = resolve_device(opts.device)
    num_classes = dataset_num_classes(opts.dataset)
    torch.manual_seed(opts.seed)  # the initial weights too, so the command reproduces a checkpoint
    model = build_model(opts.arch, num_classes)
    dataset = load_dataset(opts.dataset, "train", opts.data_dir)
    mean, std = dataset_stats(opts.dataset)
    train_model(model, dataset, sigma=opts.sigma, epochs=opts.epochs, batch_size=opts.batch, lr=opts.lr,
                lr_schedule=opts.lr_schedule, mean=mean, std=std, seed=opts.seed, device=device, log=print,
                noise=opts.noise)
    # The checkpoint format records a Gaussian sigma; another training noise goes in `extra`.
    extra = None if opts.noise == "gaussian" else {"noise": opts.noise}
    save_checkpoint(opts.outfile, model.cpu(), opts.arch, sigma=opts.sigma, mean=mean, std=std, extra=extra)
    print(f"saved {opts.arch} trained with {opts.noise} noise at sigma={opts.sigma} to {os.path.abspath(opts.outfile)}")
