"""Runs that survive faults: out of memory, failing classifiers, kills and restarts."""
import json
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from rsengine import Smooth, commands
from rsengine.cli import main
from rsengine.checkpoints import bundled_checkpoint
from rsengine.results import read_results
from rsengine.resume import run_record_path
from rsengine.sampler import MAX_CPU_BATCH_SIZE, BatchSizeReduced
from run_helpers import messages, rows_without_time, wait_for_rows

XS = torch.tensor([[0.05, 0.0, 0.0], [0.02, 0.01, 0.3], [-0.2, 0.1, 0.0]])


class OutOfMemoryAbove(torch.nn.Module):
    """A linear classifier that runs out of memory on batches larger than ``limit``."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.linear = torch.nn.Linear(3, 2)
        self.batch_sizes = []

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batch_sizes.append(x.shape[0])
        return self.linear(x)


def test_out_of_memory_halves_the_batch_until_it_fits_and_keeps_the_counts():
    torch.manual_seed(0)
    model = OutOfMemoryAbove(limit=100)
    reference = Smooth(model, 2, 0.5, seed=3).sample_counts(XS, 500, batch_size=50, streams=[0, 1, 2])
    smooth = Smooth(model, 2, 0.5, seed=3)
    with pytest.warns(BatchSizeReduced) as caught:
        counts = smooth.sample_counts(XS, 500, batch_size=800, streams=[0, 1, 2])
    np.testing.assert_array_equal(counts, reference)  # noise depends on the row, not the batch
    assert [str(w.message) for w in caught] == ["out of memory at 800 rows per batch; continued with 100"]
    model.batch_sizes.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reduced size is remembered: no new failures
        smooth.sample_counts(XS, 500, batch_size=800, streams=[0, 1, 2])
    assert max(model.batch_sizes) == 100


def test_out_of_memory_halves_the_rows_that_failed_not_the_requested_size():
    # A 100-row selection phase with batch_size=4000 must retry at 50, not at 2000, 1000, ...
    model = OutOfMemoryAbove(limit=50)
    with pytest.warns(BatchSizeReduced, match="at 100 rows per batch; continued with 50"):
        Smooth(model, 2, 0.5).sample_counts(XS[:1], 100, batch_size=4000)
    assert model.batch_sizes == [50, 50]


def test_out_of_memory_at_batch_size_one_is_raised():
    with pytest.raises(torch.OutOfMemoryError):
        Smooth(OutOfMemoryAbove(limit=0), 2, 0.5).sample_counts(XS, 4, batch_size=1)


def test_automatic_batch_size_on_the_cpu():
    # 3-value inputs: the 1,000-row cap. MNIST's 784 values: 2**18 / 784 = 334 rows.
    model = OutOfMemoryAbove(limit=10**9)
    Smooth(model, 2, 0.5).sample_counts(XS[:1], 2500)
    assert model.batch_sizes == [MAX_CPU_BATCH_SIZE, MAX_CPU_BATCH_SIZE, 500]
    sizes = []

    def images(batch):
        sizes.append(batch.shape[0])
        return batch.reshape(batch.shape[0], -1)[:, :2]

    Smooth(images, 2, 0.5).sample_counts(torch.zeros(1, 1, 28, 28), 700)
    assert sizes == [334, 334, 32]


def test_a_classifier_error_propagates_from_the_api():
    class Fails(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

    with pytest.raises(RuntimeError, match="CUDNN_STATUS_INTERNAL_ERROR"):
        Smooth(Fails(), 2, 0.5).certify(torch.zeros(3), 10, 10, 0.01, 5)


# -- the command line: failures keep every finished row, restarts resume ----------------------

def _args(out, *extra):
    return ["certify", "mnist", bundled_checkpoint(), "0.5", str(out), "--skip", "100", "--N0", "20",
            "--N", "100", *map(str, extra)]


def _sabotage(monkeypatch, failure, after_calls):
    """Make the loaded classifier fail with ``failure`` once it has run ``after_calls`` times."""
    real_load = commands.load_classifier

    class Sabotaged(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            if self.calls > after_calls:
                return failure(self.inner(x))
            return self.inner(x)

    def load(*args, **kwargs):
        loaded = real_load(*args, **kwargs)
        return loaded._replace(model=Sabotaged(loaded.model))

    monkeypatch.setattr(commands, "load_classifier", load)


def _raise(_):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


def _nan(logits):
    return logits * float("nan")


@pytest.mark.parametrize("failure, message", [(_raise, "illegal memory access"), (_nan, "NaN or infinite logits")],
                         ids=["classifier-raises", "nan-logits"])
def test_a_failing_run_keeps_its_rows_and_resumes(tmp_path, monkeypatch, capsys, failure, message):
    out = tmp_path / "out.tsv"
    # --batch 10 makes chunks of one input (16 * 10 // 120): 1 compatibility probe, then 2 + 10
    # batches per input (selection, estimation): fail in the 4th input.
    _sabotage(monkeypatch, failure, after_calls=1 + 12 * 3 + 1)
    assert main(_args(out, "--batch", 10)) == 2
    err = capsys.readouterr().err
    assert message in err and len(messages(err)) == 1 and "Traceback" not in err
    assert read_results(out).idx.tolist() == [0, 100, 200]
    assert json.loads(open(run_record_path(out)).read())["complete"] is False
    monkeypatch.undo()
    assert main(_args(out, "--batch", 10)) == 0
    assert "resuming" in capsys.readouterr().err
    assert read_results(out).idx.tolist() == list(range(0, 1000, 100))
    assert json.loads(open(run_record_path(out)).read())["complete"] is True


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_run_restarted_matches_an_uninterrupted_run(tmp_path, sig):
    full, killed = tmp_path / "full.tsv", tmp_path / "killed.tsv"
    command = [sys.executable, "-m", "rsengine", *_args(killed, "--N", 2000)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(killed, 3, process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    if sig == signal.SIGINT:
        assert "interrupted" in err and "Traceback" not in err
    written = len(read_results(killed))
    assert 3 <= written < 10  # really stopped mid-run
    assert main(_args(killed, "--N", 2000)) == 0
    assert main(_args(full, "--N", 2000)) == 0
    assert rows_without_time(killed) == rows_without_time(full)


def test_other_arguments_on_the_same_file_are_refused(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    assert main(_args(out, "--max", 150)) == 0
    before = out.read_text()
    assert main(_args(out, "--max", 150, "--seed", 1)) == 2
    err = capsys.readouterr().err
    assert "other arguments" in err and "seed: 0 -> 1" in err and "--overwrite" in err
    assert out.read_text() == before
    assert main(_args(out, "--max", 150, "--seed", 1, "--overwrite")) == 0
    assert read_results(out).idx.tolist() == [0, 100]


def _record(out):
    return json.loads(open(run_record_path(out)).read())


@pytest.mark.parametrize("change", [("--batch", "7"), ("--backend", "triton")], ids=["batch", "backend"])
def test_a_resume_in_another_environment_is_refused_unless_asked(tmp_path, capsys, change):
    # The audit: a run resumed with `--backend triton --batch 7` was accepted silently, though
    # either can flip votes that sit on a near-tie.
    out = tmp_path / "out.tsv"
    assert main(_args(out, "--max", 150)) == 0
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))  # as if stopped after one row
    before = out.read_text()
    capsys.readouterr()  # the first run's progress lines
    assert main(_args(out, "--max", 150, *change)) == 2
    err = capsys.readouterr().err
    assert f"{change[0][2:]}: " in err and "--resume-with-changes" in err and len(messages(err)) == 1
    assert out.read_text() == before
    assert main(_args(out, "--max", 150, *change, "--resume-with-changes")) == 0
    assert read_results(out).idx.tolist() == [0, 100]
    environments = _record(out)["environments"]
    assert len(environments) == 2 and environments[0]["backend"] == "cpu" and environments[0]["batch"] is None
    assert environments[1][change[0][2:]] == (7 if change[0] == "--batch" else "triton")


def test_the_run_record_holds_what_can_change_a_row(tmp_path):
    out = tmp_path / "out.tsv"
    assert main(_args(out, "--max", 150, "--deterministic", "--batch", "60")) == 0
    record = _record(out)
    assert record["arguments"]["deterministic"] is True and record["arguments"]["batch"] == 60
    assert set(record["environments"][0]) >= {"backend", "device", "device_name", "cpu_capability", "threads",
                                              "batch", "torch"}


def test_a_deterministic_run_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    full, resumed = tmp_path / "full.tsv", tmp_path / "resumed.tsv"
    args = ("--max", 350, "--deterministic", "--batch", 60)
    assert main(_args(full, *args)) == 0
    assert main(_args(resumed, *args)) == 0
    resumed.write_text("".join(resumed.read_text().splitlines(keepends=True)[:3]))
    assert main(_args(resumed, *args)) == 0
    assert rows_without_time(resumed) == rows_without_time(full)


def test_a_random_seed_is_drawn_recorded_and_reused_on_resume(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    assert main(_args(out, "--max", 250, "--seed", "random")) == 0
    arguments = _record(out)["arguments"]
    assert arguments["seed_source"] == "random" and 0 <= arguments["seed"] < 2**63
    assert f"seed {arguments['seed']}, drawn from the operating system" in capsys.readouterr().err
    full = out.read_text()
    out.write_text("".join(full.splitlines(keepends=True)[:2]))
    assert main(_args(out, "--max", 250, "--seed", "random")) == 0  # resumes with the recorded seed
    assert rows_without_time(out) == [line.rsplit("\t", 1)[0] for line in full.splitlines()]
    given = tmp_path / "given.tsv"
    assert main(_args(given, "--max", 250, "--seed", arguments["seed"])) == 0
    assert rows_without_time(given) == rows_without_time(out)


def test_a_file_not_written_by_a_run_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "notes.tsv"
    out.write_text("my own notes\n")
    assert main(_args(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "my own notes\n"


def test_a_run_record_that_is_not_an_object_is_refused(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    assert main(_args(out, "--max", 150)) == 0
    open(run_record_path(out), "w").write("[]")
    assert main(_args(out, "--max", 150)) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_partial_last_line_is_dropped_on_resume(tmp_path):
    out = tmp_path / "out.tsv"
    assert main(_args(out, "--max", 250)) == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]) + lines[-1][:7])  # killed in the middle of the last write
    assert main(_args(out, "--max", 250)) == 0
    assert read_results(out).idx.tolist() == [0, 100, 200]
    assert out.read_text().splitlines()[-1].split("\t")[:5] == lines[-1].split("\t")[:5]
