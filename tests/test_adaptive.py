"""Adaptive certification through the engine: validity on closed-form truth, power, refilled batches,
interrupts, and the command line (rsengine.refill, Smooth.certify_batch(adaptive=True), certify --adaptive).

The closed-form truth: a classifier that thresholds coordinate 0 at t has a smoothed classifier
whose robust radius at x is exactly |x_0 - t|, with p_A = Phi(|x_0 - t| / sigma). An input whose
true radius sits just below r must not be certified at r more often than alpha; the trials are
enough that a rate of 2 alpha would fail the test with probability above 0.999.
"""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from scipy.stats import binom

from rsengine import ABSTAIN, Smooth
from rsengine.checkpoints import bundled_checkpoint
from rsengine.cli import main
from rsengine.kernels.contract import PHASE_ESTIMATION, PHASE_SELECTION
from rsengine.refill import AdaptiveInterrupted
from rsengine.results import read_results
from rsengine.resume import run_record_path
from rsengine.sequential import Schedule, certificate_so_far
from run_helpers import rows_without_time, wait_for_rows

SIGMA = 0.25
LEVEL = 1e-3  # a valid procedure fails an assertion below with probability at most this


class Threshold(torch.nn.Module):
    """Class 1 where coordinate 0 exceeds 0, else class 0: g's radius at x is |x_0|."""

    def __init__(self):
        super().__init__()
        self.calls, self.rows = 0, []

    def forward(self, z):  # [B, d] -> [B, 2]
        self.calls += 1
        self.rows.append(z.shape[0])
        z0 = z.flatten(1)[:, :1]
        return torch.cat([-z0, z0], 1)


def _inputs(x0, trials, d=3):
    xs = torch.zeros(trials, d)
    xs[:, 0] = x0
    return xs


def _false_rate_bound(trials, alpha):
    # The largest failure count a rate of alpha reaches with probability 1 - LEVEL, and the
    # chance that a rate of 2 alpha stays at or below it (the test's blind spot).
    limit = int(binom.ppf(1 - LEVEL, trials, alpha))
    return limit, float(binom.cdf(limit, trials, 2 * alpha))


@pytest.mark.parametrize("mode", ["radius", "tolerance"])
def test_engine_false_certification_is_at_most_alpha_on_closed_form_truth(mode):
    alpha, budget, trials = 0.1, 1000, 1500
    limit, blind = _false_rate_bound(trials, alpha)
    assert blind < 1e-3
    true_radius = 0.2499  # just below r = 0.25: p_A = Phi(0.9996) just below Phi(1)
    smooth = Smooth(Threshold(), 2, SIGMA, seed=11, backend="torch")
    question = dict(radius=0.25) if mode == "radius" else dict(tolerance=0.05)
    preds, radii, samples = smooth.certify_batch(_inputs(true_radius, trials), 100, budget, alpha,
                                                 batch_size=4096, streams=np.arange(trials), adaptive=True,
                                                 **question)
    false = (preds != ABSTAIN) & ((preds != 1) | (radii > true_radius))
    assert false.sum() <= limit
    assert ((preds == 1) | (preds == ABSTAIN)).all() and (samples <= 100 + budget).all()


def test_engine_decides_inputs_far_from_the_threshold_in_few_samples():
    smooth = Smooth(Threshold(), 2, SIGMA, seed=0, backend="torch")
    xs = torch.cat([_inputs(1.5, 20), _inputs(0.05, 20)])  # radius 1.5 >> 0.5, radius 0.05 << 0.5
    preds, radii, samples = smooth.certify_batch(xs, 100, 100_000, 0.001, batch_size=1000, adaptive=True, radius=0.5)
    assert (preds[:20] == 1).all() and (radii[:20] >= 0.5).all() and (samples[:20] <= 100 + 477).all()
    assert (preds[20:] == ABSTAIN).all() and (samples[20:] <= 100 + 64).all()


