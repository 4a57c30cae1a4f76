"""Compile every kernel variant the engine launches for real GPUs, and read their machine code.

Triton's CPU interpreter runs code the GPU compiler rejects (globals that are not constexpr,
for one) and says nothing of registers or spills. This check drives the engine's own sampler
(``rsengine.sampler.count_votes``, the code that launches the kernels for ``Smooth`` and the CLI)
over every option a user can set: input shapes, output dtypes, memory formats, normalization,
32- and 64-bit seeds, logit dtypes and class counts, all three sampling phases, ragged last
batches. Launches compile instead of running (``compile_only``) for sm_80, sm_90 and sm_100, on
any machine; each distinct variant's cubin is then read (``machine_code``) and held to the
goals below.

Run it (interpreter off; it refuses otherwise):
    python -m rsengine.kernels.compile_check [--targets 80 90 100] [--json PATH]
It prints one line per kernel and target and exits 1 if any variant fails to compile or misses
a goal. ``tests/test_compile_check.py`` runs it in CI.

Coverage: with Gaussian noise, every combination of the options on the data sets' shapes and on
the general kernel's; on other image shapes (2 channels, H*W not a multiple of 16), each option
value at least once (see ``COVERING_SHAPES``). Laplace and uniform noise change only the
transform of each word, so for them every shape compiles in each output dtype, both memory
formats, raw and normalized (``L1_NOISES``). Sound mode (its own kernel, ``sound_noise.py``):
every shape, dtype, format and normalization at sigma 0.25, and ``SOUND_SIGMAS``' others (deeper
binary searches) on one shape.

Example:
    >>> [case.name for case in engine_cases()][:2]
    ['mnist 1x28x28 float32 contiguous raw seed32', 'mnist 1x28x28 float32 contiguous raw seed64']
    >>> sorted({case.noise for case in engine_cases()})
    ['gaussian', 'laplace', 'uniform']
    >>> sorted({case.sound_sigma for case in engine_cases() if case.sound_sigma})
    [0.25, 1.0, 4.0]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import torch

__all__ = ["MAX_REGISTERS", "MIN_RESIDENT_WARPS", "TARGETS", "LaunchCase", "engine_cases", "launch_case",
           "variant_report", "compile_group", "compile_targets", "problems", "main"]

TARGETS = (80, 90, 100)
# Goals (issue 8): at most 128 registers per thread, i.e. at least 16 resident warps per SM, and
# no local memory at all (spills or stack arrays go off-chip, through L1 at best).
MAX_REGISTERS = 128
MIN_RESIDENT_WARPS = 16

# What a user can choose that reaches a kernel's specialization. OUTPUT_DTYPES are the engine's
# precisions (tests/test_compile_check.py keeps them equal to rsengine.commands.PRECISIONS).
# The data sets' shapes and the general kernel's (odd sizes, 1-D features, 4 channels) get the
# full product of the options below. Other image shapes specialize the image kernel further (2
# channels, H*W not a multiple of 16); for them each option value appears in at least one case,
# so every option's code path compiles for them without all 12 combinations.
INPUT_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "imagenet": (3, 224, 224), "odd": (3, 9, 11),
                "features": (5,), "rgba": (4, 32, 32)}
COVERING_SHAPES = {"pairs": (2, 16, 16), "unaligned": (3, 30, 30)}
OUTPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
SEEDS = {"seed32": 0, "seed64": 2**62 + 12345}
L1_NOISES = ("laplace", "uniform")
# Sound mode's sigmas: 11, 13 and 15 halvings of the threshold search (1,131 to 17,275 thresholds).
SOUND_SIGMAS = (0.25, 1.0, 4.0)
LOGIT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
NUM_CLASSES = (2, 10, 16, 1000)
_SIGMA = 0.25
_SAMPLES = (3, 5)  # n per phase; 2 inputs with batches of 4 rows give ragged, input-spanning batches
_BATCH = 4


@dataclass(frozen=True)
class LaunchCase:
    """One sampling configuration: a shape and every option that reaches the kernels."""

    name: str
    group: str  # cases of one group compile in one worker process
    shape: tuple
    dtype: torch.dtype
    memory_format: torch.memory_format
    normalize: bool
    seed: int
    logit_dtype: torch.dtype
    num_classes: int
    noise: str = "gaussian"
    sound_sigma: float | None = None  # sound mode at this sigma (rounded Gaussian on the grid)


def _case(shape_name, shape, dtype, format_name, normalize, seed_name, noise="gaussian",
          sound_sigma=None) -> LaunchCase:
    kind = f"sound {sound_sigma}" if sound_sigma else ("" if noise == "gaussian" else noise)
    name = (f"{shape_name} {'x'.join(map(str, shape))} {str(dtype).removeprefix('torch.')} {format_name} "
            f"{'normalized' if normalize else 'raw'} {seed_name}" + (f" {kind}" if kind else ""))
    return LaunchCase(name, f"{shape_name} {kind}" if kind else shape_name, shape, dtype,
                      MEMORY_FORMATS[format_name], normalize, SEEDS[seed_name], torch.float32, 10, noise, sound_sigma)


def engine_cases() -> list[LaunchCase]:
    """The noise options per shape (full product, or covering), then the vote options on one shape."""
    cases = []
    for (shape_name, shape), dtype, format_name, normalize, seed_name in itertools.product(
            INPUT_SHAPES.items(), OUTPUT_DTYPES, MEMORY_FORMATS, (False, True), SEEDS):
        if format_name == "channels_last" and len(shape) != 3:
            continue  # the engine refuses channels_last for non-image inputs
        cases.append(_case(shape_name, shape, dtype, format_name, normalize, seed_name))
    for (shape_name, shape), dtype in itertools.product(COVERING_SHAPES.items(), OUTPUT_DTYPES):
        cases.append(_case(shape_name, shape, dtype, "channels_last", True, "seed64"))
        cases.append(_case(shape_name, shape, dtype, "contiguous", False, "seed32"))
    # Each dtype with each format, raw and normalized alternating, on every shape.
    all_shapes = {**INPUT_SHAPES, **COVERING_SHAPES}
    for noise, (shape_name, shape) in itertools.product(L1_NOISES, all_shapes.items()):
        for i, (dtype, format_name) in enumerate(itertools.product(OUTPUT_DTYPES, MEMORY_FORMATS)):
            if format_name == "contiguous" or len(shape) == 3:
                cases.append(_case(shape_name, shape, dtype, format_name, i // 2 % 2 == 1, "seed64", noise))
    # Sound mode's kernel: every dtype, format and normalization on every shape.
    for (shape_name, shape), dtype, format_name, normalize in itertools.product(
            all_shapes.items(), OUTPUT_DTYPES, MEMORY_FORMATS, (False, True)):
        if format_name == "contiguous" or len(shape) == 3:
            cases.append(_case(shape_name, shape, dtype, format_name, normalize, "seed64", sound_sigma=SOUND_SIGMAS[0]))
    for sound_sigma, normalize in itertools.product(SOUND_SIGMAS[1:], (False, True)):
        cases.append(_case("cifar10", INPUT_SHAPES["cifar10"], torch.bfloat16, "channels_last", normalize, "seed32",
                           sound_sigma=sound_sigma))
    for logit_dtype, num_classes in itertools.product(LOGIT_DTYPES, NUM_CLASSES):
        name = f"logits {str(logit_dtype).removeprefix('torch.')} K={num_classes}"
        cases.append(LaunchCase(name, "logits", INPUT_SHAPES["mnist"], torch.float32, torch.contiguous_format, True, 0,
                                logit_dtype, num_classes))
    return cases


class _ProbeClassifier(torch.nn.Module):
    """Logits [B, K] in a chosen dtype from any batch, cheaply (nothing is run on a GPU)."""

    def __init__(self, num_classes: int, dtype: torch.dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.linspace(-1, 1, num_classes, dtype=dtype), requires_grad=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1)[:, :1].to(self.weight.dtype) * self.weight


def launch_case(case: LaunchCase, backend, device: torch.device = torch.device("cpu")) -> None:
    """Sample two inputs of ``case`` through the engine's sampler in all three phases.

    With CPU tensors under ``compile_only`` the launches compile and run nothing; on a GPU
    (bench/device_resources.py) they run.
    """
    from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_PREDICTION, PHASE_SELECTION
    from rsengine.sampler import NoiseSpec, count_votes
    from rsengine.sound import noise_table

    channels = case.shape[0]
    mean = torch.linspace(0.4, 0.5, channels, device=device) if case.normalize else None
    std = torch.linspace(0.2, 0.3, channels, device=device) if case.normalize else None
    if case.sound_sigma:
        table = noise_table(case.sound_sigma)
        spec = NoiseSpec(case.sound_sigma, case.seed, mean, std, case.dtype, case.memory_format,
                         sound_thresholds=table.signed_thresholds(device), sound_support=table.support)
        xs = torch.randint(0, 256, (2, *case.shape), dtype=torch.int32, device=device)
    else:
        spec = NoiseSpec(_SIGMA, case.seed, mean, std, case.dtype, case.memory_format, case.noise)
        xs = torch.rand(2, *case.shape, device=device)
    streams = torch.tensor([7, 2**32 - 1], dtype=torch.int64, device=device)
    model = _ProbeClassifier(case.num_classes, case.logit_dtype).to(device)
    for phase, n in ((PHASE_SELECTION, _SAMPLES[0]), (PHASE_ESTIMATION, _SAMPLES[1]), (PHASE_PREDICTION, _SAMPLES[1])):
        count_votes(model, xs, streams, n, phase, case.num_classes, spec, _BATCH, backend)


def _launched_kernel_names() -> set[str]:
    # Every @triton.jit function named *_kernel in the kernel modules is launched by a launcher;
    # the others are helpers inlined into them. A kernel missing from the compiled set is a
    # launcher the cases above do not reach.
    from triton.runtime.jit import JITFunction

    from rsengine.kernels import noise, sound_noise, votes

    return {name for module in (noise, sound_noise, votes) for name, value in vars(module).items()
            if isinstance(value, JITFunction) and name.endswith("_kernel")}


def variant_report(kernel, arch: int) -> dict:
    """Figures of one compiled kernel (a triton CompiledKernel) for sm_<arch>, JSON-able."""
    from rsengine.kernels.machine_code import occupancy_warps, ptx_problems, read_cubin

    resources, _ = read_cubin(kernel.asm["cubin"], kernel.metadata.shared)
    num_warps = kernel.metadata.num_warps
    return {
        "kernel": kernel.name, "arch": arch, "hash": kernel.hash, "num_warps": num_warps,
        "signature": {name: str(kind) for name, kind in kernel.src.signature.items()},
        "constants": {kernel.src.fn.arg_names[path[0]]: str(value) for path, value in kernel.src.constants.items()},
        "registers": resources.registers, "stack": resources.stack, "shared_bytes": resources.shared_bytes,
        "local_stores": resources.local_stores, "local_loads": resources.local_loads, "calls": resources.calls,
        "resident_warps": occupancy_warps(resources.registers, resources.shared_bytes, num_warps, arch),
        "ptx_problems": ptx_problems(kernel.asm["ptx"]),
        "opcodes": dict(resources.opcodes), "sass_instructions": sum(resources.opcodes.values()),
    }


def compile_group(arch: int, group: str) -> dict:
    """Compile the engine cases of one group for sm_<arch>: each distinct variant's figures."""
    from triton.backends.compiler import GPUTarget

    from rsengine.backends import Backend
    from rsengine.kernels import noise, sound_noise, votes
    from rsengine.kernels.compile_only import compile_only

    backend = Backend("triton", noise.noise_normalize, votes.vote_count, sound_noise.sound_noise_normalize)
    variants: dict[str, dict] = {}
    failures = []
    for case in (case for case in engine_cases() if case.group == group):
        with compile_only(GPUTarget("cuda", arch, 32)) as compiled:
            try:
                launch_case(case, backend)
            except Exception as error:  # a compile error: report the case and the compiler's words
                failures.append({"case": case.name, "error": f"{type(error).__name__}: {error}"})
                continue
        for kernel in compiled:
            if kernel.hash not in variants:
                variants[kernel.hash] = dict(variant_report(kernel, arch), cases=[])
            if case.name not in variants[kernel.hash]["cases"]:
                variants[kernel.hash]["cases"].append(case.name)
    return {"arch": arch, "variants": variants, "failures": failures}


