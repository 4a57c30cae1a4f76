"""Tests for rsengine.analyze: certified accuracy, tables and plots."""
import csv
import io
import json
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from reference_results import REFERENCE, each_reference_file, needs_reference, reference_files
from rsengine.analyze import (abstention_rate, certified_accuracy, default_radii, format_data, format_pa_distribution,
                              format_table, pa_bin_labels, pa_lower_bounds, pa_lower_distribution,
                              plot_certified_accuracy, plot_unavailable)
from rsengine.noises import Gaussian, Laplace
from rsengine.results import ResultsTable, read_results

CERTIFY_FILES = reference_files("certify")
PREDICT_FILES = reference_files("predict")
CIFAR = REFERENCE / "certify/cifar10/resnet110"
IMAGENET = REFERENCE / "certify/imagenet/resnet50"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rel(path):
    return path.relative_to(REFERENCE).as_posix()


def _plain_accuracy(path, radius):
    """Independent count with the csv module: rows with correct == 1 and radius >= r."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    hits = sum(1 for row in rows if row["correct"] == "1" and float(row.get("radius", "0")) >= radius)
    return hits / len(rows)


def _table(radius, correct, kind="certify"):
    n = len(correct)
    predict = np.where(np.asarray(correct) == 1, 0, 1)
    return ResultsTable(
        kind,
        idx=np.arange(n),
        label=np.zeros(n, dtype=np.int64),
        predict=predict,
        radius=None if kind == "predict" else np.asarray(radius, dtype=np.float64),
        correct=np.asarray(correct),
        time_seconds=np.ones(n),
    )


# ---------------------------------------------------------------- certified_accuracy


def test_certified_accuracy_counts_radius_at_least_r():
    table = _table([0.0, 0.25, 0.5, 0.5, 1.0, 2.0], [1, 1, 1, 0, 1, 0])
    got = certified_accuracy(table, [0.0, 0.25, 0.26, 0.5, 0.51, 1.0, 1.01, 2.0])
    # Radius exactly r counts; a wrong prediction never counts, however large its radius.
    np.testing.assert_array_equal(got, np.array([4, 3, 2, 2, 1, 1, 0, 0]) / 6)
    assert got.dtype == np.float64
    assert certified_accuracy(table, 0.5).shape == ()
    assert certified_accuracy(table, np.array([[0.0, 1.0]])).shape == (1, 2)


@pytest.mark.parametrize("path", each_reference_file(CERTIFY_FILES), ids=_rel)
def test_certified_accuracy_reference_file_default_radii(path):
    radii = default_radii()
    got = certified_accuracy(read_results(path), radii)
    np.testing.assert_array_equal(got, [_plain_accuracy(path, r) for r in radii])
    assert np.all(np.diff(got) <= 0)


@pytest.mark.parametrize("path", each_reference_file(PREDICT_FILES), ids=_rel)
def test_certified_accuracy_predict_file_is_clean_accuracy(path):
    table = read_results(path)
    np.testing.assert_array_equal(certified_accuracy(table, [0.0]), [_plain_accuracy(path, 0.0)])
    with pytest.raises(ValueError, match="predict file") as caught:
        certified_accuracy(table, [0.0, 0.5])
    assert str(path) in str(caught.value)


@needs_reference
def test_predict_files_clean_accuracy_values():
    # Fraction correct (not abstaining, not wrong) of ImageNet sigma = 0.25 predict runs.
    got = [certified_accuracy(read_results(REFERENCE / f"predict/imagenet/resnet50/noise_0.25/test/N_{n}"), [0.0])[0]
           for n in (100, 1000, 10000, 100000)]
    assert got == [330 / 500, 340 / 500, 345 / 500, 346 / 500]


# What the original code published from these very files (locuslab/smoothing,
# analysis/markdown/vary_noise_*, produced by its analyze.py) at the paper's radii; the best
# value per column is the paper's headline row (ImageNet: 49% certified at r = 0.5).
PUBLISHED_CIFAR = {
    "0.12": ["0.59", "0.00", "0.00", "0.00", "0.00", "0.00"],
    "0.25": ["0.60", "0.43", "0.27", "0.00", "0.00", "0.00"],
    "0.50": ["0.55", "0.41", "0.32", "0.23", "0.15", "0.09"],
    "1.00": ["0.39", "0.34", "0.28", "0.22", "0.17", "0.14"],
}
PUBLISHED_IMAGENET = {
    "0.25": ["0.49", "0.00", "0.00", "0.00", "0.00", "0.00"],
    "0.50": ["0.46", "0.37", "0.29", "0.00", "0.00", "0.00"],
    "1.00": ["0.38", "0.33", "0.26", "0.19", "0.15", "0.12"],
}
CIFAR_RADII = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
IMAGENET_RADII = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]


@needs_reference
@pytest.mark.parametrize(
    "root, published, radii, best",
    [
        (CIFAR, PUBLISHED_CIFAR, CIFAR_RADII, ["0.60", "0.43", "0.32", "0.23", "0.17", "0.14"]),
        (IMAGENET, PUBLISHED_IMAGENET, IMAGENET_RADII, ["0.49", "0.37", "0.29", "0.19", "0.15", "0.12"]),
    ],
    ids=["cifar10", "imagenet"],
)
def test_certified_accuracy_reproduces_published_tables(root, published, radii, best):
    accuracies = np.stack(
        [certified_accuracy(read_results(root / f"noise_{s}/test/sigma_{s}"), radii) for s in published]
    )
    assert [["{:.2f}".format(v) for v in row] for row in accuracies] == list(published.values())
    assert ["{:.2f}".format(v) for v in accuracies.max(axis=0)] == best


@needs_reference
def test_certified_accuracy_exact_counts_pinned():
    # Counts of the headline numbers, so a one-row change in reading cannot hide in rounding.
    assert certified_accuracy(read_results(IMAGENET / "noise_0.25/test/sigma_0.25"), 0.5) == 211 / 427
    assert certified_accuracy(read_results(IMAGENET / "noise_0.50/test/sigma_0.50"), 1.0) == 186 / 500
    assert certified_accuracy(read_results(IMAGENET / "noise_1.00/test/sigma_1.00"), 3.0) == 61 / 500
    assert certified_accuracy(read_results(CIFAR / "noise_0.25/test/sigma_0.25"), 0.25) == 300 / 500


@pytest.mark.parametrize("radii", [[-0.5], [float("nan")], [float("inf")]], ids=["negative", "nan", "inf"])
def test_certified_accuracy_rejects_bad_radii(radii):
    with pytest.raises(ValueError, match="radii"):
        certified_accuracy(_table([0.5], [1]), radii)


def test_certified_accuracy_rejects_empty_table():
    with pytest.raises(ValueError, match="len"):
        certified_accuracy(_table([], []), [0.0])


def test_default_radii():
    radii = default_radii()
    assert radii == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    radii.append(9.0)
    assert len(default_radii()) == 10


# ---------------------------------------------------------------- format_table


def test_format_table_markdown_marks_best_and_ties():
    text = format_table(["a", "b|c", "d"], [[0.614, 0.2, 0.0], [0.606, 0.31, 0.0], [0.5, 0.1, 0.0]], [0.0, 0.5, 1.25])
    assert text == (
        "|  | r = 0.0 | r = 0.5 | r = 1.25 |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| a | **0.61** | 0.20 | **0.00** |\n"
        "| b\\|c | **0.61** | **0.31** | **0.00** |\n"
        "| d | 0.50 | 0.10 | **0.00** |\n"
    )


def test_format_table_latex_marks_best_and_escapes():
    text = format_table(["noise_0.25", "50% & up"], [[0.49, 0.0], [0.46, 0.37]], [0.5, 1.0], fmt="latex")
    assert text == (
        "\\begin{tabular}{lrr}\n"
        "\\hline\n"
        " & $r = 0.5$ & $r = 1.0$ \\\\\n"
        "\\hline\n"
        "noise\\_0.25 & \\textbf{0.49} & 0.00 \\\\\n"
        "50\\% \\& up & 0.46 & \\textbf{0.37} \\\\\n"
        "\\hline\n"
        "\\end{tabular}\n"
    )
    raw = format_table(["$\\sigma = 0.25$"], [[0.5]], [0.30000000000000004], fmt="latex", escape=False)
    assert "$\\sigma = 0.25$ & 0.50 \\\\" in raw and "$r = 0.3$" in raw


@needs_reference
def test_format_table_reference_imagenet_markdown():
    names = [f"sigma = {s}" for s in PUBLISHED_IMAGENET]
    accuracies = np.stack(
        [certified_accuracy(read_results(IMAGENET / f"noise_{s}/test/sigma_{s}"), IMAGENET_RADII) for s in PUBLISHED_IMAGENET]
    )
    lines = format_table(names, accuracies, IMAGENET_RADII).splitlines()
    assert lines[0] == "|  | r = 0.5 | r = 1.0 | r = 1.5 | r = 2.0 | r = 2.5 | r = 3.0 |"
    assert lines[2] == "| sigma = 0.25 | **0.49** | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 |"
    assert lines[3] == "| sigma = 0.50 | 0.46 | **0.37** | **0.29** | 0.00 | 0.00 | 0.00 |"
    assert lines[4] == "| sigma = 1.00 | 0.38 | 0.33 | 0.26 | **0.19** | **0.15** | **0.12** |"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(names=["a"], accuracies=[[0.5, 0.5]], radii=[0.0]), "shape"),
        (dict(names=["a", "b"], accuracies=[[0.5]], radii=[0.0]), "shape"),
        (dict(names=["a"], accuracies=[[1.5]], radii=[0.0]), r"\[0, 1\]"),
        (dict(names=["a"], accuracies=[[float("nan")]], radii=[0.0]), r"\[0, 1\]"),
        (dict(names=["a"], accuracies=[[0.5]], radii=[-1.0]), "radii"),
        (dict(names=["a\nb"], accuracies=[[0.5]], radii=[0.0]), "line breaks"),
        (dict(names=["a"], accuracies=[[0.5]], radii=[0.0], fmt="html"), "fmt"),
    ],
    ids=["too-many-columns", "too-few-rows", "above-one", "nan", "negative-radius", "newline-name", "bad-fmt"],
)
def test_format_table_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        format_table(**kwargs)


# ---------------------------------------------------------------- plot_certified_accuracy


@pytest.fixture(scope="module")
def imagenet_tables():
    return [read_results(IMAGENET / f"noise_{s}/test/sigma_{s}") for s in ("0.25", "0.50", "1.00")]


@needs_reference
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-"), (".PNG", b"\x89PNG")])
def test_plot_certified_accuracy_writes_file(tmp_path, imagenet_tables, suffix, magic):
    path = tmp_path / f"curves{suffix}"
    plot_certified_accuracy(imagenet_tables, path, ["sigma = 0.25", "sigma = 0.50", "sigma = 1.00"], title="ImageNet")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 5000


@needs_reference
def test_plot_certified_accuracy_rejects_other_extensions(tmp_path, imagenet_tables):
    for name in ("curves.jpgx", "curves"):
        with pytest.raises(ValueError, match="extension") as caught:
            plot_certified_accuracy(imagenet_tables, tmp_path / name)
        assert ("'.jpgx'" in str(caught.value)) == name.endswith(".jpgx")
    assert list(tmp_path.iterdir()) == []


@needs_reference
def test_plot_certified_accuracy_rejects_bad_input(tmp_path, imagenet_tables):
    predict = read_results(REFERENCE / "predict/imagenet/resnet50/noise_0.25/test/N_100")
    with pytest.raises(ValueError, match="certify"):
        plot_certified_accuracy([predict], tmp_path / "p.png")
    with pytest.raises(ValueError, match="names"):
        plot_certified_accuracy(imagenet_tables, tmp_path / "p.png", ["only one"])
    with pytest.raises(ValueError, match="tables"):
        plot_certified_accuracy([], tmp_path / "p.png")
    with pytest.raises(ValueError, match="max_radius"):
        plot_certified_accuracy(imagenet_tables, tmp_path / "p.png", max_radius=0.0)


def test_plot_certified_accuracy_names_the_plot_extra_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as an install without rsengine[plot]
    assert plot_unavailable() == 'matplotlib is not installed: pip install "rsengine[plot]"'
    with pytest.raises(ImportError, match=r'pip install "rsengine\[plot\]"'):
        plot_certified_accuracy([_table([0.5], [1])], tmp_path / "p.png")
    assert list(tmp_path.iterdir()) == []


def test_plot_certified_accuracy_all_abstain_table(tmp_path):
    path = tmp_path / "flat.png"
    plot_certified_accuracy([_table([0.0, 0.0], [0, 0])], path)
    assert path.read_bytes().startswith(b"\x89PNG")


@needs_reference
def test_plot_never_touches_pyplot_or_global_backend(tmp_path):
    # A fresh interpreter with a GUI backend requested: plotting must still work headless,
    # never import pyplot and never change the backend the user asked for.
    script = (
        "import sys, matplotlib\n"
        "from rsengine.analyze import plot_certified_accuracy\n"
        "from rsengine.results import read_results\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        f"table = read_results({str(CIFAR / 'noise_0.50/test/sigma_0.50')!r})\n"
        f"plot_certified_accuracy([table], {str(tmp_path / 'x.pdf')!r}, ['s'])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.get_backend().lower() == 'tkagg'\n"
    )
    env = dict(os.environ, MPLBACKEND="TkAgg", DISPLAY="")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.pdf").read_bytes().startswith(b"%PDF-")


def test_format_table_marks_nothing_with_a_single_row():
    table = format_table(["only"], [[0.5, 0.25]], [0.0, 0.5])
    assert "**" not in table and "| only | 0.50 | 0.25 |" in table


def test_plot_marks_each_ceiling_and_ends_past_it(tmp_path):
    figure = plot_certified_accuracy([_table([0.3, 0.7], [1, 1]), _table([0.2], [1])], tmp_path / "p.png",
                                     ["a", "b"], ceilings=[0.8, None], title="sigma = 0.25, N = 500, alpha = 0.001")
    (axes,) = figure.axes
    assert axes.get_title() == "sigma = 0.25, N = 500, alpha = 0.001"
    dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [0.8, 0.8]
    assert dashed[0].get_label() == "largest certifiable radius 0.8"
    assert dashed[0].get_color() == axes.get_lines()[0].get_color()
    assert axes.get_lines()[0].get_label() == "a (ACR 0.500)"  # (0.3 + 0.7) / 2, both correct
    assert axes.get_xlim()[1] == pytest.approx(0.84)  # 5% past the ceiling: the last drop is inside
    with pytest.raises(ValueError, match="ceilings"):
        plot_certified_accuracy([_table([0.3], [1])], tmp_path / "p.png", ceilings=[0.5, 0.6])


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_format_data_gives_full_precision_and_the_acr(fmt):
    text = format_data(["a,b.tsv", "p.tsv"], [[2 / 3, 0.5], [0.9, 0.0]], [0.0, 0.25], [0.41, None], fmt)
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows == [["file", "acr", "r=0.0", "r=0.25"], ["a,b.tsv", "0.41", repr(2 / 3), "0.5"],
                        ["p.tsv", "", "0.9", "0.0"]]
    else:
        assert json.loads(text) == [{"file": "a,b.tsv", "acr": 0.41, "certified_accuracy": {"0.0": 2 / 3, "0.25": 0.5}},
                                    {"file": "p.tsv", "acr": None, "certified_accuracy": {"0.0": 0.9, "0.25": 0.0}}]
    with pytest.raises(ValueError, match="fmt"):
        format_data(["a"], [[0.5]], [0.0], [None], "markdown")


# ---------------------------------------------------------------- abstention rate, pA's lower bounds


def _rows(kind="certify", predict=(), label=None, radius=None, labels=None):
    predict = np.asarray(predict, dtype=np.int64)
    label = np.zeros(len(predict), dtype=np.int64) if label is None else np.asarray(label)
    correct = (predict == label).astype(np.int64) if labels is None else (np.asarray(labels) == label[:, None]).any(1)
    return ResultsTable(kind, np.arange(len(predict)), label, predict,
                        None if kind == "predict" else np.asarray(radius, dtype=np.float64),
                        np.asarray(correct, dtype=np.int64), np.ones(len(predict)),
                        labels=None if labels is None else np.asarray(labels, dtype=np.int64))


# Six rows at sigma = 0.5, one per bin and a wrong certificate: Phi(1) = 0.841 (0.5-0.9), Phi(1.5) =
# 0.933 (0.9-0.99), Phi(2.4) = 0.9918 (0.99-0.999), Phi(4) = 0.99997 (>= 0.999); the class-1 row
# certified with radius 2.0 is wrong (its true class is below 1/2), the -1 row abstained.
MIXED = dict(predict=[0, 0, 0, 1, -1, 0], radius=[0.5, 0.75, 1.2, 2.0, 0.0, 2.0])


def test_abstention_rate_counts_predict_minus_one_over_all_rows():
    assert abstention_rate(_rows(**MIXED)) == 1 / 6
    assert abstention_rate(_rows("predict", predict=[0, -1, -1, 2])) == 0.5
    assert abstention_rate(_rows(predict=[-1, -1, -1], radius=[0.0, 0.0, 0.0])) == 1.0
    assert abstention_rate(_rows(predict=[3], label=[3], radius=[0.1])) == 0.0


def test_abstention_rate_refuses_a_top_k_table_and_an_empty_one():
    # A top-k row is -1 wherever the true class is not certified among the labels: not an abstention.
    top_k = _rows(predict=[5, -1], label=[5, 5], radius=[0.4, 0.0], labels=[[5, 7], [-1, -1]])
    with pytest.raises(ValueError, match="top-k"):
        abstention_rate(top_k)
    with pytest.raises(ValueError, match="len\\(table\\)"):
        abstention_rate(_rows(predict=[], radius=[]))


def _phi(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_pa_lower_bounds_are_phi_of_radius_over_sigma_where_certified_correct():
    got = pa_lower_bounds(_rows(**MIXED), Gaussian(0.5))
    np.testing.assert_allclose(got, [_phi(1.0), _phi(1.5), _phi(2.4), 0.0, 0.0, _phi(4.0)], rtol=1e-15)
    # Laplace: 1 - exp(-R / b) / 2 with the applied scale b.
    laplace = Laplace(0.25)
    table = _rows(predict=[0, -1], radius=[laplace.scale * math.log(5.0), 0.0])
    np.testing.assert_allclose(pa_lower_bounds(table, laplace), [0.9, 0.0], rtol=1e-15)


def test_pa_lower_distribution_shares_of_all_rows_per_bin():
    assert pa_bin_labels() == ["<0.5", "0.5-0.9", "0.9-0.99", "0.99-0.999", ">=0.999"]
    shares = pa_lower_distribution(_rows(**MIXED), Gaussian(0.5))
    assert shares.tolist() == [2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6]
    assert pa_lower_distribution(_rows(**MIXED), Gaussian(0.5), edges=[0.95]).tolist() == [4 / 6, 2 / 6]
    # An abstention-only table: everything below 1/2, and the bounds all 0.
    abstained = _rows(predict=[-1, -1, -1], radius=[0.0, 0.0, 0.0])
    assert pa_lower_distribution(abstained, Gaussian(0.25)).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert pa_lower_bounds(abstained, Gaussian(0.25)).tolist() == [0.0, 0.0, 0.0]
    # The first bin is exactly the rows not certified correct: 1 - certified accuracy at r = 0.
    assert shares[0] == pytest.approx(1 - certified_accuracy(_rows(**MIXED), 0.0), abs=1e-15)
    assert format_pa_distribution(shares) == ("<0.5 0.333, 0.5-0.9 0.167, 0.9-0.99 0.167, 0.99-0.999 0.167, "
                                              ">=0.999 0.167")


@pytest.mark.parametrize("table, match", [
    (_rows("predict", predict=[0, -1]), "predict table"),
    (_rows(predict=[5], label=[5], radius=[0.4], labels=[[5, 7]]), "top-k table"),
], ids=["predict", "top-k"])
def test_pa_lower_bounds_refuse_tables_without_one_sided_radii(table, match):
    with pytest.raises(ValueError, match=match):
        pa_lower_bounds(table, Gaussian(0.25))
    with pytest.raises(ValueError, match=match):
        pa_lower_distribution(table, Gaussian(0.25))


@pytest.mark.parametrize("edges", [[], [0.9, 0.5], [0.5, 0.5], [0.0], [1.5], [[0.5]]])
def test_pa_edges_must_be_increasing_in_the_unit_interval(edges):
    with pytest.raises(ValueError, match="Expected `edges` to be increasing numbers in \\(0, 1\\]"):
        pa_bin_labels(edges)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_format_data_ends_with_the_abstention_rate_and_pa_bins(fmt):
    text = format_data(["a.tsv", "p.tsv"], [[0.5], [0.9]], [0.0], [0.41, None], fmt, abstentions=[0.25, 0.1],
                       pa_shares=[[0.5, 0.25, 0.25, 0.0, 0.0], None])
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert rows == [["file", "acr", "r=0.0", "abstention_rate", "pa_lower:<0.5", "pa_lower:0.5-0.9",
                         "pa_lower:0.9-0.99", "pa_lower:0.99-0.999", "pa_lower:>=0.999"],
                        ["a.tsv", "0.41", "0.5", "0.25", "0.5", "0.25", "0.25", "0.0", "0.0"],
                        ["p.tsv", "", "0.9", "0.1", "", "", "", "", ""]]
    else:
        assert json.loads(text) == [
            {"file": "a.tsv", "acr": 0.41, "certified_accuracy": {"0.0": 0.5}, "abstention_rate": 0.25,
             "pa_lower": {"<0.5": 0.5, "0.5-0.9": 0.25, "0.9-0.99": 0.25, "0.99-0.999": 0.0, ">=0.999": 0.0}},
            {"file": "p.tsv", "acr": None, "certified_accuracy": {"0.0": 0.9}, "abstention_rate": 0.1,
             "pa_lower": None}]
    with pytest.raises(ValueError, match="one `abstentions` entry per file"):
        format_data(["a"], [[0.5]], [0.0], [None], fmt, abstentions=[0.1, 0.2])
    with pytest.raises(ValueError, match="pa_shares"):
        format_data(["a"], [[0.5]], [0.0], [None], fmt, pa_shares=[[0.5, 0.5]])
