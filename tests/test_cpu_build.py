"""Building the CPU kernel: cached per source and machine, safe in parallel, clear when it cannot.

Each test builds into its own cache directory (RSENGINE_CACHE_DIR) with real compiler runs; the
in-process memo of load_library is cleared around every test so the library is looked up anew.
"""
import os
import subprocess
import sys
import warnings

import pytest
import torch

from rsengine.backends import resolve_backend
from rsengine.kernels import cpu_build

CPU = torch.device("cpu")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RSENGINE_CACHE_DIR", str(cache))
    cpu_build.load_library.cache_clear()
    yield cache
    cpu_build.load_library.cache_clear()


def _libraries(cache):
    return sorted(path.name for path in cache.iterdir()) if cache.exists() else []


def test_load_library_builds_once_then_loads_the_cached_copy(fresh_cache, monkeypatch):
    cpu_build.load_library()
    built = _libraries(fresh_cache)
    assert len(built) == 1 and built[0].startswith("cpu_noise-") and built[0].endswith(".so")
    cpu_build.load_library.cache_clear()

    def no_compiling(*args):
        raise AssertionError("compiled again although the library is cached")

    monkeypatch.setattr(cpu_build, "_compile", no_compiling)
    assert hasattr(cpu_build.load_library(), "rsengine_noise_normalize")
    assert _libraries(fresh_cache) == built


def test_a_changed_source_gets_a_library_of_its_own(fresh_cache, monkeypatch, tmp_path):
    cpu_build.load_library()
    changed = tmp_path / "cpu_noise.c"
    changed.write_text(cpu_build.SOURCE.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(cpu_build, "SOURCE", changed)
    cpu_build.load_library.cache_clear()
    cpu_build.load_library()
    assert len(_libraries(fresh_cache)) == 2


def test_processes_building_at_once_all_load_one_whole_library(fresh_cache):
    code = "from rsengine.kernels.cpu_build import load_library; load_library()"
    processes = [subprocess.Popen([sys.executable, "-c", code], env={**os.environ}, stderr=subprocess.PIPE)
                 for _ in range(4)]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, errors
    assert len(_libraries(fresh_cache)) == 1  # no temporary files or directories left behind


@pytest.mark.parametrize("cc, reason", [("/nonexistent/cc", "was not found"), ("false", "failed")],
                         ids=["missing", "failing"])
def test_a_machine_without_a_working_compiler(fresh_cache, monkeypatch, cc, reason):
    monkeypatch.setenv("CC", cc)
    with pytest.raises(cpu_build.CpuKernelUnavailable, match=reason):
        cpu_build.load_library()
    # Asked for by name: an error, one line. "auto": the PyTorch reference, and a warning saying why.
    with pytest.raises(ValueError, match=f"backend='cpu' cannot run here: .*{reason}") as error:
        resolve_backend("cpu", CPU)
    assert "\n" not in str(error.value)
    with pytest.warns(RuntimeWarning, match=f"compiled CPU noise kernel is unavailable .*{reason}"):
        assert resolve_backend("auto", CPU).name == "torch"


def test_auto_picks_the_cpu_kernel_on_the_cpu(fresh_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend("auto", CPU).name == "cpu"
    assert resolve_backend("torch", CPU).name == "torch"


def test_the_cpu_backend_refuses_other_devices():
    with pytest.raises(ValueError, match="backend='cpu' cannot run here: the CPU kernel runs on CPU tensors"):
        resolve_backend("cpu", torch.device("cuda"))


def test_defines_are_exact_float32_literals():
    import numpy as np

    for name, literal in cpu_build.defines().items():
        if name.startswith("BM_"):
            value = float.fromhex(literal.removesuffix("f"))
            assert float(np.float32(value)) == value, name
