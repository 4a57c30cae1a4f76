"""`rsengine certify --sound` and `predict --sound`, run as a user runs them (Voracek & Hein 2023)."""
import json
import os
import shutil

import pytest
import torch

from rsengine import Smooth, commands
from rsengine import flags as cli_flags
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.cli import _fill_defaults, build_parser, main
from rsengine.data import load_dataset
from rsengine.results import format_radius, read_results
from run_helpers import messages, rows_without_time
from test_cli import assert_one_line_error, rsengine

# sigma 0.5, twice the training noise: most inputs certify, at radii that vary with the votes.
SIGMA, N0, N, BATCH = 0.5, 50, 300, 150
SMALL = ("--skip", 97, "--N0", N0, "--N", N, "--batch", BATCH)
GRID_NOTE = "sound mode: radii for perturbations on the 1/255 grid"


def _run(command, out, *extra, sigma=SIGMA):
    return [command, "mnist", bundled_checkpoint(), str(sigma), str(out), *map(str, extra)]


def _arguments(path) -> dict:
    return json.loads(open(f"{path}.run.json").read())["arguments"]


def _api(sound: bool) -> Smooth:
    checkpoint = load_checkpoint(bundled_checkpoint())
    return Smooth(checkpoint.model.eval(), 10, SIGMA, mean=checkpoint.mean, std=checkpoint.std, seed=0, sound=sound)


def _inputs(indices) -> torch.Tensor:
    data = load_dataset("mnist", "test")
    return torch.stack([data[int(i)][0] for i in indices])


def test_sound_rows_are_the_apis_sound_certificates(tmp_path):
    out = tmp_path / "sound.tsv"
    result = rsengine(*_run("certify", out, "--sound", *SMALL))
    assert result.returncode == 0, result.stderr
    assert GRID_NOTE in result.stdout  # the summary says what the radii are about
    assert _arguments(out)["sound"] is True
    table = read_results(out)
    assert table.idx.tolist() == list(range(0, 1000, 97))
    # Same seed, stream i for input i, same n0, n, alpha: the API's sound certificates, rounded down.
    xs = _inputs(table.idx)
    preds, radii = _api(sound=True).certify_batch(xs, N0, N, 0.001, BATCH, streams=table.idx)
    assert table.predict.tolist() == preds.tolist()
    assert table.radius.tolist() == [float(format_radius(r)) for r in radii]
    assert len(set(table.radius.tolist())) > 3  # radii that vary, so equality means something
    # Not float mode's rows: other noise, other votes (a run that ignored --sound fails here).
    _, float_radii = _api(sound=False).certify_batch(xs, N0, N, 0.001, BATCH, streams=table.idx)
    assert table.radius.tolist() != [float(format_radius(r)) for r in float_radii]

    analyzed = rsengine("analyze", out)
    assert analyzed.returncode == 0, analyzed.stderr
    assert f"{out}: {GRID_NOTE}" in analyzed.stderr and GRID_NOTE not in analyzed.stdout


def test_predict_sound_is_the_apis_sound_prediction(tmp_path):
    out = tmp_path / "predict.tsv"
    result = rsengine(*_run("predict", out, "--sound", "--skip", 97, "--max", 500, "--N", N, "--batch", BATCH))
    assert result.returncode == 0, result.stderr
    assert "sound mode" in result.stdout
    assert _arguments(out)["sound"] is True
    table = read_results(out)
    assert table.idx.tolist() == [0, 97, 194, 291, 388, 485]
    expected = _api(sound=True).predict_batch(_inputs(table.idx), N, 0.001, BATCH, streams=table.idx)
    assert table.predict.tolist() == expected.tolist()
    assert (expected >= 0).sum() >= 4  # mostly real predictions, not abstentions
    analyzed = rsengine("analyze", out)
    assert analyzed.returncode == 0 and "sound mode" in analyzed.stderr, analyzed.stderr


