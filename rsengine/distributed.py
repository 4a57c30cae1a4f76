"""Many processes, one run: torchrun's ranks share the inputs, and the results do not depend on how many.

Input i always uses noise stream i, so a row depends only on the seed and the input's index,
never on which process computes it. Two ways to use that:

- The command line under torchrun (``torchrun --nproc-per-node=4 -m rsengine -- certify ...``):
  :func:`join` makes a :class:`Group` of the job's ranks, each on its own device (LOCAL_RANK's
  GPU, or the CPU); ``rsengine.commands`` deals the run's chunks of inputs out round by round and
  rank 0 alone writes the results file, in order.
- Your own torch.distributed program: :func:`shard` says which inputs this rank takes and
  :func:`gather_by_index` brings every rank's results together, keyed by input index, on every
  rank. Pass the indices as ``streams`` (``Smooth.certify_batch(xs, ..., streams=indices)``) and
  the results are those of one process certifying every input (bit for bit with
  ``deterministic=True``; otherwise up to float rounding that can flip a vote on a near-tie when
  inputs share batches differently).

Example (one process: a world of one):
    >>> from rsengine.distributed import gather_by_index, shard
    >>> mine = shard(range(0, 10, 2))
    >>> mine
    [0, 2, 4, 6, 8]
    >>> gather_by_index(mine, [i * i for i in mine])
    {0: 0, 2: 4, 4: 16, 6: 36, 8: 64}
"""
from __future__ import annotations

import datetime
import os
import time
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

__all__ = ["Group", "JobFailed", "gather_by_index", "join", "launched_by_torchrun", "launched_rank",
           "rank_device", "shard"]

# How long a rank waits for the others at a collective before the job fails. A round lasts one
# chunk of inputs (a chunk is about CHUNK_BATCHES batches, minutes at most), and torchrun ends a
# job whose worker dies, so this only bounds a hang nobody saw coming.
TIMEOUT = datetime.timedelta(hours=2)


class JobFailed(ValueError):
    """A step failed on some rank of the job; every rank raises this (its message names the rank)."""


def launched_by_torchrun() -> bool:
    """Whether this process is one rank of a torchrun (or torch.distributed-launched) job."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def launched_rank() -> int:
    """This process's global rank as the launcher set it (0 outside a distributed job)."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence, rank: int | None = None, world_size: int | None = None) -> list:
    """This rank's share of ``items``: every ``world_size``-th one from position ``rank``.

    Interleaved rather than contiguous, so that ranks get alike mixes of easy and hard inputs
    when difficulty drifts along a data set. Defaults: the initialized default process group's
    rank and size (0 and 1 without one).

    Example:
        >>> shard(list(range(7)), rank=1, world_size=3)
        [1, 4]
    """
    default_rank, default_world = _world()
    rank = default_rank if rank is None else rank
    world_size = default_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"Expected `rank` in [0, world_size) = [0, {world_size}), got {rank}")
    return list(items)[rank::world_size]


def gather_by_index(indices: Sequence[int], values: Sequence[Any], group=None) -> dict:
    """Every rank's ``(index, value)`` pairs, merged on every rank into one dict in index order.

    A collective: every rank of the (default) process group must call it. ``values`` are
    pickled, so keep them small (labels and radii, not tensors of samples).

    Args:
        indices: the inputs this rank computed (e.g. :func:`shard`'s list). values: their results.

    Raises:
        ValueError: lengths differ, or two ranks computed the same index.
    """
    indices, values = list(indices), list(values)
    if len(indices) != len(values):
        raise ValueError(f"Expected as many values as indices, got {len(values)} values for {len(indices)} indices")
    pairs = [list(zip(indices, values))]
    if dist.is_available() and dist.is_initialized():
        pairs = [None] * dist.get_world_size(group)
        dist.all_gather_object(pairs, list(zip(indices, values)), group=group)
    merged = {}
    for rank_pairs in pairs:
        for index, value in rank_pairs:
            if index in merged:
                raise ValueError(f"Input {index} was computed by two ranks: give each rank its own shard")
            merged[index] = value
    return dict(sorted(merged.items()))


