"""certify_dataset: the CLI's data-set run as a call, its results table, ACR and resume."""
import io
import json
import os

import numpy as np
import pytest
import torch
from scipy.stats import norm

from rsengine import InputRangeWarning, Results, Smooth, certify_dataset
from rsengine import commands
from rsengine.checkpoints import bundled_checkpoint
from rsengine.cli import _fill_defaults, build_parser, main
from rsengine.inputs import BadInputError
from rsengine.progress import Progress
from rsengine.analyze import format_pa_distribution
from rsengine.noises import Gaussian
from rsengine.questions import AdaptiveRadius, Certify, Predict, TopK, TwoSided
from rsengine.results import ResultsTable, read_results
from rsengine.resume import read_run_record

ARGS = ["mnist", bundled_checkpoint(), "0.5"]
COMMON = ["--skip", "100", "--N", "200", "--batch", "150"]
INDICES = range(0, 1000, 100)


@pytest.fixture(scope="module")
def cli_smooth():
    """The Smooth and data set the CLI builds for ARGS (contiguous, seed 0)."""
    opts = build_parser().parse_args(["certify", *ARGS, "unused.tsv"])
    _fill_defaults(opts)
    return commands._smoothed_model(opts)


def _rows(text):
    """A results file's rows without the time column (wall time differs run to run)."""
    header, *lines = text.splitlines()
    keep = [j for j, name in enumerate(header.split("\t")) if name != "time"]
    return [[cells[j] for j in keep] for cells in (line.split("\t") for line in lines)]


@pytest.mark.parametrize("question, flags", [
    (Certify(20, 200, 0.001), ["--N0", "20"]),
    (TwoSided(20, 200, 0.001), ["--N0", "20", "--two-sided"]),
    (TopK(2, 20, 200, 0.001), ["--N0", "20", "--top-k", "2"]),
    (AdaptiveRadius(20, 200, 0.001, radius=0.25), ["--N0", "20", "--adaptive", "--radius", "0.25"]),
    (Predict(200, 0.001), []),
], ids=["certify", "two-sided", "top-k", "adaptive", "predict"])
def test_the_api_writes_the_rows_and_acr_the_cli_writes(tmp_path, capsys, cli_smooth, question, flags):
    smooth, dataset = cli_smooth
    kind = question.kind
    by_cli = tmp_path / "cli.tsv"
    assert main([kind, *ARGS, str(by_cli), *COMMON, *flags]) == 0
    capsys.readouterr()
    results = certify_dataset(smooth, dataset, question, indices=INDICES, out=tmp_path / "api.tsv",
                              batch_size=150, quiet=True)
    assert _rows(results.text) == _rows(by_cli.read_text())
    assert len(results) == 10 and results.path == str(tmp_path / "api.tsv")
    assert results.question == question and results.noise == smooth.noise
    _check_metrics(results, question)
    if kind == "predict":
        with pytest.raises(ValueError, match="certify table"):
            results.acr
        return
    assert main(["analyze", str(by_cli)]) == 0
    out = capsys.readouterr().out.splitlines()
    printed = [line for line in out if "average certified radius" in line]
    assert printed == [f"{by_cli}: average certified radius (ACR) {results.acr:.3f}"]
    rate, shares = (f"abstention rate {results.abstention_rate:.3f}" if question.abstention_unavailable is None else
                    f"abstention rate not available: {question.abstention_unavailable}"), (
        "pA lower bounds (true class), share of inputs per bin [low, high): "
        f"{format_pa_distribution(results.pa_lower_distribution())}" if question.pa_lower_unavailable is None
        else f"pA lower bounds not available: {question.pa_lower_unavailable}")
    assert [line for line in out if "abstention" in line or "pA" in line] == [f"{by_cli}: {rate}", f"{by_cli}: {shares}"]
    table = read_results(by_cli)
    assert results.acr == pytest.approx(float(np.mean(table.radius * table.correct)), abs=0)
    assert results.certified_accuracy([0.0, 0.25]).tolist() == [
        float(np.mean(table.correct * (table.radius >= r))) for r in (0.0, 0.25)]


def _check_metrics(results, question):
    """The abstention rate and pA's bounds from the file's own columns, or the question's reason."""
    table = results.table
    if question.abstention_unavailable is None:
        assert results.abstention_rate == np.mean(table.predict == -1)
    else:
        with pytest.raises(ValueError, match=f"No abstention rate for a {type(question).__name__} run"):
            results.abstention_rate
    if question.pa_lower_unavailable is None:
        expected = np.where(table.correct == 1, norm.cdf(table.radius / np.float32(0.5)), 0.0)
        np.testing.assert_allclose(results.pa_lower_bounds(), expected, rtol=1e-14)
        assert results.pa_lower_distribution().sum() == pytest.approx(1.0)
    else:
        for method in (results.pa_lower_bounds, results.pa_lower_distribution):
            with pytest.raises(ValueError, match=question.pa_lower_unavailable):
                method()