def test_adaptive_certificates_use_the_fixed_runs_first_samples_and_ignore_the_batch_size():
    smooth = Smooth(Threshold(), 2, SIGMA, seed=3, backend="torch")
    xs = _inputs(0.0, 6) + torch.linspace(-0.6, 0.6, 6)[:, None] * torch.tensor([1.0, 0.0, 0.0])
    streams = np.arange(10, 16)
    results = [smooth.certify_batch(xs, 100, 20_000, 0.001, batch_size=b, streams=streams, adaptive=True,
                                    tolerance=0.05) for b in (37, 1000)]
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    preds, radii, samples = results[0]
    schedule = Schedule.for_tolerance(20_000, 0.001)
    for i in range(6):
        n = int(samples[i]) - 100
        k = int(np.flatnonzero(schedule.checkpoints == n)[0])
        guess = smooth.sample_counts(xs[i:i + 1], 100, PHASE_SELECTION, streams=[streams[i]]).argmax(1)
        votes = smooth.sample_counts(xs[i:i + 1], n, PHASE_ESTIMATION, streams=[streams[i]])[0, guess]
        pred, rad = certificate_so_far(guess, votes, n, float(schedule.alphas[k]), smooth.noise_sigma)
        assert (int(pred[0]), float(rad[0])) == (preds[i], radii[i])


def test_refilled_batches_stay_full_until_the_last_inputs():
    model = Threshold()
    smooth = Smooth(model, 2, SIGMA, seed=0, backend="torch")
    xs = _inputs(0.0, 200) + torch.linspace(-1, 1, 200)[:, None] * torch.tensor([1.0, 0.0, 0.0])
    _, _, samples = smooth.certify_batch(xs, 100, 10_000, 0.001, batch_size=500, adaptive=True, radius=0.25)
    assert sum(model.rows) == samples.sum()
    full = [rows == 500 for rows in model.rows]
    # Every batch is full until the queue of inputs is empty and the last few run out of rows.
    assert all(full[:int(samples.sum() * 0.8) // 500])


def test_an_interrupt_returns_every_certificate_so_far():
    class Interrupting(Threshold):
        def forward(self, z):
            if self.calls == 12:
                raise KeyboardInterrupt
            return super().forward(z)

    smooth = Smooth(Interrupting(), 2, SIGMA, seed=0, backend="torch")
    xs = _inputs(0.0, 30) + torch.linspace(0.2, 0.3, 30)[:, None] * torch.tensor([1.0, 0.0, 0.0])
    with pytest.raises(AdaptiveInterrupted) as caught:
        smooth.certify_batch(xs, 100, 100_000, 0.001, batch_size=500, adaptive=True, radius=0.25)
    result = caught.value.result
    assert isinstance(caught.value, KeyboardInterrupt)
    assert result.stopped_early.any() and (result.finished | ~result.stopped_early).all()
    stopped = result.stopped_early
    assert (result.samples[stopped] > 100).all() and (result.radii[stopped] < 0.25).all()
    # Each stopped certificate is what its samples up to a checkpoint support.
    assert ((result.predictions[stopped] == 1) | (result.predictions[stopped] == ABSTAIN)).all()
    assert (result.radii[stopped & (result.predictions == 1)] <= 0.3).all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(adaptive=True), "exactly one of `radius` or `tolerance`"),
    (dict(adaptive=True, radius=0.5, tolerance=0.1), "exactly one of `radius` or `tolerance`"),
    (dict(radius=0.5), "only with adaptive=True"),
    (dict(adaptive=True, radius=-0.5), "`radius`"),
    (dict(adaptive=True, tolerance=0.0), "`tolerance`"),
    (dict(adaptive="yes", radius=0.5), "`adaptive`"),
], ids=["neither", "both", "radius-without-adaptive", "negative-radius", "zero-tolerance", "not-bool"])
def test_adaptive_arguments_are_checked(kwargs, message):
    smooth = Smooth(Threshold(), 2, SIGMA, backend="torch")
    with pytest.raises((ValueError, TypeError), match=message):
        smooth.certify(torch.zeros(3), 100, 1000, 0.001, **kwargs)


