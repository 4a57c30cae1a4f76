"""Results files in the format of the original locuslab/smoothing code, written and read back.

A certify file is tab-separated text with the header ``idx label predict radius correct time``; a
predict file has no radius column, and an adaptive certify file (``rsengine certify --adaptive``)
has one more, ``samples``, after ``time``: the selection and estimation samples the input used.
One row per input, written as soon as that input is done::

    idx	label	predict	radius	correct	time
    0	3	3	0.378	1	0:00:15.400000
    20	7	-1	0.0	0	0:00:15.600000

- ``predict`` is the smoothed prediction or -1 for an abstention (radius 0.0, correct 0). A
  top-k certify file (``rsengine certify --top-k K``) holds the K certified labels there, most
  likely first, comma-separated (``3,5,8``); its ``radius`` is the l2 radius within which the
  true class, if among them, stays in the smoothed top K, and ``correct`` is 1 where the label is
  among them (the command writes a row only where the true class is certified among them, -1
  elsewhere, as Jia et al.'s certified top-k accuracy counts).
- ``radius`` has 3 significant digits like the original's ``'{:.3}'``, but rounded *down*:
  rounding 0.4568 up to 0.457 would claim more than was certified.
- ``time`` is ``str(datetime.timedelta(seconds=...))`` (``H:MM:SS.ffffff``); files from older
  versions of the original code hold plain seconds (``15.4``), which :func:`read_results` accepts.

:class:`ResultsWriter` flushes and fsyncs every row, so a run that is killed keeps every finished
row. :func:`read_results` checks every field and raises :class:`ResultsFormatError` naming the
file, the line and the problem for anything else; it never evaluates file content.

Example:
    >>> import os, tempfile
    >>> from rsengine.results import ResultsWriter, read_results
    >>> path = os.path.join(tempfile.mkdtemp(), "certify.tsv")
    >>> with ResultsWriter(path, "certify") as out:
    ...     out.write_row(0, 3, 3, 0.4568, 1, 12.5)
    ...     out.write_row(20, 7, -1, 0.0, 0, 12.25)
    >>> table = read_results(path)
    >>> table.kind, table.radius.tolist(), table.time_seconds.tolist()
    ('certify', [0.456, 0.0], [12.5, 12.25])
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
import re
from typing import Optional

import numpy as np

from rsengine.stats import floor_significant
from rsengine.validation import check_choice, check_int_at_least, check_non_negative_float

__all__ = [
    "KINDS",
    "HEADERS",
    "ResultsFormatError",
    "ResultsTable",
    "ResultsWriter",
    "SAMPLES_HEADER",
    "read_results",
    "format_radius",
    "format_time",
]

KINDS = ("certify", "predict")

_COLUMNS = {
    "certify": ("idx", "label", "predict", "radius", "correct", "time"),
    "predict": ("idx", "label", "predict", "correct", "time"),
}
HEADERS = {kind: "\t".join(columns) for kind, columns in _COLUMNS.items()}
SAMPLES_HEADER = HEADERS["certify"] + "\tsamples"
# (kind, has a samples column) of each header.
_LAYOUT_OF_HEADER = {**{header: (kind, False) for kind, header in HEADERS.items()}, SAMPLES_HEADER: ("certify", True)}

# Fields are matched by these patterns before conversion: int() and float() alone would accept
# "1_000", " 7", "nan", "inf", "infinity" and non-ASCII digits, none of which the format has.
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_RADIUS = re.compile(r"[0-9]{1,30}(\.[0-9]{0,30})?([eE][-+]?[0-9]{1,3})?")
_SECONDS = re.compile(r"[0-9]{1,15}(\.[0-9]{1,30})?")
# str(timedelta) writes "H:MM:SS", "H:MM:SS.ffffff" and, past a day, "N day(s), H:MM:SS[.ffffff]".
_TIMEDELTA = re.compile(r"(?:([0-9]{1,9}) days?, )?([0-9]{1,2}):([0-5][0-9]):([0-5][0-9])(?:\.([0-9]{1,6}))?")

# Offending text quoted in messages is cut short so a message stays one readable line.
_QUOTE_LIMIT = 40


class ResultsFormatError(ValueError):
    """A file is not a results file; the message names the file, the line and the problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class ResultsTable:
    """The rows of one results file as NumPy arrays, one entry per row, in file order.

    Attributes:
        kind: ``"certify"`` or ``"predict"``.
        idx: int64 [N], dataset index of each input.
        label: int64 [N], true class.
        predict: int64 [N], smoothed prediction (a top-k file's first label), -1 for an abstention.
        radius: float64 [N] certified radius (0.0 on abstention), or None for a predict file.
        correct: int64 [N], 1 where ``predict == label`` (top-k: the label is among ``labels``).
        time_seconds: float64 [N], wall time spent on each input.
        path: the file the table was read from, or None.
        samples: int64 [N] samples each input used (adaptive certify files), else None.
        labels: int64 [N, k] labels of a top-k certify file (-1 on abstentions), else None.

    Example:
        >>> import numpy as np
        >>> t = ResultsTable("predict", np.array([0]), np.array([3]), np.array([3]), None,
        ...                  np.array([1]), np.array([0.5]))
        >>> len(t)
        1
    """

    kind: str
    idx: np.ndarray
    label: np.ndarray
    predict: np.ndarray
    radius: Optional[np.ndarray]
    correct: np.ndarray
    time_seconds: np.ndarray
    path: Optional[str] = None
    samples: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None

    def __post_init__(self):
        check_choice("kind", self.kind, KINDS)
        if (self.radius is None) != (self.kind == "predict"):
            raise ValueError(
                f"Expected `radius` to be None exactly for a predict table, got {type(self.radius).__name__} "
                f"for kind {self.kind!r}"
            )
        columns = [self.idx, self.label, self.predict, self.correct, self.time_seconds]
        columns += [column for column in (self.radius, self.samples) if column is not None]
        if self.samples is not None and self.kind != "certify":
            raise ValueError(f"Expected `samples` only in a certify table, got kind {self.kind!r}")
        lengths = {np.shape(column) for column in columns}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise ValueError(f"Expected `columns` to be 1-D arrays of one length, got shapes {sorted(lengths)}")
        if self.labels is not None and (self.kind != "certify" or np.ndim(self.labels) != 2
                                        or len(self.labels) != len(self.idx)):
            raise ValueError(f"Expected `labels` [N, k] only in a certify table, got shape {np.shape(self.labels)}")

    def __len__(self) -> int:
        return len(self.idx)