def test_results_built_by_hand_have_no_question_for_the_new_metrics():
    table = ResultsTable("certify", np.arange(4), np.zeros(4, int), np.array([0, -1, 0, 1]),
                         np.array([0.5, 0.0, 1.0, 0.3]), np.array([1, 0, 1, 0]), np.ones(4))
    results = Results(table, "")
    with pytest.raises(ValueError, match="Expected Results with its run's question and noise for abstention rate"):
        results.abstention_rate
    with pytest.raises(ValueError, match="question and noise for pA lower bounds"):
        results.pa_lower_distribution()
    known = Results(table, "", question=Certify(100, 100_000, 0.001), noise=Gaussian(0.25))
    assert known.abstention_rate == 0.25  # Phi(2) = 0.977, Phi(4) = 0.99997; the wrong row counts below 1/2
    assert known.pa_lower_distribution().tolist() == [0.5, 0.0, 0.25, 0.0, 0.25]


def test_a_second_call_with_the_same_out_computes_nothing_and_returns_the_same_table(tmp_path, cli_smooth):
    smooth, dataset = cli_smooth
    out = tmp_path / "out.tsv"
    first = certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=INDICES, out=out, quiet=True)
    forward = smooth.base_classifier.forward
    smooth.base_classifier.forward = lambda *a: pytest.fail("the classifier ran on a finished run")
    try:
        second = certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=INDICES, out=out, quiet=True)
    finally:
        smooth.base_classifier.forward = forward
    assert second.text == first.text and second.rows() == first.rows() and second.acr == first.acr
    assert read_run_record(out)["complete"] is True


def test_a_failed_api_run_resumes_to_the_uninterrupted_file(tmp_path, cli_smooth):
    smooth, dataset = cli_smooth
    whole = certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=INDICES, out=tmp_path / "a.tsv",
                            batch_size=150, quiet=True)
    forward, calls = smooth.base_classifier.forward, []

    def failing(x):  # the classifier dies in the 4th chunk (chunks of 10 inputs at 16 * 150 // 220)
        calls.append(1)
        if len(calls) > 20:
            raise RuntimeError("device lost")
        return forward(x)

    part = tmp_path / "b.tsv"
    smooth.base_classifier.forward = failing
    try:
        with pytest.raises(RuntimeError, match="device lost"):
            certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=INDICES, out=part, batch_size=15,
                            quiet=True)
    finally:
        smooth.base_classifier.forward = forward
    assert 0 < len(read_results(part)) < 10 and read_run_record(part)["complete"] is False
    resumed = certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=INDICES, out=part, batch_size=15,
                              quiet=True, resume_with_changes=True)  # batch 15 both times; recorded batch differs
    assert _rows(resumed.text) == _rows(whole.text)


def test_another_question_on_the_same_file_is_refused(tmp_path, cli_smooth):
    smooth, dataset = cli_smooth
    out = tmp_path / "out.tsv"
    certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=INDICES, out=out, quiet=True)
    before = out.read_text()
    with pytest.raises(ValueError, match="other arguments"):
        certify_dataset(smooth, dataset, Certify(20, 300, 0.001), indices=INDICES, out=out, quiet=True)
    assert out.read_text() == before


def test_in_memory_runs_leave_no_file_and_give_the_rows_for_pandas(tmp_path, cli_smooth, monkeypatch):
    smooth, dataset = cli_smooth
    monkeypatch.chdir(tmp_path)
    results = certify_dataset(smooth, dataset, Certify(20, 200, 0.001), indices=[0, 100, 200], quiet=True)
    assert os.listdir(tmp_path) == [] and results.path is None
    rows = results.rows()
    assert [row["idx"] for row in rows] == [0, 100, 200]
    assert set(rows[0]) == {"idx", "label", "predict", "radius", "correct", "time"}
    results.to_tsv(tmp_path / "copy.tsv")
    assert read_results(tmp_path / "copy.tsv").radius.tolist() == [row["radius"] for row in rows]


