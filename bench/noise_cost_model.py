"""Static cost model of the fused noise kernel, from its SASS: instructions per element, time on an H100.

The noise kernel is straight-line code (masks are predicates, the channels are unrolled) around
one loop over tiles, so every thread executes each SASS instruction of the cubin once, or once
per tile inside the loop; dividing by the elements a thread writes gives the instructions
executed per output element (for a program with all its tiles: a row's last program may have
fewer). nvdisasm's line information
attributes each instruction to the source line it came from, and so to a part of the work:
Philox rounds, the uniform, the logarithm, the square root and products, sine and cosine, the
normalization, indexing and loads, the store.

Predicted time is a throughput bound on one H100 SXM (132 SMs at 1.98 GHz, 3.35 TB/s): per SM and
clock, 4 warp instructions issue (128 thread-instructions), the FP32 pipe retires 128 results, the
integer pipe 64, the special-function unit (MUFU) 16, conversions 16, load/store 32 (CUDA
programming guide, throughput table for compute capability 9.0); the bound is the largest of
those and of the DRAM write time. It assumes latencies are hidden (enough resident warps and
independent instructions) and the boost clock; a measured kernel lands below it, not above.

Run (the interpreter must be off: Triton's compiler produces the cubin, no GPU needed):
    python bench/noise_cost_model.py [--arch 90] [--dtype bf16] [--contiguous] [--json PATH]
"""
from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import re
import sys
from collections import Counter, defaultdict

__all__ = ["H100", "RESNET50_ELEMENTS", "RESNET50_FORWARD_S", "pipe_of", "executed_path", "attribute", "cost_model",
           "main"]

H100 = dict(name="H100 SXM", sms=132, clock_hz=1.98e9, dram_bytes_per_s=3.35e12,
            per_sm_per_clock=dict(issue=128, fp32=128, int=64, mufu=16, conversion=16, memory=32))
RESNET50_ELEMENTS = 150_528 * 100_000  # one ImageNet certificate: 3x224x224 x n = 100,000
RESNET50_FORWARD_S = 0.83  # the forward passes alone at that n on an H100 (bf16 tensor cores, issue 8)

_FP32 = {"FFMA", "FMUL", "FADD", "FMNMX", "FSEL", "FSETP", "FCHK", "HFMA2", "HADD2", "HMUL2", "HSETP2", "FSWZADD"}
_MUFU = {"MUFU"}
_CONVERSION = {"I2F", "I2FP", "F2I", "F2F", "F2FP", "FRND", "I2I", "I2IP"}
_MEMORY = {"LDG", "STG", "LDS", "STS", "LDSM", "STSM", "ATOM", "ATOMG", "ATOMS", "RED", "REDG", "LD", "ST", "LDL",
           "STL", "LDC"}
_ISSUE_ONLY = {"BRA", "EXIT", "BAR", "BSSY", "BSYNC", "WARPSYNC", "DEPBAR", "S2R", "S2UR", "CS2R", "R2UR", "RET",
               "CALL", "MEMBAR", "ERRBAR", "CCTL", "SHFL", "VOTE", "VOTEU", "REDUX"}


def pipe_of(opcode: str) -> str:
    """The pipe an SASS opcode (modifiers dropped) occupies: fp32, int, mufu, conversion, memory, issue."""
    if opcode in _FP32:
        return "fp32"
    if opcode in _MUFU:
        return "mufu"
    if opcode in _CONVERSION:
        return "conversion"
    if opcode in _MEMORY:
        return "memory"
    if opcode in _ISSUE_ONLY or opcode.startswith("U"):  # uniform datapath: once per warp
        return "issue"
    return "int"


