"""Start-up stays lean: ``import rsengine`` and ``rsengine certify --max 0`` import none of the
modules that only some runs need (scipy's statistics, mpmath, PIL, matplotlib, triton), and the
console script ends cleanly. Timings are bench/startup.py's; this guards what they rest on."""
import os
import subprocess
import sys

import pytest

# scipy.special and scipy.stats: 0.4 s each on 2 cores; mpmath: sound mode only; PIL: image folders
# only; matplotlib: plots only; triton: GPU kernels and the interpreter only.
DEFERRED = ("scipy.stats", "scipy.special", "mpmath", "PIL", "matplotlib", "triton")
_IMPORTED = f"import sys; print(' '.join(m for m in {DEFERRED!r} if m in sys.modules))"


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=300)


def test_import_rsengine_defers_every_optional_module(tmp_path):
    assert _python(f"import rsengine; {_IMPORTED}", tmp_path).stdout.split() == []


@pytest.mark.parametrize("command", [["certify", "--max", "0"], ["predict", "--max", "0"]])
def test_an_empty_run_of_the_embedded_default_defers_them_too(tmp_path, command):
    code = (f"import sys\nsys.argv = ['rsengine', *{command!r}]\nfrom rsengine.cli import main\nstatus = main()\n"
            f"{_IMPORTED}\nsys.exit(status)")
    result = _python(code, tmp_path)
    assert result.stdout.splitlines()[0].startswith("0 inputs in ")
    assert result.stdout.splitlines()[-1].split() == []


def test_the_console_entry_exits_with_mains_status_and_its_files_complete(tmp_path):
    # console_main freezes the collector before exit: the status and every file must still be whole.
    ok = subprocess.run([sys.executable, "-m", "rsengine", "certify", "--max", "0"], cwd=tmp_path,
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stderr == ""
    assert sorted(os.listdir(tmp_path)) == ["certify_mnist_sigma0.25.tsv", "certify_mnist_sigma0.25.tsv.run.json"]
    assert (tmp_path / "certify_mnist_sigma0.25.tsv").read_text() == "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
    bad = subprocess.run([sys.executable, "-m", "rsengine", "certify", "--N", "0"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("rsengine certify: error:") and "Traceback" not in bad.stderr
