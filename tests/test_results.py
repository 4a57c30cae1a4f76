"""Tests for rsengine.results: writing, reading and rejecting results files."""
import csv
import datetime
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_results import REFERENCE, each_reference_file, needs_reference, reference_files
from rsengine.results import (
    HEADERS,
    ResultsFormatError,
    ResultsTable,
    ResultsWriter,
    format_radius,
    format_time,
    read_results,
)

REFERENCE_FILES = reference_files(keep=lambda p: p.name != "README.md")
CERTIFY_HEADER = HEADERS["certify"] + "\n"
PREDICT_HEADER = HEADERS["predict"] + "\n"

# Row counts read off the files with `wc -l` (minus the header). ImageNet noise_0.25/sigma_0.25
# stops at idx 42600: the published run never finished (same in upstream locuslab/smoothing).
EXPECTED_ROWS = {
    "certify/cifar10/resnet110/noise_0.12/test/sigma_0.12": 500,
    "certify/cifar10/resnet110/noise_0.12/test/sigma_0.50": 500,
    "certify/cifar10/resnet110/noise_0.25/test/sigma_0.25": 500,
    "certify/cifar10/resnet110/noise_0.25/test/sigma_0.50": 500,
    "certify/cifar10/resnet110/noise_0.50/test/sigma_0.50": 500,
    "certify/cifar10/resnet110/noise_1.00/test/sigma_0.50": 500,
    "certify/cifar10/resnet110/noise_1.00/test/sigma_1.00": 500,
    "certify/imagenet/resnet50/noise_0.25/test/sigma_0.25": 427,
    "certify/imagenet/resnet50/noise_0.25/test/sigma_0.50": 500,
    "certify/imagenet/resnet50/noise_0.50/test/sigma_0.50": 500,
    "certify/imagenet/resnet50/noise_0.50/train/sigma_0.50": 513,
    "certify/imagenet/resnet50/noise_1.00/test/sigma_0.50": 500,
    "certify/imagenet/resnet50/noise_1.00/test/sigma_1.00": 500,
    "predict/imagenet/resnet50/noise_0.25/test/N_100": 500,
    "predict/imagenet/resnet50/noise_0.25/test/N_1000": 500,
    "predict/imagenet/resnet50/noise_0.25/test/N_10000": 500,
    "predict/imagenet/resnet50/noise_0.25/test/N_100000": 500,
}


def _rel(path):
    return path.relative_to(REFERENCE).as_posix()


