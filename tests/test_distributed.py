"""Scale-out: torchrun jobs (real launches, gloo on the CPU) write the file one process writes.

Every run here has one thread per process (OMP_NUM_THREADS=1, what torchrun sets for its
workers), so one process and any number of ranks compute in the same environment and a restart
of another size resumes without --resume-with-changes.
"""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from rsengine.checkpoints import bundled_checkpoint
from rsengine.cli import main
from rsengine.distributed import gather_by_index, shard
from rsengine.lock import ResultsLock, lock_path
from rsengine.results import read_results
from rsengine.resume import run_record_path
from run_helpers import rows_without_time, wait_for_rows

ENV = dict(os.environ, OMP_NUM_THREADS="1")
EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "distributed_certify.py")


def _args(kind, out, *extra):
    # --batch 50 and N0 + N = 220: chunks of 3 inputs (16 * 50 // 220), 7 chunks for 20 inputs,
    # so two ranks take unequal shares and the last round is half empty.
    fields = ["certify", "mnist", bundled_checkpoint(), "0.25", str(out), "--N0", "20", "--N", "200"]
    if kind == "predict":
        fields = ["predict", "mnist", bundled_checkpoint(), "0.25", str(out), "--N", "220"]
    return [*fields, "--skip", "50", "--max", "1000", "--batch", "50", *map(str, extra)]


def _one_process(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rsengine", *args], env=ENV, capture_output=True, text=True,
                          timeout=300, **kwargs)


def _torchrun_command(args, nproc, *launcher):
    # --standalone: a rendezvous on a free local port, so that tests can run side by side.
    launcher = launcher or ("--standalone",)
    return [sys.executable, "-m", "torch.distributed.run", *launcher, f"--nproc-per-node={nproc}",
            "-m", "rsengine", "--", *args]


def _torchrun(args, nproc=2, *launcher):
    return subprocess.run(_torchrun_command(args, nproc, *launcher), env=ENV, capture_output=True, text=True,
                          timeout=300)


def _record(path):
    return json.loads(open(run_record_path(path)).read())


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("kind", ["certify", "predict"])
def test_two_ranks_write_the_rows_one_process_writes(tmp_path, kind):
    one, two = tmp_path / "one.tsv", tmp_path / "two.tsv"
    assert _one_process(_args(kind, one)).returncode == 0
    job = _torchrun(_args(kind, two))
    assert job.returncode == 0, job.stderr
    assert rows_without_time(two) == rows_without_time(one)
    assert len(read_results(two)) == 20
    assert _record(two)["arguments"] == _record(one)["arguments"] and _record(two)["complete"] is True
    assert _record(two)["environments"] == _record(one)["environments"]  # one environment, two ranks
    assert "2 ranks: rendezvous" in job.stderr and "merging rows" in job.stderr
    assert job.stdout.count("inputs in") == 1  # rank 0 alone reports
    assert not os.path.exists(lock_path(two))


