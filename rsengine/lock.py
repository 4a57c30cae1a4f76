"""One writer per results file: an advisory lock beside it, ``OUT.lock``, held while a run writes.

The lock is ``flock(2)`` on ``OUT.lock``. The kernel drops it when the holding process ends, by
any means (SIGKILL included), so a killed run never leaves a lock that blocks the next one: the
file it leaves behind names a process that no longer holds it, and the next run takes it over.
While held, the file names its holder (pid, host, command, start time), so a second run on the
same results file is refused with one line that says who is writing it. Assumes a file system
where ``flock`` works between all the processes that may share the file: a local disk, NFSv4
(Linux maps flock to NFS byte-range locks), Lustre mounted with ``-o flock``.

Example:
    >>> import os, tempfile
    >>> from rsengine.lock import ResultsLock, ResultsLockedError
    >>> path = os.path.join(tempfile.mkdtemp(), "out.tsv")
    >>> with ResultsLock(path):
    ...     try:
    ...         ResultsLock(path).acquire()
    ...     except ResultsLockedError as error:
    ...         print("refused:", str(error).split(" (")[0])
    refused: out.tsv is being written by another rsengine process
    >>> os.path.exists(path + ".lock")  # removed when released
    False
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import sys

__all__ = ["ResultsLock", "ResultsLockedError", "lock_path"]


class ResultsLockedError(ValueError):
    """Another live process holds the results file's lock; the message names it."""


def lock_path(results_path) -> str:
    """Where the lock of ``results_path`` lives."""
    return os.fspath(results_path) + ".lock"


def _command_line() -> str:
    """The command as a user types it; torchrun passes on the ``--`` before the subcommand."""
    args = sys.argv[1:]
    return " ".join(["rsengine"] + (args[1:] if args[:1] == ["--"] else args))


def _holder_description(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            holder = json.load(file)
        return (f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: "
                f"{holder['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        # Caught between the holder's lock and its write of who it is.
        return "a process that has not yet said who it is"


class ResultsLock:
    """The lock of one results file; ``acquire`` refuses if another process holds it.

    Args:
        results_path: the results file (the lock is ``results_path + ".lock"``).

    Raises:
        ResultsLockedError: from :meth:`acquire` (and ``with``), when another process holds it.
    """

    def __init__(self, results_path):
        self.results_path = os.fspath(results_path)
        self.path = lock_path(results_path)
        self._fd: int | None = None

    def acquire(self) -> "ResultsLock":
        """Take the lock without waiting, and write who holds it into the lock file."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ResultsLockedError(
                    f"{os.path.basename(self.results_path)} is being written by another rsengine process "
                    f"({_holder_description(self.path)}); wait for it to finish or choose another OUTFILE"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # A holder that released removes the file; if it did so between our open and our
            # flock, we locked a file nobody else will ever open: start again on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = dict(pid=os.getpid(), host=socket.gethostname(),
                      started=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                      command=_command_line())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode() + b"\n", 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        # Unlink while still holding: a process waiting to lock the old file then sees it gone.
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "ResultsLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
