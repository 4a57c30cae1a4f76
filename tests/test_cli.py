"""The rsengine command, driven as a subprocess the way users run it."""
import datetime
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from reference_results import REFERENCE, needs_reference
from vision_extra import needs
from rsengine.checkpoints import save_checkpoint
from rsengine import commands
from rsengine.cli import _fill_defaults, build_parser
from rsengine.checkpoints import bundled_checkpoint
from rsengine.models import build_model
from rsengine.results import read_results

CERTIFY_REF = REFERENCE / "certify"


def rsengine(*args, cwd=None, timeout=600):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "rsengine", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def rsengine_without_matplotlib(*args, cwd=None, timeout=600):
    """``rsengine ARGS`` in a process where matplotlib cannot be imported, as without the plot extra."""
    code = ("import sys; sys.modules['matplotlib'] = None; from rsengine.cli import console_main; "
            f"sys.argv = ['rsengine', *{[str(a) for a in args]!r}]; sys.exit(console_main())")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- certify and predict --------------------------------------------------------------------

def test_certify_embedded_default_runs_and_reports(tmp_path):
    result = rsengine("certify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = read_results(tmp_path / "certify_mnist_sigma0.25.tsv")
    assert len(table) == 334 and table.idx.tolist() == list(range(0, 1000, 3))
    assert "no certificate can exceed 0.799 at sigma = 0.25, N = 10000" in result.stdout
    assert (tmp_path / "certify_mnist_sigma0.25.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "certified accuracy" in result.stdout and "| r = 0.5 |" in result.stdout.replace("  ", " ")
    assert str(tmp_path / "certify_mnist_sigma0.25.png") in result.stdout
    # The bundled model is a real robust classifier: most test digits certify at radius 0.25.
    assert np.mean(table.correct & (table.radius >= 0.25)) > 0.7


def test_the_embedded_default_runs_channels_last_unless_told_not_to(tmp_path):
    for flag, expected in (((), True), (("--no-channels-last",), False)):
        result = rsengine("certify", "--max", 7, "--N", 50, *flag, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        record = json.loads((tmp_path / "certify_mnist_sigma0.25.tsv.run.json").read_text())
        assert record["arguments"]["channels_last"] is expected and record["arguments"]["skip"] == 3
        assert read_results(tmp_path / "certify_mnist_sigma0.25.tsv").idx.tolist() == [0, 3, 6]
        (tmp_path / "certify_mnist_sigma0.25.tsv").unlink()
        (tmp_path / "certify_mnist_sigma0.25.tsv.run.json").unlink()


def _small_certify(tmp_path, name, *extra, sigma=0.25):
    out = tmp_path / name
    result = rsengine("certify", "mnist", bundled_checkpoint(), sigma, out, "--skip", 250, "--N0", 20,
                      "--N", 200, "--batch", 150, *extra)
    assert result.returncode == 0, result.stderr
    return read_results(out)


def test_certify_is_reproducible_and_independent_of_batch_and_selection(tmp_path):
    # sigma 0.75, three times the training noise: votes split, so radii vary with the noise.
    first = _small_certify(tmp_path, "a.tsv", sigma=0.75)
    assert first.idx.tolist() == [0, 250, 500, 750]
    again = _small_certify(tmp_path, "b.tsv", "--batch", 64, "--max", 600, sigma=0.75)
    # Input i always uses stream i: a different batch size or stop index changes nothing.
    assert again.idx.tolist() == [0, 250, 500]
    np.testing.assert_array_equal(again.predict, first.predict[:3])
    np.testing.assert_array_equal(again.radius, first.radius[:3])
    other_seed = _small_certify(tmp_path, "c.tsv", "--seed", 1, sigma=0.75)
    assert not np.array_equal(other_seed.radius, first.radius)


def test_certify_max_is_a_stop_index_even_off_the_skip_grid(tmp_path):
    table = _small_certify(tmp_path, "a.tsv", "--max", 251)
    assert table.idx.tolist() == [0, 250]


def test_certify_writes_the_original_header(tmp_path):
    _small_certify(tmp_path, "a.tsv", "--max", 1)
    lines = (tmp_path / "a.tsv").read_text().splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    assert len(lines) == 2 and lines[1].split("\t")[0] == "0"


def test_predict_writes_its_file(tmp_path):
    out = tmp_path / "p.tsv"
    result = rsengine("predict", "mnist", bundled_checkpoint(), 0.25, out, "--skip", 100, "--N", 100, "--max", 500)
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[0] == "idx\tlabel\tpredict\tcorrect\ttime"
    table = read_results(out)
    assert table.kind == "predict" and table.idx.tolist() == [0, 100, 200, 300, 400]
    assert "accuracy" in result.stdout


@needs("torchvision")
def test_certify_loads_an_original_format_checkpoint(tmp_path):
    # The original checkpoints: {'arch', 'state_dict'} of Sequential(NormalizeLayer, model),
    # keys "1.*". Certify a 32x32 RGB ImageFolder with a cifar_resnet20 saved that way.
    torch.manual_seed(0)
    model = build_model("cifar_resnet20")
    state = {f"1.{key}": value for key, value in model.state_dict().items()}
    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save({"arch": "cifar_resnet20", "state_dict": state, "epoch": 90}, checkpoint)
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for c in range(10):
        (images / f"class{c}").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"class{c}" / "0.png")
    out = tmp_path / "out.tsv"
    result = rsengine("certify", images, checkpoint, 0.25, out, "--N0", 10, "--N", 20, "--batch", 30, "--max", 3)
    assert result.returncode == 0, result.stderr
    assert read_results(out).idx.tolist() == [0, 1, 2]


# -- analyze --------------------------------------------------------------------------------

@needs_reference
def test_analyze_prints_the_published_certified_accuracies():
    files = [CERTIFY_REF / "imagenet/resnet50/noise_0.25/test/sigma_0.25",
             CERTIFY_REF / "imagenet/resnet50/noise_0.50/test/sigma_0.50",
             CERTIFY_REF / "imagenet/resnet50/noise_1.00/test/sigma_1.00"]
    result = rsengine("analyze", *files, "--radii", 0.5, 1.0, 2.0)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "sigma_" in line]
    cells = [[cell.strip() for cell in row.split("|")[2:5]] for row in rows]
    # Cohen et al. (2019), Table/Figure for ImageNet: 49% at r = 0.5 (sigma 0.25), 37% at r = 1
    # (sigma 0.5), 19% at r = 2 (sigma 1.0); the best value of each column is bold.
    assert cells[0][0] == "**0.49**" and cells[1][1] == "**0.37**" and cells[2][2] == "**0.19**"


@needs_reference
def test_analyze_latex_and_plot(tmp_path):
    refs = [CERTIFY_REF / f"cifar10/resnet110/noise_{s}/test/sigma_{s}" for s in ("0.25", "0.50")]
    plot = tmp_path / "curve.pdf"
    result = rsengine("analyze", *refs, "--format", "latex", "--plot", plot)
    assert result.returncode == 0, result.stderr
    assert "\\textbf{0.60}" in result.stdout  # 60% at r = 0.25 on CIFAR-10, sigma = 0.25
    assert plot.read_bytes()[:5] == b"%PDF-"


@needs_reference
def test_analyze_predict_files_give_clean_accuracy():
    ref = REFERENCE / "predict/imagenet/resnet50/noise_0.25/test/N_100000"
    result = rsengine("analyze", ref)
    assert result.returncode == 0, result.stderr
    assert "0.69" in result.stdout


# -- train ----------------------------------------------------------------------------------

def test_train_then_certify_with_the_new_checkpoint(tmp_path):
    checkpoint = tmp_path / "mnist.pt"
    result = rsengine("train", "mnist", "mnist_cnn", checkpoint, "--sigma", 0.25, "--epochs", 1,
                      "--batch", 500, "--lr", 0.05)
    assert result.returncode == 0, result.stderr
    assert "saved mnist_cnn" in result.stdout
    out = tmp_path / "out.tsv"
    result = rsengine("certify", "mnist", checkpoint, 0.25, out, "--N0", 10, "--N", 20, "--max", 2)
    assert result.returncode == 0, result.stderr
    assert len(read_results(out)) == 2


def test_train_reproduces_the_bundled_model(tmp_path):
    # The README's command for the bundled weights, bit for bit: same torch build, CPU, 2 threads
    # and AVX2 code in PyTorch, oneDNN and MKL (another torch version, thread count or
    # instruction set changes float summation order).
    if torch.__version__.split("+")[0] != "2.13.0":
        pytest.skip(f"the bundled weights were made with torch 2.13.0, this is {torch.__version__}")
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip(f"the bundled weights were made with AVX2 code; this CPU offers "
                    f"{torch.backends.cpu.get_cpu_capability()}")
    checkpoint = tmp_path / "mnist_cnn_sigma0.25.pt"
    env_threads = {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_CBWR": "AVX2"}
    result = subprocess.run(
        [sys.executable, "-m", "rsengine", "train", "mnist", "mnist_cnn", str(checkpoint), "--sigma", "0.25",
         "--epochs", "30", "--batch", "64", "--lr", "0.05", "--lr-schedule", "cosine", "--seed", "0",
         "--device", "cpu"],
        env={**os.environ, **env_threads}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    bundled = torch.load(bundled_checkpoint(), weights_only=True)
    rebuilt = torch.load(checkpoint, weights_only=True)
    assert bundled["arch"] == rebuilt["arch"] == "mnist_cnn"
    assert bundled["state_dict"].keys() == rebuilt["state_dict"].keys()
    for key, value in bundled["state_dict"].items():
        assert torch.equal(value, rebuilt["state_dict"][key]), key


# The methods with their costs cut (fewer copies and attack steps): every code path, seconds each.
CHEAP_METHODS = {"consistency": [], "macer": ["copies=4"], "smoothadv": ["copies=2", "steps=1"],
                 "smoothmix": ["copies=2", "steps=2"], "catrs": ["copies=2", "steps=1", "prepass_n=20"]}


@pytest.mark.parametrize("method", list(CHEAP_METHODS))
def test_train_each_method_for_an_epoch_and_its_checkpoint_records_it(tmp_path, method):
    from rsengine.checkpoints import load_checkpoint
    from rsengine.training_methods import method_named, method_of_record

    checkpoint = tmp_path / f"{method}.pt"
    settings = [arg for setting in CHEAP_METHODS[method] for arg in ("--hparam", setting)]
    result = rsengine("train", "mnist", "mnist_cnn", checkpoint, "--sigma", 0.5, "--epochs", 1, "--batch", 500,
                      "--lr", 0.05, "--method", method, *settings)
    assert result.returncode == 0, result.stderr
    assert f"method {method}: " in result.stdout and f"saved mnist_cnn trained by {method}" in result.stdout
    overrides = {name: int(value) for name, value in (setting.split("=") for setting in CHEAP_METHODS[method])}
    loaded = load_checkpoint(checkpoint)
    assert method_of_record(loaded.extra) == method_named(method, "mnist", 0.5, **overrides)
    assert loaded.extra["noise"] == "gaussian" and loaded.sigma == 0.5


@pytest.mark.parametrize("args, fragment", [
    (["--method", "macer", "--hparam", "lam"], "--hparam: expected NAME=NUMBER, e.g. lam=5, got 'lam'"),
    (["--method", "macer", "--hparam", "lam=five"], "got 'lam=five'"),
    (["--method", "macer", "--hparam", "lamda=1"], "Expected a hyperparameter of macer"),
    (["--method", "consistency", "--hparam", "copies=0"], "Expected `copies` of consistency in [1"),
    (["--method", "dropout"], "invalid choice: 'dropout'"),
    (["--method", "consistency", "--sigma", "0"], "Expected `sigma` > 0 for method 'consistency'"),
    (["--method", "macer", "--hparam", "lam=1", "--hparam", "lam=2"], "--hparam: lam given twice (1 and 2)"),
    (["--method", "macer", "--prepass-model", "x.pt"], "--prepass-model is CAT-RS's (--method catrs)"),
])
def test_train_bad_methods_get_one_line_errors(tmp_path, args, fragment):
    sigma = [] if "--sigma" in args else ["--sigma", 0.5]
    result = rsengine("train", "mnist", "mnist_cnn", tmp_path / "m.pt", *sigma, "--epochs", 1, *args)
    if "invalid choice" in fragment:  # argparse's own usage error
        assert result.returncode == 2 and fragment in result.stderr
    else:
        assert_one_line_error(result, fragment)
    assert not (tmp_path / "m.pt").exists()


def test_train_catrs_off_mnist_needs_its_pre_pass_model(tmp_path):
    assert_one_line_error(rsengine("train", "cifar10", "cifar_resnet20", tmp_path / "m.pt", "--sigma", 0.5,
                                   "--method", "catrs"), "--method catrs needs --prepass-model")


# -- errors ---------------------------------------------------------------------------------

def _corrupt(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a checkpoint")
    return path


def _cifar_checkpoint(tmp_path):
    path = tmp_path / "cifar.pt"
    save_checkpoint(path, build_model("cifar_resnet20"), "cifar_resnet20")
    return path


def _three_class_checkpoint(tmp_path):
    path = tmp_path / "three.pt"
    save_checkpoint(path, build_model("mnist_cnn", num_classes=3), "mnist_cnn")
    return path


def _unknown_arch_checkpoint(tmp_path):
    path = tmp_path / "vgg.pt"
    torch.save({"arch": "vgg16", "state_dict": {}}, path)
    return path


def _corrupt_cifar(tmp_path):
    batches = tmp_path / "data" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # a pickle cut short
    return tmp_path / "data"


BAD_CERTIFY = [
    (lambda tmp: ["mnist", bundled_checkpoint(), -0.5, tmp / "o.tsv"], ["SIGMA"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), "abc", tmp / "o.tsv"], ["SIGMA", "abc"]),
    (lambda tmp: ["mnist", tmp / "missing.pt", 0.25, tmp / "o.tsv"], ["missing.pt"]),
    (lambda tmp: ["mnist", _corrupt(tmp), 0.25, tmp / "o.tsv"], ["corrupt.pt"]),
    (lambda tmp: ["svhn", bundled_checkpoint(), 0.25, tmp / "o.tsv"], ["svhn"]),
    (lambda tmp: ["cifar10", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--data-dir", tmp / "nowhere"],
     ["nowhere"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--alpha", 2], ["--alpha"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--N", 0], ["--N"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--device", "cuda:7"], ["cuda:7"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--backend", "nope"], ["--backend"]),
    (lambda tmp: ["mnist", _cifar_checkpoint(tmp), 0.25, tmp / "o.tsv"], []),
    (lambda tmp: ["mnist", bundled_checkpoint()], ["OUTFILE"]),
    (lambda tmp: ["mnist", _three_class_checkpoint(tmp), 0.25, tmp / "o.tsv"], ["3 classes", "10"]),
    (lambda tmp: ["mnist", _unknown_arch_checkpoint(tmp), 0.25, tmp / "o.tsv"], ["vgg16"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--skip", 0], ["--skip"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--batch", -1], ["--batch"]),
    (lambda tmp: ["cifar10", _cifar_checkpoint(tmp), 0.25, tmp / "o.tsv", "--data-dir", _corrupt_cifar(tmp)],
     ["test_batch", "not a CIFAR-10 batch"]),
    (lambda tmp: ["mnist", bundled_checkpoint(), 0.25, tmp / "o.tsv", "--plot", tmp / "p.jpg"], ["--plot", ".jpg"]),
]


@pytest.mark.parametrize("make_args, fragments", BAD_CERTIFY,
                         ids=["negative-sigma", "text-sigma", "missing-checkpoint", "corrupt-checkpoint",
                              "unknown-dataset", "missing-cifar10", "alpha", "N", "absent-cuda",
                              "backend", "wrong-input-shape", "partial-positionals", "class-count",
                              "unknown-arch", "skip", "batch", "corrupt-cifar10", "plot-extension"])
def test_certify_bad_input_is_one_line(tmp_path, make_args, fragments):
    if "cuda:7" in fragments and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert_one_line_error(rsengine("certify", *make_args(tmp_path)), *fragments)


def test_certify_bad_input_leaves_no_results_file(tmp_path):
    result = rsengine("certify", "mnist", _three_class_checkpoint(tmp_path), 0.25, tmp_path / "o.tsv")
    assert result.returncode == 2
    assert not (tmp_path / "o.tsv").exists() and not (tmp_path / "o.tsv.run.json").exists()


def test_trust_pickle_is_an_explicit_opt_in(tmp_path):
    path = tmp_path / "pickled.pt"
    checkpoint = torch.load(bundled_checkpoint(), weights_only=True)
    checkpoint["trained_on"] = datetime.date(2019, 2, 8)  # a global weights_only loading refuses
    torch.save(checkpoint, path)
    refused = rsengine("certify", "mnist", path, 0.25, tmp_path / "o.tsv", "--max", 1, "--N", 10)
    assert_one_line_error(refused, "pickled.pt", "datetime.date", "--trust-pickle")
    trusted = rsengine("certify", "mnist", path, 0.25, tmp_path / "o.tsv", "--max", 1, "--N", 10, "--trust-pickle")
    assert trusted.returncode == 0, trusted.stderr
    assert "weights_only=False" in trusted.stderr  # the warning
    assert len(read_results(tmp_path / "o.tsv")) == 1


def test_analyze_notes_an_unfinished_run(tmp_path):
    out = tmp_path / "out.tsv"
    assert rsengine("certify", "mnist", bundled_checkpoint(), 0.25, out, "--max", 1, "--N", 10).returncode == 0
    record = out.with_name("out.tsv.run.json")
    record.write_text(record.read_text().replace('"complete": true', '"complete": false'))
    result = rsengine("analyze", out)
    assert result.returncode == 0 and "has not finished" in result.stderr


def test_analyze_rejects_a_results_file_without_rows(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n")
    assert_one_line_error(rsengine("analyze", empty), "empty.tsv", "no rows")


def test_a_checkpoint_without_normalization_is_certified_without_it(tmp_path):
    # mean/std None in an rsengine checkpoint means "pixels as they are": the data set's
    # statistics must not be slipped in (that would certify another classifier).
    path = tmp_path / "raw.pt"
    save_checkpoint(path, build_model("mnist_cnn"), "mnist_cnn", sigma=0.25)
    opts = build_parser().parse_args(["certify", "mnist", str(path), "0.25", str(tmp_path / "o.tsv")])
    _fill_defaults(opts)
    smooth, _ = commands._smoothed_model(opts)
    assert smooth.mean is None and smooth.std is None


def test_analyze_rejects_a_file_that_is_not_a_results_file(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\tworld\n1\t2\n")
    assert_one_line_error(rsengine("analyze", junk), "notes.txt", "line 1")


def test_analyze_rejects_a_plot_with_an_unknown_extension(tmp_path):
    ref = CERTIFY_REF / "cifar10/resnet110/noise_0.25/test/sigma_0.25"
    assert_one_line_error(rsengine("analyze", ref, "--plot", tmp_path / "curve.jpgx"), ".jpgx")


def test_a_plot_without_matplotlib_is_refused_before_any_sampling(tmp_path):
    out = tmp_path / "o.tsv"
    refused = rsengine_without_matplotlib("certify", "mnist", bundled_checkpoint(), 0.25, out, "--plot",
                                          tmp_path / "p.png", "--max", 1, "--N", 50)
    assert_one_line_error(refused, "--plot needs matplotlib", 'pip install "rsengine[plot]"')
    assert list(tmp_path.iterdir()) == []  # no results file, no run record: nothing was sampled
    table = tmp_path / "certify.tsv"
    table.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0:00:01.000000\n")
    assert_one_line_error(rsengine_without_matplotlib("analyze", table, "--plot", tmp_path / "p.pdf"),
                          'pip install "rsengine[plot]"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certify.tsv"]


def test_the_embedded_default_skips_its_plot_without_matplotlib(tmp_path):
    result = rsengine_without_matplotlib("certify", "--max", 4, "--N", 100, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'note: no plot (matplotlib is not installed: pip install "rsengine[plot]")' in result.stderr.splitlines()
    assert "plot saved" not in result.stdout and "average certified radius" in result.stdout
    assert not (tmp_path / "certify_mnist_sigma0.25.png").exists()
    assert len(read_results(tmp_path / "certify_mnist_sigma0.25.tsv")) == 2


def test_train_rejects_unknown_architectures(tmp_path):
    assert_one_line_error(rsengine("train", "mnist", "vgg16", tmp_path / "m.pt", "--sigma", 0.25), "vgg16")


def test_a_run_logged_to_a_file_prints_plain_progress_lines(tmp_path):
    # stderr is a pipe here, as in a SLURM log or nohup.out: lines, not a redrawn bar.
    result = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, tmp_path / "o.tsv", "--skip", 50, "--N0", 20,
                      "--N", 100, "--batch", 20)  # 20 inputs, chunks of 2: a line each 10%
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr and len(lines) == 10, result.stderr
    pattern = r"certify: (\d+)/20 inputs \((\d+)%\), \d+:\d\d:\d\d elapsed, ETA \d+:\d\d:\d\d"
    done = [re.fullmatch(pattern, line).groups() for line in lines]
    assert done == [(str(2 * k), str(10 * k)) for k in range(1, 11)]
    predicted = rsengine("predict", "mnist", bundled_checkpoint(), 0.25, tmp_path / "p.tsv", "--skip", 100, "--N", 50)
    assert predicted.returncode == 0 and predicted.stderr.splitlines()[-1].startswith("predict: 10/10 inputs (100%), ")


def test_analyze_for_tools_csv_and_json_trimmed_at_the_ceiling(tmp_path):
    out = tmp_path / "o.tsv"
    ran = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, out, "--skip", 250, "--N0", 20, "--N", 200,
                   "--plot", tmp_path / "o.png")
    assert ran.returncode == 0, ran.stderr
    original = tmp_path / "original.tsv"  # the original code's file: no run record, today's columns
    original.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t1.2\t1\t0:00:01.000000\n")
    as_csv = rsengine("analyze", out, "--format", "csv")
    assert as_csv.returncode == 0 and as_csv.stderr == "", as_csv.stderr
    header, row = as_csv.stdout.splitlines()  # N = 200: no radius can pass 0.25 * PhiInv(0.001 ** (1/200)) = 0.44
    assert header.startswith("file,acr,r=0.0,r=0.25,abstention_rate,pa_lower:<0.5,") and row.startswith(f"{out},")
    assert float(row.split(",")[1]) == pytest.approx(commands.analyze.average_certified_radius(read_results(out)))
    both = rsengine("analyze", out, original, "--format", "json")
    assert both.returncode == 0 and both.stderr == "", both.stderr
    files = json.loads(both.stdout)
    assert [f["file"] for f in files] == [str(out), str(original)] and files[1]["acr"] == 1.2
    # A file without a record has no known ceiling: today's columns for both.
    assert list(files[0]["certified_accuracy"]) == [f"{0.25 * k}" for k in range(10)]
    assert files[1]["certified_accuracy"]["1.0"] == 1.0 and files[1]["certified_accuracy"]["1.25"] == 0.0
    assert files[1]["abstention_rate"] == 0.0 and files[1]["pa_lower"] is None  # no record: no sigma to read it
    markdown = rsengine("analyze", out)
    assert markdown.stdout.splitlines()[0] == "|  | r = 0.0 | r = 0.25 |"


def _results_file(path, rows, arguments=None):
    """A certify file of (label, predict, radius) rows, with a run record of ``arguments`` if given."""
    lines = [f"{j}\t{label}\t{predict}\t{radius}\t{int(str(label) in str(predict).split(','))}\t0:00:01"
             for j, (label, predict, radius) in enumerate(rows)]
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n" + "\n".join(lines) + "\n")
    if arguments is not None:
        (path.parent / (path.name + ".run.json")).write_text(json.dumps({"arguments": arguments, "complete": True}))
    return path


def test_analyze_reports_the_abstention_rate_and_pa_bounds_or_why_not(tmp_path):
    # sigma = 0.5: Phi(1) = 0.841, Phi(2.4) = 0.9918, Phi(4) = 0.99997; a wrong and an abstained row below 1/2.
    one_sided = _results_file(tmp_path / "one.tsv", [(0, 0, 0.5), (0, 0, 1.2), (0, 0, 2.0), (0, 1, 0.9), (0, -1, 0.0)],
                              dict(sigma=0.5, N=100000, N0=100, alpha=0.001))
    two_sided = _results_file(tmp_path / "two.tsv", [(0, 0, 0.5), (0, -1, 0.0)],
                              dict(sigma=0.5, N=100000, N0=100, alpha=0.001, two_sided=True))
    top_k = _results_file(tmp_path / "topk.tsv", [(3, "3,5", 0.5), (3, -1, 0.0)],
                          dict(sigma=0.5, N=100000, N0=100, alpha=0.001, top_k=2))
    original = _results_file(tmp_path / "orig.tsv", [(0, 0, 0.5), (0, -1, 0.0), (0, -1, 0.0), (1, 1, 0.2)])
    result = rsengine("analyze", one_sided, two_sided, top_k, original, "--radii", "0", "1")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if "abstention" in line or "pA" in line]
    assert notes == [
        f"{one_sided}: abstention rate 0.200",
        f"{one_sided}: pA lower bounds (true class), share of inputs per bin [low, high): <0.5 0.400, 0.5-0.9 0.200, "
        "0.9-0.99 0.000, 0.99-0.999 0.200, >=0.999 0.200",
        f"{two_sided}: abstention rate 0.500",
        f"{two_sided}: pA lower bounds not available: two-sided radii depend on the runner-up's upper bound pB too",
        f"{top_k}: abstention rate not available: a top-k file writes -1 wherever the true class is not certified "
        "among its labels, abstaining or not",
        f"{top_k}: pA lower bounds not available: top-k radii depend on the other classes' upper bounds too",
        f"{original}: abstention rate 0.500",
        f"{original}: pA lower bounds not available: no run record says its noise and sigma (a file of the original "
        "code)",
    ]
    # A reason several files share is said once, for all of them.
    copy = tmp_path / "orig2.tsv"
    copy.write_text(original.read_text())
    twice = rsengine("analyze", original, copy, one_sided, "--radii", "0")
    assert [line for line in twice.stdout.splitlines() if "not available" in line] == [
        f"{original} and 1 more file: pA lower bounds not available: no run record says its noise and sigma (a file "
        "of the original code)"]
    data = rsengine("analyze", one_sided, two_sided, top_k, original, "--radii", "0", "1", "--format", "csv")
    assert data.returncode == 0 and "abstention" not in data.stderr and "pA" not in data.stderr, data.stderr
    rows = [line.split(",") for line in data.stdout.splitlines()]
    assert rows[0][4:] == ["abstention_rate", "pa_lower:<0.5", "pa_lower:0.5-0.9", "pa_lower:0.9-0.99",
                           "pa_lower:0.99-0.999", "pa_lower:>=0.999"]
    assert [row[4:] for row in rows[1:]] == [["0.2", "0.4", "0.2", "0.0", "0.2", "0.2"], ["0.5", "", "", "", "", ""],
                                             ["", "", "", "", "", ""], ["0.5", "", "", "", "", ""]]


def test_plot_titles_come_from_the_run_record(tmp_path):
    from rsengine.resume import read_run_record, recorded_arguments

    out = tmp_path / "o.tsv"
    ran = rsengine("certify", "mnist", bundled_checkpoint(), 0.25, out, "--skip", 500, "--N0", 20, "--N", 200)
    assert ran.returncode == 0, ran.stderr
    arguments = recorded_arguments(read_run_record(out))
    assert commands.plot_title([arguments]) == "sigma = 0.25, N = 200, alpha = 0.001\nmodel mnist_cnn_sigma0.25.pt on mnist"
    other = dict(arguments, checkpoint_sha256="ab" * 32, sigma=0.5, noise="laplace")
    assert commands.plot_title([other]) == "sigma = 0.5, N = 200, alpha = 0.001, laplace noise\nmodel checkpoint abababababab on mnist"
    assert commands.plot_title([arguments, other]) == "N = 200, alpha = 0.001"  # only what the files share
    assert commands.plot_title([{}]) is None  # the original code's files


def test_version_is_the_installed_packages():
    from importlib import metadata

    result = rsengine("--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"rsengine {metadata.version('rsengine')}\n" == "rsengine 0.1.0\n"


def test_help_and_usage_errors():
    assert rsengine("--help").returncode == 0
    assert_one_line_error(rsengine("frobnicate"), "frobnicate")
