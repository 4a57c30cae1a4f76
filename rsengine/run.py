"""A run over a data set: what ``rsengine certify`` and ``predict`` do, as one call a tool can build on.

:func:`certify_dataset` asks a question (rsengine.questions) of every selected input of a data set,
a chunk of inputs at a time so that their samples share batches (adaptive questions refill their
batches as inputs finish), and writes one results row per input to a results file, with its lock,
seed and environment record, resume, stopped-early rows and torchrun ranks (rank 0 writes one
file, identical to one process's), and its progress (rsengine.progress: a bar on a terminal, lines
in a log). It returns :class:`Results`: certified accuracy at radii, the average certified radius
(ACR), the abstention rate, pA's lower bounds and their distribution, rows for pandas and the TSV.

Input i uses noise stream i, so a row is a function of (seed, i) alone: any split over chunks,
processes or restarts writes the file an uninterrupted single process writes.

Example:
    >>> import os, tempfile, torch
    >>> from rsengine import Smooth, certify_dataset
    >>> from rsengine.questions import Certify
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> smooth = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, sigma=0.25)
    >>> dataset = [(torch.rand(4), i % 3) for i in range(6)]
    >>> out = os.path.join(tempfile.mkdtemp(), "certify.tsv")
    >>> results = certify_dataset(smooth, dataset, Certify(n0=20, n=200, alpha=0.001), out=out, quiet=True)
    >>> len(results), results.certified_accuracy([0.0]).shape, results.acr >= 0
    (6, (1,), True)
    >>> 0 <= results.abstention_rate <= 1, results.pa_lower_distribution().shape
    (True, (5,))
    >>> again = certify_dataset(smooth, dataset, Certify(n0=20, n=200, alpha=0.001), out=out, quiet=True)
    >>> again.rows() == results.rows()  # resumed: nothing computed, the same table
    True
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import secrets
import sys
import tempfile
import time
from importlib import metadata
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from . import __version__, distributed
from .analyze import (PA_EDGES, abstention_rate, average_certified_radius, certified_accuracy, pa_lower_bounds,
                      pa_lower_distribution)
from .lock import ResultsLock
from .noises import Noise
from .progress import Progress
from .questions import Answer, Question
from .refill import AdaptiveInterrupted
from .results import ResultsTable, read_results
from .inputs import BAD_INPUT_POLICIES, BadInputError, InputCheck
from .resume import (mark_complete, mark_skipped, mark_stopped_early, open_results, read_run_record,
                     recorded_skipped, run_record_path)
from .sampler import MAX_AUTO_BATCH_SIZE, cpu_batch_size
from .validation import check_choice

__all__ = ["CHUNK_BATCHES", "DatasetRun", "Results", "certify_dataset", "chunk_size"]

# Work per chunk of inputs, in forward batches: enough that the n0 = 100 selection draws of
# several inputs share batches (with --batch 1000 and N = 1,000: 14 inputs, one 1,400-row selection
# phase instead of 14 of 100 rows), few enough that a killed run loses little and the progress
# bar moves. At n = 10,000 and more a chunk is usually one input: packing gains nothing there.
CHUNK_BATCHES = 16


def chunk_size(batch: int | None, samples_per_input: int, device: torch.device, numel: int) -> int:
    """Inputs certified together: about CHUNK_BATCHES batches of samples, at least one input.

    Args:
        batch: rows per forward pass (None: the automatic size). samples_per_input: N0 + N (or N).
        device: where sampling runs. numel: values per input (the CPU's automatic size needs it).

    Example:
        >>> chunk_size(1000, 100 + 1000, torch.device("cpu"), 784), chunk_size(None, 100 + 10_000, torch.device("cpu"), 784)
        (14, 1)
    """
    if batch is None:  # the automatic size: its cap on a GPU (the usual outcome), by input size on the CPU
        batch = MAX_AUTO_BATCH_SIZE if device.type == "cuda" else cpu_batch_size(numel)
    return max(1, CHUNK_BATCHES * batch // samples_per_input)


@dataclasses.dataclass(frozen=True, eq=False)
class Results:
    """The results table of a run: what its results file holds, row for row.

    Attributes:
        table: the rows as arrays (rsengine.results.ResultsTable).
        text: the results file's text (tab-separated, the original code's format).
        path: the results file, or None for a run computed in memory.
        skipped: the inputs skipped as bad (``on_bad_input="skip"``): index -> the reason;
            they have no row, so the accuracies are over the rows alone.
        question: the question the run asked, None where not known (a Results built by hand).
        noise: the run's noise, None where not known.
    """

    table: ResultsTable
    text: str
    path: Optional[str] = None
    skipped: dict = dataclasses.field(default_factory=dict)
    question: Optional[Question] = None
    noise: Optional[Noise] = None

    def __len__(self) -> int:
        return len(self.table)

    def certified_accuracy(self, radii) -> np.ndarray:
        """Fraction of inputs certified correct at radius >= r, for each r (rsengine.analyze)."""
        return certified_accuracy(self.table, radii)

    @property
    def acr(self) -> float:
        """The average certified radius: the mean of radius x correct over all rows."""
        return average_certified_radius(self.table)

    @property
    def abstention_rate(self) -> float:
        """The fraction of rows where the smoothed classifier abstained (``predict == -1``).

        Raises:
            ValueError: the question's rows do not tell abstentions apart (top-k, adaptive in
                radius mode: ``Question.abstention_unavailable`` says why).
        """
        self._refuse_unless_known("abstention_unavailable", "abstention rate")
        return abstention_rate(self.table)

    def pa_lower_bounds(self) -> np.ndarray:
        """Per row, a lower bound on the smoothed probability pA of its true class (rsengine.analyze).

        ``noise.pa_lower(radius)`` where certified correct, 0.0 elsewhere. The file's radii are
        rounded down to 3 significant digits, so each value is at most the run's own pA_lower.

        Returns:
            float64 [N], each 0.0 or in [1/2, 1].

        Raises:
            ValueError: the question's radii are not the noise's one-sided radius of pA alone
                (two-sided, top-k, adaptive radius mode, predict: ``Question.pa_lower_unavailable``).
        """
        self._refuse_unless_known("pa_lower_unavailable", "pA lower bounds")
        return pa_lower_bounds(self.table, self.noise)

    def pa_lower_distribution(self, edges=PA_EDGES) -> np.ndarray:
        """The share of rows whose :meth:`pa_lower_bounds` fall in each bin ``[0, 0.5), [0.5, 0.9),
        [0.9, 0.99), [0.99, 0.999), [0.999, 1]`` (or those of ``edges``): float64 [len(edges) + 1]."""
        self._refuse_unless_known("pa_lower_unavailable", "pA lower bounds")
        return pa_lower_distribution(self.table, self.noise, edges)

    def _refuse_unless_known(self, unavailable: str, what: str) -> None:
        """ValueError unless the run's question gives ``what`` (its ``unavailable`` reason is None)."""
        if self.question is None or self.noise is None:
            raise ValueError(f"Expected Results with its run's question and noise for {what}, got one without")
        reason = getattr(self.question, unavailable)
        if reason is not None:
            raise ValueError(f"No {what} for a {type(self.question).__name__} run: {reason}")

    def rows(self) -> list[dict]:
        """One dict per row, the file's columns by name (``pandas.DataFrame(results.rows())``)."""
        header, *lines = self.text.splitlines()
        table, columns = self.table, header.split("\t")
        values = dict(idx=table.idx, label=table.label, correct=table.correct, time=table.time_seconds,
                      radius=table.radius, samples=table.samples)
        predict = table.predict.tolist() if table.labels is None else [tuple(row) for row in table.labels.tolist()]
        return [{name: (predict[j] if name == "predict" else values[name][j].item()) for name in columns}
                for j in range(len(lines))]

    def to_tsv(self, path) -> None:
        """Write the results file's text to ``path``."""
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write(self.text)


