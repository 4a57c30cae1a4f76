"""Resumable results files: a killed certify/predict run continues where it stopped.

Beside each results file ``OUT`` sits ``OUT.run.json``: the arguments that determine the rows
(data set, split, checkpoint digest, sigma, n0, n, alpha, seed, skip, stop index, precision,
deterministic mode), the environment each part of the file was computed in (backend, device,
batch size, threads, library versions: what can flip a vote on a near-tie through float
rounding without changing the noise), and whether the run finished. Input i always uses noise
stream i, so a restarted run that skips the rows already on disk writes the rows an
uninterrupted run would have. A results file of other arguments, or one without its
``.run.json``, is never appended to or replaced unless the user says ``--overwrite``; one written
in another environment is resumed only with ``--resume-with-changes``, and the record then lists
every environment that wrote rows.

An adaptive run interrupted by Ctrl-C writes, for each input it had begun, the certificate its
samples so far support, and lists those inputs in the record as ``stopped_early``; resuming drops
their rows (rewriting the file atomically) and certifies them again in full, so the resumed file
holds the rows of an uninterrupted run.

A run told to skip bad inputs (``--on-bad-input skip``) writes no row for an input it cannot read
and lists it in the record as ``skipped`` (index -> the one-line reason); a resume keeps them
skipped unless asked to retry them (``--retry-skipped``).

Example:
    >>> import os, tempfile
    >>> from rsengine.resume import open_results
    >>> path = os.path.join(tempfile.mkdtemp(), "out.tsv")
    >>> writer, done = open_results(path, "predict", {"sigma": 0.25}, [{"batch": 100}], overwrite=False)
    >>> writer.write_row(0, 1, 1, 1, 0.5); writer.close()
    >>> writer, done = open_results(path, "predict", {"sigma": 0.25}, [{"batch": 100}], overwrite=False)
    >>> sorted(done)
    [0]
    >>> writer.close()
"""
from __future__ import annotations

import hashlib
import json
import os

from .certificates import NORMS
from .data import dataset_num_classes
from .noises import Noise, noise_of_record
from .questions import Certify, TopK, TwoSided, question_type_of_record
from .results import ResultsWriter

__all__ = ["EnvironmentChangedError", "RunMismatchError", "file_digest", "mark_complete", "mark_skipped",
           "mark_stopped_early", "open_results", "radius_norm", "read_run_record", "recorded_arguments",
           "recorded_ceiling", "recorded_pa_noise", "recorded_question", "recorded_skipped", "recorded_sound", "recorded_top_k",
           "run_record_path", "samples_note", "skipped_note"]


class RunMismatchError(ValueError):
    """The results file belongs to a run with other arguments (or to no known run)."""


class EnvironmentChangedError(RunMismatchError):
    """The results file's rows were computed in another environment (backend, device, batch...)."""


def run_record_path(results_path) -> str:
    """Where the run record of ``results_path`` lives."""
    return os.fspath(results_path) + ".run.json"


