"""Benchmark records: what every measurement must say about itself, and where it is written.

A record is one JSON object. Every record names the benchmark, the device, the commit, the
torch and triton versions and the workload (``model``, ``input_shape``, ``dtype``,
``batch_size``, ``n``); on top of that each kind of benchmark must carry its headline figures
(``FIGURE_KEYS``): end-to-end records their ``samples_per_s`` and ``baseline_samples_per_s``
(the original-style loop, same run), kernel records their ``speedup`` over the unfused chain.

Records go to ``bench/results/<device-slug>_<YYYY-MM-DD>.json`` (a JSON list, appended run after
run) or, when ``RSENGINE_BENCH_OUT`` names a directory, to the same file name there, so a remote
run can write its results where they are fetched from. GPU runs and the full-size CPU run
(``test_bench_cpu.py`` with ``--benchmark-enable`` and no GPU, device ``cpu``) write records; the
smoke runs build and validate them and throw them away.

Example:
    >>> record = make_record("vote_count", model=None, input_shape=(10,), dtype="float32",
    ...                      batch_size=64, n=64, speedup=2.5, fused_ms=0.004, bincount_ms=0.01)
    >>> sorted(set(REQUIRED_KEYS) - set(record))
    []
    >>> device_slug("NVIDIA H200")
    'nvidia-h200'
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

__all__ = [
    "REQUIRED_KEYS",
    "FIGURE_KEYS",
    "RESULTS_DIR",
    "cpu_name",
    "device_name",
    "device_slug",
    "git_commit",
    "make_record",
    "validate_record",
    "results_file",
    "append_records",
    "load_records",
    "Recorder",
]

REQUIRED_KEYS = ("bench", "device", "commit", "torch", "triton", "model", "input_shape", "dtype",
                 "batch_size", "n")

# The figures without which a record of that benchmark says nothing.
FIGURE_KEYS = {
    "noise_normalize": ("speedup", "fused_ms", "unfused_ms", "gb_per_s", "normals_per_s"),
    "noise_normalize_noise": ("noise", "fused_ms", "relative_to_gaussian", "gb_per_s", "values_per_s"),
    "vote_count": ("speedup", "fused_ms", "bincount_ms"),
    "end_to_end": ("samples_per_s", "baseline_samples_per_s", "plain_bf16_samples_per_s",
                   "s_per_100k_certificate", "derived", "batches_timed"),
    "engine_overhead": ("overhead_share", "samples_per_s", "forward_samples_per_s"),
    "cpu_end_to_end": ("samples_per_s", "baseline_samples_per_s", "speedup", "plain_samples_per_s",
                       "forward_samples_per_s", "overhead_share", "memory_format", "threads", "cpu"),
    "cpu_scaleout": ("one_rank_wall_s", "two_rank_wall_s", "wall_ratio", "rendezvous_s", "merging_s", "waiting_s",
                     "coordination_share", "inputs", "ranks", "threads", "cpu"),
    "cpu_noise_each": ("noise", "values_per_s", "relative_to_gaussian", "threads", "cpu"),
    "cpu_noise": ("normals_per_s", "reference_normals_per_s", "randn_normals_per_s", "speedup", "threads", "cpu"),
    "sound_noise_normalize": ("sound_ms", "gaussian_ms", "relative_to_gaussian", "values_per_s"),
    "end_to_end_sound": ("samples_per_s", "float_samples_per_s", "relative_to_float"),
    "cpu_dataset_run": ("at_once_s", "api_s", "cli_s", "api_ratio", "cli_ratio", "inputs", "threads", "cpu",
                        "cpu_capability"),
    "cpu_startup": ("torch_import_s", "import_s", "cli_max0_s", "cli_max0_ratio", "deferred_imported", "threads",
                    "cpu", "cpu_capability"),
    "cpu_sound": ("kernel_values_per_s", "kernel_relative_to_gaussian", "samples_per_s", "float_samples_per_s",
                  "relative_to_float", "threads", "cpu"),
}

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_REPO_ROOT = Path(__file__).resolve().parent.parent


def device_name() -> str:
    """``torch.cuda.get_device_name()`` on a GPU machine, else ``"cpu"``."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows of it."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_slug(name: str) -> str:
    """A file-name-safe form of a device name: lower case, runs of other characters as ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def git_commit() -> str:
    """The short commit hash of the checkout, ``-dirty`` if tracked files changed, else "unknown".

    ``RSENGINE_BENCH_COMMIT`` overrides it: a remote machine may get a copy of the working tree
    without its ``.git``.
    """
    if os.environ.get("RSENGINE_BENCH_COMMIT"):
        return os.environ["RSENGINE_BENCH_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_REPO_ROOT, check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO_ROOT,
                                 check=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if changed else commit or "unknown"


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def make_record(bench: str, *, model: str | None, input_shape, dtype, batch_size: int, n: int,
                **figures) -> dict:
    """Build and validate one record of benchmark ``bench``.

    Args:
        bench: a key of ``FIGURE_KEYS``.
        model: architecture name (``None`` for kernel benchmarks).
        input_shape: shape of one input (kernel benchmarks: of one row).
        dtype: the measured dtype (``torch.dtype`` or its name).
        batch_size: rows per forward pass or kernel launch. n: samples measured per input.
        **figures: the benchmark's figures (at least ``FIGURE_KEYS[bench]``) and any context.

    Returns:
        The record: environment (device, commit, torch, triton, timestamp) + workload + figures.

    Raises:
        ValueError: a required key is missing (see :func:`validate_record`).
    """
    record = {
        "bench": bench,
        "device": device_name(),
        "commit": git_commit(),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "input_shape": [int(size) for size in input_shape],
        "dtype": _dtype_name(dtype),
        "batch_size": int(batch_size),
        "n": int(n),
    }
    record.update(figures)
    return validate_record(record)


def validate_record(record: dict) -> dict:
    """Return ``record`` if it holds every required key and its benchmark's figures, else raise.

    The values must also survive a JSON round trip unchanged, so what is written is what was
    measured (no NaN, no tensors).
    """
    if record.get("bench") not in FIGURE_KEYS:
        raise ValueError(f"Expected `bench` to be one of {sorted(FIGURE_KEYS)}, got {record.get('bench')!r}")
    missing = [key for key in REQUIRED_KEYS + FIGURE_KEYS[record["bench"]] if key not in record]
    if missing:
        raise ValueError(f"Expected a {record['bench']} record to hold {missing}, got keys {sorted(record)}")
    if json.loads(json.dumps(record, allow_nan=False)) != record:
        raise ValueError(f"Expected a record of JSON values, got {record!r}")
    return record


def results_file(device: str, day: datetime.date | None = None, directory: str | Path | None = None) -> Path:
    """The results file of ``device`` on ``day`` (default: today, UTC).

    ``directory`` defaults to ``$RSENGINE_BENCH_OUT`` if set, else ``bench/results``.
    """
    day = day or datetime.datetime.now(datetime.timezone.utc).date()
    directory = Path(directory or os.environ.get("RSENGINE_BENCH_OUT") or RESULTS_DIR)
    return directory / f"{device_slug(device)}_{day.isoformat()}.json"


def append_records(new_records: list[dict], path: str | Path) -> Path:
    """Append validated records to the JSON list at ``path`` (created if absent).

    The file is replaced atomically, so a run killed mid-write leaves the previous list intact.
    """
    path = Path(path)
    existing = json.loads(path.read_text()) if path.exists() else []
    if not isinstance(existing, list):
        raise ValueError(f"Expected {path} to hold a JSON list of records, got {type(existing).__name__}")
    combined = existing + [validate_record(record) for record in new_records]
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(combined, indent=1, allow_nan=False) + "\n")
    scratch.replace(path)
    return path


def load_records(directory: str | Path = RESULTS_DIR) -> list[dict]:
    """All records of all ``*.json`` files in ``directory``, in file-name order, then file order."""
    loaded = []
    for path in sorted(Path(directory).glob("*.json")):
        records = json.loads(path.read_text())
        if not isinstance(records, list):
            raise ValueError(f"Expected {path} to hold a JSON list of records, got {type(records).__name__}")
        loaded.extend(validate_record(record) for record in records)
    return loaded


class Recorder:
    """Builds and validates the records of one benchmark test, and appends them where asked.

    Args:
        extra_info: a dict every record is merged into (pytest-benchmark's ``extra_info``, so
            ``--benchmark-json`` carries the same figures).
        write: append each record to :func:`results_file` of its device (GPU runs); when False
            (the CPU smoke test) records are only built and validated.

    Attributes:
        written: the files appended to, one entry per record written.
    """

    def __init__(self, extra_info: dict, write: bool):
        self.extra_info = extra_info
        self.write = write
        self.written: list[Path] = []

    def __call__(self, bench: str, **fields) -> dict:
        """Build the record (see :func:`make_record`), keep it and return it."""
        record = make_record(bench, **fields)
        self.extra_info.update(record)
        if self.write:
            self.written.append(append_records([record], results_file(record["device"])))
        return record