def compile_targets(targets, jobs: int) -> list[dict]:
    """Compile every engine case for each target, groups spread over ``jobs`` worker processes.

    Returns:
        One report per target: {"arch", "variants": [variant figures, one per distinct
        compiled kernel], "failures": [cases that did not compile, and kernels never launched]}.
    """
    tasks = [(arch, group) for arch in targets for group in dict.fromkeys(case.group for case in engine_cases())]
    # Spawned workers: fresh interpreters that import triton with the compiler on.
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))), mp_context=get_context("spawn")) as pool:
        results = list(pool.map(compile_group, *zip(*tasks)))
    reports = []
    for arch in targets:
        variants: dict[str, dict] = {}
        failures = []
        for result in (r for r in results if r["arch"] == arch):
            failures += result["failures"]
            for key, variant in result["variants"].items():
                if key in variants:
                    variants[key]["cases"] += [c for c in variant["cases"] if c not in variants[key]["cases"]]
                else:
                    variants[key] = variant
        compiled_names = {variant["kernel"] for variant in variants.values()}
        for name in sorted(_launched_kernel_names() - compiled_names):
            failures.append({"case": "(all)", "error": f"kernel {name} was never launched by the engine cases"})
        reports.append({"arch": arch, "variants": list(variants.values()), "failures": failures})
    return reports