def format_radius(radius: float) -> str:
    """Return ``radius`` as the results file writes it: 3 significant digits, rounded down.

    Args:
        radius: finite certified radius >= 0.

    Returns:
        The text ``'{:.3}'.format(floor_significant(radius))``.

    Example:
        >>> format_radius(0.4568), format_radius(1.2), format_radius(0.0)
        ('0.456', '1.2', '0.0')
    """
    radius = check_non_negative_float("radius", radius)
    return "{:.3}".format(floor_significant(radius))


def format_time(seconds: float) -> str:
    """Return ``seconds`` as ``str(datetime.timedelta(seconds=...))``, like the original code.

    Example:
        >>> format_time(151.238689)
        '0:02:31.238689'
    """
    seconds = check_non_negative_float("seconds", seconds)
    return str(datetime.timedelta(seconds=seconds))


class ResultsWriter:
    """Write a certify or predict results file row by row, durably.

    The file is created (or truncated, like the original code did) and the header written at
    once. Every :meth:`write_row` flushes and fsyncs, so whatever happens to the process later,
    the rows written so far are on disk and readable by :func:`read_results`.

    Args:
        path: file to create.
        kind: ``"certify"`` (with a radius column) or ``"predict"``.
        samples: a certify file with the ``samples`` column (adaptive runs).
        append: continue an existing, valid results file of this kind (resuming a run) instead
            of truncating it; its rows' indices count as written.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "predict.tsv")
        >>> with ResultsWriter(path, "predict") as out:
        ...     out.write_row(0, 5, 5, 1, 0.25)
        >>> [line.split("\\t") for line in open(path).read().splitlines()]
        [['idx', 'label', 'predict', 'correct', 'time'], ['0', '5', '5', '1', '0:00:00.250000']]
    """

    def __init__(self, path, kind: str = "certify", *, samples: bool = False, append: bool = False):
        self.kind = check_choice("kind", kind, KINDS)
        if samples and self.kind != "certify":
            raise ValueError(f"Expected `samples` only for certify files, got kind {kind!r}")
        self.samples = bool(samples)
        self.columns = _COLUMNS[self.kind] + (("samples",) if self.samples else ())
        self.path = os.fspath(path)
        if append:
            existing = read_results(self.path)
            if existing.kind != self.kind or (existing.samples is not None) != self.samples:
                have, want = (f"{t}{' (with samples)' * s}" for t, s in ((existing.kind, existing.samples is not None),
                                                                          (self.kind, self.samples)))
                raise ResultsFormatError(f"{self.path}: holds {have} results, cannot append {want} rows")
            self._written_idx = set(existing.idx.tolist())
            self._labels_per_row = None if existing.labels is None else existing.labels.shape[1]
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")
        else:
            self._written_idx = set()
            self._labels_per_row = None  # a top-k file's k, fixed by its first certified row
            self._file = open(self.path, "w", encoding="utf-8", newline="\n")
            self._write_line("\t".join(self.columns))

    @property
    def written_indices(self) -> frozenset:
        """Indices of the rows in the file (including those found when appending)."""
        return frozenset(self._written_idx)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._file.closed

    def write_row(self, idx: int, label: int, predict: int, *fields) -> None:
        """Append one row and force it to disk.

        Certify files take ``write_row(idx, label, predict, radius, correct, seconds)`` (and
        ``samples`` last, with the samples column), predict files ``write_row(idx, label,
        predict, correct, seconds)``.

        Args:
            idx: dataset index, integer >= 0.
            label: true class, integer >= 0.
            predict: smoothed prediction, integer >= 0, or -1 (ABSTAIN); in a certify file also
                a top-k certificate's k >= 2 distinct labels (a sequence, most likely first),
                the same k in every row.
            *fields: ``radius`` (certify only: finite >= 0, written rounded down to 3
                significant digits, 0 when abstaining), ``correct`` (0/1 or bool, must equal
                ``predict == label``), ``seconds`` (finite >= 0) and ``samples`` (integer >= 1).

        Raises:
            TypeError: wrong number of fields for the file's kind, or a field of the wrong type.
            ValueError: a field out of range or inconsistent with the others, an idx already
                written, or a closed writer.
        """
        if self._file.closed:
            raise ValueError(f"Expected `ResultsWriter` to be open, got a closed writer for {self.path}")
        names = self.columns[3:]
        if len(fields) != len(names):
            signature = ", ".join(("idx", "label", "predict") + tuple("seconds" if n == "time" else n for n in names))
            raise TypeError(
                f"Expected `write_row({signature})` for a {self.kind} file, got {3 + len(fields)} values"
            )
        idx = check_int_at_least("idx", idx, 0)
        if idx in self._written_idx:
            # read_results rejects a repeated idx: it would count one input twice.
            raise ValueError(f"Expected `idx` not yet written to {self.path}, got {idx!r}")
        label = check_int_at_least("label", label, 0)
        predict = self._check_predict(predict)
        values = dict(zip(names, fields))
        correct = _check_correct(values["correct"], label, predict)
        cells = [str(idx), str(label), ",".join(map(str, predict)) if isinstance(predict, tuple) else str(predict)]
        if self.kind == "certify":
            radius = check_non_negative_float("radius", values["radius"])
            if predict == -1 and radius != 0.0:
                raise ValueError(f"Expected `radius` to be 0.0 for an abstention (predict -1), got {radius!r}")
            cells.append(format_radius(radius))
        cells += [str(correct), format_time(values["time"])]
        if self.samples:
            cells.append(str(check_int_at_least("samples", values["samples"], 1)))
        self._write_line("\t".join(cells))
        self._written_idx.add(idx)

    def _check_predict(self, predict):
        """An int >= -1, or (certify files) a tuple of k >= 2 distinct labels, k as in earlier rows."""
        if isinstance(predict, (int, np.integer)) or self.kind != "certify":
            return check_int_at_least("predict", predict, -1)
        labels = tuple(check_int_at_least("predict", label, 0) for label in predict)
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"Expected `predict` to be a class or k >= 2 distinct top-k labels, got {predict!r}")
        if self._labels_per_row not in (None, len(labels)):
            raise ValueError(f"Expected {self._labels_per_row} top-k labels in `predict` as in the file's other rows, "
                             f"got {len(labels)}")
        self._labels_per_row = len(labels)
        return labels

    def close(self) -> None:
        """Close the file; calling it again does nothing."""
        self._file.close()

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write_line(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def read_results(path) -> ResultsTable:
    """Read and check a certify or predict results file.

    The kind is taken from the header. Accepted: ``\\n`` or ``\\r\\n`` line ends, a missing
    newline after the last row, a header with no rows (a run killed before its first input).
    Checked per row: column count, integers (idx >= 0, label >= 0, predict >= -1), radius a
    finite decimal >= 0 and 0 on abstention, correct 0/1 and equal to ``predict == label``,
    time as ``H:MM:SS[.ffffff]`` (optionally ``N days, ``) or plain seconds, no repeated idx.

    Args:
        path: file to read (str or os.PathLike).

    Returns:
        A :class:`ResultsTable` with N rows.

    Raises:
        ResultsFormatError: the file is not a results file; the message is one line,
            ``"<path>: line <n>: <problem>"``.
        OSError: the file cannot be opened.

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "bad.tsv")
        >>> _ = open(path, "w").write("idx\\tlabel\\tpredict\\tcorrect\\ttime\\n0\\t1\\t1\\t2\\t1.0\\n")
        >>> read_results(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rsengine.results.ResultsFormatError: ...bad.tsv: line 2: column `correct`: expected 0 or 1, got '2'
    """
    where = os.fsdecode(os.fspath(path))
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _format_error(where, line, f"not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise _format_error(where, 1, "empty file, expected a header line")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]

    layout = _LAYOUT_OF_HEADER.get(lines[0])
    if layout is None:
        expected = " or ".join(repr(header) for header in _LAYOUT_OF_HEADER)
        raise _format_error(where, 1, f"expected header {expected}, got {_quote(lines[0], 60)}")
    kind, has_samples = layout
    columns = _COLUMNS[kind] + (("samples",) if has_samples else ())

    parsed = {name: [] for name in columns}
    top_k = None  # labels per row of a top-k file
    first_line_of_idx = {}
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(columns):
            problem = "empty line" if line.strip() == "" else f"expected {len(columns)} tab-separated columns, got {len(cells)}"
            raise _format_error(where, number, problem)
        try:
            row = _parse_row(dict(zip(columns, cells)))
        except ValueError as error:
            raise _format_error(where, number, str(error)) from None
        if row["idx"] in first_line_of_idx:
            raise _format_error(where, number, f"idx {row['idx']} repeated (first on line {first_line_of_idx[row['idx']]})")
        first_line_of_idx[row["idx"]] = number
        if isinstance(row["predict"], tuple):
            if kind != "certify" or top_k not in (None, len(row["predict"])):
                expected = "one class" if kind != "certify" else f"{top_k} top-k labels as on earlier lines"
                raise _format_error(where, number, f"column `predict`: expected {expected}, got {len(row['predict'])}")
            top_k = len(row["predict"])
        for name in columns:
            parsed[name].append(row[name])

    if top_k is not None and any(not isinstance(p, tuple) and p != -1 for p in parsed["predict"]):
        number = next(i for i, p in enumerate(parsed["predict"], start=2) if not isinstance(p, tuple) and p != -1)
        raise _format_error(where, number, f"column `predict`: expected {top_k} top-k labels or -1, got one class")
    labels = None if top_k is None else np.array([p if isinstance(p, tuple) else (-1,) * top_k
                                                  for p in parsed["predict"]], dtype=np.int64).reshape(-1, top_k)
    return ResultsTable(
        kind=kind,
        idx=np.array(parsed["idx"], dtype=np.int64),
        label=np.array(parsed["label"], dtype=np.int64),
        predict=np.array([p[0] if isinstance(p, tuple) else p for p in parsed["predict"]], dtype=np.int64),
        radius=np.array(parsed["radius"], dtype=np.float64) if kind == "certify" else None,
        correct=np.array(parsed["correct"], dtype=np.int64),
        time_seconds=np.array(parsed["time"], dtype=np.float64),
        path=where,
        samples=np.array(parsed["samples"], dtype=np.int64) if has_samples else None,
        labels=labels,
    )


def _parse_row(cells: dict) -> dict:
    """Convert one row's text cells; a ValueError's message says which column and why."""
    row = {
        "idx": _parse_integer("idx", cells["idx"], 0),
        "label": _parse_integer("label", cells["label"], 0),
        "predict": _parse_predict(cells["predict"]),
    }
    if cells["correct"] not in ("0", "1"):
        raise ValueError(f"column `correct`: expected 0 or 1, got {_quote(cells['correct'])}")
    row["correct"] = int(cells["correct"])
    agree = _agrees(row["predict"], row["label"])
    if row["correct"] != int(agree):
        raise ValueError(
            f"column `correct`: is {row['correct']} but predict {_quote(cells['predict'])} and label {row['label']} "
            f"{'agree' if agree else 'differ'}"
        )
    if "radius" in cells:
        row["radius"] = _parse_radius(cells["radius"])
        if row["predict"] == -1 and row["radius"] != 0.0:
            raise ValueError(f"column `radius`: abstention (predict -1) with radius {_quote(cells['radius'])}, expected 0.0")
    row["time"] = _parse_time(cells["time"])
    if "samples" in cells:
        row["samples"] = _parse_integer("samples", cells["samples"], 1)
    return row


def _parse_predict(text: str):
    """A class >= -1, or a top-k file's comma-separated distinct labels >= 0 (a tuple)."""
    if "," not in text:
        return _parse_integer("predict", text, -1)
    labels = tuple(_parse_integer("predict", part, 0) for part in text.split(","))
    if len(set(labels)) != len(labels):
        raise ValueError(f"column `predict`: top-k labels repeat in {_quote(text)}")
    return labels


def _agrees(predict, label: int) -> bool:
    return label in predict if isinstance(predict, tuple) else predict == label


def _parse_integer(name: str, text: str, minimum: int) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"column `{name}`: expected an integer >= {minimum}, got {_quote(text)}")
    value = int(text)
    if value < minimum:
        raise ValueError(f"column `{name}`: expected an integer >= {minimum}, got {_quote(text)}")
    return value


def _parse_radius(text: str) -> float:
    value = float(text) if _RADIUS.fullmatch(text) else math.nan
    if not math.isfinite(value):
        raise ValueError(f"column `radius`: expected a finite decimal number >= 0, got {_quote(text)}")
    return value


def _parse_time(text: str) -> float:
    if _SECONDS.fullmatch(text):
        return float(text)
    match = _TIMEDELTA.fullmatch(text)
    if match is None:
        raise ValueError(f"column `time`: expected H:MM:SS[.ffffff] or seconds >= 0, got {_quote(text)}")
    days, hours, minutes, seconds, fraction = match.groups()
    # Sum in integer microseconds, then divide once: the closest float to the written time.
    whole = ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + int(seconds)
    return (whole * 1_000_000 + int((fraction or "").ljust(6, "0"))) / 1_000_000


def _check_correct(correct, label: int, predict: int) -> int:
    if isinstance(correct, (bool, np.bool_)):
        correct = int(correct)
    correct = check_int_at_least("correct", correct, 0)
    expected = int(_agrees(predict, label))
    if correct != expected:
        raise ValueError(f"Expected `correct` to be {expected} for label {label} and predict {predict}, got {correct!r}")
    return correct


def _quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + "...'"


def _format_error(where: str, line: int, problem: str) -> ResultsFormatError:
    return ResultsFormatError(f"{_quote_path(where)}: line {line}: {problem}")


def _quote_path(where: str) -> str:
    return where if where.isprintable() else repr(where)
