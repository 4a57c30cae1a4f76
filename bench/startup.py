"""Start-up: ``rsengine certify --max 0`` and ``import rsengine`` against ``import torch``.

The goal (issue "``rsengine certify --max 0`` under 1.5 s", on an idle 2-core machine): the CLI's
whole run on zero inputs of the embedded default (flags, lock, checkpoint, data set, ``Smooth``,
the one-sample compatibility probe, the empty results file and its run record). ``import torch``
is the floor no rsengine change can go below, so each figure is also given as a ratio to it.

Three commands run as subprocesses of this interpreter, in turn, round after round, after one
untimed round (page cache, the CPU kernel's build): ``python -c "import torch"``,
``python -c "import rsengine"`` and ``rsengine certify --max 0`` (the console script beside this
interpreter, else ``python -m rsengine``), the last in a fresh temporary directory each time, so
every run writes its files anew. The minimum of each over the rounds is reported, with the CPU,
the thread count, the load average (a busy machine inflates every figure, the ratios less) and
whether Python may cache bytecode (with ``PYTHONDONTWRITEBYTECODE`` set, rsengine's modules are
compiled from source at every start).

Usage:
    python bench/startup.py [--repeats 5] [--write-record]

``--write-record`` appends a ``cpu_startup`` record to ``bench/results/cpu_<date>.json`` (see
``records.py``); run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import records  # noqa: E402
import torch  # noqa: E402  (the children's timings do not include the parent's import)

# The console script next to this interpreter, as the issue ran it; else the same through -m.
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "rsengine")
_CLI = [_SCRIPT] if os.access(_SCRIPT, os.X_OK) else [sys.executable, "-m", "rsengine"]
COMMANDS = {
    "torch": [sys.executable, "-c", "import torch"],
    "import": [sys.executable, "-c", "import rsengine"],
    "cli_max0": [*_CLI, "certify", "--max", "0"],
}
LABELS = {"torch": "import torch", "import": "import rsengine", "cli_max0": "rsengine certify --max 0"}
RECORD_KIND = "cpu_startup"
# Imports that start-up does without (first use imports them): a regression shows in the output.
DEFERRED = ("scipy.stats", "scipy.special", "mpmath", "matplotlib", "PIL", "triton")
_REPORT_DEFERRED = f"import sys; print(' '.join(m for m in {DEFERRED!r} if m in sys.modules))"
_PROBES = {
    "import": f"import rsengine; {_REPORT_DEFERRED}",
    "cli_max0": ("import runpy, sys\nsys.argv = ['rsengine', 'certify', '--max', '0']\ntry:\n"
                 "    runpy.run_module('rsengine', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                 + _REPORT_DEFERRED),
}


def load_average() -> float | None:
    """The one-minute load average, None where the OS does not give it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def run_once(name: str) -> float:
    """Wall time of one run of ``COMMANDS[name]``; raises if it fails or says something unexpected."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = subprocess.run(COMMANDS[name], cwd=folder, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{LABELS[name]} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        if name == "cli_max0":
            written = sorted(os.listdir(folder))
            if not result.stdout.startswith("0 inputs in ") or len(written) != 2:
                raise RuntimeError(f"{LABELS[name]} printed {result.stdout!r} and wrote {written}")
    return seconds


def deferred_imported() -> dict[str, list[str]]:
    """Which of ``DEFERRED`` ``import rsengine`` and ``rsengine certify --max 0`` import (untimed runs)."""
    found = {}
    for name, code in _PROBES.items():
        with tempfile.TemporaryDirectory() as folder:
            result = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True,
                                    check=True)
        found[name] = result.stdout.splitlines()[-1].split()  # the last line: the names, or none
    return found


def measure(repeats: int) -> dict[str, float]:
    """The minimum wall time of each command over ``repeats`` rounds, after one untimed round."""
    for name in COMMANDS:
        run_once(name)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name in COMMANDS:
            times[name].append(run_once(name))
    return {name: min(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the minimum is reported (default 5)")
    parser.add_argument("--write-record", action="store_true", help=f"append a {RECORD_KIND} record")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    load_before = load_average()
    best = measure(args.repeats)
    load_after = load_average()
    imported = deferred_imported()
    threads, capability = torch.get_num_threads(), torch.backends.cpu.get_cpu_capability()
    bytecode_cache = not sys.dont_write_bytecode
    loads = "unknown" if load_before is None else f"{load_before:.2f} before, {load_after:.2f} after (this adds ~1)"
    print(f"start-up, min of {args.repeats} rounds ({threads} threads of {records.cpu_name()}, {capability}; "
          f"{os.cpu_count()} CPUs; load average {loads}; "
          f"bytecode cache {'on' if bytecode_cache else 'off (PYTHONDONTWRITEBYTECODE)'}):")
    for name, seconds in best.items():  # met or missed: report.py judges the record against the goal
        print(f"  {LABELS[name]:26s} {seconds:6.3f} s  {seconds / best['torch']:5.2f}x import torch")
    for name, modules in imported.items():
        print(f"  {LABELS[name]} imports {', '.join(modules) or 'none'} of {', '.join(DEFERRED)}")
    if load_before is not None and load_before > 0.5:
        print(f"  note: the machine was not idle (load average {load_before:.2f} before the runs): absolute times "
              "are inflated, the ratios less")
    if args.write_record:
        record = records.make_record(
            RECORD_KIND, model="mnist_cnn", input_shape=(1, 28, 28), dtype="float32", batch_size=1, n=1,
            torch_import_s=best["torch"], import_s=best["import"], cli_max0_s=best["cli_max0"],
            import_ratio=best["import"] / best["torch"], cli_max0_ratio=best["cli_max0"] / best["torch"],
            repeats=args.repeats, threads=threads, cpu=records.cpu_name(), cpu_capability=capability,
            load_average_before=load_before, load_average_after=load_after, bytecode_cache=bytecode_cache,
            deferred_imported=imported)
        print(f"recorded in {records.append_records([record], records.results_file('cpu'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