def problems(variant: dict) -> list[str]:
    """Why a compiled variant misses the goals (empty when it meets them)."""
    found = list(variant["ptx_problems"])
    if variant["registers"] > MAX_REGISTERS:
        found.append(f"{variant['registers']} registers per thread (goal <= {MAX_REGISTERS})")
    if variant["local_stores"] or variant["local_loads"]:
        found.append(f"local memory: {variant['local_stores']} STL, {variant['local_loads']} LDL (goal 0)")
    if variant["resident_warps"] < MIN_RESIDENT_WARPS:
        found.append(f"{variant['resident_warps']} resident warps per SM (goal >= {MIN_RESIDENT_WARPS})")
    return found


def _summary_lines(reports: list[dict]) -> list[str]:
    lines = [f"{'kernel':<22} {'target':<7} {'variants':>8} {'registers':>10} {'STL/LDL':>8} {'stack':>6} "
             f"{'shared B':>9} {'warps/SM':>9}"]
    for report in reports:
        by_kernel: dict[str, list[dict]] = {}
        for variant in report["variants"]:
            by_kernel.setdefault(variant["kernel"], []).append(variant)
        for name, variants in sorted(by_kernel.items()):
            registers = [v["registers"] for v in variants]
            warps = [v["resident_warps"] for v in variants]
            local = sum(v["local_stores"] + v["local_loads"] for v in variants)
            lines.append(f"{name:<22} sm_{report['arch']:<4} {len(variants):>8} "
                         f"{min(registers):>4}-{max(registers):<5} {local:>8} {max(v['stack'] for v in variants):>6} "
                         f"{max(v['shared_bytes'] for v in variants):>9} {min(warps):>4}-{max(warps):<4}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsengine.kernels.compile_check",
                                     description="Compile every engine kernel variant for GPU targets, no GPU needed.")
    parser.add_argument("--targets", type=int, nargs="+", default=list(TARGETS), choices=TARGETS,
                        help="compute capabilities (default: 80 90 100)")
    parser.add_argument("--json", metavar="PATH", help="write every variant's figures to PATH")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiler processes")
    opts = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("compile_check: TRITON_INTERPRET=1 is set; unset it so Triton's compiler runs", file=sys.stderr)
        return 2
    reports = compile_targets(opts.targets, opts.jobs)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(reports, handle, indent=1)
    print("\n".join(_summary_lines(reports)))
    failed = False
    for report in reports:
        for failure in report["failures"]:
            failed = True
            print(f"sm_{report['arch']}: {failure['case']}: {failure['error'].splitlines()[0]}")
        for variant in report["variants"]:
            for problem in problems(variant):
                failed = True
                print(f"sm_{report['arch']}: {variant['kernel']} ({variant['cases'][0]}): {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
