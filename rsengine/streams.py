"""Noise streams: which Philox stream each input of a call uses (rsengine.kernels.contract).

An input's noise is a function of (seed, stream, phase, sample) only. By default a smoothed
classifier hands out fresh streams call after call and never one that was passed explicitly
before, so two inputs share noise only when a caller passes the same stream twice on purpose.

Example:
    >>> from rsengine.streams import Streams
    >>> streams = Streams()
    >>> streams.take([5, 2], 2).tolist(), streams.take(None, 3).tolist()
    ([5, 2], [0, 1, 3])
"""
from __future__ import annotations

import numpy as np

from .validation import check_int_at_least

__all__ = ["MAX_SEED", "MAX_STREAM", "Streams", "check_seed"]

MAX_SEED = 2**63  # the Philox key: 64 bits, kept below 2**63 so it fits an int64 everywhere
MAX_STREAM = 2**32  # the stream index fills one 32-bit Philox counter word


def check_seed(seed) -> int:
    """A seed: an integer in [0, 2**63)."""
    seed = check_int_at_least("seed", seed, 0)
    if seed >= MAX_SEED:
        raise ValueError(f"Expected `seed` to be an integer in [0, 2**63), got {seed!r}")
    return seed


class Streams:
    """The streams handed out so far, and those passed explicitly."""

    def __init__(self):
        self._next = 0
        self._explicit: set[int] = set()  # never handed out by the default counter

    def take(self, streams, count: int) -> np.ndarray:
        """int64 [count] streams: ``streams`` checked (distinct integers in [0, 2**32)), or fresh ones."""
        if streams is None:
            return self._fresh(count)
        ids = np.asarray(streams)
        if ids.shape != (count,) or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"Expected `streams` to hold {count} integers (one per input), got {streams!r}")
        if ids.min() < 0 or ids.max() >= MAX_STREAM:
            raise ValueError(f"Expected `streams` in [0, 2**32), got {streams!r}")
        if len(np.unique(ids)) != count:
            raise ValueError("Expected distinct `streams`: inputs sharing a stream would share noise")
        self._explicit.update(ids.tolist())
        return ids.astype(np.int64)

    def _fresh(self, count: int) -> np.ndarray:
        # The next `count` streams from the counter, skipping any passed explicitly before.
        skipped = sum(1 for s in self._explicit if s >= self._next)
        window = np.arange(self._next, min(self._next + count + skipped, MAX_STREAM), dtype=np.int64)
        ids = window[~np.isin(window, list(self._explicit))][:count]
        if len(ids) < count:
            raise ValueError(f"This Smooth has used all {MAX_STREAM} streams; create a new one with another seed")
        self._next = int(ids[-1]) + 1
        return ids
