"""Progress of a data-set run on stderr: a redrawn bar on a terminal, plain lines in a log.

A bar redrawn with carriage returns is noise in a SLURM log or a ``nohup.out``, and printing
nothing there (what tqdm does off a terminal) leaves a log silent for a run of hours. So where
the stream is not a terminal, a line is printed each time another 5% of the inputs is done, and
at the first input done a minute or more after the last line, whichever comes first:

    certify: 17/334 inputs (5%), 0:00:04 elapsed, ETA 0:01:15

On a terminal one line is redrawn in place, at most twice a second. A run with nothing to
compute (every input already on disk, or ``--max 0``) prints nothing. The bar is a few lines of
formatting, so rsengine needs no progress-bar package.

Example:
    >>> import io
    >>> log = io.StringIO()
    >>> with Progress(40, "certify", file=log) as progress:
    ...     progress.update(1)  # 2.5%: below the next 5% step, no line yet
    ...     progress.update(1)
    >>> log.getvalue().split(",")[0]
    'certify: 2/40 inputs (5%)'
"""
from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, Optional, TextIO

__all__ = ["LINE_PERCENT", "LINE_SECONDS", "Progress"]

# Off a terminal: a line each LINE_PERCENT of the inputs (20 lines a run), or LINE_SECONDS after
# the last line when inputs are slow (a 1.28M-input ImageNet run is days: 5% is over an hour).
LINE_PERCENT = 5
LINE_SECONDS = 60.0
# On a terminal: redraws at most this often (a redraw per input of a fast run would cost time).
_REDRAW_SECONDS = 0.5


def _clock_text(seconds: float) -> str:
    """H:MM:SS, as a results file's time column writes durations."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class Progress:
    """Counts inputs done out of ``total`` and shows it on ``file`` (a context manager).

    Args:
        total: inputs the run computes. desc: what is being done ("certify", "predict").
        file: where to write (default ``sys.stderr``, looked up now: a caller may redirect it).
        quiet: show nothing. clock: seconds, for tests (default ``time.monotonic``).
    """

    def __init__(self, total: int, desc: str, file: Optional[TextIO] = None, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.done = total, desc, 0
        self.file = sys.stderr if file is None else file
        self.shown = not quiet and total > 0
        try:
            self.terminal = self.file.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            self.terminal = False
        self._clock = clock
        self._started = self._last = clock()
        self._step = 0  # LINE_PERCENT steps already reported
        self._drawn = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, count: int) -> None:
        """Add ``count`` inputs done; print a line or redraw the bar when one is due."""
        self.done += count
        if not self.shown or not count:
            return
        now = self._clock()
        if self.terminal:
            if now - self._last >= _REDRAW_SECONDS or self.done >= self.total or not self._drawn:
                self._draw(now)
            return
        step = self.done * 100 // self.total // LINE_PERCENT
        if step > self._step or now - self._last >= LINE_SECONDS:
            self._step = step
            self._last = now
            print(self._line(now), file=self.file, flush=True)

    def note(self, message: str) -> None:
        """Print ``message`` on a line of its own (on a terminal, above the bar, which is redrawn)."""
        if not self.shown:
            return
        if self.terminal and self._drawn:
            self.file.write("\r\033[K")  # clear the bar's line; the next update redraws it
            self._drawn = False
        print(message, file=self.file, flush=True)

    def close(self) -> None:
        """End the bar's line on a terminal (a log's lines are whole already)."""
        if self.shown and self.terminal and self._drawn:
            self._draw(self._clock())
            self.file.write("\n")
            self.file.flush()
            self._drawn = False
        self.shown = False

    def _times(self, now: float) -> tuple[str, str]:
        elapsed = now - self._started
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        return _clock_text(elapsed), "?" if eta is None else _clock_text(eta)

    def _line(self, now: float) -> str:
        elapsed, eta = self._times(now)
        return (f"{self.desc}: {self.done}/{self.total} inputs ({self.done * 100 // self.total}%), "
                f"{elapsed} elapsed, ETA {eta}")

    def _draw(self, now: float) -> None:
        elapsed, eta = self._times(now)
        seconds = now - self._started
        rate = f"{self.done / seconds:.2f} inputs/s" if seconds > 0 else "? inputs/s"
        head = f"{self.desc} {self.done * 100 // self.total:3d}%|"
        tail = f"| {self.done}/{self.total} [{elapsed}<{eta}, {rate}]"
        width = max(10, shutil.get_terminal_size((80, 24)).columns - len(head) - len(tail) - 1)
        filled = width * min(self.done, self.total) // self.total
        self.file.write("\r" + head + "#" * filled + " " * (width - filled) + tail)
        self.file.flush()
        self._last = now
        self._drawn = True
