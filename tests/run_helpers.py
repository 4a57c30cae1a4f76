"""Helpers of the tests that start real runs and compare their results files."""
import os
import re
import time

__all__ = ["messages", "rows_without_time", "wait_for_rows"]


def messages(stderr: str) -> list[str]:
    """A run's stderr lines without its progress lines (``certify: 3/10 inputs (30%), ...``, which a
    run prints when stderr is not a terminal): what it says besides how far it is."""
    return [line for line in stderr.strip().splitlines()
            if not re.match(r"^(certify|predict): \d+/\d+ inputs \(\d+%\)", line)]


def rows_without_time(path) -> list[str]:
    """The file's lines without their time field: what two runs of the same rows share."""
    header, *rows = [line.split("\t") for line in open(path).read().splitlines()]
    time = header.index("time")
    return ["\t".join(cells[:time] + cells[time + 1:]) for cells in [header, *rows]]


def wait_for_rows(path, rows: int, process, timeout: float = 180) -> None:
    """Wait until ``path`` holds more than ``rows`` lines while ``process`` runs; fail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(path) and len(open(path).read().splitlines()) > rows:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {rows} rows")