def test_a_random_seed_is_recorded_and_reused_on_resume(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    dataset = [(torch.rand(4), i % 3) for i in range(6)]
    out = tmp_path / "out.tsv"
    smooth = Smooth(model, 3, sigma=0.25, seed=None)
    certify_dataset(smooth, dataset, Certify(20, 100, 0.001), out=out, quiet=True)
    recorded = json.loads(open(f"{out}.run.json").read())["arguments"]
    assert recorded["seed"] == smooth.seed and recorded["seed_source"] == "random"
    other = Smooth(model, 3, sigma=0.25, seed=None)  # another drawn seed: the file's is reused
    resumed = certify_dataset(other, dataset, Certify(20, 100, 0.001), out=out, quiet=True)
    fresh = certify_dataset(Smooth(model, 3, sigma=0.25, seed=smooth.seed), dataset, Certify(20, 100, 0.001),
                            quiet=True)
    assert _rows(resumed.text) == _rows(fresh.text)


@pytest.mark.parametrize("bad, message", [
    (dict(indices=[0, 0]), "distinct integers"),
    (dict(indices=[7]), r"in \[0, 6\)"),
    (dict(question="certify"), "rsengine.questions.Question"),
])
def test_bad_arguments_are_refused_in_one_line(bad, message):
    smooth = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, sigma=0.25)
    arguments = {"question": Certify(20, 100, 0.001), "indices": None, **bad}
    with pytest.raises((TypeError, ValueError), match=message):
        certify_dataset(smooth, [(torch.rand(4), 0)] * 6, arguments.pop("question"), **arguments)


def test_a_data_loader_is_refused_pointing_at_its_data_set():
    smooth = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, sigma=0.25)
    loader = torch.utils.data.DataLoader([(torch.rand(4), 0)] * 6, batch_size=2)
    with pytest.raises(TypeError, match="got a torch DataLoader: pass loader.dataset instead"):
        certify_dataset(smooth, loader, Certify(20, 100, 0.001), quiet=True)


def test_a_normalized_data_set_warns_once_for_the_run():
    # Every chunk is an answer call: the warning comes once, at the first, not once a chunk.
    smooth = Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, sigma=0.25, mean=0.5, std=0.25)
    normalized = [((torch.rand(4) - 0.5) / 0.25, i % 3) for i in range(6)]
    with pytest.warns(InputRangeWarning, match="drop the Normalize") as caught:
        certify_dataset(smooth, normalized, Certify(20, 100, 0.001), batch_size=20, quiet=True)
    assert len(caught) == 1


def test_results_is_the_public_table_type():
    assert Results.__module__ == "rsengine.run"


# -- progress: a bar on a terminal, lines in a log ------------------------------------------------

class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_in_a_log_prints_a_line_each_5_percent_or_minute():
    log, clock = io.StringIO(), _Clock()
    with Progress(200, "certify", file=log, clock=clock) as progress:
        for _ in range(200):
            clock.now += 0.125
            progress.update(1)
        assert len(log.getvalue().splitlines()) == 20  # 5%, 10%, ..., 100%
    lines = log.getvalue().splitlines()
    assert lines[0] == "certify: 10/200 inputs (5%), 0:00:01 elapsed, ETA 0:00:23"
    assert lines[-1] == "certify: 200/200 inputs (100%), 0:00:25 elapsed, ETA 0:00:00"
    slow, clock = io.StringIO(), _Clock()  # 5% is 50 inputs: a minute comes first
    progress = Progress(1000, "predict", file=slow, clock=clock)
    for seconds in (30, 61, 90, 130):
        clock.now = seconds
        progress.update(1)
    assert [line.split(",")[1] for line in slow.getvalue().splitlines()] == [" 0:01:01 elapsed", " 0:02:10 elapsed"]


def test_progress_prints_nothing_when_quiet_or_with_nothing_to_compute():
    for total, quiet in ((0, False), (10, True)):
        log = io.StringIO()
        with Progress(total, "certify", file=log, quiet=quiet) as progress:
            progress.update(total)
        assert log.getvalue() == ""


def test_progress_on_a_terminal_redraws_one_line():
    screen, clock = _Terminal(), _Clock()
    with Progress(40, "certify", file=screen, clock=clock) as progress:
        for _ in range(40):
            clock.now += 1.0
            progress.update(1)
    text = screen.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and text.count("\r") >= 40
    assert "elapsed" not in text  # no log lines
    assert text.rstrip("\n").rsplit("\r", 1)[1].startswith("certify 100%|#")
    assert "| 40/40 [0:00:40<0:00:00, 1.00 inputs/s]" in text


# -- bad inputs ------------------------------------------------------------------------------------


class _Flawed(torch.utils.data.Dataset):
    """Ten 1x2x2 inputs of a 3-class problem; the items in ``bad`` fail as a truncated file does."""

    def __init__(self, bad):
        self.bad = set(bad)
        self.samples = [(f"/data/{i}.png", i % 3) for i in range(10)]

    def __len__(self):
        return 10

    def __getitem__(self, index):
        if index in self.bad:
            raise OSError("image file is truncated")
        return torch.full((1, 2, 2), index / 10), index % 3