def rank_device(name: str | None, local_rank: int) -> str | None:
    """The device a rank uses: ``cuda`` (or no choice, with CUDA present) means LOCAL_RANK's GPU."""
    if name in (None, "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"Local rank {local_rank} has no GPU of its own: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s); start at most that many processes per node")
        return f"cuda:{local_rank}"
    return name


def _one_line(error: Exception) -> str:
    # What rank 0 prints for another rank's error: the CLI's one-line form of its message.
    return " ".join(str(error).split()) or type(error).__name__


class Group:
    """The processes of one run and the few collectives a run needs.

    Built by :func:`join`. A world of one (no torchrun) runs every step in place, with no
    communication at all, so the single-process path is the same code.

    Attributes:
        rank, world_size, local_rank: as torchrun set them.
        setup_seconds: time spent joining the process group (rendezvous).
        exchange_seconds: time spent in collectives so far (waiting for slower ranks included).
    """

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, setup_seconds: float = 0.0,
                 owns_process_group: bool = False):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.setup_seconds = setup_seconds
        self.exchange_seconds = 0.0
        self._owns_process_group = owns_process_group

    @property
    def is_writer(self) -> bool:
        """Rank 0 owns the results file: it alone locks, reads and writes it, and prints."""
        return self.rank == 0

    def all_gather(self, value) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.world_size == 1:
            return [value]
        start = time.perf_counter()
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        self.exchange_seconds += time.perf_counter() - start
        return gathered

    def _settle(self, outcome: tuple):
        # One collective per step: (rank, error message or None, payload) from every rank. A
        # failure anywhere stops every rank together instead of leaving the others waiting.
        outcomes = self.all_gather(outcome)
        failed = [(rank, message) for rank, message, _ in outcomes if message is not None]
        if failed:
            rank, message = failed[0]
            raise JobFailed(message if rank == 0 else f"rank {rank}: {message}")
        return [payload for _, _, payload in outcomes]

    def every_rank(self, step: Callable[[], Any], report: Callable[[Any], Any] = lambda value: None):
        """Run ``step`` on every rank; if it raised on any, raise on all.

        Returns:
            (this rank's value, ``[report(value)]`` of every rank, in rank order).
        """
        if self.world_size == 1:
            value = step()
            return value, [report(value)]
        try:
            value = step()
            outcome = (self.rank, None, report(value))
        except Exception as error:  # noqa: BLE001 - re-raised on every rank by _settle
            value, outcome = None, (self.rank, _one_line(error), None)
        return value, self._settle(outcome)

    def first_rank(self, step: Callable[[], Any]):
        """Run ``step`` on rank 0 alone and return its (picklable) value on every rank."""
        if self.world_size == 1:
            return step()
        if not self.is_writer:
            return self._settle((self.rank, None, None))[0]
        try:
            outcome = (0, None, step())
        except Exception as error:  # noqa: BLE001 - re-raised on every rank by _settle
            outcome = (0, _one_line(error), None)
        return self._settle(outcome)[0]

    def close(self) -> None:
        """Leave the process group if :func:`join` made it (a caller's own group stays up)."""
        if self._owns_process_group and dist.is_initialized():
            dist.destroy_process_group()


def join() -> Group:
    """This process's :class:`Group`: torchrun's ranks when launched by it, else a world of one.

    The group is gloo on the CPU (it carries rows and a few settings between ranks) and, on a
    machine with CUDA, NCCL for CUDA tensors as well, so a user's CUDA collectives work on it too.
    """
    if not launched_by_torchrun():
        return Group()
    start = time.perf_counter()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        # Triton launches on the current device, not the tensors' one: without this every rank's
        # kernels would run on GPU 0 with pointers into its own GPU.
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    owns_process_group = not dist.is_initialized()
    if owns_process_group:
        dist.init_process_group(backend, timeout=TIMEOUT)
    return Group(dist.get_rank(), dist.get_world_size(), local_rank,
                 setup_seconds=time.perf_counter() - start, owns_process_group=owns_process_group)
