"""The benchmark table: every record in bench/results/*.json as one Markdown table.

``python bench/report.py`` prints it; ``--write-readme`` also puts it between the
``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` lines of the repository README
(both markers must already be there: the README's author decides where the table goes).
``--results DIR`` reads another directory, e.g. the results fetched from a remote run.

Each row names its device; the "goal" column compares the row with its issue's goals. On an
H100/H200: ResNet-50 >= 30,000 samples/s and >= 10x the original loop; CIFAR ResNet-110 <= 1 s per
n = 100k certificate; fused noise >= 3x the unfused chain; engine overhead <= 3% of wall time. On
a CPU (device "cpu", the processor and thread count in the notes): the bundled MNIST CNN >= 1.2x
the original loop, CIFAR ResNet-20 no slower (>= 1.0x), both with <= 25% of the engine's time
outside the forward pass; the CPU noise kernel >= 100 million normals/s.

Example:
    >>> print(format_table([]))
    _no results recorded yet_
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import records

__all__ = ["START_MARKER", "END_MARKER", "README", "format_table", "replace_block", "main"]

START_MARKER = "<!-- bench-table:start -->"
END_MARKER = "<!-- bench-table:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"

_COLUMNS = ("device", "bench", "model", "input", "dtype", "batch", "samples/s", "baseline samples/s",
            "speedup", "s per 100k certificate", "goal", "notes", "date", "commit")


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


# Issue 9's CPU goals: engine / original loop per model, the share of the engine's time outside
# the forward pass, and the noise kernel's rate.
_CPU_SPEEDUP_GOALS = {"mnist_cnn": 1.2, "cifar_resnet20": 1.0}
_CPU_OVERHEAD_GOAL = 0.25
_CPU_NOISE_GOAL = 1e8
_SOUND_SLOWDOWN_GOAL = 1.10  # issue 12: sound mode at most 10% slower than float mode, end to end
# Issue 10's: 2 ranks at most 0.6x one rank's wall time, coordination under 2% of it.
_SCALEOUT_RATIO_GOAL = 0.6
_SCALEOUT_COORDINATION_GOAL = 0.02


def _goal(record: dict) -> str:
    """The issue's goal for this row and whether the row meets it; "" where none applies."""
    bench, model = record["bench"], record["model"]
    if bench == "end_to_end" and model == "resnet50":
        met = record["samples_per_s"] >= 30_000 and record["speedup"] >= 10
        return f"{'met' if met else 'missed'} (>= 30,000/s, >= 10x)"
    if bench == "end_to_end" and model == "cifar_resnet110":
        met = record["s_per_100k_certificate"] <= 1.0
        return f"{'met' if met else 'missed'} (<= 1 s)"
    if bench == "noise_normalize":
        return f"{'met' if record['speedup'] >= 3 else 'missed'} (>= 3x)"
    if bench == "engine_overhead":
        return f"{'met' if record['overhead_share'] <= 0.03 else 'missed'} (<= 3%)"
    if bench == "cpu_end_to_end" and model in _CPU_SPEEDUP_GOALS:
        goal = _CPU_SPEEDUP_GOALS[model]
        met = record["speedup"] >= goal and record["overhead_share"] <= _CPU_OVERHEAD_GOAL
        return f"{'met' if met else 'missed'} (>= {goal:.1f}x, <= {_CPU_OVERHEAD_GOAL:.0%} outside forward)"
    if bench == "cpu_scaleout":
        met = record["wall_ratio"] <= _SCALEOUT_RATIO_GOAL and record["coordination_share"] < _SCALEOUT_COORDINATION_GOAL
        return (f"{'met' if met else 'missed'} (<= {_SCALEOUT_RATIO_GOAL}x wall, "
                f"< {_SCALEOUT_COORDINATION_GOAL:.0%} coordination)")
    if bench == "cpu_noise":
        return f"{'met' if record['normals_per_s'] >= _CPU_NOISE_GOAL else 'missed'} (>= 1e+08 normals/s)"
    if bench in ("end_to_end_sound", "cpu_sound"):  # issue 12: sound mode at most 10% slower than float mode
        return f"{'met' if record['relative_to_float'] <= _SOUND_SLOWDOWN_GOAL else 'missed'} (<= 1.1x float's time)"
    return ""


def _cpu_host(record: dict) -> str:
    return f"{record['threads']} threads of {record['cpu']}"


