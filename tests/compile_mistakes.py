"""Kernels with mistakes that Triton's CPU interpreter runs and a GPU does not accept.

``tests/test_compile_check.py`` runs each one in the interpreter (which accepts it) and, through
the compile check's own machinery in a process with the compiler on, for sm_80 and sm_90: each
must be rejected there, by the compiler or by the check's resource goals. Run as a script
(``python compile_mistakes.py OUT.json``) it writes one JSON verdict per mistake and target to
OUT.json (not to stdout: the compiler's native code prints its IR there when it fails).
"""
from __future__ import annotations

import json
import sys

import torch
import triton
import triton.language as tl

SCALE = 0.5  # a plain Python global: the interpreter reads it, the compiler refuses it


@triton.jit
def global_not_constexpr_kernel(x_ptr):
    offs = tl.arange(0, 32)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs) * SCALE)


@triton.jit
def integer_fma_kernel(i_ptr):
    # fma is a floating-point operation: the interpreter computes it on int32, the compiler rejects it.
    offs = tl.arange(0, 32)
    x = tl.load(i_ptr + offs)
    tl.store(i_ptr + offs, tl.fma(x, x, x))


@triton.jit
def fp8_e4m3_kernel(x_ptr):
    # float8e4nv (e4m3) exists from sm_89: fine for sm_90, rejected for sm_80.
    offs = tl.arange(0, 32)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs).to(tl.float8e4nv).to(tl.float32))


@triton.jit
def division_64bit_kernel(l_ptr, divisor):
    # Compiles, but a 64-bit integer division is a subroutine call on every NVIDIA GPU.
    offs = tl.arange(0, 32)
    tl.store(l_ptr + offs, tl.load(l_ptr + offs) // divisor)


@triton.jit
def spilling_kernel(x_ptr, ROWS: tl.constexpr, COLS: tl.constexpr):
    # A [64, 256] fp32 tile held across a reduction by one warp: 512 values per thread, so the
    # compiler spills to local memory.
    offs = tl.arange(0, ROWS)[:, None] * COLS + tl.arange(0, COLS)[None, :]
    x = tl.load(x_ptr + offs)
    tl.store(x_ptr + offs, x - tl.max(x, axis=1)[:, None])


def _floats():
    return torch.rand(64 * 256)


def launch(name: str) -> None:
    """Launch mistake ``name`` on CPU tensors (runs in the interpreter, compiles under compile_only)."""
    if name == "global_not_constexpr":
        global_not_constexpr_kernel[(1,)](_floats())
    elif name == "integer_fma":
        integer_fma_kernel[(1,)](torch.arange(32, dtype=torch.int32))
    elif name == "fp8_e4m3":
        fp8_e4m3_kernel[(1,)](_floats())
    elif name == "division_64bit":
        division_64bit_kernel[(1,)](torch.arange(32, dtype=torch.int64), 2**40)
    elif name == "spilling":
        spilling_kernel[(1,)](_floats(), 64, 256, num_warps=1)
    else:
        raise ValueError(f"unknown mistake {name!r}")


MISTAKES = ("global_not_constexpr", "integer_fma", "fp8_e4m3", "division_64bit", "spilling")


def verdicts(archs=(80, 90)) -> list[dict]:
    """Each mistake through compile_only for each arch: compiled or not, and the check's goals."""
    from triton.backends.compiler import GPUTarget

    from rsengine.kernels.compile_check import problems, variant_report
    from rsengine.kernels.compile_only import compile_only

    results = []
    for name in MISTAKES:
        for arch in archs:
            try:
                with compile_only(GPUTarget("cuda", arch, 32)) as compiled:
                    launch(name)
            except Exception as error:
                results.append({"mistake": name, "arch": arch, "compiled": False,
                                "error": f"{type(error).__name__}: {error}"})
                continue
            results.append({"mistake": name, "arch": arch, "compiled": True,
                            "problems": problems(variant_report(compiled[0], arch))})
    return results


if __name__ == "__main__":
    with open(sys.argv[1], "w") as out:
        json.dump(verdicts(), out)
