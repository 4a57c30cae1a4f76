"""`rsengine certify --top-k K`, run as a user runs it (Jia et al. 2020's top-k certificates)."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from rsengine import Smooth
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.cli import main
from rsengine.data import load_dataset
from rsengine.results import format_radius, read_results
from run_helpers import rows_without_time, wait_for_rows
from test_cli import assert_one_line_error, rsengine

# sigma 1.0, four times the training noise: votes split, so some true classes are certified
# among the top 3 and some are not (idx 194 and 970 at seed 0), and radii vary.
SIGMA, N0, N, BATCH = 1.0, 50, 300, 150
SMALL = ("--skip", 97, "--N0", N0, "--N", N, "--batch", BATCH)


def _certify(out, *extra):
    return ["certify", "mnist", bundled_checkpoint(), str(SIGMA), str(out), *map(str, extra)]


def _arguments(path) -> dict:
    return json.loads(open(f"{path}.run.json").read())["arguments"]


def _api():
    checkpoint = load_checkpoint(bundled_checkpoint())
    return Smooth(checkpoint.model.eval(), 10, SIGMA, mean=checkpoint.mean, std=checkpoint.std, seed=0)


def test_top_k_rows_are_the_apis_certificates_of_the_true_class(tmp_path):
    out = tmp_path / "top3.tsv"
    result = rsengine(*_certify(out, "--top-k", 3, *SMALL))
    assert result.returncode == 0, result.stderr
    assert "certified top-3 accuracy" in result.stdout
    assert _arguments(out)["top_k"] == 3
    table = read_results(out)
    assert table.idx.tolist() == list(range(0, 1000, 97))
    # The rows are the API's certificates: same seed, stream i for input i, same n0, n, alpha.
    data = load_dataset("mnist", "test")
    xs = torch.stack([data[int(i)][0] for i in table.idx])
    labels, radii = _api().certify_topk_batch(xs, 3, N0, N, 0.001, BATCH, streams=table.idx)
    own = (labels == table.label[:, None]) & (radii > 0)  # [M, 3]: the true class, certified
    certified = own.any(axis=1)
    assert 0 < certified.sum() < len(table)  # both kinds of row, so each rule below is exercised
    assert table.correct.tolist() == certified.astype(int).tolist()
    assert (table.labels[certified] == labels[certified]).all()
    assert all(len(set(row)) == 3 for row in table.labels[certified].tolist())
    assert (table.labels[~certified] == -1).all() and (table.radius[~certified] == 0).all()
    expected = [float(format_radius(r)) for r in radii[own]]  # the true class's own radius, rounded down
    assert table.radius[certified].tolist() == expected
    # Not the labels' smallest radius (Smooth.certify_topk's): the runners-up are rarely certified.
    assert (radii[certified].min(axis=1) < table.radius[certified]).any()
    # Smooth.certify_topk on input 0 (a fresh Smooth's first stream, 0): the same labels.
    first, set_radius = _api().certify_topk(xs[0], 3, N0, N, 0.001, BATCH)
    assert first == table.labels[0].tolist() and set_radius <= table.radius[0]

    analyzed = rsengine("analyze", out, "--radii", 0, 0.5, 1.0)
    assert analyzed.returncode == 0, analyzed.stderr
    assert "certified top-3 accuracy" in analyzed.stderr
    row = next(line for line in analyzed.stdout.splitlines() if line.startswith(f"| {out} |"))
    shown = row.split("|")[2:5]
    accuracy = [np.mean(table.correct.astype(bool) & (table.radius >= r)) for r in (0, 0.5, 1.0)]
    assert [float(cell.strip(" *")) for cell in shown] == [round(a, 2) for a in accuracy]
    assert accuracy[0] > accuracy[2] > 0


def test_top_1_is_the_two_sided_certificate_of_the_true_class(tmp_path):
    one, two = tmp_path / "top1.tsv", tmp_path / "two.tsv"
    assert main(_certify(one, "--top-k", 1, *SMALL)) == 0
    assert main(_certify(two, "--two-sided", *SMALL)) == 0
    assert _arguments(one)["top_k"] == 1 and "top_k" not in _arguments(two)  # others' records as before
    top1, two_sided = read_results(one), read_results(two)
    assert top1.labels is None  # one label: an ordinary predict column
    # Where the two-sided certificate is correct, the top-1 row is that row; elsewhere it abstains.
    right = two_sided.correct == 1
    assert 0 < right.sum() < len(two_sided)
    assert top1.correct.tolist() == two_sided.correct.tolist()
    assert (top1.predict[right] == two_sided.predict[right]).all()
    assert (top1.radius[right] == two_sided.radius[right]).all()
    assert (top1.predict[~right] == -1).all()


def test_an_interrupted_top_k_run_resumes_only_with_the_same_k(tmp_path, capsys):
    killed, full = tmp_path / "killed.tsv", tmp_path / "full.tsv"
    # --batch 100 at N0 + N = 2,100: chunks of one input, a row every few tenths of a second.
    options = ("--top-k", 3, "--skip", 50, "--N", 2000, "--batch", 100)
    process = subprocess.Popen([sys.executable, "-m", "rsengine", *_certify(killed, *options)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_rows(killed, 2, process)
    except AssertionError:
        process.kill()
        raise AssertionError(process.communicate()[1]) from None
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    written = len(read_results(killed))
    assert 2 <= written < 20  # really stopped mid-run
    before = killed.read_text()
    for other, change in ((("--top-k", 2), "top_k: 3 -> 2"), ((), "top_k: 3 -> None")):
        assert main(_certify(killed, *other, "--skip", 50, "--N", 2000, "--batch", 100)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "other arguments" in lines[0] and change in lines[0], lines
    assert killed.read_text() == before
    assert main(_certify(killed, *options)) == 0
    assert "resuming" in capsys.readouterr().err
    assert main(_certify(full, *options)) == 0
    assert rows_without_time(killed) == rows_without_time(full)
    assert len(read_results(full)) == 20


@pytest.mark.parametrize("extra, fragment", [
    (("--top-k", 0), "Expected `--top-k` to be an integer >= 1, got 0"),
    (("--top-k", 10), "Expected `--top-k` < the number of classes of 'mnist' (10), got 10"),
    (("--top-k", 3, "--noise", "laplace"), "--top-k needs --noise gaussian"),
    (("--top-k", 3, "--two-sided"), "--top-k cannot be --two-sided"),
    (("--top-k", 3, "--adaptive", "--radius", 0.5), "--top-k cannot be --adaptive"),
], ids=["zero", "all-classes", "laplace", "two-sided", "adaptive"])
def test_top_k_options_that_cannot_run_are_one_line_errors(tmp_path, capsys, extra, fragment):
    out = tmp_path / "out.tsv"
    assert main(_certify(out, *extra, "--max", 1)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert not out.exists() and not (tmp_path / "out.tsv.run.json").exists()


def test_top_k_errors_in_a_real_process_and_predict_has_no_top_k(tmp_path):
    assert_one_line_error(rsengine(*_certify(tmp_path / "o.tsv", "--top-k", 10)), "`--top-k` < the number of classes")
    result = rsengine("predict", "--top-k", 3)
    assert result.returncode == 2 and "unrecognized arguments: --top-k" in result.stderr
    result = rsengine("certify", "--top-k", "three")
    assert result.returncode == 2 and "invalid int value: 'three'" in result.stderr