def read_run_record(results_path) -> dict | None:
    """The run record beside ``results_path``, or None where there is none that can be read."""
    try:
        with open(run_record_path(results_path), encoding="utf-8") as file:
            record = json.load(file)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def file_digest(path) -> str:
    """SHA-256 of a file's bytes (identifies a checkpoint whatever its name)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_record(results_path, record: dict) -> None:
    # Write then rename: a crash leaves the old record or the new one, never half of one.
    path = run_record_path(results_path)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        json.dump(record, file, indent=1, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(path + ".tmp", path)


def _drop_partial_last_line(path: str) -> None:
    # Every row is written with its newline in one write; a file not ending in a newline was
    # killed inside that write, and its last line is not a row.
    with open(path, "rb+") as file:
        data = file.read()
        if data and not data.endswith(b"\n"):
            file.truncate(data.rfind(b"\n") + 1)


def _differences(old: dict, new: dict) -> str:
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:4])


def _drop_rows(path: str, indices: set[int]) -> None:
    # Write then rename, like the record: a crash leaves the file with the rows or without them.
    with open(path, encoding="utf-8", newline="") as file:
        header, *rows = file.read().splitlines(keepends=True)
    kept = [row for row in rows if int(row.split("\t", 1)[0]) not in indices]
    with open(path + ".tmp", "w", encoding="utf-8", newline="") as file:
        file.writelines([header, *kept])
        file.flush()
        os.fsync(file.fileno())
    os.replace(path + ".tmp", path)


def open_results(path, kind: str, arguments: dict, environments: list[dict], overwrite: bool,
                 resume_with_changes: bool = False, *, samples: bool = False,
                 retry_skipped: bool = False) -> tuple[ResultsWriter, set]:
    """Open the results file of a run, resuming it when it holds the same run's rows.

    Args:
        path: the results file. kind: "certify" or "predict".
        arguments: JSON-serializable values that determine the rows.
        environments: for each distinct set-up among the processes computing rows (one, outside
            a torchrun job), JSON-serializable values that can change a row only through float
            rounding (backend, device, batch size, ...).
        overwrite: start afresh even if ``path`` holds other results.
        resume_with_changes: resume a file whose rows were computed in another environment.
        samples: the file has the adaptive ``samples`` column.
        retry_skipped: load again the inputs an earlier run skipped as bad (kept skipped,
            and counted as done, otherwise).

    Returns:
        (writer, indices already written or skipped).

    Raises:
        RunMismatchError: ``path`` exists and holds another run's results (or results with no
            run record), and ``overwrite`` is False.
        EnvironmentChangedError: the same run, computed in another environment, and neither
            ``overwrite`` nor ``resume_with_changes``.
    """
    path = os.fspath(path)
    # Ranks of one job mostly share one set-up: each distinct one is recorded once.
    environments = [e for position, e in enumerate(environments) if e not in environments[:position]]
    record = {"kind": kind, "arguments": arguments, "environments": environments, "complete": False}
    if overwrite or not os.path.exists(path):
        _write_record(path, record)
        return ResultsWriter(path, kind, samples=samples), set()
    previous = read_run_record(path)
    if previous is None:
        raise RunMismatchError(f"{path} already exists and was not written by an rsengine run that can be "
                               "resumed; pass --overwrite to replace it, or choose another OUTFILE")
    if previous.get("kind") != kind or previous.get("arguments") != arguments:
        old = previous.get("arguments") if isinstance(previous.get("arguments"), dict) else {}
        raise RunMismatchError(f"{path} holds results of a run with other arguments "
                               f"({_differences(old, arguments) or kind}); pass --overwrite to replace it, "
                               "or choose another OUTFILE")
    recorded = previous.get("environments")
    recorded = [e for e in recorded if isinstance(e, dict)] if isinstance(recorded, list) else []
    new = [environment for environment in environments if environment not in recorded]
    if new and not resume_with_changes:
        last = recorded[-1] if recorded else {}
        raise EnvironmentChangedError(
            f"{path} was computed with other settings ({_differences(last, new[0])}), which can flip "
            "votes that sit on a near-tie; rerun with the recorded settings, pass --resume-with-changes to "
            "continue anyway (the record lists both), or --overwrite to start again")
    environments = recorded + new
    _drop_partial_last_line(path)
    stopped = previous.get("stopped_early")
    if isinstance(stopped, list) and stopped:
        _drop_rows(path, {i for i in stopped if type(i) is int})
    record["environments"] = environments
    skipped = recorded_skipped(previous) if not retry_skipped else {}
    if skipped:
        record["skipped"] = {str(index): reason for index, reason in sorted(skipped.items())}
    _write_record(path, record)
    writer = ResultsWriter(path, kind, samples=samples, append=True)
    return writer, set(writer.written_indices) | set(skipped)


def mark_stopped_early(path, indices) -> None:
    """Record that the rows of ``indices`` hold certificates of interrupted inputs (see above)."""
    record = read_run_record(path)
    if record is not None:
        record["stopped_early"] = sorted({*record.get("stopped_early", []), *map(int, indices)})
        _write_record(path, record)


def recorded_skipped(record: dict | None) -> dict[int, str]:
    """The inputs a run skipped as bad (``--on-bad-input skip``): index -> the reason."""
    entries = record.get("skipped") if record is not None else None
    if not isinstance(entries, dict):
        return {}
    return {int(index): str(reason) for index, reason in entries.items() if str(index).isdigit()}


def mark_skipped(path, reasons: dict) -> None:
    """Record inputs skipped as bad, index -> the one-line reason (no row is written for them)."""
    record = read_run_record(path)
    if record is not None:
        record["skipped"] = {str(index): reason for index, reason in
                             sorted({**recorded_skipped(record), **{int(i): str(r) for i, r in reasons.items()}}.items())}
        _write_record(path, record)


def mark_complete(path) -> None:
    """Record that the run writing ``path`` finished every input."""
    record = read_run_record(path)
    if record is not None:  # None: removed while the run went on; nothing left to mark
        record["complete"] = True
        _write_record(path, record)


# -- reading a record's arguments: each reader takes them, so that a file's record is read once --


def recorded_arguments(record: dict | None) -> dict:
    """The arguments a run record holds ({} without a record or with a malformed one)."""
    return record["arguments"] if record is not None and isinstance(record.get("arguments"), dict) else {}


def recorded_question(arguments: dict) -> dict:
    """The adaptive run's goal ({"radius": r, ...}), {} for a fixed run."""
    question = arguments.get("adaptive")
    return question if isinstance(question, dict) else {}