class ChunkInterrupted(KeyboardInterrupt):
    """Ctrl-C inside a chunk: ``rows`` maps a chunk position to its row fields (inputs that have
    a certificate), ``stopped`` lists the positions whose certificate stopped early."""

    def __init__(self, rows: dict, stopped: list):
        super().__init__("interrupted")
        self.rows, self.stopped = rows, stopped


def _environment(smooth, batch_size: int | None) -> dict:
    """What can change a row only through float rounding: a resume must share it or say so."""
    device = smooth.device
    # The device's type, not its index: the ranks of a job (and a restart on other GPUs of the
    # same model) compute alike on cuda:0 and cuda:3.
    environment = dict(backend=smooth.backend.name, device=device.type,
                       device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine(),
                       cpu_capability=torch.backends.cpu.get_cpu_capability(),
                       # CPU threads change a CPU row's summation order, never a GPU row: a GPU job
                       # restarted with another rank count (so other threads per rank) resumes.
                       threads=torch.get_num_threads() if device.type == "cpu" else None,
                       batch=batch_size, torch=torch.__version__)
    if device.type == "cuda":
        environment["cudnn"] = torch.backends.cudnn.version()
    if smooth.backend.name == "triton":
        environment["triton"] = metadata.version("triton")
    return environment


@dataclasses.dataclass
class DatasetRun:
    """One run over a data set (:func:`certify_dataset` builds it; the CLI fills in more).

    Attributes:
        build: ``build(seed, local_rank) -> (smooth, dataset)``, called on every rank once the
            seed is known (the CLI loads its checkpoint there, after the lock is held).
        question: what to ask of each input. indices: ``indices(len(dataset))`` -> the inputs.
        out: the results file; None computes in a temporary file. seed: the seed asked for,
            None for one drawn from the operating system (reused on resume); fresh: that one.
        arguments: ``arguments() -> dict``, more run-record keys that determine the rows (the CLI's
            data set and checkpoint digest, computed once the checkpoint has loaded).
        batch_size, overwrite, resume_with_changes, quiet: as in :func:`certify_dataset`.
        name: how error messages name the data set.
        on_bad_input, retry_skipped: as in :func:`certify_dataset`.
    """

    build: Callable
    question: Question
    indices: Callable[[int], Sequence[int]]
    out: Optional[str] = None
    seed: Optional[int] = 0
    fresh: Optional[int] = None
    arguments: Callable[[], dict] = dict
    batch_size: Optional[int] = None
    overwrite: bool = False
    resume_with_changes: bool = False
    quiet: bool = False
    name: str = "dataset"
    on_bad_input: str = "stop"
    retry_skipped: bool = False

    def execute(self) -> Optional[Results]:
        """Write every selected input's row; the Results on every rank (None after a Ctrl-C)."""
        if self.out is not None:
            return self._execute(os.fspath(self.out))
        with tempfile.TemporaryDirectory(prefix="rsengine-") as folder:
            results = self._execute(os.path.join(folder, "results.tsv"))
            return dataclasses.replace(results, path=None)

    def _execute(self, out: str) -> Results:
        group = distributed.join()
        try:
            with contextlib.ExitStack() as held:
                return self._ranks(group, held, out)
        finally:
            group.close()

    def _say(self, message: str, to_stdout: bool = False) -> None:
        if not self.quiet:  # sys.stdout/stderr looked up now: a caller may have redirected them
            print(message, file=sys.stdout if to_stdout else sys.stderr)

    def _resolve_seed(self, out: str) -> tuple[int, str]:
        """The run's seed and where it came from: given, or drawn from the OS (reused on resume)."""
        if self.seed is not None:
            return self.seed, "given"
        previous = None if self.overwrite else read_run_record(out)
        arguments = previous.get("arguments") if previous else None
        if isinstance(arguments, dict) and arguments.get("seed_source") == "random" and type(arguments.get("seed")) is int:
            return arguments["seed"], "random"  # resuming: the seed the run drew
        seed = secrets.randbits(63) if self.fresh is None else self.fresh
        if self.out is not None:
            self._say(f"seed {seed}, drawn from the operating system (recorded in {out}.run.json)")
        return seed, "random"

    def _record(self, smooth, seed: int, seed_source: str) -> dict:
        """The arguments that determine the rows (what a resumed run must share)."""
        arguments = dict(self.arguments(), **smooth.noise.record(self.question.kind), **self.question.record(),
                         seed=seed, seed_source=seed_source, deterministic=smooth.deterministic, rsengine=__version__)
        if smooth.deterministic:  # the batch shape is part of what a deterministic row is a function of
            arguments["batch"] = self.batch_size
        return arguments

    def _ranks(self, group: distributed.Group, held: contextlib.ExitStack, out: str) -> Results:
        started = time.perf_counter()
        writer = None  # rank 0's; ``held`` closes it, then releases the lock
        question = self.question

        def claim():  # before any slow step: the results file is ours, and the seed its run uses
            held.enter_context(ResultsLock(out))
            return self._resolve_seed(out)

        seed, seed_source = group.first_rank(claim)
        (smooth, dataset), environments = group.every_rank(
            lambda: self.build(seed, group.local_rank), report=lambda built: _environment(built[0], self.batch_size))
        indices = self.indices(len(dataset))
        check = InputCheck(dataset, self.name, smooth.num_classes, sound=smooth.sound)

        def open_file():  # every rank takes the chunks from here, so that all agree on them
            nonlocal writer
            writer, done = open_results(out, question.kind, self._record(smooth, seed, seed_source), environments,
                                        self.overwrite, self.resume_with_changes, samples=question.samples_column,
                                        retry_skipped=self.retry_skipped)
            held.enter_context(writer)
            todo = [i for i in indices if i not in done]
            if done:
                self._say(f"resuming {out}: {len(indices) - len(todo)} of {len(indices)} inputs already done")
            if not todo:
                return [], None
            reference = self._reference(check, indices, done)  # the first input, done or not: one shape per file
            size = chunk_size(self.batch_size, question.samples_per_input, smooth.device, math.prod(reference.shape))
            return [todo[start:start + size] for start in range(0, len(todo), size)], reference

        chunks, reference = group.first_rank(open_file)
        check.reference = reference
        computed = sum(map(len, chunks))
        progress = held.enter_context(Progress(computed, question.kind, quiet=self.quiet)) if group.is_writer else None
        waited = 0.0  # rank 0's time at the exchanges spent waiting for slower ranks' chunks
        interrupted: ChunkInterrupted | None = None
        skipped_now = 0  # rank 0's count of the inputs this run left out as bad

        interrupted_inputs: list = []  # the inputs of the interrupted chunk that were sampled

        def compute(chunk):
            nonlocal interrupted, interrupted_inputs
            start = time.perf_counter()
            # Every input is loaded and checked before any is sampled: a bad one ends the chunk
            # there (stop: the inputs before it get their rows) or is left out (skip).
            good, xs, labels, bad = [], [], [], []
            for i in chunk:
                try:
                    x, label = check.load(i)
                except BadInputError as error:
                    bad.append((i, error))
                    if self.on_bad_input == "stop":
                        break
                    continue
                good.append(i), xs.append(x), labels.append(label)
            if not good:
                return time.perf_counter() - start, [], bad
            try:
                rows = dict(enumerate(self._answer(smooth, torch.stack(xs), good, labels)))
            except ChunkInterrupted as interrupt:
                if group.world_size > 1:  # the job's ranks stop together; finished chunks are on disk
                    raise
                interrupted, interrupted_inputs, rows = interrupt, good, interrupt.rows
            seconds = time.perf_counter() - start
            after_time = 1 if question.samples_column else 0
            split = lambda fields: (*fields[:len(fields) - after_time], seconds / len(good),  # noqa: E731
                                    *fields[len(fields) - after_time:])
            return seconds, [(good[j], labels[j], *split(rows[j])) for j in sorted(rows)], bad

        for first in range(0, len(chunks), group.world_size):
            mine = chunks[first + group.rank] if first + group.rank < len(chunks) else []
            (own_seconds, _, _), reports = group.every_rank(lambda: compute(mine), report=lambda result: result)
            waited += max(seconds for seconds, _, _ in reports) - own_seconds
            bad = sorted((entry for _, _, entries in reports for entry in entries), key=lambda entry: entry[0])

            def write():  # rank 0 alone, inside a collective: a failed write stops every rank, not only rank 0
                nonlocal skipped_now
                for _, rows, _ in reports:
                    for row in rows:
                        writer.write_row(*row)
                    progress.update(len(rows))
                if bad and self.on_bad_input == "skip":
                    mark_skipped(out, {index: error.reason for index, error in bad})
                    for _, error in bad:
                        progress.note(f"skipped {error.reason}")
                    progress.update(len(bad))
                    skipped_now += len(bad)

            group.first_rank(write)
            if bad and self.on_bad_input == "stop":  # every rank: the rows before it are on disk
                raise bad[0][1]
            if interrupted is not None:
                stopped = [interrupted_inputs[j] for j in interrupted.stopped]  # positions among the loaded
                mark_stopped_early(out, stopped)
                print(f"\ninterrupted: wrote {len(interrupted.rows)} certificates of this chunk, {len(stopped)} of "
                      "them stopped early (valid, from fewer samples; listed in the run record, redone on resume)",
                      file=sys.stderr)
                raise KeyboardInterrupt

        def finish():
            progress.close()
            writer.close()
            mark_complete(out)
            if distributed.launched_by_torchrun():
                self._report_coordination(group, waited, time.perf_counter() - started)
            skipped = recorded_skipped(read_run_record(out))
            if self.out is not None:
                left_out = (f"; {len(skipped)} skipped as bad inputs, listed in "
                            f"{os.path.basename(run_record_path(out))}" if skipped else "")
                self._say(f"{len(indices) - len(skipped)} inputs in {os.path.abspath(out)} ({computed - skipped_now} "
                          f"computed now{left_out})", to_stdout=True)
            with open(out, encoding="utf-8", newline="") as file:
                return Results(read_results(out), file.read(), out, skipped, question, smooth.noise)

        return group.first_rank(finish)

    def _reference(self, check: InputCheck, indices: Sequence[int], done: set) -> tuple:
        """The first input that loads (its index, shape and dtype): what the run's inputs must share.

        An input refused here stops the run only if it is still to do under "stop": one done
        already (a row, or skipped by an earlier run) is passed over, whatever its file is now.
        """
        if check.first_usable(indices, lambda index: self.on_bad_input == "skip" or index in done) is None:
            raise ValueError(f"No input of data set {self.name!r} can be used: every one was refused")
        return check.reference

    def _answer(self, smooth, xs, indices: list, labels: list) -> list[tuple]:
        """One tuple of row fields per input of a chunk (ChunkInterrupted on an adaptive Ctrl-C)."""
        try:
            answer = smooth.answer(self.question, xs, streams=indices, batch_size=self.batch_size)
        except AdaptiveInterrupted as interrupt:
            result = interrupt.result  # the certificates so far
            so_far = Answer(result.predictions, result.radii, result.samples)
            rows = {j: self.question.row(so_far, j, labels[j]) for j in range(len(labels)) if result.finished[j]}
            raise ChunkInterrupted(rows, [j for j in rows if result.stopped_early[j]]) from None
        return [self.question.row(answer, j, label) for j, label in enumerate(labels)]

    @staticmethod
    def _report_coordination(group: distributed.Group, waited: float, total: float) -> None:
        # What the ranks cost beyond their share of the work: joining, and passing rows to rank 0
        # (its time at the exchanges less its wait for slower ranks' chunks, which is load imbalance).
        merging = max(0.0, group.exchange_seconds - waited)
        print(f"{group.world_size} rank{'s' * (group.world_size > 1)}: rendezvous {group.setup_seconds:.3f} s, "
              f"merging rows {merging:.3f} s, waiting for slower ranks {waited:.3f} s, run {total:.3f} s",
              file=sys.stderr)