def _plain_parse(path):
    """Independent parse with the csv module: header names -> list of strings per column."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    header, body = rows[0], rows[1:]
    return {name: [row[i] for row in body] for i, name in enumerate(header)}


def _plain_seconds(text):
    if ":" not in text:
        return float(text)
    hours, minutes, seconds = text.split(":")
    return datetime.timedelta(hours=int(hours), minutes=int(minutes), seconds=float(seconds)).total_seconds()


# ---------------------------------------------------------------- writing


def test_write_row_certify_round_trip(tmp_path):
    path = tmp_path / "certify.tsv"
    rows = [
        (0, 3, 3, 0.4568, 1, 13.73608),
        (20, 7, -1, 0.0, 0, 0.0),
        (40, 4, 5, 1.2, 0, 90061.5),  # over a day: str(timedelta) writes "1 day, 1:01:01.500000"
        (60, 9, 9, 3.81146, True, 151.238689),
    ]
    with ResultsWriter(path, "certify") as out:
        for row in rows:
            out.write_row(*row)
    table = read_results(path)
    assert table.kind == "certify" and len(table) == 4 and table.path == os.fspath(path)
    np.testing.assert_array_equal(table.idx, [0, 20, 40, 60])
    np.testing.assert_array_equal(table.label, [3, 7, 4, 9])
    np.testing.assert_array_equal(table.predict, [3, -1, 5, 9])
    np.testing.assert_array_equal(table.radius, [0.456, 0.0, 1.2, 3.81])
    np.testing.assert_array_equal(table.correct, [1, 0, 0, 1])
    np.testing.assert_array_equal(table.time_seconds, [13.73608, 0.0, 90061.5, 151.238689])
    assert table.idx.dtype == np.int64 and table.radius.dtype == np.float64
    assert path.read_text().splitlines()[3] == "40\t4\t5\t1.2\t0\t1 day, 1:01:01.500000"


def test_write_row_predict_round_trip(tmp_path):
    path = tmp_path / "predict.tsv"
    with ResultsWriter(str(path), "predict") as out:
        out.write_row(0, 0, 0, 1, 1.737771)
        out.write_row(100, 2, -1, 0, 0.158496)
    assert path.read_text() == PREDICT_HEADER + "0\t0\t0\t1\t0:00:01.737771\n100\t2\t-1\t0\t0:00:00.158496\n"
    table = read_results(path)
    assert table.kind == "predict" and table.radius is None
    np.testing.assert_array_equal(table.correct, [1, 0])
    np.testing.assert_array_equal(table.time_seconds, [1.737771, 0.158496])


def test_write_row_flushes_and_fsyncs_every_row(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = tmp_path / "live.tsv"
    out = ResultsWriter(path, "certify")
    fd = out._file.fileno()
    assert synced == [fd]  # the header
    out.write_row(0, 3, 3, 0.5, 1, 1.0)
    # A second, independent open sees the row while the writer is still open.
    with open(path) as reader:
        assert reader.read() == CERTIFY_HEADER + "0\t3\t3\t0.5\t1\t0:00:01\n"
    assert len(read_results(path)) == 1
    out.write_row(20, 1, 1, 0.25, 1, 2.0)
    assert synced == [fd, fd, fd]
    assert len(read_results(path)) == 2
    out.close()
    out.close()
    assert out.closed
    with pytest.raises(ValueError, match="closed"):
        out.write_row(40, 1, 1, 0.25, 1, 2.0)


@pytest.mark.parametrize(
    "radius, text",
    [
        (0.4568, "0.456"),  # never 0.457: a printed radius must not exceed the certified one
        (0.45699999, "0.456"),
        (0.9999, "0.999"),
        (3.81146, "3.81"),
        (3.8099, "3.8"),
        (1.2, "1.2"),
        (0.0, "0.0"),
        (0.00602999, "0.00602"),
        (1234.5, "1.23e+03"),
    ],
    ids=lambda v: str(v),
)
def test_format_radius_rounds_down(radius, text):
    assert format_radius(radius) == text


def test_write_row_writes_radius_rounded_down(tmp_path):
    path = tmp_path / "c.tsv"
    with ResultsWriter(path) as out:
        out.write_row(0, 1, 1, 0.4568, 1, 1.0)
    assert path.read_text().splitlines()[1].split("\t")[3] == "0.456"
    assert read_results(path).radius[0] == 0.456


@pytest.mark.parametrize("radius", ["0.29", "0.457", "0.0734", "1.2", "3.8", "0.1", "0.00602", "1.96", "3.91"])
def test_three_digit_radius_is_written_unchanged(radius):
    # A radius already at 3 significant digits must not lose a unit to binary representation
    # error (0.29 is stored as 0.28999999999999998).
    assert format_radius(float(radius)) == radius


def test_format_time_matches_timedelta():
    assert format_time(151.238689) == "0:02:31.238689"
    assert format_time(14.0) == "0:00:14"
    assert format_time(0) == "0:00:00"


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        ResultsWriter(tmp_path / "x.tsv", "verify")
    with ResultsWriter(tmp_path / "c.tsv", "certify") as out:
        with pytest.raises(TypeError, match="radius, correct, seconds"):
            out.write_row(0, 1, 1, 1, 1.0)  # the predict form on a certify file
        with pytest.raises(ValueError, match="radius"):
            out.write_row(0, 1, 1, -0.5, 1, 1.0)
        with pytest.raises(ValueError, match="radius"):
            out.write_row(0, 1, 1, float("nan"), 1, 1.0)
        with pytest.raises(ValueError, match="abstention"):
            out.write_row(0, 1, -1, 0.5, 0, 1.0)
        with pytest.raises(ValueError, match="correct"):
            out.write_row(0, 1, 2, 0.5, 1, 1.0)
        with pytest.raises(ValueError, match="correct"):
            out.write_row(0, 1, 1, 0.5, 2, 1.0)
        with pytest.raises(ValueError, match="seconds"):
            out.write_row(0, 1, 1, 0.5, 1, -1.0)
        with pytest.raises(ValueError, match="idx"):
            out.write_row(-1, 1, 1, 0.5, 1, 1.0)
        with pytest.raises(ValueError, match="predict"):
            out.write_row(0, 1, -2, 0.0, 0, 1.0)
        with pytest.raises(TypeError, match="label"):
            out.write_row(0, 1.0, 1, 0.5, 1, 1.0)
        out.write_row(0, np.int64(1), np.int64(1), np.float64(0.5), np.bool_(True), np.float32(1.5))
        with pytest.raises(ValueError, match="idx"):
            out.write_row(0, 2, 2, 0.5, 1, 1.0)
    # Rejected rows wrote nothing.
    assert (tmp_path / "c.tsv").read_text() == CERTIFY_HEADER + "0\t1\t1\t0.5\t1\t0:00:01.500000\n"
    with ResultsWriter(tmp_path / "p.tsv", "predict") as out:
        with pytest.raises(TypeError, match="correct, seconds"):
            out.write_row(0, 1, 1, 0.5, 1, 1.0)


# ---------------------------------------------------------------- reading the reference files


@needs_reference
def test_reference_files_are_all_listed():
    assert {_rel(p) for p in REFERENCE_FILES} == set(EXPECTED_ROWS)


@pytest.mark.parametrize("path", each_reference_file(REFERENCE_FILES), ids=_rel)
def test_read_results_reference_file(path):
    table = read_results(path)
    plain = _plain_parse(path)
    assert len(table) == EXPECTED_ROWS[_rel(path)] == len(plain["idx"])
    assert table.kind == ("certify" if "radius" in plain else "predict")
    np.testing.assert_array_equal(table.idx, [int(v) for v in plain["idx"]])
    np.testing.assert_array_equal(table.label, [int(v) for v in plain["label"]])
    np.testing.assert_array_equal(table.predict, [int(v) for v in plain["predict"]])
    np.testing.assert_array_equal(table.correct, [int(v) for v in plain["correct"]])
    np.testing.assert_allclose(table.time_seconds, [_plain_seconds(v) for v in plain["time"]], rtol=0, atol=1e-9)
    if table.kind == "certify":
        np.testing.assert_array_equal(table.radius, [float(v) for v in plain["radius"]])
    else:
        assert table.radius is None


@pytest.mark.parametrize("path", each_reference_file(REFERENCE_FILES), ids=_rel)
def test_rewrite_reference_file_reproduces_it(path, tmp_path, monkeypatch):
    """Reading a file and writing it back through ResultsWriter gives the same text.

    Exact for every column of every file whose times are H:MM:SS.ffffff; three CIFAR-10 files
    hold plain seconds (15.4), which the writer writes the modern way, so their time is compared
    as a number. fsync is stubbed out here (500 syncs cost seconds on slow disks); the fsync
    test above checks that it is called.
    """
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    table = read_results(path)
    out_path = tmp_path / "rewritten.tsv"
    with ResultsWriter(out_path, table.kind) as out:
        for i in range(len(table)):
            middle = (table.radius[i],) if table.kind == "certify" else ()
            out.write_row(table.idx[i], table.label[i], table.predict[i], *middle, table.correct[i], table.time_seconds[i])
    original = path.read_text().splitlines()
    rewritten = out_path.read_text().splitlines()
    times = read_results(out_path).time_seconds
    assert len(original) == len(rewritten) == len(times) + 1
    assert original[0] == rewritten[0]
    for old, new, seconds in zip(original[1:], rewritten[1:], times):
        old_cells, new_cells = old.split("\t"), new.split("\t")
        assert old_cells[:-1] == new_cells[:-1]
        if ":" in old_cells[-1]:
            assert old_cells[-1] == new_cells[-1]
        else:
            assert float(old_cells[-1]) == seconds


def test_read_results_accepts_plain_seconds_and_timedelta_forms(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text(
        CERTIFY_HEADER
        + "0\t1\t1\t0.5\t1\t15.4\n"
        + "1\t1\t1\t0.5\t1\t0:02:31.238689\n"
        + "2\t1\t1\t0.5\t1\t0:00:14\n"
        + "3\t1\t1\t0.5\t1\t2 days, 0:00:01.5\n"
        + "4\t1\t1\t1.23e+03\t1\t7\n"
    )
    table = read_results(path)
    np.testing.assert_array_equal(table.time_seconds, [15.4, 151.238689, 14.0, 172801.5, 7.0])
    assert table.radius[-1] == 1230.0


def test_read_results_tolerates_crlf_no_final_newline_and_header_only(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes(b"idx\tlabel\tpredict\tcorrect\ttime\r\n0\t1\t1\t1\t0.5\r\n3\t2\t1\t0\t0.5")
    table = read_results(path)
    np.testing.assert_array_equal(table.idx, [0, 3])
    path.write_text(CERTIFY_HEADER)
    table = read_results(path)
    assert table.kind == "certify" and len(table) == 0 and table.radius.shape == (0,)


def test_results_table_checks_its_columns():
    one = np.zeros(1, int)
    with pytest.raises(ValueError, match="radius"):
        ResultsTable("predict", one, one, one, np.zeros(1), one, np.zeros(1))
    with pytest.raises(ValueError, match="columns"):
        ResultsTable("certify", one, one, one, np.zeros(2), one, np.zeros(1))


# ---------------------------------------------------------------- rejecting what is not a results file

ROW = "0\t3\t3\t0.5\t1\t0:00:01.000000\n"
MALFORMED = {
    "empty file": (b"", 1, "empty file"),
    "header missing": (ROW.encode(), 1, "expected header"),
    "header spaces": (b"idx label predict radius correct time\n" + ROW.encode(), 1, "expected header"),
    "header extra column": ((HEADERS["certify"] + "\textra\n" + ROW).encode(), 1, "expected header"),
    "header with BOM": (b"\xef\xbb\xbf" + CERTIFY_HEADER.encode() + ROW.encode(), 1, "expected header"),
    "too few columns": ((CERTIFY_HEADER + ROW + "20\t3\t3\t1\t0:00:01\n").encode(), 3, "expected 6 tab-separated columns, got 5"),
    "too many columns": ((CERTIFY_HEADER + "0\t3\t3\t0.5\t1\t1.0\t9\n").encode(), 2, "got 7"),
    "radius in predict file": ((PREDICT_HEADER + ROW).encode(), 2, "expected 5 tab-separated columns, got 6"),
    "spaces not tabs": ((CERTIFY_HEADER + "0 3 3 0.5 1 1.0\n").encode(), 2, "got 1"),
    "blank line": ((CERTIFY_HEADER + ROW + "\n" + ROW.replace("0\t", "20\t", 1)).encode(), 3, "empty line"),
    "idx not a number": ((CERTIFY_HEADER + "abc\t3\t3\t0.5\t1\t1.0\n").encode(), 2, "column `idx`"),
    "idx is python": ((CERTIFY_HEADER + "__import__('os').getcwd()\t3\t3\t0.5\t1\t1.0\n").encode(), 2, "column `idx`"),
    "idx negative": ((CERTIFY_HEADER + "-1\t3\t3\t0.5\t1\t1.0\n").encode(), 2, "column `idx`"),
    "idx float": ((CERTIFY_HEADER + "1.0\t3\t3\t0.5\t1\t1.0\n").encode(), 2, "column `idx`"),
    "idx huge": ((CERTIFY_HEADER + "9" * 40 + "\t3\t3\t0.5\t1\t1.0\n").encode(), 2, "column `idx`"),
    "label with underscore": ((CERTIFY_HEADER + "0\t1_0\t3\t0.5\t0\t1.0\n").encode(), 2, "column `label`"),
    "predict below -1": ((CERTIFY_HEADER + "0\t3\t-2\t0.0\t0\t1.0\n").encode(), 2, "column `predict`"),
    "radius not a number": ((CERTIFY_HEADER + "0\t3\t3\tbig\t1\t1.0\n").encode(), 2, "column `radius`"),
    "radius negative": ((CERTIFY_HEADER + "0\t3\t3\t-0.5\t1\t1.0\n").encode(), 2, "column `radius`"),
    "radius nan": ((CERTIFY_HEADER + "0\t3\t3\tnan\t1\t1.0\n").encode(), 2, "column `radius`"),
    "radius inf": ((CERTIFY_HEADER + "0\t3\t3\tinf\t1\t1.0\n").encode(), 2, "column `radius`"),
    "radius overflows": ((CERTIFY_HEADER + "0\t3\t3\t1e999\t1\t1.0\n").encode(), 2, "column `radius`"),
    "radius empty": ((CERTIFY_HEADER + "0\t3\t3\t\t1\t1.0\n").encode(), 2, "column `radius`"),
    "abstention with radius": ((CERTIFY_HEADER + "0\t3\t-1\t0.5\t0\t1.0\n").encode(), 2, "abstention"),
    "correct is 2": ((CERTIFY_HEADER + "0\t3\t3\t0.5\t2\t1.0\n").encode(), 2, "column `correct`"),
    "correct is true": ((CERTIFY_HEADER + "0\t3\t3\t0.5\ttrue\t1.0\n").encode(), 2, "column `correct`"),
    "correct disagrees": ((CERTIFY_HEADER + ROW + "20\t3\t4\t0.5\t1\t1.0\n").encode(), 3, "differ"),
    "time garbage": ((CERTIFY_HEADER + "0\t3\t3\t0.5\t1\t12:3\n").encode(), 2, "column `time`"),
    "time negative": ((CERTIFY_HEADER + "0\t3\t3\t0.5\t1\t-1.0\n").encode(), 2, "column `time`"),
    "time minutes 60": ((CERTIFY_HEADER + "0\t3\t3\t0.5\t1\t0:60:00\n").encode(), 2, "column `time`"),
    "duplicate idx": ((CERTIFY_HEADER + ROW + ROW).encode(), 3, "first on line 2"),
    "binary garbage": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, "not UTF-8"),
    "binary after rows": ((CERTIFY_HEADER + ROW).encode() + b"\xff\xfe\x00\x01", 3, "not UTF-8"),
    "nul bytes": ((CERTIFY_HEADER + ROW).encode() + b"\x00\x00\x00\n", 3, "got 1"),
    "fullwidth digits": ((CERTIFY_HEADER + "\uff10\t3\t3\t0.5\t1\t1.0\n").encode(), 2, "column `idx`"),
}


@pytest.mark.parametrize("content, line, problem", MALFORMED.values(), ids=MALFORMED.keys())
def test_read_results_rejects_malformed_file(tmp_path, content, line, problem):
    path = tmp_path / "bad_results.tsv"
    path.write_bytes(content)
    with pytest.raises(ResultsFormatError) as caught:
        read_results(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith(f"{path}: line {line}: ")
    assert problem in message
    assert "\n" not in message and "\r" not in message


def test_read_results_missing_file_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "nope.tsv")


# ---------------------------------------------------------------- fuzzing

_TOKENS = st.sampled_from(
    ["0", "1", "-1", "3", "20", "0.5", "0.0", "1e+03", "nan", "-0.5", "0:00:01.5", "1 day, 0:00:00",
     "15.4", "", " ", "abc", "\t", "\n", "\r\n", "\x00", "é", "9" * 25, "__import__('os')"]
)


def _fuzz_check(tmp_path_factory, content: bytes):
    path = tmp_path_factory.getbasetemp() / "fuzz_results.tsv"
    path.write_bytes(content)
    try:
        table = read_results(path)
    except ResultsFormatError as error:
        message = str(error)
        assert message.startswith(f"{path}: line ") and "\n" not in message
    else:
        assert table.kind in ("certify", "predict") and len(table) == len(table.time_seconds)


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(content=st.binary(max_size=400))
def test_read_results_fuzz_bytes(tmp_path_factory, content):
    _fuzz_check(tmp_path_factory, content)


@_FUZZ
@given(header=st.sampled_from([CERTIFY_HEADER, PREDICT_HEADER, ""]), text=st.text(max_size=300))
def test_read_results_fuzz_text(tmp_path_factory, header, text):
    _fuzz_check(tmp_path_factory, (header + text).encode("utf-8"))


@_FUZZ
@given(
    header=st.sampled_from([CERTIFY_HEADER, PREDICT_HEADER]),
    rows=st.lists(st.lists(_TOKENS, min_size=4, max_size=7), max_size=6),
)
def test_read_results_fuzz_near_valid_rows(tmp_path_factory, header, rows):
    # Rows built from plausible and hostile field values reach every per-field check.
    text = header + "".join("\t".join(row) + "\n" for row in rows)
    _fuzz_check(tmp_path_factory, text.encode("utf-8"))
