"""Read a compiled kernel's machine code: registers, local memory, shared memory, occupancy, SASS.

The Triton wheel ships NVIDIA's ``cuobjdump`` (resource usage of a cubin) and ``nvdisasm`` (its
SASS, the instructions the GPU executes); no GPU is needed to run them. What the interpreter
cannot say, these do: how many registers a thread holds, whether the compiler spilled to local
memory (STL/LDL instructions: slow, off-chip), and how many warps an SM can keep resident.

Example:
    >>> occupancy_warps(registers=40, shared_bytes=0, num_warps=4, arch=90)
    48
    >>> occupancy_warps(registers=255, shared_bytes=0, num_warps=4, arch=90)
    8
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass

import triton

__all__ = ["SM_LIMITS", "Resources", "sass_opcodes", "read_cubin", "occupancy_warps", "ptx_problems"]

_BIN = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")

# Per-SM limits (CUDA programming guide, "Compute capabilities" table): 64K 32-bit registers
# allocated per warp in units of 256, at most 64 resident warps and 32 blocks; shared memory per
# SM (A100 164 KB; H100 and B200 228 KB), of which the driver reserves 1 KB per block.
SM_LIMITS = {
    80: dict(registers=65536, warps=64, blocks=32, shared=167936),
    90: dict(registers=65536, warps=64, blocks=32, shared=233472),
    100: dict(registers=65536, warps=64, blocks=32, shared=233472),
}
_REGISTER_UNIT = 256
_SHARED_RESERVED_PER_BLOCK = 1024

_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[0-9T]\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)")
_PTX_64BIT_DIVISION = re.compile(r"\b(?:div|rem)\.[su]64\b")


@dataclass(frozen=True)
class Resources:
    """What one compiled kernel costs a GPU, read from its cubin.

    Attributes:
        registers: 32-bit registers per thread. stack: bytes of stack frame per thread.
        shared_bytes: static + dynamic shared memory per block.
        local_stores, local_loads: STL / LDL instructions in the SASS (register spills, local arrays).
        calls: CALL instructions (subroutines such as 64-bit division or slow paths of libm).
        opcodes: static count of each SASS opcode, modifiers dropped (e.g. ``IMAD``).
    """

    registers: int
    stack: int
    shared_bytes: int
    local_stores: int
    local_loads: int
    calls: int
    opcodes: Counter


def _run(tool: str, *args: str) -> str:
    result = subprocess.run([os.path.join(_BIN, tool), *args], capture_output=True, text=True, check=True)
    return result.stdout


def sass_opcodes(sass: str) -> list[str]:
    """Opcodes with modifiers (``IMAD.WIDE.U32``) of the instructions in nvdisasm's listing, in order."""
    return _INSTRUCTION.findall(sass)


def read_cubin(cubin: bytes, dynamic_shared_bytes: int) -> tuple[Resources, str]:
    """Resources of a one-kernel cubin, and its SASS listing with source lines (``//## File``).

    Args:
        cubin: the ``asm["cubin"]`` of a compiled Triton kernel.
        dynamic_shared_bytes: the shared memory Triton requests at launch (``metadata.shared``).
    """
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "kernel.cubin")
        with open(path, "wb") as handle:
            handle.write(cubin)
        usage = _run("cuobjdump", "--dump-resource-usage", path)
        sass = _run("nvdisasm", "--print-code", "--print-line-info-inline", path)
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", usage.split("Function", 1)[1]))
    opcodes = sass_opcodes(sass)
    counts = Counter(op.split(".")[0] for op in opcodes)
    resources = Resources(
        registers=int(fields["REG"]),
        stack=int(fields["STACK"]),
        shared_bytes=int(fields["SHARED"]) + dynamic_shared_bytes,
        local_stores=counts["STL"],
        local_loads=counts["LDL"],
        calls=counts["CALL"],
        opcodes=counts,
    )
    return resources, sass


def occupancy_warps(registers: int, shared_bytes: int, num_warps: int, arch: int) -> int:
    """Resident warps per SM for blocks of ``num_warps`` warps (the CUDA occupancy rules).

    Args:
        registers: per thread. shared_bytes: per block. arch: 80, 90 or 100.
    """
    limits = SM_LIMITS[arch]
    per_warp = -(-registers * 32 // _REGISTER_UNIT) * _REGISTER_UNIT
    blocks = min(limits["blocks"], limits["warps"] // num_warps,
                 limits["registers"] // per_warp // num_warps if per_warp else limits["blocks"],
                 limits["shared"] // (shared_bytes + _SHARED_RESERVED_PER_BLOCK))
    return blocks * num_warps


def ptx_problems(ptx: str) -> list[str]:
    """Constructs the interpreter runs happily but a GPU pays for: 64-bit integer division."""
    found = sorted(set(_PTX_64BIT_DIVISION.findall(ptx)))
    if not found:
        return []
    return [f"64-bit integer division in PTX ({', '.join(found)}): a subroutine call on every NVIDIA GPU"]