_LOCATION = re.compile(r'//## File "(?P<file>[^"]+)", line (?P<line>\d+)')
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?P<predicate>@!?U?P[0-9T]\s+)?"
                          r"(?P<opcode>[A-Z][A-Z0-9_]*)(?P<rest>.*)")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def _instructions(sass: str) -> list[dict]:
    """The SASS listing as a list of instructions and labels, each instruction with its source location."""
    items, location, fresh_location = [], None, False
    for line in sass.splitlines():
        found = _LOCATION.search(line)
        if found:
            if not fresh_location:  # the first line of a chain is the innermost (inlined) location
                # By file name: a cubin from Triton's cache names the tree it was first compiled in.
                location = (os.path.basename(found["file"]), int(found["line"]))
            fresh_location = True
            continue
        label = _LABEL.match(line.strip())
        if label:
            items.append({"label": label.group(1)})
            continue
        instruction = _INSTRUCTION.search(line)
        if instruction:
            fresh_location = False
            target = _TARGET.search(instruction["rest"])
            items.append({"opcode": instruction["opcode"], "predicated": bool(instruction["predicate"]),
                          "target": target.group(1) if target else None, "location": location})
    return items


def executed_path(sass: str, iterations: int) -> list[tuple[dict, int]]:
    """Instructions a thread executes on the fast path, with how many times (NOPs excluded).

    The kernel body runs to its unconditional EXIT (subroutines follow it). A forward conditional
    branch that jumps over a CALL skips a slow path (an IEEE division's, taken only for 0,
    subnormal or infinite operands): not executed. Instructions between a label and a backward
    branch to it form the loop over tiles: executed ``iterations`` times.
    """
    items = _instructions(sass)
    end = next(i for i, item in enumerate(items) if item.get("opcode") == "EXIT" and not item["predicated"])
    body = items[:end + 1]
    labels = {item["label"]: i for i, item in enumerate(body) if "label" in item}
    cold, loop = set(), set()
    for i, item in enumerate(body):
        if item.get("opcode") != "BRA" or item["target"] not in labels:
            continue
        target = labels[item["target"]]
        if target > i and item["predicated"] and any(body[k].get("opcode") == "CALL" for k in range(i + 1, target)):
            cold.update(range(i + 1, target))
        elif target < i:
            loop.update(range(target, i + 1))
    return [(item, iterations if i in loop else 1) for i, item in enumerate(body)
            if "opcode" in item and i not in cold and item["opcode"] != "NOP"]


def attribute(instructions: list[tuple[dict, int]], part_of) -> tuple[Counter, dict[str, Counter]]:
    """Count executed instructions by part of the work and by pipe.

    Args:
        instructions: from :func:`executed_path`.
        part_of: maps (file, line) of an instruction's innermost source location to a part name.

    Returns:
        (instructions per part, {part: instructions per pipe}).
    """
    parts, pipes = Counter(), defaultdict(Counter)
    for item, times in instructions:
        part = part_of(item["location"])
        parts[part] += times
        pipes[part][pipe_of(item["opcode"])] += times
    return parts, pipes


def _source_lines(functions) -> dict[tuple[str, int], tuple[str, str]]:
    """(file name, line) -> (function name, source text) for the given Python functions.

    A function owns its lines up to the next function of its file: the compiler attributes a few
    instructions to the blank line after a function's last statement.
    """
    spans = []
    for fn in functions:
        lines, first = inspect.getsourcelines(fn)
        spans.append((os.path.basename(inspect.getsourcefile(fn)), first, fn.__name__, lines))
    spans.sort()
    table = {}
    for index, (path, first, name, lines) in enumerate(spans):
        following = spans[index + 1] if index + 1 < len(spans) else None
        last = following[1] - 1 if following and following[0] == path else first + len(lines) - 1
        for line in range(first, last + 1):
            offset = line - first
            table[path, line] = (name, lines[offset].strip() if offset < len(lines) else "")
    return table


