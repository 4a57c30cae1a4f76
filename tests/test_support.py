"""The support table: every refused combination, in the API's and the CLI's words, from one place."""
import pytest
import torch

from rsengine import Smooth
from rsengine.cli import main
from rsengine.questions import AdaptiveRadius, Certify, TopK, TwoSided
from rsengine.support import TABLE

MODEL = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
X = torch.tensor([[0, 64, 128, 255]], dtype=torch.uint8)

# (row's feature, conflict) -> how the API and the CLI meet it.
API = {
    ("sound", "laplace"): lambda: Smooth(MODEL, 3, 0.25, noise="laplace", sound=True),
    ("sound", "uniform"): lambda: Smooth(MODEL, 3, 0.25, noise="uniform", sound=True),
    ("sound", "two_sided"): lambda: Smooth(MODEL, 3, 0.25, sound=True).answer(TwoSided(10, 50, 0.01), X),
    ("sound", "top_k"): None,  # the top-k row speaks first in the API (its question asks before the noise)
    ("sound", "adaptive"): lambda: Smooth(MODEL, 3, 0.25, sound=True).answer(
        AdaptiveRadius(10, 50, 0.01, radius=0.1), X),
    ("top_k", "laplace"): lambda: Smooth(MODEL, 3, 0.25, noise="laplace").answer(TopK(1, 10, 50, 0.01), X / 255),
    ("top_k", "uniform"): lambda: Smooth(MODEL, 3, 0.25, noise="uniform").answer(TopK(1, 10, 50, 0.01), X / 255),
    ("top_k", "sound"): lambda: Smooth(MODEL, 3, 0.25, sound=True).certify_topk_batch(X, 1, 10, 50, 0.01),
    ("adaptive", "deterministic"): lambda: Smooth(MODEL, 3, 0.25, deterministic=True).answer(
        AdaptiveRadius(10, 50, 0.01, radius=0.1), X / 255),
    ("adaptive", "laplace"): lambda: Smooth(MODEL, 3, 0.25, noise="laplace").answer(
        AdaptiveRadius(10, 50, 0.01, radius=0.1), X / 255),
    ("adaptive", "uniform"): lambda: Smooth(MODEL, 3, 0.25, noise="uniform").certify_batch(
        X / 255, 10, 50, 0.01, adaptive=True, tolerance=0.1),
}
CLI = {
    ("sound", "laplace"): ["--sound", "--noise", "laplace"],
    ("sound", "uniform"): ["--sound", "--noise", "uniform"],
    ("sound", "two_sided"): ["--sound", "--two-sided"],
    ("sound", "top_k"): ["--sound", "--top-k", "2"],
    ("sound", "adaptive"): ["--sound", "--adaptive", "--radius", "0.1"],
    ("top_k", "laplace"): ["--top-k", "2", "--noise", "laplace"],
    ("top_k", "uniform"): ["--top-k", "2", "--noise", "uniform"],
    ("top_k", "sound"): None,  # --sound's own row speaks first on the command line
    ("adaptive", "deterministic"): ["--adaptive", "--radius", "0.1", "--deterministic"],
    ("adaptive", "laplace"): ["--adaptive", "--radius", "0.1", "--noise", "laplace"],
    ("adaptive", "uniform"): ["--adaptive", "--tolerance", "0.1", "--noise", "uniform"],
}
FLAGS = {"two_sided": "--two-sided", "top_k": "--top-k", "adaptive": "--adaptive"}
CASES = [(row, conflict) for row in TABLE for conflict in row.conflicts]


def test_every_row_and_conflict_has_a_case():
    assert {(row.feature, conflict) for row, conflict in CASES} == set(API) == set(CLI)


@pytest.mark.parametrize("row, conflict", CASES, ids=[f"{r.feature}-{c}" for r, c in CASES])
def test_the_api_refuses_with_the_row_s_words(row, conflict):
    if API[row.feature, conflict] is None:
        return
    noise = conflict if conflict in ("laplace", "uniform") else "gaussian"
    with pytest.raises(ValueError) as refused:
        API[row.feature, conflict]()
    assert str(refused.value) == row.api.format(noise=noise, sound=conflict == "sound" or row.feature == "sound",
                                                flag=FLAGS.get(conflict, conflict))


@pytest.mark.parametrize("row, conflict", CASES, ids=[f"{r.feature}-{c}" for r, c in CASES])
def test_the_cli_refuses_with_the_row_s_words_before_any_file_exists(row, conflict, tmp_path, capsys):
    flags = CLI[row.feature, conflict]
    if flags is None:
        return
    out = tmp_path / "out.tsv"
    assert main(["certify", "mnist", "", "0.25", str(out), *flags]) == 2
    noise = conflict if conflict in ("laplace", "uniform") else "gaussian"
    message = row.cli.format(noise=noise, flag=FLAGS.get(conflict, conflict))
    assert capsys.readouterr().err == f"rsengine certify: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_what_is_not_in_the_table_runs():
    smooth = Smooth(MODEL, 3, 0.25, noise="laplace", deterministic=True)
    assert smooth.answer(TwoSided(10, 50, 0.01), X / 255).radius.shape == (1,)
    assert smooth.answer(Certify(10, 50, 0.01), X / 255).prediction.shape == (1,)
