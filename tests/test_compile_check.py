"""The kernels compile for real GPUs (sm_80, sm_90, sm_100) within their resource goals and pins.

Triton's interpreter, which runs the other kernel tests on a CPU, accepts code the compiler
rejects and says nothing of registers or spills. These tests run the compiler itself, without a
GPU, in subprocesses started without TRITON_INTERPRET (Triton reads it once, at import).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton")

from rsengine.options import PRECISIONS  # noqa: E402
from rsengine.kernels import compile_check  # noqa: E402

TESTS = Path(__file__).parent

# Pinned from the compile check's output with triton 3.9.0 (bench/README.md, "2026-11-29:
# kernels tuned from their machine code" and "2026-11-29: Box-Muller from the words"): the most
# registers any variant of a kernel uses on a target, and how many distinct variants the
# engine's options compile. A change that needs more registers, or that makes the engine compile
# more variants (each one a JIT compile in the middle of a user's run), fails here; lower the
# pins when a change improves them.
PINNED_TRITON = "3.9.0"
PINNED_MAX_REGISTERS = {
    # The image kernel's maxima are its Laplace variants' (2026-12-07; Gaussian's stay 72/64/63).
    ("_noise_image_kernel", 80): 72, ("_noise_image_kernel", 90): 72, ("_noise_image_kernel", 100): 74,
    ("_noise_rows_kernel", 80): 64, ("_noise_rows_kernel", 90): 70, ("_noise_rows_kernel", 100): 70,
    ("_sound_rows_kernel", 80): 37, ("_sound_rows_kernel", 90): 32, ("_sound_rows_kernel", 100): 32,
    ("_vote_kernel", 80): 48, ("_vote_kernel", 90): 48, ("_vote_kernel", 100): 48,
}
# 3 noises; sound mode adds its kernel and the vote kernel's variant that skips escaped rows.
PINNED_VARIANTS = {"_noise_image_kernel": 72, "_noise_rows_kernel": 12, "_sound_rows_kernel": 10, "_vote_kernel": 5}


def _compiler_env() -> dict:
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "0")  # the launchers pass it; silences the default's warning
    return env


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The compile check's run over every engine case and target: (exit status, output, reports)."""
    path = tmp_path_factory.mktemp("compile_check") / "variants.json"
    result = subprocess.run([sys.executable, "-m", "rsengine.kernels.compile_check", "--json", str(path)],
                            env=_compiler_env(), capture_output=True, text=True, timeout=1200)
    reports = json.loads(path.read_text()) if path.exists() else []
    return result, {report["arch"]: report for report in reports}


def test_compile_check_every_variant_compiles_for_every_target(compiled):
    result, reports = compiled
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert sorted(reports) == list(compile_check.TARGETS)
    for arch, report in reports.items():
        assert report["failures"] == [], (arch, report["failures"])
        assert {v["kernel"] for v in report["variants"]} == {"_noise_image_kernel", "_noise_rows_kernel",
                                                           "_sound_rows_kernel", "_vote_kernel"}


@pytest.mark.parametrize("arch", compile_check.TARGETS, ids=lambda arch: f"sm_{arch}")
def test_compile_check_no_local_memory_and_register_goal(compiled, arch):
    _, reports = compiled
    for variant in reports[arch]["variants"]:
        where = f"{variant['kernel']} sm_{arch} {variant['constants']} ({variant['cases'][0]})"
        assert variant["local_stores"] == 0 and variant["local_loads"] == 0, where
        assert variant["stack"] == 0, where
        assert variant["registers"] <= compile_check.MAX_REGISTERS, where
        assert variant["resident_warps"] >= compile_check.MIN_RESIDENT_WARPS, where
        assert variant["ptx_problems"] == [], where


@pytest.mark.parametrize("arch", compile_check.TARGETS, ids=lambda arch: f"sm_{arch}")
def test_compile_check_pinned_resources(compiled, arch):
    if triton.__version__ != PINNED_TRITON:
        pytest.skip(f"pins were measured with triton {PINNED_TRITON}, this is {triton.__version__} "
                    "(the goals above still apply)")
    _, reports = compiled
    by_kernel: dict[str, list[dict]] = {}
    for variant in reports[arch]["variants"]:
        by_kernel.setdefault(variant["kernel"], []).append(variant)
    for name, variants in by_kernel.items():
        assert max(v["registers"] for v in variants) <= PINNED_MAX_REGISTERS[name, arch], name
        assert len(variants) == PINNED_VARIANTS[name], (name, [v["constants"] for v in variants])


def test_compile_check_covers_the_engine_precisions():
    # A precision added to the engine must be added to the compile check's cases too.
    assert set(compile_check.OUTPUT_DTYPES) == set(PRECISIONS.values())
    formats = {case.memory_format for case in compile_check.engine_cases()}
    assert formats == {torch.contiguous_format, torch.channels_last}
    assert {case.normalize for case in compile_check.engine_cases()} == {False, True}
    assert max(compile_check.SEEDS.values()) >= 2**32  # the seed's high word is not always 0


def test_compile_check_refuses_the_interpreter():
    env = dict(_compiler_env(), TRITON_INTERPRET="1")
    result = subprocess.run([sys.executable, "-m", "rsengine.kernels.compile_check", "--targets", "90"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "TRITON_INTERPRET" in result.stderr


@pytest.fixture(scope="module")
def mistake_verdicts(tmp_path_factory):
    path = tmp_path_factory.mktemp("mistakes") / "verdicts.json"
    result = subprocess.run([sys.executable, str(TESTS / "compile_mistakes.py"), str(path)], env=_compiler_env(),
                            capture_output=True, text=True, timeout=600, cwd=TESTS)
    assert result.returncode == 0, result.stderr[-4000:]
    return {(v["mistake"], v["arch"]): v for v in json.loads(path.read_text())}


@pytest.mark.parametrize("mistake", ["global_not_constexpr", "integer_fma", "fp8_e4m3", "division_64bit",
                                     "spilling"])
def test_compile_check_catches_what_the_interpreter_runs(mistake_verdicts, mistake):
    # The interpreter (on in this process without a GPU) runs each mistake without complaint...
    sys.path.insert(0, str(TESTS))
    try:
        import compile_mistakes
    finally:
        sys.path.remove(str(TESTS))
    if os.environ.get("TRITON_INTERPRET") == "1":
        compile_mistakes.launch(mistake)
    # ...and the compile check rejects it: a compile error, or a variant that misses the goals.
    rejected = {arch: not v["compiled"] or bool(v["problems"]) for (name, arch), v in mistake_verdicts.items()
                if name == mistake}
    if mistake == "fp8_e4m3":  # an architecture's limit: sm_90 has e4m3, sm_80 does not
        assert rejected == {80: True, 90: False}
    else:
        assert rejected == {80: True, 90: True}
