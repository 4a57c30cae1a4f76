"""Building the compiled CPU noise kernel (``cpu_noise.c``) with the machine's C compiler, once.

The kernel is compiled on first use, for the CPU it runs on, and cached as a shared library
named after a digest of everything that can change the machine code: the source, the constants
defined for it, the compiler and its version, the flags and the CPU's features. Later processes
load the cached library in milliseconds; a changed source or another CPU (a shared home directory
on a cluster) gets a library of its own.

- Compiler: ``$CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on the PATH.
- Flags: ``-O3 -march=native`` (the CPU's vector units and fma; retried without ``-march=native``
  where the compiler does not take it), ``-ffp-contract=off`` (no fma the source does not write:
  the float32 results are the Triton kernel's, bit for bit, on every CPU), ``-fno-math-errno``
  (lets sqrtf vectorize; the kernel never takes the square root of a negative number).
- Cache: ``$RSENGINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/rsengine``, else ``~/.cache/rsengine``;
  a private temporary directory when none of them can be written. Libraries are written under a
  temporary name and renamed, so processes building at the same time never load half a file.

Example:
    >>> library = load_library()          # compiles on the first call of a new machine, ~1 s
    >>> hasattr(library, "rsengine_noise_normalize")
    True
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .box_muller_coefficients import (COS_COEFFICIENTS, FOLD_COEFFICIENTS, LN2_HI, LOG_G_COEFFICIENTS, PI_HI,
                                      SIN_COEFFICIENTS)
from .contract import PHILOX_KEY_INCREMENTS, PHILOX_ROUND_MULTIPLIERS

__all__ = ["CpuKernelUnavailable", "SOURCE", "FLAGS", "compiler", "cache_dir", "defines", "load_library"]

SOURCE = Path(__file__).with_name("cpu_noise.c")
FLAGS = ("-O3", "-std=c99", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared")
_NATIVE_FLAG = "-march=native"
_COMPILE_TIMEOUT_S = 120


class CpuKernelUnavailable(RuntimeError):
    """The CPU kernel cannot be built or loaded here (no C compiler, or it failed); one-line reason."""


def compiler() -> list[str]:
    """The C compiler command: ``$CC`` (split like a shell would) or cc, gcc or clang from the PATH.

    Raises:
        CpuKernelUnavailable: none is found.
    """
    if os.environ.get("CC"):
        command = shlex.split(os.environ["CC"])
        if shutil.which(command[0]) is None:
            raise CpuKernelUnavailable(f"the C compiler in $CC ({command[0]!r}) was not found")
        return command
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    raise CpuKernelUnavailable("no C compiler found (install gcc or clang, or set CC)")


def defines() -> dict[str, str]:
    """The macros ``cpu_noise.c`` reads: the Box-Muller coefficients and Philox constants, as C literals.

    Example:
        >>> defines()["BM_PI_HI"]
        '0x1.921fb60000000p+1f'
    """
    floats = {f"BM_P{i}": c for i, c in enumerate(LOG_G_COEFFICIENTS)}
    floats.update({f"BM_C{i}": c for i, c in enumerate(COS_COEFFICIENTS)})
    floats.update({f"BM_Q{i}": c for i, c in enumerate(SIN_COEFFICIENTS)})
    floats.update(BM_G0=FOLD_COEFFICIENTS[0], BM_G1=FOLD_COEFFICIENTS[1], BM_MINUS_TWO_LN2_HI=-2.0 * LN2_HI,
                  BM_PI_HI=PI_HI)
    # Hex literals: exact, and every constant is a float32, so the f suffix rounds nothing.
    macros = {name: f"{value.hex()}f" for name, value in floats.items()}
    words = dict(PHILOX_M0=PHILOX_ROUND_MULTIPLIERS[0], PHILOX_M1=PHILOX_ROUND_MULTIPLIERS[1],
                 PHILOX_W0=PHILOX_KEY_INCREMENTS[0], PHILOX_W1=PHILOX_KEY_INCREMENTS[1])
    macros.update({name: f"{value:#x}u" for name, value in words.items()})
    return macros


def cache_dir() -> Path:
    """Where built libraries are kept (created, private to the user): see the module docstring."""
    if os.environ.get("RSENGINE_CACHE_DIR"):
        candidates = [Path(os.environ["RSENGINE_CACHE_DIR"])]
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        candidates = [base / "rsengine"]
    candidates.append(Path(tempfile.gettempdir()) / f"rsengine-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
    for directory in candidates:
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if os.access(directory, os.W_OK):
                return directory
        except OSError:
            continue
    raise CpuKernelUnavailable(f"no writable cache directory for the compiled CPU kernel (tried {candidates[0]})")


def _cpu_features() -> str:
    # What -march=native compiles for: the CPU's feature flags where the OS lists them.
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.split(":")[0].strip() in ("flags", "Features"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _compiler_version(command: list[str]) -> str:
    try:
        result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise CpuKernelUnavailable(f"the C compiler {command[0]!r} does not run ({error})") from None
    return result.stdout


def _compile(command: list[str], flags: list[str], source: str, target: Path) -> str | None:
    """Compile ``source`` into ``target``; None on success, else the compiler's first error line."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        c_file, library = Path(scratch) / "cpu_noise.c", Path(scratch) / target.name
        c_file.write_text(source)
        try:
            result = subprocess.run([*command, *flags, "-o", str(library), str(c_file), "-lm"], capture_output=True,
                                    text=True, timeout=_COMPILE_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as error:
            return str(error)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if "error" in line.lower()] or \
                result.stderr.splitlines() or [f"exit status {result.returncode}"]
            return lines[0].strip()
        os.replace(library, target)  # atomic: a concurrent loader sees no file or the whole file
    return None


def load_library() -> ctypes.CDLL:
    """The compiled kernel, built into the cache first if this machine has no copy yet.

    The outcome is remembered for the process: a machine without a compiler is asked once.
    ``load_library.cache_clear()`` forgets it.

    Raises:
        CpuKernelUnavailable: no C compiler, no writable cache, or compiling failed.
    """
    outcome = _build_and_load()
    if isinstance(outcome, CpuKernelUnavailable):
        raise CpuKernelUnavailable(str(outcome))
    return outcome


@functools.lru_cache(maxsize=None)
def _build_and_load() -> ctypes.CDLL | CpuKernelUnavailable:
    try:
        command = compiler()
        source = "".join(f"#define {name} {value}\n" for name, value in defines().items()) + SOURCE.read_text()
        identity = "\0".join([source, shlex.join(command), _compiler_version(command), *FLAGS, _NATIVE_FLAG,
                              _cpu_features(), platform.machine(), sys.platform])
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        target = cache_dir() / f"cpu_noise-{digest}{'.dll' if sys.platform == 'win32' else '.so'}"
        if not target.exists():
            error = _compile(command, [*FLAGS, _NATIVE_FLAG], source, target)
            if error is not None:  # e.g. a compiler that does not know -march=native
                error = _compile(command, list(FLAGS), source, target)
            if error is not None:
                raise CpuKernelUnavailable(f"compiling {SOURCE.name} with {command[0]!r} failed: {error}")
        try:
            return ctypes.CDLL(str(target))
        except OSError as error:
            raise CpuKernelUnavailable(f"loading {target} failed: {error}") from None
    except CpuKernelUnavailable as unavailable:
        return unavailable


load_library.cache_clear = _build_and_load.cache_clear
