"""Compile the Triton kernels for a GPU that is not there: every launch becomes a compile.

Triton's JIT asks its active driver which GPU to compile for. ``compile_only(target)`` installs a
driver that names ``target`` without touching a GPU, and turns every ``kernel[grid](...)`` launch
into ``kernel.warmup(...)``: the real JIT path (argument specialization, the compiler, ptxas)
down to PTX and a cubin, with nothing run. The engine's own launchers therefore compile exactly
the variants they would launch, on CPU tensors, on a machine without a GPU.

Triton reads TRITON_INTERPRET when it is first imported, so this only works in a process that
imported triton with the interpreter off (see ``compile_check``, which starts one).

Example (in such a process):
    >>> import os, torch                                  # doctest: +SKIP
    >>> from triton.backends.compiler import GPUTarget   # doctest: +SKIP
    >>> from rsengine.kernels import votes               # doctest: +SKIP
    >>> with compile_only(GPUTarget("cuda", 90, 32)) as compiled:   # doctest: +SKIP
    ...     votes.vote_count(torch.zeros(4, 10), 0, 2, torch.zeros(2, 10, dtype=torch.int32),
    ...                      torch.zeros(1, dtype=torch.int32))
    >>> compiled[0].name, sorted(compiled[0].asm)          # doctest: +SKIP
    ('_vote_kernel', ['cubin', 'llir', 'ptx', 'source', 'ttgir', 'ttir'])
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from triton.backends.compiler import GPUTarget
from triton.backends.driver import DriverBase
from triton.compiler import CompiledKernel
from triton.runtime import driver
from triton.runtime.jit import KernelInterface

__all__ = ["compile_only"]

# The JIT keeps one kernel cache per device id; each target gets its own id, so compiling for
# sm_80 after sm_90 in one process cannot return a sm_90 cubin from the cache.
_DEVICE_IDS: dict[tuple, int] = {}


class _CompileOnlyDriver(DriverBase):
    """What the JIT asks of a driver before it compiles: the target, a device id, a stream."""

    def __init__(self, target: GPUTarget):
        self.target = target
        self.device = _DEVICE_IDS.setdefault((target.backend, target.arch, target.warp_size), len(_DEVICE_IDS))

    @classmethod
    def is_active(cls) -> bool:
        return False  # never chosen on its own: installed by compile_only only

    def get_current_target(self) -> GPUTarget:
        return self.target

    def get_current_device(self) -> int:
        return self.device

    def get_current_stream(self, device=None) -> int:
        return 0

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")

    def set_current_device(self, device) -> None:
        pass

    def map_python_to_cpp_type(self, ty: str) -> str:
        raise NotImplementedError("compile-only driver: nothing is launched")

    def get_benchmarker(self):
        raise NotImplementedError("compile-only driver: nothing is launched")

    def get_device_interface(self):
        raise NotImplementedError("compile-only driver: nothing is launched")


@contextlib.contextmanager
def compile_only(target: GPUTarget) -> Iterator[list[CompiledKernel]]:
    """Within the block, kernel launches compile for ``target`` and run nothing.

    Yields:
        The list the compiled kernels are appended to, one entry per launch (a launch whose
        variant was compiled before yields the same object again).

    Raises:
        RuntimeError: Triton's interpreter is on in this process.
    """
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("compile_only needs Triton's compiler: start the process without TRITON_INTERPRET=1")
    compiled: list[CompiledKernel] = []

    def compile_launch(kernel, grid):
        def launch(*args, **kwargs):
            compiled.append(kernel.warmup(*args, grid=grid, **kwargs))
        return launch

    previous_driver = driver._active  # None unless a real driver was created before
    previous_getitem = KernelInterface.__getitem__
    driver.set_active(_CompileOnlyDriver(target))
    KernelInterface.__getitem__ = compile_launch
    try:
        yield compiled
    finally:
        KernelInterface.__getitem__ = previous_getitem
        driver.set_active(previous_driver)