def _noise_parts():
    """part_of for the noise kernels: helper functions by name, kernel lines by what they do."""

    from rsengine.kernels import box_muller, noise

    functions = [obj.fn for module in (noise, box_muller) for obj in vars(module).values()
                 if hasattr(obj, "fn") and inspect.isfunction(obj.fn)]
    table = _source_lines(functions)
    by_function = {"_philox4x32_10": "Philox4x32-10", "_uniform": "uniform from 32 bits",
                   "_twice_complement": "uniform from 32 bits", "minus_two_log_uniform": "logarithm",
                   "box_muller": "sqrt, sin/cos reduction, rotation", "_poly3": "sin/cos polynomials",
                   "_normals": "lane order", "_normalized": "normalization",
                   "_row_origin": "row -> input (per program)",
                   "_store_rgb_channels_last": "store", "_bits": "store", "_word": "store", "_words4": "store",
                   "_words8": "store", "_lanes": "store"}

    def part_of(location) -> str:
        if location and location[0] == "standard.py":
            return "indexing and setup"  # tl.cdiv, tl.minimum: the tile loop's bounds
        name, text = table.get(location, ("?", ""))
        if name in by_function:
            return by_function[name]
        if "tl.store" in text or "tl.join" in text:
            return "store"
        if "tl.load" in text:
            return "loads of x, mean, std"
        return "indexing and setup" if name != "?" else "other"
    return part_of


def cost_model(arch: int = 90, dtype: str = "bf16", channels_last: bool = True, device: dict = H100) -> dict:
    """Compile the ImageNet noise variant for sm_<arch> and model its cost per element and per certificate."""
    import torch
    from triton.backends.compiler import GPUTarget

    from rsengine.kernels import noise
    from rsengine.kernels.compile_only import compile_only
    from rsengine.kernels.machine_code import occupancy_warps, read_cubin
    from rsengine.options import PRECISIONS

    torch_dtype = PRECISIONS[dtype]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    channels, height, width = 3, 224, 224
    with compile_only(GPUTarget("cuda", arch, 32)) as compiled:
        noise.noise_normalize(torch.rand(1, channels, height, width), torch.zeros(1, dtype=torch.int64), 0, 4, 4,
                              0.25, 0, 1, torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]),
                              torch_dtype, memory_format)
    kernel = compiled[0]
    resources, sass = read_cubin(kernel.asm["cubin"], kernel.metadata.shared)
    executed = executed_path(sass, noise.IMAGE_TILES)
    branches = sum(times for item, times in executed if item["opcode"] == "BRA")
    parts, pipes = attribute(executed, _noise_parts())
    threads = 32 * kernel.metadata.num_warps
    elements_per_thread = channels * 4 * noise.IMAGE_BLOCK_Q * noise.IMAGE_TILES / threads
    per_element = {part: count / elements_per_thread for part, count in parts.items()}
    pipe_totals = Counter()
    for counts in pipes.values():
        pipe_totals.update(counts)
    rates = device["per_sm_per_clock"]
    cycles = {pipe: pipe_totals[pipe] / elements_per_thread / rates[pipe] for pipe in ("fp32", "int", "mufu",
                                                                                         "conversion", "memory")}
    cycles["issue"] = sum(pipe_totals.values()) / elements_per_thread / rates["issue"]
    bytes_per_element = torch_dtype.itemsize  # the write; x (600 KB per input) stays in L2
    cycles["dram"] = bytes_per_element / (device["dram_bytes_per_s"] / device["sms"] / device["clock_hz"])
    bound = max(cycles, key=cycles.get)
    seconds = RESNET50_ELEMENTS * cycles[bound] / (device["sms"] * device["clock_hz"])
    return {
        "kernel": kernel.name, "arch": arch, "dtype": dtype, "channels_last": channels_last,
        "num_warps": kernel.metadata.num_warps, "block_q": noise.IMAGE_BLOCK_Q, "tiles": noise.IMAGE_TILES,
        "registers": resources.registers, "local_stores": resources.local_stores,
        "resident_warps": occupancy_warps(resources.registers, resources.shared_bytes, kernel.metadata.num_warps, arch),
        "elements_per_thread": elements_per_thread, "branches": branches,
        "instructions_per_element": sum(per_element.values()),
        "per_part": dict(sorted(per_element.items(), key=lambda item: -item[1])),
        "per_pipe": {pipe: count / elements_per_thread for pipe, count in pipe_totals.items()},
        "cycles_per_element_per_sm": cycles, "bound": bound, "device": device["name"],
        "certificate_noise_s": seconds, "forward_s": RESNET50_FORWARD_S,
        "share_of_forward": seconds / RESNET50_FORWARD_S,
    }