def test_a_sound_run_resumes_only_as_a_sound_run(tmp_path, capsys):
    sound, float_mode = tmp_path / "sound.tsv", tmp_path / "float.tsv"
    options = ("--skip", 97, "--max", 400, "--N0", N0, "--N", N, "--batch", BATCH)
    assert main(_run("certify", sound, "--sound", *options)) == 0
    assert main(_run("certify", float_mode, *options)) == 0
    assert "sound" not in _arguments(float_mode)  # float-mode records stay as they were
    assert GRID_NOTE in capsys.readouterr().out  # the sound run's summary; the float run's has none below
    # A file cut short (as a killed run leaves it) resumes as a sound run, to the same rows.
    full = rows_without_time(sound)
    cut = tmp_path / "cut.tsv"
    shutil.copy(f"{sound}.run.json", f"{cut}.run.json")
    cut.write_text("".join(sound.read_text().splitlines(keepends=True)[:3]))  # header and two rows
    assert main(_run("certify", cut, "--sound", *options)) == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.err and "2 of 5 inputs already done" in captured.err
    assert rows_without_time(cut) == full
    # Each file refuses the other mode, with the arguments' message, and is left as it was.
    for path, flags, change in ((sound, (), "sound: True -> None"), (float_mode, ("--sound",), "sound: None -> True")):
        before = path.read_text()
        assert main(_run("certify", path, *flags, *options)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "other arguments" in lines[0] and change in lines[0], lines
        assert path.read_text() == before
    # analyze says which file is sound, from the run records.
    assert main(["analyze", str(sound), str(float_mode)]) == 0
    err = capsys.readouterr().err
    assert f"{sound}: {GRID_NOTE}" in err and f"{float_mode}:" not in err


@pytest.mark.parametrize("command, extra, fragment", [
    ("certify", ("--noise", "laplace"), "--sound needs --noise gaussian"),
    ("predict", ("--noise", "uniform"), "--sound needs --noise gaussian"),
    ("certify", ("--two-sided",), "--sound cannot be --two-sided"),
    ("certify", ("--top-k", 3), "--sound cannot be --top-k"),
    ("certify", ("--adaptive", "--radius", 0.5), "--sound cannot be --adaptive"),
    ("certify", ("--sigma", 10.5), "--sound needs SIGMA <= 10 (its noise table is tested that far), got 10.5"),
    ("predict", ("--sigma", 12), "needs SIGMA <= 10 (its noise table is tested that far), got 12.0"),
], ids=["laplace", "predict-uniform", "two-sided", "top-k", "adaptive", "sigma", "predict-sigma"])
def test_sound_options_that_cannot_run_are_one_line_errors(tmp_path, capsys, command, extra, fragment):
    out = tmp_path / "out.tsv"
    sigma = extra[1] if extra[0] == "--sigma" else SIGMA
    extra = () if extra[0] == "--sigma" else extra
    assert main(_run(command, out, "--sound", *extra, "--max", 1, sigma=sigma)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert os.listdir(tmp_path) == []  # no results file, run record or lock left behind
    # Without --sound the same options run: each refusal is sound mode's, not the option's own.
    samples = ("--N", 20, "--N0", 10) if command == "certify" else ("--N", 20)
    assert main(_run(command, out, *extra, "--max", 1, *samples, sigma=sigma)) == 0, capsys.readouterr().err


def test_sigma_ten_is_allowed_and_errors_are_one_line_in_a_real_process(tmp_path):
    for sigma, allowed in ((10.0, True), (10.000001, False)):  # the float32 sigma Smooth compares, as it does
        parsed = build_parser().parse_args(_run("certify", tmp_path / "o.tsv", "--sound", sigma=sigma))
        _fill_defaults(parsed)
        if allowed:
            assert cli_flags.check_sound(parsed) is True
        else:
            with pytest.raises(ValueError, match="SIGMA <= 10"):
                cli_flags.check_sound(parsed)
    assert_one_line_error(rsengine(*_run("certify", tmp_path / "o.tsv", "--sound", "--two-sided")),
                          "--sound cannot be --two-sided")
    assert not (tmp_path / "o.tsv").exists()


class _OffGrid(torch.utils.data.Dataset):
    """The embedded data set with input ``bad`` moved off the 1/255 grid (or made float64)."""

    def __init__(self, bad: int, float64: bool = False):
        self.data, self.bad, self.float64 = load_dataset("mnist", "test"), bad, float64

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        x, label = self.data[index]
        if index == self.bad:
            x = x.double() if self.float64 else x + 0.5 / 255  # between two grid points
        return x, label


@pytest.mark.parametrize("bad, float64", [(0, False), (0, True), (679, False)],
                         ids=["first-input", "float64", "later-input"])
def test_inputs_off_the_grid_are_a_one_line_error(tmp_path, capsys, monkeypatch, bad, float64):
    monkeypatch.setattr(commands, "load_dataset", lambda *args, **kwargs: _OffGrid(bad, float64))
    out = tmp_path / "out.tsv"
    assert main(_run("certify", out, "--sound", *SMALL)) == 2  # chunks of 6 inputs: 0 ... 485, 582 ... 970
    lines = messages(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert f"input {bad} of data set 'mnist' is off the 1/255 grid" in lines[0]
    assert "sound mode needs 8-bit images (float32 values i / 255)" in lines[0]
    assert ("dtype torch.float64" if float64 else "Expected `x` to hold float32 values i / 255") in lines[0]
    if bad == 0:  # found before the results file is opened
        assert os.listdir(tmp_path) == []
    else:  # the inputs before it hold finished, valid rows (its chunk's too); the record says the run is not complete
        table = read_results(out)
        assert table.idx.tolist() == [0, 97, 194, 291, 388, 485, 582]
        assert json.loads(open(f"{out}.run.json").read())["complete"] is False
        assert not os.path.exists(f"{out}.lock")
    # The same data set without --sound is certified (float mode takes any float input).
    monkeypatch.setattr(commands, "load_dataset", lambda *args, **kwargs: _OffGrid(bad, False))
    assert main(_run("certify", tmp_path / "float.tsv", *SMALL, "--max", 100)) == 0
