"""The command line's noises and certificates beyond the paper's, run as a user runs them."""
import json

import numpy as np
import torch

from test_cli import assert_one_line_error, rsengine
from rsengine import Smooth
from rsengine.checkpoints import bundled_checkpoint, load_checkpoint
from rsengine.data import load_dataset
from rsengine.results import read_results


def _arguments(path) -> dict:
    return json.loads(open(f"{path}.run.json").read())["arguments"]


def test_certify_with_laplace_noise_records_and_reports_l1_radii(tmp_path):
    out = tmp_path / "laplace.tsv"
    result = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, out, "--noise", "laplace", "--N", 500,
                      "--skip", 50, "--max", 500)
    assert result.returncode == 0, result.stderr
    arguments = _arguments(out)
    assert arguments["noise"] == "laplace" and arguments["radius_norm"] == "l1"
    assert "at l1 radius >= r, laplace noise" in result.stdout
    # The rows are the API's: same seed, stream i for input i.
    table = read_results(out)
    checkpoint = load_checkpoint(bundled_checkpoint())
    smooth = Smooth(checkpoint.model, 10, 0.25, mean=checkpoint.mean, std=checkpoint.std, noise="laplace", seed=0)
    data = load_dataset("mnist", "test")
    xs = torch.stack([data[int(i)][0] for i in table.idx])
    preds, radii = smooth.certify_batch(xs, 100, 500, 0.001, streams=table.idx)
    assert preds.tolist() == table.predict.tolist()
    assert np.allclose(radii, table.radius, atol=1e-3) and (table.radius <= radii).all()  # printed rounded down
    analyzed = rsengine("analyze", out)
    assert analyzed.returncode == 0 and "radii are l1 radii" in analyzed.stderr


def test_analyze_refuses_to_compare_l1_and_l2_radii(tmp_path):
    files = []
    for noise in ("gaussian", "uniform"):
        files.append(tmp_path / f"{noise}.tsv")
        result = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, files[-1], "--noise", noise, "--N", 100,
                          "--max", 2)
        assert result.returncode == 0, result.stderr
    assert "noise" not in _arguments(files[0])  # a Gaussian run's record is what it always was
    assert_one_line_error(rsengine("analyze", *files), "different norms (l1 and l2)")


def test_two_sided_certify_is_recorded_and_never_below_the_half_alpha_one_sided_radius(tmp_path):
    out = tmp_path / "two.tsv"
    result = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, out, "--two-sided", "--N", 1000, "--skip", 100)
    assert result.returncode == 0, result.stderr
    assert _arguments(out)["two_sided"] is True
    one_sided = tmp_path / "one.tsv"
    result = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, one_sided, "--N", 1000, "--skip", 100,
                      "--alpha", 0.0005)
    assert result.returncode == 0, result.stderr
    two, one = read_results(out), read_results(one_sided)
    # Where the one-sided rule certifies, so does the two-sided one, no less far; it may also
    # certify where pA is below 1/2 but well above every other class.
    certified = one.predict != -1
    assert (two.predict[certified] == one.predict[certified]).all()
    assert (two.radius >= one.radius).all()


def test_options_that_do_not_combine_are_one_line_errors(tmp_path):
    out = tmp_path / "out.tsv"
    base = ("certify", "mnist", bundled_checkpoint(), 0.25, out, "--adaptive", "--radius", 0.5)
    assert_one_line_error(rsengine(*base, "--noise", "laplace"), "--adaptive needs --noise gaussian")
    assert_one_line_error(rsengine(*base, "--two-sided"), "--adaptive cannot be --two-sided")
    assert not out.exists()
    result = rsengine("certify", "--noise", "cauchy")
    assert result.returncode == 2 and "invalid choice: 'cauchy'" in result.stderr


def test_train_with_uniform_noise_then_certify_with_it(tmp_path):
    checkpoint = tmp_path / "uniform.pt"
    result = rsengine("train", "mnist", "mnist_cnn", checkpoint, "--sigma", 0.25, "--noise", "uniform", "--epochs", 1,
                      "--batch", 500, "--lr", 0.05)
    assert result.returncode == 0, result.stderr
    assert "with uniform noise" in result.stdout
    extra = load_checkpoint(checkpoint).extra
    assert extra["noise"] == "uniform" and extra["method"] == "gaussian"
    out = tmp_path / "out.tsv"
    result = rsengine("predict", "mnist", checkpoint, 0.25, out, "--noise", "uniform", "--N", 50, "--max", 3)
    assert result.returncode == 0, result.stderr
    assert len(read_results(out)) == 3 and _arguments(out)["noise"] == "uniform"