def _print(model: dict) -> None:
    print(f"{model['kernel']} sm_{model['arch']} {model['dtype']} "
          f"{'channels_last' if model['channels_last'] else 'contiguous'}: {model['num_warps']} warps, "
          f"BLOCK_Q {model['block_q']} x {model['tiles']} tiles, "
          f"{model['elements_per_thread']:.0f} elements per thread, "
          f"{model['registers']} registers, {model['resident_warps']} resident warps per SM, "
          f"{model['branches']} branches executed")
    print(f"{'part of the work':<34} {'instructions / element':>22}")
    for part, count in model["per_part"].items():
        print(f"{part:<34} {count:>22.2f}")
    print(f"{'total':<34} {model['instructions_per_element']:>22.2f}")
    print("cycles per element per SM: " + ", ".join(f"{pipe} {value:.4f}" for pipe, value in
                                                     model["cycles_per_element_per_sm"].items()))
    print(f"bound: {model['bound']}; one ResNet-50 certificate's noise (150,528 x 100,000 elements) on an "
          f"{model['device']}: {model['certificate_noise_s'] * 1e3:.1f} ms = "
          f"{100 * model['share_of_forward']:.2f}% of the {model['forward_s']} s forward passes")


# Candidates: (Philox blocks per thread and tile, warps, tiles per program).
SWEEP = [(blocks, warps, tiles) for blocks in (1, 2) for warps in (2, 4, 8) for tiles in (1, 2, 4, 8)
         if blocks * tiles <= 8]


def _sweep(arch: int) -> None:
    """One line per candidate (BLOCK_Q, num_warps, TILES) x dtype x memory format: resources and cost."""
    from rsengine.kernels import noise

    chosen = noise.IMAGE_BLOCK_Q, noise.IMAGE_NUM_WARPS, noise.IMAGE_TILES
    print(f"{'BLOCK_Q':>7} {'warps':>5} {'tiles':>5} {'dtype':>5} {'format':>13} {'regs':>4} {'warps/SM':>8} "
          f"{'instr/elem':>10} {'ms/cert':>7} {'share':>6}")
    try:
        for blocks, num_warps, tiles in SWEEP:
            noise.IMAGE_BLOCK_Q, noise.IMAGE_NUM_WARPS, noise.IMAGE_TILES = 32 * num_warps * blocks, num_warps, tiles
            for dtype, channels_last in itertools.product(("bf16", "fp32"), (True, False)):
                m = cost_model(arch, dtype, channels_last)
                print(f"{noise.IMAGE_BLOCK_Q:>7} {num_warps:>5} {tiles:>5} {dtype:>5} "
                      f"{'channels_last' if channels_last else 'contiguous':>13} {m['registers']:>4} "
                      f"{m['resident_warps']:>8} {m['instructions_per_element']:>10.2f} "
                      f"{m['certificate_noise_s'] * 1e3:>7.1f} {100 * m['share_of_forward']:>5.2f}%", flush=True)
    finally:
        noise.IMAGE_BLOCK_Q, noise.IMAGE_NUM_WARPS, noise.IMAGE_TILES = chosen


def main(argv: list[str] | None = None) -> int:
    from rsengine.options import PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, choices=(80, 90, 100))
    parser.add_argument("--dtype", default="bf16", choices=tuple(PRECISIONS))
    parser.add_argument("--contiguous", action="store_true", help="contiguous batch (default: channels_last)")
    parser.add_argument("--json", metavar="PATH", help="also write the model to PATH")
    parser.add_argument("--sweep", action="store_true",
                        help="model every BLOCK_Q x num_warps candidate for both memory formats and dtypes")
    opts = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("noise_cost_model: unset TRITON_INTERPRET so Triton's compiler runs", file=sys.stderr)
        return 2
    if opts.sweep:
        _sweep(opts.arch)
        return 0
    model = cost_model(opts.arch, opts.dtype, not opts.contiguous)
    _print(model)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(model, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