def certify_dataset(smooth, dataset, question: Question, indices=None, out=None, *, batch_size: int | None = None,
                    overwrite: bool = False, resume_with_changes: bool = False, quiet: bool = False,
                    record: dict | None = None, on_bad_input: str = "stop", retry_skipped: bool = False,
                    name: str | None = None) -> Results:
    """Ask ``question`` of every selected input of ``dataset``; one results row per input.

    Args:
        smooth: the rsengine.Smooth (its seed, noise, backend and device). Under torchrun each
            rank passes its own (on its own device); rank 0 writes the file, every rank gets the
            Results. A Smooth with ``seed=None`` gets a drawn seed, reused when ``out`` resumes.
        dataset: a sequence of (x [*shape] tensor in pixel space, int label), e.g. a torchvision
            data set or rsengine.data.load_dataset's (not its DataLoader). With the Smooth's
            mean/std, x is in [0, 1] (no Normalize in the transform: InputRangeWarning).
        question: an rsengine.questions.Question (Certify, TwoSided, TopK, Predict, AdaptiveRadius,
            AdaptiveTolerance).
        indices: the data set indices to answer (default: all); input i uses noise stream i.
        out: the results file (tab-separated, with ``out.run.json``, locked while the run goes
            on). A file of the same run is resumed: rows on disk are kept, so a second call
            computes nothing and returns the same table. A file of another run is refused
            unless ``overwrite``. None: computed in memory, no file left behind.
        batch_size: rows per forward pass (None: automatic). resume_with_changes: resume a file
            computed with another backend, device, batch size or library version. quiet: no
            progress bar or messages. record: more run-record keys that determine the rows
            (e.g. ``{"dataset": "cifar10-test"}``), checked on resume like the others.
        on_bad_input: an input that cannot be read or used (rsengine.inputs: unreadable or
            truncated, another shape than the others, NaN, a label outside the model's classes)
            makes the run ``"stop"`` with a :class:`rsengine.inputs.BadInputError` naming it
            (the rows before it are written), or ``"skip"`` it: no row, listed in the record and
            in ``Results.skipped``. retry_skipped: a resume loads skipped inputs again.
        name: how messages name the data set (default: its ``root`` folder, else its class).

    Returns:
        Results: ``certified_accuracy(radii)``, ``acr``, ``abstention_rate``, ``pa_lower_bounds()``,
        ``pa_lower_distribution()``, ``rows()``, ``to_tsv(path)``, ``table``, ``skipped``.
    """
    if not isinstance(question, Question):
        raise TypeError(f"Expected `question` to be an rsengine.questions.Question, got {question!r}")
    if isinstance(dataset, torch.utils.data.DataLoader):  # it batches and shuffles; rows need input i at index i
        raise TypeError("Expected `dataset` to be indexable (x, label) items, got a torch DataLoader: pass "
                        "loader.dataset instead")
    if not len(dataset):
        raise ValueError("Expected a non-empty `dataset`")
    check_choice("on_bad_input", on_bad_input, BAD_INPUT_POLICIES)
    chosen = range(len(dataset)) if indices is None else indices
    selected = [int(i) for i in chosen]
    if any(not 0 <= i < len(dataset) for i in selected) or len(set(selected)) != len(selected):
        raise ValueError(f"Expected `indices` to be distinct integers in [0, {len(dataset)}), got {indices!r}")
    given = smooth.seed_source == "given"
    arguments = dict(record or {}, indices=selected if not isinstance(chosen, range) else
                     [chosen.start, chosen.stop, chosen.step])
    run = DatasetRun(lambda seed, local_rank: (smooth if seed == smooth.seed else smooth.with_seed(seed), dataset),
                     question, lambda length: selected, out, seed=smooth.seed if given else None, fresh=smooth.seed,
                     arguments=lambda: arguments, batch_size=batch_size, overwrite=overwrite,
                     resume_with_changes=resume_with_changes, quiet=quiet, on_bad_input=on_bad_input,
                     retry_skipped=retry_skipped, name=name or _name_of(dataset))
    return run.execute()


def _name_of(dataset) -> str:
    root = getattr(dataset, "root", None)
    return os.fspath(root) if isinstance(root, (str, os.PathLike)) else type(dataset).__name__