def samples_note(path: str, table, arguments: dict) -> str | None:
    """An adaptive file's cost, and which of its columns answer the question it asked (None: fixed)."""
    if table.samples is None:
        return None
    note = (f"{path}: {table.samples.mean():,.0f} samples per input on average (min {table.samples.min():,}, "
            f"max {table.samples.max():,}; adaptive)")
    target = recorded_question(arguments).get("radius")
    if isinstance(target, (int, float)):
        note += (f"; it decided radius {target} only, so its other columns are lower bounds on what a "
                 "fixed run certifies")
    return note


def skipped_note(path: str, table, record: dict | None) -> str | None:
    """How many inputs a run skipped as bad (None: none): they have no row in ``table``."""
    skipped = recorded_skipped(record)
    if not skipped:
        return None
    return (f"{path}: {len(skipped)} input{'s' * (len(skipped) > 1)} skipped as bad "
            f"({', '.join(map(str, sorted(skipped)[:5]))}{', ...' if len(skipped) > 5 else ''}; reasons in "
            f"{os.path.basename(run_record_path(path))}): the accuracies are over the other {len(table)}")


def radius_norm(arguments: dict) -> str:
    """The norm of a certify run's radii: "l2" unless its arguments name another noise."""
    noise = arguments.get("noise", "gaussian")
    return NORMS.get(noise, "l2") if isinstance(noise, str) else "l2"


def recorded_top_k(arguments: dict) -> int | None:
    """The K of a top-k certify run; None for any other run."""
    k = arguments.get("top_k")
    return k if type(k) is int else None


def recorded_sound(arguments: dict) -> bool:
    """Whether a run is ``--sound``."""
    return arguments.get("sound") is True


def recorded_ceiling(arguments: dict) -> float | None:
    """The largest radius a certify run's record allows (N votes of N at its N, alpha, sigma and
    noise: ``Question.largest_radius``, what the certify summary trims its columns at); None where
    the record does not say (no record: the original code's files)."""
    noise, k = noise_of_record(arguments), recorded_top_k(arguments)
    n, n0, alpha = arguments.get("N"), arguments.get("N0", 1), arguments.get("alpha")
    if noise is None or type(n) is not int or type(n0) is not int or not isinstance(alpha, float):
        return None
    try:
        if k is None:
            return (TwoSided if arguments.get("two_sided") is True else Certify)(n0, n, alpha).largest_radius(noise, 0)
        return TopK(k, n0, n, alpha).largest_radius(noise, dataset_num_classes(arguments.get("dataset")))
    except (TypeError, ValueError, OSError):  # values out of range, a data set folder gone since
        return None


def recorded_pa_noise(record: dict | None, kind: str) -> tuple[Noise | None, str | None]:
    """The noise that reads pA's lower bounds back from a results file's radii (``Noise.pa_lower``),
    or (None, why they cannot be read) for a file of kind ``kind`` with run record ``record``.

    Example:
        >>> recorded_pa_noise({"arguments": {"sigma": 0.5, "N": 100}}, "certify")
        (Gaussian(sigma=0.5), None)
        >>> recorded_pa_noise(None, "certify")[1]
        'no run record says its noise and sigma (a file of the original code)'
    """
    if record is None:  # never guessed: the original code's sigma is in no file
        return None, "no run record says its noise and sigma (a file of the original code)"
    arguments = recorded_arguments(record)
    reason = question_type_of_record(arguments, kind).pa_lower_unavailable
    noise = noise_of_record(arguments) if reason is None else None
    if reason is None and noise is None:
        reason = "its run record names no noise and sigma rsengine can build"
    return noise, reason