def test_two_nodes_over_localhost_write_the_rows_one_process_writes(tmp_path):
    one, two = tmp_path / "one.tsv", tmp_path / "two.tsv"
    assert _one_process(_args("certify", one)).returncode == 0
    port = _free_port()
    nodes = [subprocess.Popen(_torchrun_command(_args("certify", two), 1, "--nnodes=2", f"--node-rank={node}",
                                                "--master-addr=127.0.0.1", f"--master-port={port}"),
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for node in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert rows_without_time(two) == rows_without_time(one)
    assert "inputs in" in outputs[0][0] and "inputs in" not in outputs[1][0]  # node 0 holds rank 0


def _workers(launcher_pid):
    """{rank: pid} of a torchrun launcher's worker processes."""
    children = []
    for task in os.listdir(f"/proc/{launcher_pid}/task"):
        with open(f"/proc/{launcher_pid}/task/{task}/children") as file:
            children += [int(pid) for pid in file.read().split()]
    workers = {}
    for pid in children:
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                environment = dict(item.split(b"=", 1) for item in file.read().split(b"\0") if b"=" in item)
        except FileNotFoundError:
            continue
        if b"RANK" in environment:
            workers[int(environment[b"RANK"])] = pid
    return workers


@pytest.mark.parametrize("victim", [0, 1], ids=["writer-rank-0", "rank-1"])
def test_a_killed_rank_restarted_with_another_rank_count_matches_an_uninterrupted_run(tmp_path, victim):
    full, killed = tmp_path / "full.tsv", tmp_path / "killed.tsv"
    args = lambda out: _args("certify", out, "--N", 1000)  # noqa: E731 - slow enough to kill mid-run
    job = subprocess.Popen(_torchrun_command(args(killed), 2), env=ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_for_rows(killed, 4, job)
    os.kill(_workers(job.pid)[victim], signal.SIGKILL)
    job.communicate(timeout=120)
    assert job.returncode != 0
    written = len(read_results(killed))
    assert 4 <= written < 20  # really stopped mid-run
    assert _record(killed)["complete"] is False
    restart = _torchrun(args(killed), 3)
    assert restart.returncode == 0, restart.stderr
    assert f"resuming {killed}: {written} of 20 inputs already done" in restart.stderr
    assert _one_process(args(full)).returncode == 0
    assert rows_without_time(killed) == rows_without_time(full)


def test_a_second_process_on_the_same_file_is_refused_and_the_first_finishes(tmp_path):
    shared, alone = tmp_path / "shared.tsv", tmp_path / "alone.tsv"
    args = lambda out: _args("certify", out, "--N", 1000)  # noqa: E731
    first = subprocess.Popen([sys.executable, "-m", "rsengine", *args(shared)], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for_rows(shared, 1, first)
    first.send_signal(signal.SIGSTOP)  # alive and holding the lock however long the others take
    record, rows = open(run_record_path(shared)).read(), open(shared).read()
    try:
        seconds = [_one_process(args(shared)), _one_process(args(shared) + ["--overwrite"]), _torchrun(args(shared))]
        assert open(run_record_path(shared)).read() == record and open(shared).read() == rows  # untouched
    finally:
        first.send_signal(signal.SIGCONT)
    # Exit status 2 from rsengine; torchrun reports a failed job with its own status, 1.
    assert [second.returncode for second in seconds] == [2, 2, 1]
    for second in seconds:
        message = [line for line in second.stderr.splitlines() if "error:" in line]
        assert message == [f"rsengine certify: error: shared.tsv is being written by another rsengine process "
                           f"(pid {first.pid} on {socket.gethostname()}, started " + message[0].split("started ")[1]]
        assert "Traceback" not in second.stderr.split("rsengine certify: error")[0]
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert _one_process(args(alone)).returncode == 0
    assert rows_without_time(shared) == rows_without_time(alone)
    assert not os.path.exists(lock_path(shared))


@pytest.mark.parametrize("argv", [["rsengine/__main__.py", "--", "certify", "mnist"],
                                  ["rsengine/__main__.py", "certify", "mnist"]], ids=["torchrun", "python -m"])
def test_the_lock_names_its_holder_as_the_user_typed_it(tmp_path, monkeypatch, argv):
    monkeypatch.setattr(sys, "argv", argv)
    with ResultsLock(str(tmp_path / "out.tsv")), open(lock_path(str(tmp_path / "out.tsv"))) as lock:
        holder = json.load(lock)
    assert holder["command"] == "rsengine certify mnist" and holder["pid"] == os.getpid()


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from rsengine.lock import ResultsLock; "
                               "ResultsLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    assert main(_args("certify", out, "--max", 100)) == 2
    assert f"pid {holder.pid}" in capsys.readouterr().err
    holder.kill()
    holder.wait()
    assert str(holder.pid) in open(lock_path(out)).read()  # the dead holder's lock file is still there
    assert main(_args("certify", out, "--max", 100)) == 0
    assert len(read_results(out)) == 2 and not os.path.exists(lock_path(out))


def test_a_lock_is_released_when_its_run_fails(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    assert main(_args("certify", out, "--N0", 0)) == 2  # refused after the lock was taken
    assert "--N0" in capsys.readouterr().err and not os.path.exists(lock_path(out))
    with ResultsLock(out):
        assert os.path.exists(lock_path(out))
    assert not os.path.exists(lock_path(out))


def test_an_error_in_a_job_is_printed_once(tmp_path):
    job = _torchrun(_args("certify", tmp_path / "out.tsv", "--N0", 0))
    assert job.returncode != 0
    errors = [line for line in job.stderr.splitlines() if line.startswith("rsengine certify: error")]
    assert errors == ["rsengine certify: error: Expected `--N0` to be an integer >= 1, got 0"]
    assert not os.path.exists(tmp_path / "out.tsv")


SLOW_RANK_0 = """
import os, sys, time
if os.environ["RANK"] == "0":
    time.sleep(4)  # rank 0 reaches the error late, as on a loaded machine
from rsengine.cli import main
sys.exit(main())
"""


def test_an_error_is_printed_even_when_rank_0_reaches_it_last(tmp_path):
    # torchrun stops every worker once one exits with an error; rank 1, first to the error, used to
    # exit at once and have rank 0 stopped before it printed anything (a CI run on a loaded machine).
    script = tmp_path / "slow_rank_0.py"
    script.write_text(SLOW_RANK_0)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script), "--",
               *_args("certify", tmp_path / "out.tsv", "--N0", 0)]
    job = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    errors = [line for line in job.stderr.splitlines() if line.startswith("rsengine certify: error")]
    assert job.returncode != 0 and errors == ["rsengine certify: error: Expected `--N0` to be an integer >= 1, got 0"]


FAILING_STEP = """
import sys
from rsengine.distributed import JobFailed, join
group = join()
out = open(f"{sys.argv[1]}/rank{group.rank}.txt", "w")
def step():
    if group.rank == 1:
        raise ValueError("no such file: /data/x.png")
    return group.rank
try:
    group.every_rank(step)
except JobFailed as error:
    print(error, file=out)
value = group.first_rank(lambda: "from rank 0")
print(value, group.every_rank(lambda: group.rank * 10, report=lambda v: v + 1)[1], file=out)
group.close()
"""


def test_a_step_failing_on_one_rank_fails_on_every_rank_naming_it(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(FAILING_STEP)
    job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(script), str(tmp_path)], env=ENV, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text().splitlines() == [
            "rank 1: no such file: /data/x.png", "from rank 0 [1, 11]"]


def test_the_library_example_prints_the_same_results_for_any_number_of_ranks():
    one = subprocess.run([sys.executable, EXAMPLE], env=ENV, capture_output=True, text=True, timeout=300)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          EXAMPLE], env=ENV, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert len(one.stdout.splitlines()) == 10 and two.stdout == one.stdout


GROUP_AFTER_DETERMINISTIC_RUN = """
import gc, sys, warnings, weakref
if sys.argv[2] == "init first":
    warnings.simplefilter("error")  # stop at the warning
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{sys.argv[1]}/store", rank=0, world_size=1)
from rsengine import Smooth
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import load_dataset
import torch.distributed as dist
if sys.argv[2] == "rsengine first":
    dist.init_process_group("gloo", init_method=f"file://{sys.argv[1]}/store", rank=0, world_size=1)
checkpoint = load_checkpoint(bundled_checkpoint())
smooth = Smooth(checkpoint.model.eval(), checkpoint.num_classes, sigma=0.25, mean=checkpoint.mean,
                std=checkpoint.std, seed=0, deterministic=True)  # imports torch._inductor, the first time
try:
    smooth.certify_batch([load_dataset("mnist", "test")[0][0]], n0=10, n=100, alpha=0.001, streams=[0])
except RuntimeWarning as warning:
    print(warning)
group = weakref.ref(dist.group.WORLD)
dist.destroy_process_group()
gc.collect()
print("group ended" if group() is None else "group alive")
"""


def _run_group_script(tmp_path, order):
    script = tmp_path / "group.py"
    script.write_text(GROUP_AFTER_DETERMINISTIC_RUN)
    job = subprocess.run([sys.executable, str(script), str(tmp_path), order], env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert job.returncode == 0, job.stderr
    return job.stdout.splitlines()


def test_destroying_the_group_after_a_deterministic_run_ends_it(tmp_path):
    # A group kept alive past destroy_process_group (torch.distributed.nn.functional binding it
    # as a default argument when deterministic mode first imports it) lets its gloo threads die in
    # interpreter shutdown, which aborted 7 of 25 two-rank runs of the library example.
    assert _run_group_script(tmp_path, "rsengine first") == ["group ended"]


def test_a_group_made_before_rsengine_was_imported_is_warned_about(tmp_path):
    warning, ended = _run_group_script(tmp_path, "init first")
    assert warning == ("rsengine was imported after init_process_group: deterministic mode now imports "
                       "torch.distributed.nn.functional, which keeps the process group alive past "
                       "destroy_process_group, so the process may abort at exit; import rsengine first")
    assert ended == "group ended"  # the warning stopped the run before the import


JOIN_AND_CLOSE = """
import torch.distributed as dist
from rsengine.distributed import join
group = join()  # makes the group
group.close()
made = dist.is_initialized()
dist.init_process_group("gloo")  # the caller's own group
group = join()
group.close()
print(made, dist.is_initialized(), group.world_size)
dist.destroy_process_group()
"""


def test_close_leaves_a_group_that_join_did_not_make():
    job = subprocess.run([sys.executable, "-c", JOIN_AND_CLOSE], env=dict(ENV, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                         MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())), capture_output=True, text=True,
                         timeout=120)
    assert job.returncode == 0, job.stderr
    assert job.stdout.split() == ["False", "True", "1"]


def test_shard_deals_inputs_round_robin_and_gather_by_index_refuses_overlaps():
    assert [shard(range(7), rank, 3) for rank in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    with pytest.raises(ValueError, match=r"Expected `rank` in \[0, world_size\) = \[0, 2\), got 2"):
        shard(range(7), 2, 2)
    with pytest.raises(ValueError, match="as many values as indices"):
        gather_by_index([0, 1], [5])
    with pytest.raises(ValueError, match="Input 3 was computed by two ranks"):
        gather_by_index([3, 3], [1, 2])