def test_adaptive_refuses_deterministic_mode():
    smooth = Smooth(Threshold(), 2, SIGMA, backend="torch", deterministic=True)
    with pytest.raises(ValueError, match="deterministic"):
        smooth.certify(torch.zeros(3), 100, 1000, 0.001, adaptive=True, radius=0.1)


# --- the command line ---------------------------------------------------------------------


def _args(out, *extra):
    return ["certify", "mnist", bundled_checkpoint(), "0.25", str(out), "--skip", "40", "--N", "20000",
            "--adaptive", *map(str, extra)]


def test_cli_adaptive_run_writes_samples_and_analyze_reports_them(tmp_path, capsys):
    out = tmp_path / "adaptive.tsv"
    assert main(_args(out, "--radius", 0.5)) == 0
    header = out.read_text().splitlines()[0]
    assert header == "idx\tlabel\tpredict\tradius\tcorrect\ttime\tsamples"
    table = read_results(out)
    assert len(table) == 25 and (table.samples >= 100 + 64).all() and (table.samples <= 100 + 20_000).all()
    assert (table.radius[table.predict != ABSTAIN] >= 0.5).all()
    assert json.loads(open(run_record_path(out)).read())["arguments"]["adaptive"] == dict(radius=0.5, tolerance=None)
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"{table.samples.mean():,.0f} samples per input on average" in said and "decided radius 0.5" in said


@pytest.mark.parametrize("extra, message", [
    ((), "exactly one of --radius R or --tolerance T"),
    (("--radius", 0.5, "--tolerance", 0.1), "exactly one"),
    (("--tolerance", -1), "--tolerance"),
    (("--radius", 0.5, "--deterministic"), "cannot be --deterministic"),
], ids=["neither", "both", "negative-tolerance", "deterministic"])
def test_cli_adaptive_options_are_checked(tmp_path, capsys, extra, message):
    out = tmp_path / "out.tsv"
    assert main(_args(out, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_cli_radius_without_adaptive_is_refused(tmp_path, capsys):
    out = tmp_path / "out.tsv"
    assert main(["certify", "mnist", bundled_checkpoint(), "0.25", str(out), "--radius", "0.5"]) == 2
    assert "--radius and --tolerance need --adaptive" in capsys.readouterr().err


def test_cli_ctrl_c_writes_stopped_early_certificates_and_a_resume_redoes_them(tmp_path):
    full, stopped = tmp_path / "full.tsv", tmp_path / "stopped.tsv"
    # Tolerance mode at a 20,000 budget: chunks of 5 inputs, a few seconds each, so the interrupt
    # lands on inputs between checkpoints.
    args = ["certify", "mnist", bundled_checkpoint(), "0.25", "--skip", "25", "--N", "20000", "--adaptive",
            "--tolerance", "0.05", "--batch", "400"]
    process = subprocess.Popen([sys.executable, "-m", "rsengine", *args[:4], str(stopped), *args[4:]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_rows(stopped, 1, process, timeout=240)  # the first chunk is written: sampling is under way
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err and "stopped early" in err
    record = json.loads(open(run_record_path(stopped)).read())
    table = read_results(stopped)
    assert record["complete"] is False and record["stopped_early"]
    assert set(record["stopped_early"]) <= set(table.idx.tolist())
    assert (table.samples[np.isin(table.idx, record["stopped_early"])] < 100 + 20_000).all()
    assert main([*args[:4], str(stopped), *args[4:], "--max", "200"]) == 2  # other arguments: refused
    assert main([*args[:4], str(stopped), *args[4:]]) == 0
    assert "stopped_early" not in json.loads(open(run_record_path(stopped)).read())
    assert main([*args[:4], str(full), *args[4:]]) == 0
    assert sorted(rows_without_time(stopped)) == sorted(rows_without_time(full))