def _notes(record: dict) -> str:
    bench = record["bench"]
    if bench == "noise_normalize":
        return (f"{record['memory_format']}; fused {record['fused_ms']:.3g} ms vs unfused "
                f"{record['unfused_ms']:.3g} ms; {record['gb_per_s']:.0f} GB/s written; "
                f"{record['normals_per_s']:.3g} normals/s")
    if bench == "vote_count":
        return (f"{record['batch_size']} x {record['input_shape'][0]} logits; kernel "
                f"{record['fused_ms'] * 1e3:.3g} µs vs argmax+bincount {record['bincount_ms'] * 1e3:.3g} µs")
    if bench == "end_to_end":
        origin = f"derived from {record['batches_timed']} batches" if record["derived"] else "n = 100k measured"
        return (f"plain bf16 loop {_number(record['plain_bf16_samples_per_s'])}/s; baseline fp32 batch "
                f"{record.get('baseline_batch_size', '?')}; {origin}")
    if bench == "cpu_end_to_end":
        return (f"{record['memory_format']}; {100 * record['overhead_share']:.1f}% outside forward; forward "
                f"alone {_number(record['forward_samples_per_s'])}/s; plain loop "
                f"{_number(record['plain_samples_per_s'])}/s; {_cpu_host(record)}")
    if bench == "cpu_scaleout":
        return (f"{record['ranks']} ranks x {record['threads']} thread vs 1 on {record['inputs']} inputs: wall "
                f"{record['two_rank_wall_s']:.1f} s vs {record['one_rank_wall_s']:.1f} s ({record['wall_ratio']:.2f}x); "
                f"rendezvous {record['rendezvous_s']:.2f} s + merging {record['merging_s']:.2f} s = "
                f"{100 * record['coordination_share']:.1f}%; waiting for slower ranks {record['waiting_s']:.2f} s; "
                f"{record['cpu']}")
    if bench in ("cpu_noise_each", "noise_normalize_noise"):
        return (f"{record['noise']} noise: {record['values_per_s']:.3g} values/s, "
                f"{record['relative_to_gaussian']:.2f}x Gaussian's time"
                + (f"; {_cpu_host(record)}" if bench == "cpu_noise_each" else f"; {record['gb_per_s']:.0f} GB/s written"))
    if bench == "cpu_noise":
        return (f"{record['normals_per_s']:.3g} normals/s vs reference {record['reference_normals_per_s']:.3g}, "
                f"torch.randn {record['randn_normals_per_s']:.3g}; {_cpu_host(record)}")
    if bench == "sound_noise_normalize":
        return (f"sound kernel {record['sound_ms']:.3g} ms vs Gaussian {record['gaussian_ms']:.3g} ms "
                f"({record['relative_to_gaussian']:.2f}x); {record['values_per_s']:.3g} values/s")
    if bench == "end_to_end_sound":
        return (f"sound {_number(record['samples_per_s'])}/s vs float {_number(record['float_samples_per_s'])}/s "
                f"({record['relative_to_float']:.3f}x float's time)")
    if bench == "cpu_sound":
        return (f"sound {_number(record['samples_per_s'])}/s vs float {_number(record['float_samples_per_s'])}/s "
                f"({record['relative_to_float']:.3f}x); kernel {record['kernel_values_per_s']:.3g} values/s, "
                f"{record['kernel_relative_to_gaussian']:.2f}x Gaussian's time; {_cpu_host(record)}")
    return (f"overhead {100 * record['overhead_share']:.1f}% of wall time; forward alone "
            f"{_number(record['forward_samples_per_s'])}/s")


def _row(record: dict) -> tuple[str, ...]:
    bench = record["bench"]
    per_second = record.get("samples_per_s")
    return (
        record["device"], bench, record["model"] or "—", "x".join(map(str, record["input_shape"])),
        record["dtype"], str(record["batch_size"]),
        _number(per_second) if bench in ("end_to_end", "engine_overhead", "cpu_end_to_end", "end_to_end_sound",
                                         "cpu_sound") else "—",
        _number(record.get("baseline_samples_per_s")),
        f"{record['speedup']:.2f}x" if "speedup" in record else "—",
        _number(record.get("s_per_100k_certificate")),
        _goal(record), _notes(record), record.get("timestamp", "")[:10], record["commit"],
    )


def format_table(all_records: list[dict]) -> str:
    """A Markdown table with one row per record (sorted by device, benchmark, model, dtype)."""
    if not all_records:
        return "_no results recorded yet_"
    rows = sorted((_row(record) for record in all_records), key=lambda row: row[:5] + (row[-2],))
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    devices = sorted({record["device"] for record in all_records})
    return f"Measured on: {', '.join(devices)}.\n\n" + "\n".join(lines)


def replace_block(text: str, table: str) -> str:
    """``text`` with everything between the two markers replaced by ``table``.

    Raises:
        ValueError: a marker is missing, or the end marker precedes the start marker.
    """
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"Expected the lines {START_MARKER} and {END_MARKER}, in that order, in the README; "
                         "add them where the table should go")
    return text[:start + len(START_MARKER)] + "\n" + table + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Print the table; with ``--write-readme`` also write it into the README. Returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=records.RESULTS_DIR, help="directory of *.json records")
    parser.add_argument("--write-readme", action="store_true", help="replace the table block in the README")
    parser.add_argument("--readme", type=Path, default=README, help="README to write (default: the repository's)")
    args = parser.parse_args(argv)
    table = format_table(records.load_records(args.results))
    print(table)
    if args.write_readme:
        args.readme.write_text(replace_block(args.readme.read_text(), table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