def _small_smooth():
    torch.manual_seed(0)
    return Smooth(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), 3, sigma=0.25, seed=0)


def test_a_bad_input_stops_the_run_naming_it_and_the_rows_before_it_stay(tmp_path):
    out = tmp_path / "out.tsv"
    # One chunk of all ten inputs: the six before the bad one still get their rows.
    with pytest.raises(BadInputError, match=r"^input 6 of data set 'flawed' \(/data/6\.png\) cannot be read \(image "
                                            r"file is truncated\): replace or remove the file"):
        certify_dataset(_small_smooth(), _Flawed({6, 8}), Certify(10, 20, 0.01), out=out, quiet=True, name="flawed")
    assert read_results(out).idx.tolist() == [0, 1, 2, 3, 4, 5]
    assert read_run_record(out)["complete"] is False


def test_skipped_inputs_are_recorded_not_retried_on_resume_unless_asked(tmp_path):
    out = tmp_path / "out.tsv"
    question = Certify(10, 20, 0.01)
    results = certify_dataset(_small_smooth(), _Flawed({2, 6}), question, out=out, quiet=True, on_bad_input="skip")
    assert results.table.idx.tolist() == [0, 1, 3, 4, 5, 7, 8, 9]
    assert sorted(results.skipped) == [2, 6] and "(/data/6.png) cannot be read" in results.skipped[6]
    assert read_run_record(out)["complete"] is True
    # Resumed with the files fixed: they stay skipped, nothing is computed...
    again = certify_dataset(_small_smooth(), _Flawed(set()), question, out=out, quiet=True, on_bad_input="skip")
    assert again.table.idx.tolist() == results.table.idx.tolist() and sorted(again.skipped) == [2, 6]
    # ...unless asked: then they get their rows, as an uninterrupted run of good files writes them.
    retried = certify_dataset(_small_smooth(), _Flawed(set()), question, out=out, quiet=True, retry_skipped=True)
    assert sorted(retried.table.idx.tolist()) == list(range(10)) and retried.skipped == {}
    whole = certify_dataset(_small_smooth(), _Flawed(set()), question, quiet=True)
    by_index = lambda table: {i: (p, r) for i, p, r in zip(table.idx, table.predict, table.radius)}  # noqa: E731
    assert by_index(retried.table) == by_index(whole.table)


def test_the_run_names_the_data_set_by_its_root_and_refuses_an_unknown_policy(tmp_path):
    with pytest.raises(ValueError, match="Expected `on_bad_input` to be one of 'stop', 'skip'"):
        certify_dataset(_small_smooth(), _Flawed(set()), Certify(10, 20, 0.01), quiet=True, on_bad_input="ignore")
    data = _Flawed({0})
    data.root = "/data"
    with pytest.raises(BadInputError, match=r"^input 0 of data set '/data' "):
        certify_dataset(_small_smooth(), data, Certify(10, 20, 0.01), quiet=True)


def test_a_resume_without_skip_passes_over_the_inputs_a_skip_run_left_out(tmp_path):
    out = tmp_path / "out.tsv"
    question = Certify(10, 20, 0.01)
    certify_dataset(_small_smooth(), _Flawed({0, 4}), question, indices=range(6), out=out, quiet=True,
                    on_bad_input="skip")
    # The same run resumed under the default policy: nothing is left to do, and input 0 is not read.
    again = certify_dataset(_small_smooth(), _Flawed({0, 4}), question, indices=range(6), out=out, quiet=True)
    assert again.table.idx.tolist() == [1, 2, 3, 5] and sorted(again.skipped) == [0, 4]


def test_an_interrupted_chunk_with_a_skipped_input_marks_the_right_input_stopped_early(tmp_path, monkeypatch):
    from rsengine import run as run_module

    def interrupted(self, smooth, xs, indices, labels):  # as an adaptive Ctrl-C: position 1 stopped early
        rows = {j: self.question.row(smooth.answer(self.question, xs[j:j + 1], streams=indices[j:j + 1]), 0, labels[j])
                for j in range(len(labels))}
        raise run_module.ChunkInterrupted(rows, [1])

    monkeypatch.setattr(run_module.DatasetRun, "_answer", interrupted)
    out = tmp_path / "out.tsv"
    with pytest.raises(KeyboardInterrupt):
        certify_dataset(_small_smooth(), _Flawed({1}), Certify(10, 20, 0.01), indices=range(6), out=out, quiet=True,
                        on_bad_input="skip")
    record = read_run_record(out)
    assert record["stopped_early"] == [2] and list(record["skipped"]) == ["1"]  # position 1 of 0, 2, 3, 4, 5
