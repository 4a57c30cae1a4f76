"""What the golden files freeze and how each run is normalised: shared by the generator and the test.

``make_goldens.py`` (beside this file) runs every case of :func:`all_cases` and writes the JSON
files of :data:`FILES`; ``tests/test_goldens.py`` runs the same cases against the installed
rsengine and compares each result with its golden exactly. Both go through :func:`run_case`, so
the two cannot drift apart.

Four kinds of case:

* ``cli``: a sequence of ``rsengine`` commands (``rsengine.cli.main(argv)`` in-process, stdout and
  stderr captured, exit status kept) run in a fresh, empty directory, then a snapshot of every
  file the commands left there: results files byte for byte except the values of their ``time``
  column, run records byte for byte except the environment values listed in
  :data:`VOLATILE_ENVIRONMENT_KEYS`, plots by name only (their bytes are matplotlib's).
* ``call``: a public function of rsengine.stats, rsengine.certificates, rsengine.sound or
  rsengine.kernels.contract on fixed arguments; every float is stored as ``float.hex()``.
* ``smooth``: ``Smooth`` on a small fixed ``torch.nn.Linear`` classifier and fixed inputs.
* ``api_refusal``: a ``Smooth`` call that raises: the exception's type and message.

Normalised, because it varies between runs on one machine or names this checkout: the working
directory (``<TMP>``), the bundled checkpoint's path (``<BUNDLED_CHECKPOINT>``), the installed
package's directory (``<RSENGINE>``), a seed drawn by ``--seed random`` (``<RANDOM_SEED>``), the
``time`` column of results files (``<time>``), the times of the progress lines a run prints on
stderr off a terminal (``<elapsed>``, ``<eta>``; the lines and their counts kept) and the run
records' thread count, library versions, CPU capability and device name (``"<masked>"``, keys
kept). Nothing else is loosened.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import itertools
import json
import os
import re
import warnings
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent

# Where each group of cases is kept (file name -> what it holds).
FILES = {
    "cli_runs.json": "results files, run records, stdout and stderr of accepted rsengine commands",
    "cli_refusals.json": "exit status and exact messages of refused rsengine commands (precedence included)",
    "stats.json": "float64 results (float.hex) of the statistics functions on fixed vote counts",
    "smooth.json": "Smooth's predictions, radii and counts on a fixed Linear classifier",
    "api_refusals.json": "exception type and message of refused Smooth calls",
}

BUNDLED = "<BUNDLED_CHECKPOINT>"  # in an argv: replaced by rsengine.checkpoints.bundled_checkpoint()
TMP = "<TMP>"
MASKED = '"<masked>"'
VOLATILE_ENVIRONMENT_KEYS = ("cpu_capability", "device_name", "threads", "torch", "triton", "cudnn")
# Variables that change what a run records or does (data locations, torchrun ranks): unset while a case runs.
CLEARED_ENVIRONMENT = ("RSENGINE_DATA", "IMAGENET_DIR", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                       "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
# argparse wraps --help to the terminal width: fixed while a case runs.
FIXED_ENVIRONMENT = {"COLUMNS": "100"}


# -- running and normalising CLI commands ------------------------------------------------------

@contextlib.contextmanager
def hermetic(workdir):
    """Run in ``workdir`` with the variables that change a run's record unset, restoring all after."""
    saved = {name: os.environ.get(name) for name in (*CLEARED_ENVIRONMENT, *FIXED_ENVIRONMENT)}
    for name in CLEARED_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ.update(FIXED_ENVIRONMENT)
    previous = os.getcwd()
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(previous)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli(argv: list[str]) -> tuple[int, str, str, list[str]]:
    """``rsengine.cli.main(argv)`` in-process: (exit status, stdout, stderr, warnings raised)."""
    from rsengine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse's errors and --help
            status = exit_.code
    return status, out.getvalue(), err.getvalue(), [f"{w.category.__name__}: {w.message}" for w in caught]


def run_cli_subprocess(argv: list[str]) -> tuple[int, str, str, list[str]]:
    """``python -m rsengine argv`` in a child process (the environment as :func:`hermetic` left it),
    for the one case that checks the in-process runs say what a real command says."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-m", "rsengine", *argv], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=600)
    return child.returncode, child.stdout, child.stderr, []  # a child's warnings are on its stderr


def _replacements(workdir) -> list[tuple[str, str]]:
    from rsengine.checkpoints import bundled_checkpoint
    import rsengine

    pairs = [(os.path.realpath(workdir), TMP), (os.fspath(workdir), TMP),
             (bundled_checkpoint(), BUNDLED), (os.path.realpath(bundled_checkpoint()), BUNDLED),
             (os.path.dirname(os.path.realpath(rsengine.__file__)), "<RSENGINE>"),
             (os.path.dirname(rsengine.__file__), "<RSENGINE>")]
    return sorted(set(pairs), key=lambda pair: -len(pair[0]))  # longest first: a path inside another


# rsengine.progress's lines: "certify: 2/7 inputs (28%), 0:00:01 elapsed, ETA 0:00:02".
_PROGRESS_TIMES = re.compile(r"^(\w+: \d+/\d+ inputs \(\d+%\)), \d+:\d\d:\d\d elapsed, ETA (?:\d+:\d\d:\d\d|\?)$", re.M)


def normalise(text: str, workdir, masks=()) -> str:
    """``text`` with this run's paths replaced by placeholders, progress times masked and the case's
    own ``masks`` applied."""
    for old, new in _replacements(workdir):
        text = text.replace(old, new)
    text = _PROGRESS_TIMES.sub(r"\1, <elapsed> elapsed, ETA <eta>", text)
    for pattern, replacement in masks:
        text = re.sub(pattern, replacement, text)
    return text


def _lines(text: str) -> list[str]:
    # "\n".join(result) is the text again, last newline included: byte for byte.
    return text.split("\n")


def mask_results_file(text: str) -> list[str]:
    """A results file's lines with every value of its ``time`` column replaced by ``<time>``."""
    lines = _lines(text)
    header = lines[0].split("\t")
    if "time" not in header:
        return lines
    column = header.index("time")
    masked = [lines[0]]
    for line in lines[1:]:
        cells = line.split("\t")
        if len(cells) == len(header):
            cells[column] = "<time>"
        masked.append("\t".join(cells))
    return masked


_VOLATILE = re.compile(r'^(\s*"(?:%s)": )(.*?)(,?)$' % "|".join(VOLATILE_ENVIRONMENT_KEYS), re.M)


def mask_run_record(text: str) -> list[str]:
    """A run record's lines with the volatile environment values masked (keys kept)."""
    return _lines(_VOLATILE.sub(lambda m: m.group(1) + MASKED + m.group(3), text))


def snapshot(workdir, masks=()) -> dict:
    """Every file under ``workdir``, normalised: results files, run records, text; binaries by name."""
    files = {}
    for path in sorted(Path(workdir).rglob("*")):
        if path.is_dir():
            continue
        name = path.relative_to(workdir).as_posix()
        data = path.read_bytes()
        if name.endswith((".png", ".pdf")):
            files[name] = {"binary": name.rsplit(".", 1)[1], "starts_like_one": data[:4] in (b"\x89PNG", b"%PDF")}
            continue
        try:
            text = normalise(data.decode("utf-8"), workdir, masks)
        except UnicodeDecodeError:
            files[name] = {"binary": "bytes", "sha256": hashlib.sha256(data).hexdigest()}
            continue
        if name.endswith(".run.json"):
            files[name] = mask_run_record(text)
        elif name.endswith(".tsv"):
            files[name] = mask_results_file(text)
        else:
            files[name] = _lines(text)
    return files


def make_image_folder(path: str, classes: int, per_class: int, mode: str = "L", size: int = 28) -> None:
    """An ImageFolder tree ``path/c<k>/<i>.png`` of fixed pseudo-random images (numpy seed 0)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    channels = {"L": (size, size), "RGB": (size, size, 3)}[mode]
    for k in range(classes):
        os.makedirs(os.path.join(path, f"c{k}"))
        for i in range(per_class):
            pixels = rng.integers(0, 256, channels, dtype=np.uint8)
            Image.fromarray(pixels, mode).save(os.path.join(path, f"c{k}", f"{i}.png"))


def _argv(argv: list[str]) -> list[str]:
    from rsengine.checkpoints import bundled_checkpoint

    return [bundled_checkpoint() if a == BUNDLED else a for a in argv]


def run_cli_case(case: dict, workdir, runner=run_cli) -> dict:
    """Run a ``cli`` case's steps in ``workdir`` (empty) with ``runner`` (:func:`run_cli` or
    :func:`run_cli_subprocess`); its normalised outputs and files."""
    masks = case.get("masks", ())
    steps = []
    with hermetic(workdir):
        for step in case["steps"]:
            if "write" in step:
                Path(step["write"]).write_text(step["text"], encoding="utf-8")
                steps.append({"wrote": step["write"]})
                continue
            if "truncate" in step:  # a run killed after ``lines`` lines (and part of the next)
                with open(step["truncate"], encoding="utf-8", newline="") as file:
                    kept = file.read().split("\n")[:step["lines"]]
                with open(step["truncate"], "w", encoding="utf-8", newline="") as file:
                    file.write("\n".join(kept) + "\n" + step.get("extra", ""))
                steps.append({"truncated": step["truncate"], "lines": step["lines"], "extra": step.get("extra", "")})
                continue
            if "edit_record" in step:  # as rsengine.resume writes records
                record_path = step["edit_record"] + ".run.json"
                record = json.loads(Path(record_path).read_text(encoding="utf-8"))
                record.update(step["set"])
                Path(record_path).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
                steps.append({"edited": record_path, "set": step["set"]})
                continue
            if "images" in step:
                make_image_folder(**step["images"])
                steps.append({"made": step["images"]})
                continue
            if "if_exists" in step and not os.path.exists(step["if_exists"]):
                steps.append({"argv": step["argv"], "skipped": f"no {step['if_exists']}"})
                continue
            status, out, err, caught = runner(_argv(step["argv"]))
            steps.append({"argv": step["argv"], "exit": status, "stdout": _lines(normalise(out, workdir, masks)),
                          "stderr": _lines(normalise(err, workdir, masks)),
                          "warnings": [normalise(w, workdir, masks) for w in caught]})
    return {"steps": steps, "files": snapshot(workdir, masks)}


# -- the CLI cases ----------------------------------------------------------------------------

def _step(*argv: str, if_exists: str | None = None) -> dict:
    step = {"argv": list(argv)}
    if if_exists is not None:  # run only where an earlier step wrote this file
        step["if_exists"] = if_exists
    return step


def _case(name: str, *steps: dict, masks=()) -> dict:
    case = {"name": name, "kind": "cli", "steps": list(steps)}
    if masks:
        case["masks"] = [list(m) for m in masks]
    return case


# The noise x question x --deterministic matrix. Each question: (command, its options).
NOISES = {"gaussian": [], "laplace": ["--noise", "laplace"], "uniform": ["--noise", "uniform"], "sound": ["--sound"]}
QUESTIONS = {
    "certify": ("certify", []),
    "two_sided": ("certify", ["--two-sided"]),
    "top_k2": ("certify", ["--top-k", "2"]),
    "predict": ("predict", []),
    "adaptive_radius": ("certify", ["--adaptive", "--radius", "0.25"]),
    "adaptive_tolerance": ("certify", ["--adaptive", "--tolerance", "0.1"]),
}
# Two settings of the matrix. "embedded": no positional arguments (the bundled CNN, sigma 0.25,
# channels_last, a plot); seven inputs of seven classes. "sigma1": DATASET BASE_CLASSIFIER SIGMA
# OUTFILE given (the original defaults: no plot, contiguous), SIGMA = 1.0 so that votes split,
# rows abstain and some are wrong: fifteen inputs of all ten classes.
EMBEDDED_SIZE = ["--N0", "20", "--N", "200", "--max", "1000", "--skip", "150", "--batch", "100"]
SIGMA1_SIZE = ["--N0", "20", "--N", "200", "--max", "1000", "--skip", "70", "--batch", "100"]
SETTINGS = {
    "embedded": ([], EMBEDDED_SIZE, {"certify": "certify_mnist_sigma0.25.tsv", "predict": "predict_mnist_sigma0.25.tsv"}),
    "sigma1": (["mnist", BUNDLED, "1.0", "out.tsv"], SIGMA1_SIZE, {"certify": "out.tsv", "predict": "out.tsv"}),
}


def _for_command(command: str, size: list[str]) -> list[str]:
    if command == "certify":
        return list(size)
    i = size.index("--N0")  # predict has no --N0
    return size[:i] + size[i + 2:]


def matrix_cases() -> list[dict]:
    cases = []
    for (setting, (positional, size, outfiles)), (noise, noise_args), (question, (command, options)), deterministic \
            in itertools.product(SETTINGS.items(), NOISES.items(), QUESTIONS.items(), (False, True)):
        argv = [command, *positional, *_for_command(command, size), *options, *noise_args]
        argv += ["--deterministic"] * deterministic
        cases.append(_case(f"matrix/{setting}/{noise}/{question}/{'det' if deterministic else 'nondet'}",
                           _step(*argv), _step("analyze", outfiles[command], if_exists=outfiles[command])))
    return cases


E = EMBEDDED_SIZE
ECERT = "certify_mnist_sigma0.25.tsv"
EPRED = "predict_mnist_sigma0.25.tsv"


def extra_run_cases() -> list[dict]:
    """The embedded default's small runs, other options, resuming, analyze's options."""
    return [
        # (b) the embedded default with only --max and --N given.
        _case("default/certify", _step("certify", "--max", "10", "--N", "1000"), _step("analyze", ECERT)),
        _case("default/predict", _step("predict", "--max", "10", "--N", "1000"), _step("analyze", EPRED)),
        # Other options of certify and predict, one at a time.
        _case("option/seed7", _step("certify", *E, "--seed", "7")),
        _case("option/alpha0.01", _step("certify", *E, "--alpha", "0.01")),
        _case("option/backend_torch", _step("certify", *E, "--backend", "torch")),
        _case("option/backend_cpu", _step("certify", *E, "--backend", "cpu")),
        _case("option/precision_bf16", _step("certify", *E, "--precision", "bf16")),
        _case("option/no_channels_last", _step("certify", *E, "--no-channels-last")),
        _case("option/split_train", _step("certify", *E, "--split", "train")),
        _case("option/plot_pdf", _step("certify", *E, "--plot", "plot.pdf")),
        _case("option/top_k9", _step("certify", *E, "--top-k", "9"), _step("analyze", ECERT)),
        _case("option/max0", _step("certify", *E[:4], "--max", "0"), _step("analyze", ECERT)),
        _case("option/skip2000", _step("certify", *E[:4], "--skip", "2000")),
        _case("option/N5_warning", _step("certify", "--N0", "20", "--N", "5", "--max", "1000", "--skip", "300")),
        _case("option/N5_top_k_warning",
              _step("certify", "--N0", "20", "--N", "5", "--max", "1000", "--skip", "300", "--top-k", "2")),
        _case("option/predict_seed7_alpha0.1", _step("predict", *_for_command("predict", E), "--seed", "7",
                                                       "--alpha", "0.1")),
        _case("option/sigma1_sound_alpha0.05",
              _step("certify", "mnist", BUNDLED, "1.0", "out.tsv", *SIGMA1_SIZE, "--sound", "--alpha", "0.05")),
        _case("option/sigma0.12_laplace",
              _step("certify", "mnist", BUNDLED, "0.12", "out.tsv", *SIGMA1_SIZE, "--noise", "laplace")),
        # Resuming: the same command again, other arguments, another environment.
        _case("resume/same_again", _step("certify", *E), _step("certify", *E)),
        _case("resume/other_N", _step("certify", *E), _step("certify", *E[:2], "--N", "300", *E[4:])),
        _case("resume/other_N_overwrite", _step("certify", *E),
              _step("certify", *E[:2], "--N", "300", *E[4:], "--overwrite")),
        _case("resume/other_batch", _step("certify", *E), _step("certify", *E[:-1], "50")),
        _case("resume/more_inputs", _step("certify", *E[:4], "--max", "450", *E[6:]), _step("certify", *E)),
        # A killed run (rows cut off, the record not complete) resumed; with another batch size.
        _case("resume/partial", _step("certify", *E), {"truncate": ECERT, "lines": 3},
              {"edit_record": ECERT, "set": {"complete": False}}, _step("certify", *E)),
        _case("resume/partial_last_line", _step("predict", *_for_command("predict", E)),
              {"truncate": EPRED, "lines": 4, "extra": "450\t4\t"},
              {"edit_record": EPRED, "set": {"complete": False}}, _step("predict", *_for_command("predict", E))),
        _case("resume/partial_other_batch", _step("certify", *E), {"truncate": ECERT, "lines": 2},
              {"edit_record": ECERT, "set": {"complete": False}}, _step("certify", *E[:-1], "50"),
              _step("certify", *E[:-1], "50", "--resume-with-changes")),
        _case("resume/partial_deterministic", _step("certify", *E, "--deterministic"), {"truncate": ECERT, "lines": 5},
              _step("certify", *E, "--deterministic")),
        # An adaptive run interrupted with inputs stopped early: their rows are dropped and redone.
        _case("resume/adaptive_stopped_early", _step("certify", *E, "--adaptive", "--radius", "0.25"),
              {"edit_record": ECERT, "set": {"complete": False, "stopped_early": [150, 450]}},
              _step("certify", *E, "--adaptive", "--radius", "0.25")),
        _case("resume/not_ours", {"write": ECERT, "text": "not a results file\n"}, _step("certify", *E)),
        _case("resume/predict_over_certify_file",
              _step("certify", "mnist", BUNDLED, "1.0", "out.tsv", *SIGMA1_SIZE),
              _step("predict", "mnist", BUNDLED, "1.0", "out.tsv", *_for_command("predict", SIGMA1_SIZE))),
        # --seed random: the drawn seed is masked; the run is refused before any row.
        _case("seed_random/refused_batch0", _step("certify", *E[:-1], "0", "--seed", "random"),
              masks=[(r"seed \d+, drawn", "seed <RANDOM_SEED>, drawn")]),
        # analyze's options and combinations of files.
        _case("analyze/latex", _step("certify", *E), _step("analyze", ECERT, "--format", "latex")),
        _case("analyze/radii", _step("certify", *E), _step("analyze", ECERT, "--radii", "0", "0.3", "0.45", "10")),
        _case("analyze/two_files", _step("certify", *E), _step("certify", *E, "--two-sided", "--overwrite"),
              _step("certify", "mnist", BUNDLED, "1.0", "out.tsv", *SIGMA1_SIZE),
              _step("analyze", ECERT, "out.tsv")),
        _case("analyze/l1_files", _step("certify", *E, "--noise", "laplace"),
              _step("certify", "mnist", BUNDLED, "1.0", "out.tsv", *SIGMA1_SIZE, "--noise", "uniform"),
              _step("analyze", ECERT, "out.tsv")),
        _case("analyze/mixed_norms", _step("certify", *E, "--noise", "laplace"),
              _step("certify", "mnist", BUNDLED, "1.0", "out.tsv", *SIGMA1_SIZE),
              _step("analyze", ECERT, "out.tsv")),
        _case("analyze/certify_and_predict", _step("certify", *E), _step("predict", *_for_command("predict", E)),
              _step("analyze", ECERT, EPRED)),
        _case("analyze/plot_of_predict", _step("predict", *_for_command("predict", E)),
              _step("analyze", EPRED, "--plot", "p.png")),
        _case("analyze/plot", _step("certify", *E), _step("analyze", ECERT, "--plot", "p.png")),
        _case("analyze/adaptive_latex", _step("certify", *E, "--adaptive", "--tolerance", "0.1"),
              _step("analyze", ECERT, "--format", "latex")),
        _case("analyze/adaptive_and_top_k_sound",
              _step("certify", *E, "--adaptive", "--radius", "0.25"),
              _step("certify", "mnist", BUNDLED, "1.0", "topk.tsv", *SIGMA1_SIZE, "--top-k", "3"),
              _step("certify", "mnist", BUNDLED, "1.0", "sound.tsv", *SIGMA1_SIZE, "--sound"),
              _step("predict", "mnist", BUNDLED, "1.0", "soundp.tsv", *_for_command("predict", SIGMA1_SIZE), "--sound"),
              _step("analyze", ECERT, "topk.tsv", "sound.tsv")),
        _case("analyze/sound_predict", _step("predict", *_for_command("predict", E), "--sound"),
              _step("analyze", EPRED)),
        _case("analyze/unfinished", {"write": "x.tsv", "text": "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
                                                               "0\t3\t3\t0.5\t1\t0:00:01\n"},
              {"write": "x.tsv.run.json", "text": '{"kind": "certify", "complete": false, "arguments": {}}'},
              _step("analyze", "x.tsv")),
        _case("analyze/original_code_file", {"write": "x.tsv", "text": "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
                                                                       "0\t3\t3\t0.5\t1\t15.4\n"
                                                                       "1\t2\t-1\t0.0\t0\t15.6\n"},
              _step("analyze", "x.tsv")),
        # A data set given as an ImageFolder directory, and --data-dir: absolute paths in the record.
        _case("folder/certify", {"images": {"path": "imgs", "classes": 10, "per_class": 2}},
              _step("certify", "imgs", BUNDLED, "0.5", "out.tsv", "--N0", "20", "--N", "100", "--batch", "100"),
              _step("analyze", "out.tsv")),
        _case("folder/predict_sound", {"images": {"path": "imgs", "classes": 10, "per_class": 1}},
              _step("predict", "imgs", BUNDLED, "0.5", "out.tsv", "--N", "100", "--batch", "100", "--sound")),
        _case("folder/split_train", {"images": {"path": "imgs/train", "classes": 10, "per_class": 1}},
              {"images": {"path": "imgs/val", "classes": 10, "per_class": 1}},
              _step("certify", "imgs", BUNDLED, "0.5", "out.tsv", "--N0", "20", "--N", "100", "--batch", "100",
                    "--split", "train")),
        _case("option/data_dir_mnist", _step("certify", "mnist", BUNDLED, "0.25", "out.tsv", *SIGMA1_SIZE,
                                              "--max", "100", "--data-dir", "somewhere")),
        # --help of each command (argparse's wording, COLUMNS fixed).
        _case("help/rsengine", _step("--help")),
        _case("help/certify", _step("certify", "--help")),
        _case("help/predict", _step("predict", "--help")),
        _case("help/analyze", _step("analyze", "--help")),
        _case("help/train", _step("train", "--help")),
    ]


def refusal_cases() -> list[dict]:
    """Commands refused before any work: exit status and message; two errors at once show precedence."""
    P = ["mnist", BUNDLED]  # DATASET BASE_CLASSIFIER; SIGMA OUTFILE follow
    S = SIGMA1_SIZE
    refused = {
        # --adaptive with what it cannot be, and its question.
        "adaptive/two_sided": ["certify", *E, "--adaptive", "--radius", "0.25", "--two-sided"],
        "adaptive/top_k": ["certify", *E, "--adaptive", "--radius", "0.25", "--top-k", "2"],
        "adaptive/sound": ["certify", *E, "--adaptive", "--radius", "0.25", "--sound"],
        "adaptive/deterministic": ["certify", *E, "--adaptive", "--radius", "0.25", "--deterministic"],
        "adaptive/laplace": ["certify", *E, "--adaptive", "--radius", "0.25", "--noise", "laplace"],
        "adaptive/uniform": ["certify", *E, "--adaptive", "--tolerance", "0.1", "--noise", "uniform"],
        "adaptive/neither": ["certify", *E, "--adaptive"],
        "adaptive/both": ["certify", *E, "--adaptive", "--radius", "0.25", "--tolerance", "0.1"],
        "adaptive/radius_negative": ["certify", *E, "--adaptive", "--radius", "-0.25"],
        "adaptive/radius_nan": ["certify", *E, "--adaptive", "--radius", "nan"],
        "adaptive/radius_inf": ["certify", *E, "--adaptive", "--radius", "inf"],
        "adaptive/tolerance_zero": ["certify", *E, "--adaptive", "--tolerance", "0"],
        "adaptive/tolerance_negative": ["certify", *E, "--adaptive", "--tolerance", "-1"],
        "adaptive/radius_text": ["certify", *E, "--adaptive", "--radius", "big"],
        "radius_without_adaptive": ["certify", *E, "--radius", "0.25"],
        "tolerance_without_adaptive": ["certify", *E, "--tolerance", "0.1"],
        "radius_and_tolerance_without_adaptive": ["certify", *E, "--radius", "0.25", "--tolerance", "0.1"],
        "predict/adaptive": ["predict", *_for_command("predict", E), "--adaptive", "--radius", "0.25"],
        "predict/two_sided": ["predict", *_for_command("predict", E), "--two-sided"],
        "predict/top_k": ["predict", *_for_command("predict", E), "--top-k", "2"],
        "predict/N0": ["predict", *E],
        # --sound with what it cannot be.
        "sound/laplace": ["certify", *E, "--sound", "--noise", "laplace"],
        "sound/uniform": ["certify", *E, "--sound", "--noise", "uniform"],
        "sound/two_sided": ["certify", *E, "--sound", "--two-sided"],
        "sound/top_k": ["certify", *E, "--sound", "--top-k", "2"],
        "sound/adaptive": ["certify", *E, "--sound", "--adaptive", "--tolerance", "0.1"],
        "sound/sigma_11": ["certify", *P, "11", "out.tsv", *S, "--sound"],
        "sound/sigma_10.000001": ["certify", *P, "10.000001", "out.tsv", *S, "--sound"],
        "sound/sigma_1e3_predict": ["predict", *P, "1e3", "out.tsv", *_for_command("predict", S), "--sound"],
        "sound/predict_laplace": ["predict", *_for_command("predict", E), "--sound", "--noise", "laplace"],
        # --top-k.
        "top_k/laplace": ["certify", *E, "--top-k", "2", "--noise", "laplace"],
        "top_k/uniform": ["certify", *E, "--top-k", "2", "--noise", "uniform"],
        "top_k/two_sided": ["certify", *E, "--top-k", "2", "--two-sided"],
        "top_k/0": ["certify", *E, "--top-k", "0"],
        "top_k/-1": ["certify", *E, "--top-k", "-1"],
        "top_k/10": ["certify", *E, "--top-k", "10"],
        "top_k/11": ["certify", *E, "--top-k", "11"],
        "top_k/text": ["certify", *E, "--top-k", "two"],
        # Bad values of the sampling options.
        "N/0": ["certify", *E, "--N", "0"],
        "N/-5": ["certify", *E, "--N", "-5"],
        "N/1.5": ["certify", *E, "--N", "1.5"],
        "N/2**31": ["certify", *E, "--N", str(2**31)],
        "N0/0": ["certify", *E, "--N0", "0"],
        "N0/2**31": ["certify", *E, "--N0", str(2**31)],
        "alpha/0": ["certify", *E, "--alpha", "0"],
        "alpha/1": ["certify", *E, "--alpha", "1"],
        "alpha/nan": ["certify", *E, "--alpha", "nan"],
        "alpha/text": ["certify", *E, "--alpha", "small"],
        "batch/0": ["certify", *E, "--batch", "0"],
        "skip/0": ["certify", *E, "--skip", "0"],
        "max/-1": ["certify", *E, "--max", "-1"],
        "seed/-1": ["certify", *E, "--seed", "-1"],
        "seed/2**63": ["certify", *E, "--seed", str(2**63)],
        "seed/text": ["certify", *E, "--seed", "abc"],
        "sigma/0": ["certify", *P, "0", "out.tsv", *S],
        "sigma/-1": ["certify", *P, "-1", "out.tsv", *S],
        "sigma/nan": ["certify", *P, "nan", "out.tsv", *S],
        "sigma/inf": ["certify", *P, "inf", "out.tsv", *S],
        "sigma/1e-50": ["certify", *P, "1e-50", "out.tsv", *S],
        "sigma/text": ["certify", *P, "big", "out.tsv", *S],
        "predict/N/0": ["predict", *_for_command("predict", E), "--N", "0"],
        "predict/batch/0": ["predict", *_for_command("predict", E), "--batch", "0"],
        "predict/sigma/0": ["predict", *P, "0", "out.tsv", *_for_command("predict", S)],
        "noise/bogus": ["certify", *E, "--noise", "cauchy"],
        "split/bogus": ["certify", *E, "--split", "val"],
        "precision/bogus": ["certify", *E, "--precision", "fp64"],
        "backend/bogus": ["certify", *E, "--backend", "cuda"],
        "device/bogus": ["certify", *E, "--device", "nonsense"],
        "plot/bmp": ["certify", *E, "--plot", "plot.bmp"],
        "positional/dataset_only": ["certify", "mnist"],
        "positional/three": ["certify", *P, "0.25"],
        "positional/five": ["certify", *P, "0.25", "out.tsv", "extra"],
        "dataset/unknown": ["certify", "nosuchset", BUNDLED, "0.25", "out.tsv", *S],
        "dataset/cifar10_missing": ["certify", "cifar10", BUNDLED, "0.25", "out.tsv", *S, "--data-dir", "nowhere"],
        "checkpoint/missing": ["certify", "mnist", "missing.pt", "0.25", "out.tsv", *S],
        "option/unknown": ["certify", *E, "--bogus"],
        "command/missing": [],
        "command/unknown": ["verify"],
        "analyze/no_files": ["analyze"],
        "analyze/missing_file": ["analyze", "missing.tsv"],
        "analyze/bad_format": ["analyze", "missing.tsv", "--format", "html"],
        "analyze/plot_bmp": ["analyze", "missing.tsv", "--plot", "p.bmp"],
        # Two (or three) errors at once: which message wins.
        "two/sound_laplace_two_sided": ["certify", *E, "--sound", "--noise", "laplace", "--two-sided"],
        "two/sound_two_sided_top_k_adaptive": ["certify", *E, "--sound", "--two-sided", "--top-k", "2", "--adaptive"],
        "two/sound_sigma11_laplace": ["certify", *P, "11", "out.tsv", *S, "--sound", "--noise", "laplace"],
        "two/sound_sigma11_two_sided": ["certify", *P, "11", "out.tsv", *S, "--sound", "--two-sided"],
        "two/sound_sigma0_top_k0": ["certify", *P, "0", "out.tsv", *S, "--sound", "--top-k", "0"],
        "two/adaptive_two_sided_laplace": ["certify", *E, "--adaptive", "--radius", "0.25", "--two-sided", "--noise",
                                           "laplace"],
        "two/adaptive_deterministic_laplace": ["certify", *E, "--adaptive", "--radius", "0.25", "--deterministic",
                                               "--noise", "laplace"],
        "two/adaptive_neither_deterministic": ["certify", *E, "--adaptive", "--deterministic"],
        "two/adaptive_two_sided_radius_negative": ["certify", *E, "--adaptive", "--radius", "-1", "--two-sided"],
        "two/top_k2_two_sided_uniform": ["certify", *E, "--top-k", "2", "--two-sided", "--noise", "uniform"],
        "two/top_k2_two_sided_adaptive": ["certify", *E, "--top-k", "2", "--two-sided", "--adaptive", "--radius", "1"],
        "two/top_k0_laplace": ["certify", *E, "--top-k", "0", "--noise", "laplace"],
        "two/top_k10_laplace": ["certify", *E, "--top-k", "10", "--noise", "laplace"],
        "two/top_k10_N0": ["certify", *E, "--top-k", "10", "--N", "0"],
        "two/top_k_adaptive_radius_without": ["certify", *E, "--top-k", "2", "--radius", "1"],
        "two/sound_radius_without_adaptive": ["certify", *E, "--sound", "--radius", "1"],
        "two/N0_batch0": ["certify", *E, "--N", "0", "--batch", "0"],
        "two/skip0_N0": ["certify", *E, "--skip", "0", "--N", "0"],
        "two/alpha0_batch0": ["certify", *E, "--alpha", "0", "--batch", "0"],
        "two/batch0_skip0": ["certify", *E, "--batch", "0", "--skip", "0"],
        "two/N00_alpha0": ["certify", *E, "--N0", "0", "--alpha", "0"],
        "two/max-1_sigma0": ["certify", *P, "0", "out.tsv", *S, "--max", "-1"],
        "two/sigma0_N0": ["certify", *P, "0", "out.tsv", *S, "--N", "0"],
        "two/plot_bmp_N0": ["certify", *E, "--plot", "p.bmp", "--N", "0"],
        "two/plot_bmp_batch0": ["certify", *E, "--plot", "p.bmp", "--batch", "0"],
        "two/predict_N0_batch0": ["predict", *_for_command("predict", E), "--N", "0", "--batch", "0"],
        "two/predict_skip0_N0": ["predict", *_for_command("predict", E), "--skip", "0", "--N", "0"],
        "two/predict_sound_laplace_N0": ["predict", *_for_command("predict", E), "--sound", "--noise", "laplace",
                                         "--N", "0"],
        "two/sound_laplace_N0": ["certify", *E, "--sound", "--noise", "laplace", "--N", "0"],
        "two/device_bogus_missing_checkpoint": ["certify", "mnist", "missing.pt", "0.25", "out.tsv", *S, "--device",
                                                "nonsense"],
        "two/missing_checkpoint_unknown_dataset": ["certify", "nosuchset", "missing.pt", "0.25", "out.tsv", *S],
        "two/argparse_and_semantic": ["certify", *E, "--N", "x", "--sound", "--noise", "laplace"],
        "two/argparse_two_bad_values": ["certify", *E, "--N", "x", "--alpha", "y"],
        "two/positional_three_sound_laplace": ["certify", *P, "0.25", "--sound", "--noise", "laplace"],
    }
    cases = [_case(f"refuse/{name}", _step(*argv)) for name, argv in refused.items()]
    folder = ["imgs", BUNDLED, "0.5", "out.tsv", "--N0", "20", "--N", "100", "--batch", "100"]
    cases += [
        _case("refuse/folder/3_classes", {"images": {"path": "imgs", "classes": 3, "per_class": 1}},
              _step("certify", *folder)),
        _case("refuse/folder/rgb", {"images": {"path": "imgs", "classes": 10, "per_class": 1, "mode": "RGB"}},
              _step("certify", *folder)),
        _case("refuse/folder/no_images", {"images": {"path": "imgs", "classes": 10, "per_class": 0}},
              _step("certify", *folder)),
        _case("refuse/folder/missing", _step("certify", "nosuchdir/", *folder[1:])),
        _case("refuse/folder/top_k10", {"images": {"path": "imgs", "classes": 10, "per_class": 1}},
              _step("certify", *folder, "--top-k", "10")),
    ]
    return cases


# -- encoding results exactly ------------------------------------------------------------------

def encode(value):
    """``value`` as JSON that keeps every bit: floats as float.hex(), arrays with dtype and shape."""
    import mpmath
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return {"tensor": str(value.dtype).removeprefix("torch."), "shape": list(value.shape),
                "data": encode(value.numpy() if value.dtype != torch.bfloat16 else value.float().numpy())["data"]}
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            data = [float(v).hex() for v in value.ravel().tolist()]
        elif value.dtype.kind in "iub":
            data = value.ravel().tolist()
        else:
            raise TypeError(f"cannot encode an array of dtype {value.dtype}")
        return {"ndarray": str(value.dtype), "shape": list(value.shape), "data": data}
    if isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)}
    if isinstance(value, np.floating):
        return {"np": str(value.dtype), "hex": float(value).hex()}
    if isinstance(value, np.integer):
        return {"np": str(value.dtype), "int": int(value)}
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, int):
        return {"int": value} if abs(value) < 2**53 else {"int": str(value)}
    if isinstance(value, str):
        return {"str": value}
    if value is None:
        return None
    if isinstance(value, mpmath.mpf):
        sign, mantissa, exponent, _ = value._mpf_
        return {"mpf": [sign, str(mantissa), exponent]}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return {"list": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": {str(k): encode(v) for k, v in value.items()}}
    raise TypeError(f"cannot encode {type(value).__name__}")


def outcome(call) -> dict:
    """``{"result": encode(call())}``, or the exception's type and message if it raises; and the
    warnings raised on the way, if any."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = {"result": encode(call())}
        except Exception as error:  # noqa: BLE001 - the exception is the result here
            found = {"raises": type(error).__name__, "message": str(error)}
    if caught:
        found["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    return found


# -- the statistics functions on fixed counts --------------------------------------------------

def _short(value) -> str:
    text = repr(value)
    if len(text) <= 120:
        return text
    rows = len(value)
    width = len(value[0]) if rows and isinstance(value[0], list) else None
    return f"<{rows}x{width} table>" if width else f"<{rows} values>"


def _call_case(name: str, function: str, *args, **kwargs) -> dict:
    shown = ", ".join([*map(_short, args), *(f"{k}={_short(v)}" for k, v in kwargs.items())])
    return {"name": f"stats/{name}", "kind": "call", "function": function, "args": list(args), "kwargs": kwargs,
            "call": f"{function}({shown})"}


def _one_hot(classes: int, n: int, at: int) -> list[int]:
    return [n if c == at else 0 for c in range(classes)]


def _spread(n: int, classes: int, top: int, at: int = 0) -> list[int]:
    """A row of ``classes`` counts summing to ``n``: ``top`` on ``at``, the rest spread, decreasing."""
    rest = n - top
    weights = [classes - c for c in range(classes - 1)]
    shares = [rest * w // sum(weights) for w in weights]
    shares[0] += rest - sum(shares)
    row = shares[:at] + [top] + shares[at:]
    return row


def _table_1000() -> list[list[int]]:
    return [_spread(100_000, 1000, 60_000, 3), _one_hot(1000, 100_000, 999), _spread(100_000, 1000, 1_000, 0),
            _spread(100_000, 1000, 30_000, 7)]


def _table_10() -> list[list[int]]:
    return [_one_hot(10, 1000, 0), [500, 500, 0, 0, 0, 0, 0, 0, 0, 0], [400, 300, 100, 50, 50, 40, 30, 20, 10, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1000], [901, 11, 11, 11, 11, 11, 11, 11, 11, 11],
            [100, 100, 100, 100, 100, 100, 100, 100, 100, 100], [600, 0, 400, 0, 0, 0, 0, 0, 0, 0],
            [990, 10, 0, 0, 0, 0, 0, 0, 0, 0]]


COUNTS = {  # n: votes for the guessed class, edge cases included
    1: [0, 1],
    10: [0, 1, 5, 6, 9, 10],
    200: [0, 100, 101, 150, 190, 199, 200],
    1000: [0, 499, 500, 501, 600, 900, 990, 999, 1000],
    100_000: [0, 50_000, 50_001, 50_500, 60_000, 99_000, 99_900, 99_999, 100_000],
}
SIGMAS = (0.12, 0.25, 1.0)


def stats_cases() -> list[dict]:
    S, C, N, K = "rsengine.stats", "rsengine.certificates", "rsengine.sound", "rsengine.kernels.contract"
    cases = []
    add = cases.append
    for n, votes in COUNTS.items():
        for alpha in (0.001, 0.05, 0.5):
            add(_call_case(f"clopper_pearson_lower/n{n}/alpha{alpha}", f"{S}.clopper_pearson_lower", votes, n, alpha))
    add(_call_case("clopper_pearson_lower/scalar", f"{S}.clopper_pearson_lower", 1, 1, 0.05))
    add(_call_case("clopper_pearson_lower/broadcast", f"{S}.clopper_pearson_lower", [[0], [5], [10]], [10, 20],
                   [0.001, 0.1]))
    add(_call_case("clopper_pearson_lower/n2**53", f"{S}.clopper_pearson_lower", [2**52, 2**53], 2**53, 0.001))
    add(_call_case("clopper_pearson_lower/refuse_k_over_n", f"{S}.clopper_pearson_lower", [3, 11], 10, 0.001))
    add(_call_case("binomial_pvalue/pairs", f"{S}.binomial_pvalue", [0, 1, 5, 10, 60, 500, 50_500, 99_000],
                   [0, 0, 5, 0, 40, 499, 49_500, 1_000]))
    add(_call_case("binomial_pvalue/scalar", f"{S}.binomial_pvalue", 10, 0))
    p_values = [0.0, 0.3, 0.5, 0.5 + 1e-12, 0.5 + 1e-9, 0.75, 0.9, 0.99, 0.999999, 1 - 2**-53]
    for sigma in (*SIGMAS, 10.0):
        add(_call_case(f"radius/sigma{sigma}", f"{S}.radius", p_values, sigma))
    add(_call_case("radius/scalar", f"{S}.radius", 0.99, 0.5))
    add(_call_case("radius/refuse_1", f"{S}.radius", 1.0, 0.5))
    for sigma in SIGMAS:
        for n in (1, 10, 200, 1000, 100_000, 2**53):
            for alpha in (0.001, 0.5):
                add(_call_case(f"max_radius/sigma{sigma}/n{n}/alpha{alpha}", f"{S}.max_radius", sigma, n, alpha))
    for n, votes in COUNTS.items():
        classes = [c % 10 for c in range(len(votes))]
        for sigma in SIGMAS:
            add(_call_case(f"certify_from_counts/n{n}/sigma{sigma}", f"{S}.certify_from_counts", classes, votes, n,
                           0.001, sigma))
            for noise in ("gaussian", "laplace", "uniform"):
                add(_call_case(f"certify_one_sided/{noise}/n{n}/sigma{sigma}", f"{C}.certify_one_sided", classes,
                               votes, n, 0.001, sigma, noise))
        add(_call_case(f"certify_sound_from_counts/n{n}/sigma0.25", f"{N}.certify_sound_from_counts", classes, votes,
                       n, 0.001, 0.25))
    add(_call_case("certify_sound_from_counts/n1000/sigma10", f"{N}.certify_sound_from_counts", [0] * 9,
                   COUNTS[1000], 1000, 0.001, 10.0))
    add(_call_case("certify_sound_from_counts/n100000/sigma1", f"{N}.certify_sound_from_counts", [1] * 9,
                   COUNTS[100_000], 100_000, 0.05, 1.0))
    add(_call_case("certify_one_sided/laplace/alpha0.5", f"{C}.certify_one_sided", [0, 1], [600, 1000], 1000, 0.5,
                   0.25, "laplace"))
    add(_call_case("sound_radius/values", f"{N}.sound_radius", p_values, 0.25))
    add(_call_case("sound_radius/scalar", f"{N}.sound_radius", 0.99, 0.5))
    add(_call_case("predict_from_counts/small", f"{S}.predict_from_counts",
                   [[0, 90, 10], [40, 60, 0], [5, 5, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1], [3, 3, 4]], 0.001))
    add(_call_case("predict_from_counts/one_class", f"{S}.predict_from_counts", [[7], [0]], 0.001))
    add(_call_case("predict_from_counts/10", f"{S}.predict_from_counts", _table_10(), 0.001))
    add(_call_case("predict_from_counts/10_alpha0.5", f"{S}.predict_from_counts", _table_10(), 0.5))
    add(_call_case("predict_from_counts/1000", f"{S}.predict_from_counts", _table_1000(), 0.001))
    add(_call_case("predict_from_counts/n100000", f"{S}.predict_from_counts",
                   [[50_200, 49_800], [50_500, 49_500], [50_001, 49_999], [100_000, 0]], 0.001))
    two_sided_tables = {
        "n1_K3": (1, [0, 1, 2], [[1, 0, 0], [1, 0, 0], [0, 0, 1]]),
        "n10_K2": (10, [0, 1, 0, 0], [[10, 0], [10, 0], [5, 5], [6, 4]]),
        "n1000_K10": (1000, [0, 0, 0, 9, 0, 0, 0, 0], _table_10()),
        "n100000_K1000": (100_000, [3, 999, 0, 7], _table_1000()),
        "n100000_K10": (100_000, [0, 0, 0], [_spread(100_000, 10, 50_001), _spread(100_000, 10, 40_000),
                                              _one_hot(10, 100_000, 0)]),
    }
    for name, (n, classes, table) in two_sided_tables.items():
        for noise in ("gaussian", "laplace", "uniform"):
            for sigma in (0.12, 0.25):
                add(_call_case(f"certify_two_sided/{noise}/{name}/sigma{sigma}", f"{C}.certify_two_sided", classes,
                               table, n, 0.001, sigma, noise))
    add(_call_case("certify_two_sided/refuse_row_sum", f"{C}.certify_two_sided", [0], [[5, 4]], 10, 0.001, 0.25))
    add(_call_case("certify_two_sided/refuse_c_hat", f"{C}.certify_two_sided", [2], [[5, 5]], 10, 0.001, 0.25))
    top_k_tables = {
        "n1_K3": (1, [[3, 2, 1], [0, 0, 5]], [[1, 0, 0], [0, 0, 1]], (1, 2)),
        "n1000_K10": (1000, [[c * 3 % 11 for c in range(10)], [5] * 10, [20, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                             [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 9, 0, 0, 0, 0, 0, 0, 1, 1],
                             [1, 0, 1, 0, 1, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 20],
                             [10, 0, 10, 0, 0, 0, 0, 0, 0, 0]],
                      _table_10(), (1, 2, 3, 9)),
        "n100000_K1000": (100_000, [[c % 7 for c in range(1000)], [1] * 1000, [0] * 999 + [20],
                                    [1000 - c for c in range(1000)]], _table_1000(), (1, 2, 5)),
    }
    for name, (n, selection, table, ks) in top_k_tables.items():
        for k in ks:
            for sigma in (0.12, 0.25, 1.0):
                add(_call_case(f"certify_top_k/{name}/k{k}/sigma{sigma}", f"{C}.certify_top_k", selection, table, k,
                               n, 0.001, sigma))
    add(_call_case("certify_top_k/refuse_k_eq_K", f"{C}.certify_top_k", [[1, 2]], [[5, 5]], 2, 10, 0.001, 0.25))
    for x in (0.0, 0.4568, 3.8099, 0.456, 123456.0, 1e-300, 2.5e-5):
        add(_call_case(f"floor_significant/{x}", f"{S}.floor_significant", x))
    add(_call_case("floor_significant/digits2", f"{S}.floor_significant", 123456.0, digits=2))
    for noise in ("gaussian", "laplace", "uniform"):
        for sigma in (0.12, 0.25, 0.5, 1.0, 10.0, 1e-3):
            add(_call_case(f"noise_scale/{noise}/{sigma}", f"{K}.noise_scale", noise, sigma))
    for k in (0, 1, 5, 64, 200):
        add(_call_case(f"rounded_gaussian_pmf/k{k}/sigma0.25", f"{N}.rounded_gaussian_pmf", k, 0.25))
    for sigma in (0.25, 0.11999999731779099, 1.0):
        add({**_call_case(f"noise_table/{sigma}", "goldens.cases.noise_table_summary", sigma),
             "call": f"rsengine.sound.noise_table({sigma!r}): support, escape, sha256 of the thresholds"})
    return cases


def noise_table_summary(sigma: float) -> dict:
    """The facts of ``rsengine.sound.noise_table(sigma)`` a golden can hold: sizes, escape, digests."""
    from rsengine.sound import noise_table

    table = noise_table(sigma)
    digest = lambda values: hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()  # noqa: E731
    return {"sigma": table.sigma, "support": table.support, "atoms": len(table.masses),
            "escape_mass": table.escape_mass, "escape_probability": table.escape_probability,
            "central_mass": str(table.masses[table.support]), "masses_sha256": digest(table.masses),
            "thresholds_sha256": digest(table.thresholds),
            "signed_thresholds_sha256": digest(table.signed_thresholds().tolist())}


def run_call_case(case: dict):
    module, _, name = case["function"].rpartition(".")
    function = getattr(importlib.import_module(module), name)
    return {"call": case["call"], **outcome(lambda: function(*case["args"], **case["kwargs"]))}


# -- Smooth on a fixed Linear classifier -------------------------------------------------------

STREAMS = [0, 3, 7, 11, 100, 2**32 - 1]
N0, N, ALPHA, BATCH = 20, 300, 0.001, 64


def linear_model(scale: float = 8.0, classes: int = 4, dtype=None):
    """A fixed classifier of [M, 3, 2, 2] inputs: Linear(12, classes) from torch.manual_seed(0), weights x scale."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, classes))
    with torch.no_grad():
        model[1].weight.mul_(scale)
    model = model.eval()
    return model if dtype is None else model.to(dtype)


def inputs(count: int = 6):
    """Fixed float inputs [count, 3, 2, 2] on the 1/255 grid (so sound mode takes them too)."""
    import torch

    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (count, 3, 2, 2), generator=generator, dtype=torch.uint8).float() / 255


def pixels(count: int = 6):
    """The same inputs as uint8 pixels."""
    import torch

    return (inputs(count) * 255).round().to(torch.uint8)


def smooth(noise="gaussian", sigma=0.5, deterministic=False, sound=False, **kwargs):
    """``Smooth`` of :func:`linear_model` (4 classes), seed 2024 unless given."""
    from rsengine import Smooth

    model = kwargs.pop("model", None) or linear_model()
    kwargs.setdefault("seed", 2024)
    return Smooth(model, 4, sigma, noise=noise, deterministic=deterministic, sound=sound, **kwargs)


def _smooth_case(name: str, call: str, function) -> dict:
    return {"name": f"smooth/{name}", "kind": "smooth", "call": call, "function": function}


def smooth_cases() -> list[dict]:
    cases = []
    add = cases.append
    s_args = f"(inputs(), {N0}, {N}, {ALPHA}, {BATCH}, streams=STREAMS"
    for noise in ("gaussian", "laplace", "uniform"):
        for sigma in (0.25, 0.5):
            for det in (False, True):
                tag = f"{noise}/sigma{sigma}/{'det' if det else 'nondet'}"
                add(_smooth_case(f"certify_batch/{tag}", f"smooth({noise!r}, {sigma}, deterministic={det})"
                                 f".certify_batch{s_args})",
                                 lambda noise=noise, sigma=sigma, det=det: smooth(noise, sigma, det).certify_batch(
                                     inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
                add(_smooth_case(f"certify_batch_two_sided/{tag}", f"smooth({noise!r}, {sigma}, deterministic={det})"
                                 f".certify_batch{s_args}, two_sided=True)",
                                 lambda noise=noise, sigma=sigma, det=det: smooth(noise, sigma, det).certify_batch(
                                     inputs(), N0, N, ALPHA, BATCH, streams=STREAMS, two_sided=True)))
                add(_smooth_case(f"predict_batch/{tag}", f"smooth({noise!r}, {sigma}, deterministic={det})"
                                 f".predict_batch(inputs(), {N}, {ALPHA}, {BATCH}, streams=STREAMS)",
                                 lambda noise=noise, sigma=sigma, det=det: smooth(noise, sigma, det).predict_batch(
                                     inputs(), N, ALPHA, BATCH, streams=STREAMS)))
                add(_smooth_case(f"sample_counts/{tag}", f"[smooth({noise!r}, {sigma}, deterministic={det})"
                                 f".sample_counts(inputs(), {N}, phase, {BATCH}, streams=STREAMS) for phase in (0, 1, 2)]",
                                 lambda noise=noise, sigma=sigma, det=det: [
                                     smooth(noise, sigma, det).sample_counts(inputs(), N, phase, BATCH, streams=STREAMS)
                                     for phase in (0, 1, 2)]))
    for det in (False, True):
        tag = "det" if det else "nondet"
        for k in (1, 2, 3):
            add(_smooth_case(f"certify_topk_batch/k{k}/{tag}", f"smooth(deterministic={det}).certify_topk_batch("
                             f"inputs(), {k}, {N0}, {N}, {ALPHA}, {BATCH}, streams=STREAMS)",
                             lambda k=k, det=det: smooth(deterministic=det).certify_topk_batch(
                                 inputs(), k, N0, N, ALPHA, BATCH, streams=STREAMS)))
        add(_smooth_case(f"sound/certify_batch/{tag}", f"smooth(sigma=0.25, sound=True, deterministic={det})"
                         f".certify_batch(pixels(), {N0}, {N}, {ALPHA}, {BATCH}, streams=STREAMS)",
                         lambda det=det: smooth(sigma=0.25, sound=True, deterministic=det).certify_batch(
                             pixels(), N0, N, ALPHA, BATCH, streams=STREAMS)))
        add(_smooth_case(f"sound/certify_batch_float_inputs/{tag}", f"smooth(sigma=0.25, sound=True, "
                         f"deterministic={det}).certify_batch{s_args})",
                         lambda det=det: smooth(sigma=0.25, sound=True, deterministic=det).certify_batch(
                             inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
        add(_smooth_case(f"sound/predict_batch/{tag}", f"smooth(sigma=0.25, sound=True, deterministic={det})"
                         f".predict_batch(pixels(), {N}, {ALPHA}, {BATCH}, streams=STREAMS)",
                         lambda det=det: smooth(sigma=0.25, sound=True, deterministic=det).predict_batch(
                             pixels(), N, ALPHA, BATCH, streams=STREAMS)))
        add(_smooth_case(f"sound/sample_counts/{tag}", f"[smooth(sigma=1.0, sound=True, deterministic={det})"
                         f".sample_counts(pixels(), {N}, phase, {BATCH}, streams=STREAMS) for phase in (0, 1, 2)]",
                         lambda det=det: [smooth(sigma=1.0, sound=True, deterministic=det).sample_counts(
                             pixels(), N, phase, BATCH, streams=STREAMS) for phase in (0, 1, 2)]))
    for sigma in (0.25, 0.5):
        add(_smooth_case(f"adaptive_radius/sigma{sigma}", f"smooth(sigma={sigma}).certify_batch{s_args}, "
                         "adaptive=True, radius=0.25)",
                         lambda sigma=sigma: smooth(sigma=sigma).certify_batch(
                             inputs(), N0, N, ALPHA, BATCH, streams=STREAMS, adaptive=True, radius=0.25)))
        add(_smooth_case(f"adaptive_radius0/sigma{sigma}", f"smooth(sigma={sigma}).certify_batch{s_args}, "
                         "adaptive=True, radius=0.0)",
                         lambda sigma=sigma: smooth(sigma=sigma).certify_batch(
                             inputs(), N0, N, ALPHA, BATCH, streams=STREAMS, adaptive=True, radius=0.0)))
        add(_smooth_case(f"adaptive_tolerance/sigma{sigma}", f"smooth(sigma={sigma}).certify_batch{s_args}, "
                         "adaptive=True, tolerance=0.1)",
                         lambda sigma=sigma: smooth(sigma=sigma).certify_batch(
                             inputs(), N0, N, ALPHA, BATCH, streams=STREAMS, adaptive=True, tolerance=0.1)))
    add(_smooth_case("adaptive_tolerance/n3000", "smooth().certify_batch(inputs(), 20, 3000, 0.001, 64, "
                     "streams=STREAMS, adaptive=True, tolerance=0.05)",
                     lambda: smooth().certify_batch(inputs(), 20, 3000, ALPHA, BATCH, streams=STREAMS, adaptive=True,
                                                    tolerance=0.05)))

    def fresh_streams():
        s = smooth()
        first = s.certify_batch(inputs(3), N0, N, ALPHA, BATCH)
        explicit = s.sample_counts(inputs(2), N, 1, BATCH, streams=[3, 4])
        after = s.certify_batch(inputs(3), N0, N, ALPHA, BATCH)
        return [first, explicit, after, s.predict_batch(inputs(2), N, ALPHA, BATCH)]

    add(_smooth_case("default_streams", "s = smooth(); [s.certify_batch(inputs(3), 20, 300, 0.001, 64), "
                     "s.sample_counts(inputs(2), 300, 1, 64, streams=[3, 4]), s.certify_batch(inputs(3), ...), "
                     "s.predict_batch(inputs(2), 300, 0.001, 64)]", fresh_streams))

    def single():
        s = smooth()
        x = inputs(1)[0]
        return [s.certify(x, N0, N, ALPHA, BATCH), s.certify(x, N0, N, ALPHA, BATCH, two_sided=True),
                s.certify(x, N0, N, ALPHA, BATCH, adaptive=True, radius=0.25), s.predict(x, N, ALPHA, BATCH),
                s.certify_topk(x, 2, N0, N, ALPHA, BATCH)]

    add(_smooth_case("single_input", "s = smooth(); x = inputs(1)[0]; [s.certify(x, ...), s.certify(x, ..., "
                     "two_sided=True), s.certify(x, ..., adaptive=True, radius=0.25), s.predict(x, ...), "
                     "s.certify_topk(x, 2, ...)]", single))
    add(_smooth_case("batch_sizes", "[smooth().certify_batch(inputs(), 20, 300, 0.001, b, streams=STREAMS) "
                     "for b in (None, 1, 7, 1000)]",
                     lambda: [smooth().certify_batch(inputs(), N0, N, ALPHA, b, streams=STREAMS)
                              for b in (None, 1, 7, 1000)]))
    add(_smooth_case("deterministic_batch_sizes", "[smooth(deterministic=True).certify_batch(inputs(), 20, 300, "
                     "0.001, b, streams=STREAMS) for b in (None, 7, 1000)]",
                     lambda: [smooth(deterministic=True).certify_batch(inputs(), N0, N, ALPHA, b, streams=STREAMS)
                              for b in (None, 7, 1000)]))
    add(_smooth_case("mean_std", "smooth(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).certify_batch"
                     f"{s_args})",
                     lambda: smooth(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).certify_batch(
                         inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("sound_mean_std", "smooth(sigma=0.25, sound=True, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))"
                     f".certify_batch(pixels(), {N0}, {N}, {ALPHA}, {BATCH}, streams=STREAMS)",
                     lambda: smooth(sigma=0.25, sound=True, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).certify_batch(
                         pixels(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("seed0", f"smooth(seed=0).certify_batch{s_args})",
                     lambda: smooth(seed=0).certify_batch(inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("seed2**63-1", f"smooth(seed=2**63 - 1).certify_batch{s_args})",
                     lambda: smooth(seed=2**63 - 1).certify_batch(inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("backend_torch", f"smooth(backend='torch').certify_batch{s_args})",
                     lambda: smooth(backend="torch").certify_batch(inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("backend_torch_laplace_det", "smooth('laplace', backend='torch', deterministic=True)"
                     f".certify_batch{s_args})",
                     lambda: smooth("laplace", backend="torch", deterministic=True).certify_batch(
                         inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("backend_torch_sound", "smooth(sigma=0.25, sound=True, backend='torch')"
                     f".certify_batch(pixels(), {N0}, {N}, {ALPHA}, {BATCH}, streams=STREAMS)",
                     lambda: smooth(sigma=0.25, sound=True, backend="torch").certify_batch(
                         pixels(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("bfloat16", f"smooth(model=linear_model(dtype=torch.bfloat16)).certify_batch{s_args})",
                     lambda: smooth(model=linear_model(dtype=_bfloat16())).certify_batch(
                         inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("channels_last", f"smooth(memory_format=torch.channels_last).certify_batch{s_args})",
                     lambda: smooth(memory_format=_channels_last()).certify_batch(
                         inputs(), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("sigma0.12_float32", f"smooth(sigma=0.12).certify_batch{s_args}) and its noise_sigma",
                     lambda: (smooth(sigma=0.12).noise_sigma, smooth(sigma=0.12).certify_batch(
                         inputs(), N0, N, ALPHA, BATCH, streams=STREAMS))))
    add(_smooth_case("list_of_inputs", "smooth().certify_batch(list(inputs()), 20, 300, 0.001, 64, streams=STREAMS)",
                     lambda: smooth().certify_batch(list(inputs()), N0, N, ALPHA, BATCH, streams=STREAMS)))
    add(_smooth_case("repr_and_norm", "[(repr(s), s.norm, s.noise_sigma, s.sound) for s in smooth(...) of each kind]",
                     lambda: [(repr(s), s.norm, s.noise_sigma, s.sound) for s in (
                         smooth(), smooth("laplace", 0.12), smooth("uniform", 1.0, True),
                         smooth(sigma=0.25, sound=True), smooth(seed=0, backend="torch"))]))
    return cases


def _bfloat16():
    import torch

    return torch.bfloat16


def _channels_last():
    import torch

    return torch.channels_last


def run_smooth_case(case: dict):
    return {"call": case["call"], **outcome(case["function"])}


# -- refused Smooth calls ----------------------------------------------------------------------

def _refusal(name: str, call: str, function) -> dict:
    return {"name": f"api/{name}", "kind": "api_refusal", "call": call, "function": function}


def api_refusal_cases() -> list[dict]:
    import torch
    from rsengine import Smooth

    m = linear_model
    x = inputs
    cases = []

    def add(name, call, function):
        cases.append(_refusal(name, call, function))

    # The constructor, in the order it checks.
    add("init/not_callable", "Smooth(3, 4, 0.5)", lambda: Smooth(3, 4, 0.5))
    add("init/num_classes_1", "Smooth(m(), 1, 0.5)", lambda: Smooth(m(), 1, 0.5))
    add("init/num_classes_float", "Smooth(m(), 4.0, 0.5)", lambda: Smooth(m(), 4.0, 0.5))
    add("init/num_classes_bool", "Smooth(m(), True, 0.5)", lambda: Smooth(m(), True, 0.5))
    for label, sigma in (("0", 0.0), ("-1", -1.0), ("nan", float("nan")), ("inf", float("inf")), ("str", "0.5"),
                         ("1e-50", 1e-50), ("1e39", 1e39), ("bool", True)):
        add(f"init/sigma_{label}", f"Smooth(m(), 4, {sigma!r})", lambda sigma=sigma: Smooth(m(), 4, sigma))
    add("init/noise_unknown", "Smooth(m(), 4, 0.5, noise='cauchy')", lambda: Smooth(m(), 4, 0.5, noise="cauchy"))
    add("init/noise_not_str", "Smooth(m(), 4, 0.5, noise=1)", lambda: Smooth(m(), 4, 0.5, noise=1))
    for label, seed in (("-1", -1), ("2**63", 2**63), ("float", 1.5), ("bool", True), ("str", "7")):
        add(f"init/seed_{label}", f"Smooth(m(), 4, 0.5, seed={seed!r})", lambda seed=seed: Smooth(m(), 4, 0.5, seed=seed))
    add("init/dtype_float64", "Smooth(m(), 4, 0.5, dtype=torch.float64)",
        lambda: Smooth(m(), 4, 0.5, dtype=torch.float64))
    add("init/dtype_str", "Smooth(m(), 4, 0.5, dtype='float32')", lambda: Smooth(m(), 4, 0.5, dtype="float32"))
    add("init/memory_format", "Smooth(m(), 4, 0.5, memory_format=torch.preserve_format)",
        lambda: Smooth(m(), 4, 0.5, memory_format=torch.preserve_format))
    add("init/mean_only", "Smooth(m(), 4, 0.5, mean=(0.5,))", lambda: Smooth(m(), 4, 0.5, mean=(0.5,)))
    add("init/std_only", "Smooth(m(), 4, 0.5, std=(0.5,))", lambda: Smooth(m(), 4, 0.5, std=(0.5,)))
    add("init/mean_std_lengths", "Smooth(m(), 4, 0.5, mean=(0.5, 0.5), std=(0.2,))",
        lambda: Smooth(m(), 4, 0.5, mean=(0.5, 0.5), std=(0.2,)))
    add("init/mean_std_empty", "Smooth(m(), 4, 0.5, mean=(), std=())", lambda: Smooth(m(), 4, 0.5, mean=(), std=()))
    add("init/mean_nan", "Smooth(m(), 4, 0.5, mean=(nan,), std=(0.2,))",
        lambda: Smooth(m(), 4, 0.5, mean=(float("nan"),), std=(0.2,)))
    add("init/std_zero", "Smooth(m(), 4, 0.5, mean=(0.5,), std=(0.0,))",
        lambda: Smooth(m(), 4, 0.5, mean=(0.5,), std=(0.0,)))
    add("init/mean_str", "Smooth(m(), 4, 0.5, mean='0.5', std=(0.2,))",
        lambda: Smooth(m(), 4, 0.5, mean="0.5", std=(0.2,)))
    add("init/backend_unknown", "Smooth(m(), 4, 0.5, backend='cuda')", lambda: Smooth(m(), 4, 0.5, backend="cuda"))
    add("init/deterministic_str", "Smooth(m(), 4, 0.5, deterministic='yes')",
        lambda: Smooth(m(), 4, 0.5, deterministic="yes"))
    add("init/sound_str", "Smooth(m(), 4, 0.5, sound='yes')", lambda: Smooth(m(), 4, 0.5, sound="yes"))
    add("init/sound_laplace", "Smooth(m(), 4, 0.5, noise='laplace', sound=True)",
        lambda: Smooth(m(), 4, 0.5, noise="laplace", sound=True))
    add("init/sound_uniform", "Smooth(m(), 4, 0.5, noise='uniform', sound=True)",
        lambda: Smooth(m(), 4, 0.5, noise="uniform", sound=True))
    add("init/sound_sigma_10.5", "Smooth(m(), 4, 10.5, sound=True)", lambda: Smooth(m(), 4, 10.5, sound=True))
    add("init/sound_sigma_10.000001", "repr(Smooth(m(), 4, 10.000001, sound=True))  (float32 is above 10)",
        lambda: repr(Smooth(m(), 4, 10.000001, sound=True)))
    # Two wrong at once in the constructor.
    add("init/two/num_classes_and_sigma", "Smooth(m(), 1, -1.0)", lambda: Smooth(m(), 1, -1.0))
    add("init/two/sigma_and_noise", "Smooth(m(), 4, 0.0, noise='cauchy')", lambda: Smooth(m(), 4, 0.0, noise="cauchy"))
    add("init/two/seed_and_dtype", "Smooth(m(), 4, 0.5, seed=-1, dtype=torch.float64)",
        lambda: Smooth(m(), 4, 0.5, seed=-1, dtype=torch.float64))
    add("init/two/sound_laplace_sigma_11", "Smooth(m(), 4, 11.0, noise='laplace', sound=True)",
        lambda: Smooth(m(), 4, 11.0, noise="laplace", sound=True))
    add("init/two/sound_str_deterministic_str", "Smooth(m(), 4, 0.5, sound='yes', deterministic='no')",
        lambda: Smooth(m(), 4, 0.5, sound="yes", deterministic="no"))
    add("init/two/backend_and_mean", "Smooth(m(), 4, 0.5, backend='cuda', mean=(0.5,))",
        lambda: Smooth(m(), 4, 0.5, backend="cuda", mean=(0.5,)))

    g = smooth
    # certify_batch: sample sizes, alpha, batch, flags.
    add("certify_batch/n0_0", "smooth().certify_batch(inputs(), 0, 300, 0.001)",
        lambda: g().certify_batch(x(), 0, N, ALPHA))
    add("certify_batch/n0_2**31", "smooth().certify_batch(inputs(), 2**31, 300, 0.001)",
        lambda: g().certify_batch(x(), 2**31, N, ALPHA))
    add("certify_batch/n_2**31", "smooth().certify_batch(inputs(), 20, 2**31, 0.001)",
        lambda: g().certify_batch(x(), N0, 2**31, ALPHA))
    add("certify_batch/n_float", "smooth().certify_batch(inputs(), 20, 300.0, 0.001)",
        lambda: g().certify_batch(x(), N0, 300.0, ALPHA))
    add("certify_batch/alpha_0", "smooth().certify_batch(inputs(), 20, 300, 0.0)", lambda: g().certify_batch(x(), N0, N, 0.0))
    add("certify_batch/alpha_1", "smooth().certify_batch(inputs(), 20, 300, 1.0)", lambda: g().certify_batch(x(), N0, N, 1.0))
    add("certify_batch/alpha_nan", "smooth().certify_batch(inputs(), 20, 300, nan)",
        lambda: g().certify_batch(x(), N0, N, float("nan")))
    add("certify_batch/batch_0", "smooth().certify_batch(inputs(), 20, 300, 0.001, 0)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, 0))
    add("certify_batch/two_sided_str", "smooth().certify_batch(inputs(), 20, 300, 0.001, two_sided='yes')",
        lambda: g().certify_batch(x(), N0, N, ALPHA, two_sided="yes"))
    add("certify_batch/adaptive_str", "smooth().certify_batch(inputs(), 20, 300, 0.001, adaptive='yes', radius=1)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, adaptive="yes", radius=1))
    add("certify_batch/radius_without_adaptive", "smooth().certify_batch(inputs(), 20, 300, 0.001, radius=0.25)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, radius=0.25))
    add("certify_batch/tolerance_without_adaptive", "smooth().certify_batch(inputs(), 20, 300, 0.001, tolerance=0.1)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, tolerance=0.1))
    add("certify_batch/adaptive_both", "smooth().certify_batch(..., adaptive=True, radius=0.25, tolerance=0.1)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, adaptive=True, radius=0.25, tolerance=0.1))
    add("certify_batch/adaptive_neither", "smooth().certify_batch(..., adaptive=True)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, adaptive=True))
    add("certify_batch/adaptive_deterministic", "smooth(deterministic=True).certify_batch(..., adaptive=True, radius=0.25)",
        lambda: g(deterministic=True).certify_batch(x(), N0, N, ALPHA, adaptive=True, radius=0.25))
    add("certify_batch/adaptive_laplace", "smooth('laplace').certify_batch(..., adaptive=True, radius=0.25)",
        lambda: g("laplace").certify_batch(x(), N0, N, ALPHA, adaptive=True, radius=0.25))
    add("certify_batch/adaptive_uniform", "smooth('uniform').certify_batch(..., adaptive=True, tolerance=0.1)",
        lambda: g("uniform").certify_batch(x(), N0, N, ALPHA, adaptive=True, tolerance=0.1))
    add("certify_batch/adaptive_radius_negative", "smooth().certify_batch(..., adaptive=True, radius=-0.25)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, adaptive=True, radius=-0.25))
    add("certify_batch/adaptive_tolerance_0", "smooth().certify_batch(..., adaptive=True, tolerance=0.0)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, adaptive=True, tolerance=0.0))
    add("certify_batch/adaptive_radius_str", "smooth().certify_batch(..., adaptive=True, radius='1')",
        lambda: g().certify_batch(x(), N0, N, ALPHA, adaptive=True, radius="1"))
    add("certify_batch/two_sided_adaptive", "smooth().certify_batch(..., two_sided=True, adaptive=True, radius=0.25)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, two_sided=True, adaptive=True, radius=0.25))
    add("certify_batch/sound_two_sided", "smooth(sigma=0.25, sound=True).certify_batch(pixels(), ..., two_sided=True)",
        lambda: g(sigma=0.25, sound=True).certify_batch(pixels(), N0, N, ALPHA, two_sided=True))
    add("certify_batch/sound_adaptive", "smooth(sigma=0.25, sound=True).certify_batch(pixels(), ..., adaptive=True, "
        "radius=0.25)", lambda: g(sigma=0.25, sound=True).certify_batch(pixels(), N0, N, ALPHA, adaptive=True,
                                                                         radius=0.25))
    # certify_batch: two wrong at once.
    add("certify_batch/two/n0_and_alpha", "smooth().certify_batch(inputs(), 0, 300, 2.0)",
        lambda: g().certify_batch(x(), 0, N, 2.0))
    add("certify_batch/two/batch_and_two_sided", "smooth().certify_batch(inputs(), 20, 300, 0.001, 0, two_sided=1)",
        lambda: g().certify_batch(x(), N0, N, ALPHA, 0, two_sided=1))
    add("certify_batch/two/two_sided_adaptive_laplace", "smooth('laplace').certify_batch(..., two_sided=True, "
        "adaptive=True, radius=0.25)",
        lambda: g("laplace").certify_batch(x(), N0, N, ALPHA, two_sided=True, adaptive=True, radius=0.25))
    add("certify_batch/two/adaptive_deterministic_laplace", "smooth('laplace', deterministic=True).certify_batch(..., "
        "adaptive=True, radius=0.25)",
        lambda: g("laplace", deterministic=True).certify_batch(x(), N0, N, ALPHA, adaptive=True, radius=0.25))
    add("certify_batch/two/adaptive_both_deterministic", "smooth(deterministic=True).certify_batch(..., adaptive=True, "
        "radius=0.25, tolerance=0.1)",
        lambda: g(deterministic=True).certify_batch(x(), N0, N, ALPHA, adaptive=True, radius=0.25, tolerance=0.1))
    add("certify_batch/two/sound_two_sided_adaptive", "smooth(sigma=0.25, sound=True).certify_batch(pixels(), ..., "
        "two_sided=True, adaptive=True, radius=0.25)",
        lambda: g(sigma=0.25, sound=True).certify_batch(pixels(), N0, N, ALPHA, two_sided=True, adaptive=True,
                                                        radius=0.25))
    add("certify_batch/two/sound_two_sided_off_grid", "smooth(sigma=0.25, sound=True).certify_batch(inputs() + 0.001, "
        "..., two_sided=True)",
        lambda: g(sigma=0.25, sound=True).certify_batch(x() + 0.001, N0, N, ALPHA, two_sided=True))
    add("certify_batch/two/bad_inputs_and_streams", "smooth().certify_batch(inputs() * nan, ..., streams=[0])",
        lambda: g().certify_batch(x() * float("nan"), N0, N, ALPHA, streams=[0]))
    add("certify_batch/two/adaptive_and_bad_inputs", "smooth().certify_batch(torch.zeros(0, 12), ..., adaptive=True)",
        lambda: g().certify_batch(torch.zeros(0, 12), N0, N, ALPHA, adaptive=True))
    # Inputs (_prepare), for every method that takes them.
    add("inputs/empty_list", "smooth().certify_batch([], 20, 300, 0.001)", lambda: g().certify_batch([], N0, N, ALPHA))
    add("inputs/list_not_tensors", "smooth().certify_batch([1, 2], 20, 300, 0.001)",
        lambda: g().certify_batch([1, 2], N0, N, ALPHA))
    add("inputs/list_shapes_differ", "smooth().certify_batch([torch.zeros(3, 2, 2), torch.zeros(12)], 20, 300, 0.001)",
        lambda: g().certify_batch([torch.zeros(3, 2, 2), torch.zeros(12)], N0, N, ALPHA))
    add("inputs/numpy", "smooth().certify_batch(inputs().numpy(), 20, 300, 0.001)",
        lambda: g().certify_batch(x().numpy(), N0, N, ALPHA))
    add("inputs/one_dim", "smooth().certify_batch(torch.zeros(12), 20, 300, 0.001)",
        lambda: g().certify_batch(torch.zeros(12), N0, N, ALPHA))
    add("inputs/no_rows", "smooth().certify_batch(torch.zeros(0, 3, 2, 2), 20, 300, 0.001)",
        lambda: g().certify_batch(torch.zeros(0, 3, 2, 2), N0, N, ALPHA))
    add("inputs/no_values", "smooth().certify_batch(torch.zeros(2, 0), 20, 300, 0.001)",
        lambda: g().certify_batch(torch.zeros(2, 0), N0, N, ALPHA))
    add("inputs/integer_not_sound", "smooth().certify_batch(pixels(), 20, 300, 0.001)",
        lambda: g().certify_batch(pixels(), N0, N, ALPHA))
    add("inputs/nan", "smooth().certify_batch(inputs() with a NaN, 20, 300, 0.001)",
        lambda: g().certify_batch(torch.where(torch.arange(12).reshape(3, 2, 2) == 5, float("nan"), x()), N0, N, ALPHA))
    add("inputs/inf", "smooth().predict_batch(inputs() with an inf, 300, 0.001)",
        lambda: g().predict_batch(torch.where(torch.arange(12).reshape(3, 2, 2) == 5, float("inf"), x()), N, ALPHA))
    add("inputs/mean_channels", "smooth(mean=(0.5, 0.5), std=(0.2, 0.2)).certify_batch(inputs(), 20, 300, 0.001)",
        lambda: g(mean=(0.5, 0.5), std=(0.2, 0.2)).certify_batch(x(), N0, N, ALPHA))
    # Two values for 3 channels (one value serves every channel since issue 29).
    add("inputs/mean_channels_sound", "smooth(sigma=0.25, sound=True, mean=(0.5, 0.5), std=(0.2, 0.2)).sample_counts("
        "pixels(), 10)", lambda: g(sigma=0.25, sound=True, mean=(0.5, 0.5), std=(0.2, 0.2)).sample_counts(pixels(), 10))
    add("inputs/channels_last_2d", "smooth(memory_format=torch.channels_last).certify_batch(torch.zeros(2, 12), ...)",
        lambda: g(memory_format=torch.channels_last).certify_batch(torch.zeros(2, 12), N0, N, ALPHA))
    add("inputs/sound_off_grid", "smooth(sigma=0.25, sound=True).certify_batch(inputs() + 0.001, 20, 300, 0.001)",
        lambda: g(sigma=0.25, sound=True).certify_batch(x() + 0.001, N0, N, ALPHA))
    add("inputs/sound_float64", "smooth(sigma=0.25, sound=True).certify_batch(inputs().double(), 20, 300, 0.001)",
        lambda: g(sigma=0.25, sound=True).certify_batch(x().double(), N0, N, ALPHA))
    add("inputs/sound_int_300", "smooth(sigma=0.25, sound=True).predict_batch(torch.full((2, 3, 2, 2), 300), 300, 0.001)",
        lambda: g(sigma=0.25, sound=True).predict_batch(torch.full((2, 3, 2, 2), 300), N, ALPHA))
    add("inputs/sound_bool", "smooth(sigma=0.25, sound=True).predict_batch(torch.ones(2, 3, 2, 2, dtype=bool), ...)",
        lambda: g(sigma=0.25, sound=True).predict_batch(torch.ones(2, 3, 2, 2, dtype=torch.bool), N, ALPHA))
    add("inputs/sound_nan", "smooth(sigma=0.25, sound=True).predict_batch(inputs() * nan, 300, 0.001)",
        lambda: g(sigma=0.25, sound=True).predict_batch(x() * float("nan"), N, ALPHA))
    add("inputs/wrong_shape_for_model", "smooth().certify_batch(torch.zeros(2, 5), 20, 300, 0.001)",
        lambda: g().certify_batch(torch.zeros(2, 5), N0, N, ALPHA))
    add("single/certify_not_tensor", "smooth().certify([0.5] * 12, 20, 300, 0.001)",
        lambda: g().certify([0.5] * 12, N0, N, ALPHA))
    add("single/predict_not_tensor", "smooth().predict(None, 300, 0.001)", lambda: g().predict(None, N, ALPHA))
    add("single/certify_topk_not_tensor", "smooth().certify_topk(1.0, 2, 20, 300, 0.001)",
        lambda: g().certify_topk(1.0, 2, N0, N, ALPHA))
    add("single/certify_two_sided_adaptive", "smooth().certify(inputs(1)[0], 20, 300, 0.001, two_sided=True, "
        "adaptive=True, radius=0.1)",
        lambda: g().certify(x(1)[0], N0, N, ALPHA, two_sided=True, adaptive=True, radius=0.1))
    # Streams.
    add("streams/length", "smooth().certify_batch(inputs(), 20, 300, 0.001, streams=[0, 1])",
        lambda: g().certify_batch(x(), N0, N, ALPHA, streams=[0, 1]))
    add("streams/floats", "smooth().certify_batch(inputs(), ..., streams=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])",
        lambda: g().certify_batch(x(), N0, N, ALPHA, streams=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
    add("streams/negative", "smooth().certify_batch(inputs(), ..., streams=[-1, 1, 2, 3, 4, 5])",
        lambda: g().certify_batch(x(), N0, N, ALPHA, streams=[-1, 1, 2, 3, 4, 5]))
    add("streams/2**32", "smooth().certify_batch(inputs(), ..., streams=[0, 1, 2, 3, 4, 2**32])",
        lambda: g().certify_batch(x(), N0, N, ALPHA, streams=[0, 1, 2, 3, 4, 2**32]))
    add("streams/duplicates", "smooth().certify_batch(inputs(), ..., streams=[0, 1, 2, 3, 4, 4])",
        lambda: g().certify_batch(x(), N0, N, ALPHA, streams=[0, 1, 2, 3, 4, 4]))
    add("streams/2d", "smooth().predict_batch(inputs(2), 300, 0.001, streams=[[0, 1]])",
        lambda: g().predict_batch(x(2), N, ALPHA, streams=[[0, 1]]))
    add("streams/topk_duplicates", "smooth().certify_topk_batch(inputs(2), 2, ..., streams=[7, 7])",
        lambda: g().certify_topk_batch(x(2), 2, N0, N, ALPHA, streams=[7, 7]))
    # certify_topk_batch.
    add("topk/laplace", "smooth('laplace').certify_topk_batch(inputs(), 2, 20, 300, 0.001)",
        lambda: g("laplace").certify_topk_batch(x(), 2, N0, N, ALPHA))
    add("topk/uniform", "smooth('uniform').certify_topk_batch(inputs(), 2, 20, 300, 0.001)",
        lambda: g("uniform").certify_topk_batch(x(), 2, N0, N, ALPHA))
    add("topk/sound", "smooth(sigma=0.25, sound=True).certify_topk_batch(pixels(), 2, 20, 300, 0.001)",
        lambda: g(sigma=0.25, sound=True).certify_topk_batch(pixels(), 2, N0, N, ALPHA))
    add("topk/k_0", "smooth().certify_topk_batch(inputs(), 0, 20, 300, 0.001)",
        lambda: g().certify_topk_batch(x(), 0, N0, N, ALPHA))
    add("topk/k_4", "smooth().certify_topk_batch(inputs(), 4, 20, 300, 0.001)  (num_classes = 4)",
        lambda: g().certify_topk_batch(x(), 4, N0, N, ALPHA))
    add("topk/k_float", "smooth().certify_topk_batch(inputs(), 2.0, 20, 300, 0.001)",
        lambda: g().certify_topk_batch(x(), 2.0, N0, N, ALPHA))
    add("topk/n0_2**31", "smooth().certify_topk_batch(inputs(), 2, 2**31, 300, 0.001)",
        lambda: g().certify_topk_batch(x(), 2, 2**31, N, ALPHA))
    add("topk/n_2**31", "smooth().certify_topk_batch(inputs(), 2, 20, 2**31, 0.001)",
        lambda: g().certify_topk_batch(x(), 2, N0, 2**31, ALPHA))
    add("topk/alpha_2", "smooth().certify_topk_batch(inputs(), 2, 20, 300, 2.0)",
        lambda: g().certify_topk_batch(x(), 2, N0, N, 2.0))
    add("topk/two/laplace_k_4", "smooth('laplace').certify_topk_batch(inputs(), 4, 20, 300, 0.001)",
        lambda: g("laplace").certify_topk_batch(x(), 4, N0, N, ALPHA))
    add("topk/two/k_4_n0_0", "smooth().certify_topk_batch(inputs(), 4, 0, 300, 0.001)",
        lambda: g().certify_topk_batch(x(), 4, 0, N, ALPHA))
    add("topk/two/k_0_n0_0", "smooth().certify_topk_batch(inputs(), 0, 0, 300, 0.001)",
        lambda: g().certify_topk_batch(x(), 0, 0, N, ALPHA))
    # predict_batch and sample_counts.
    add("predict_batch/n_0", "smooth().predict_batch(inputs(), 0, 0.001)", lambda: g().predict_batch(x(), 0, ALPHA))
    add("predict_batch/n_2**31", "smooth().predict_batch(inputs(), 2**31, 0.001)",
        lambda: g().predict_batch(x(), 2**31, ALPHA))
    add("predict_batch/alpha_1.5", "smooth().predict_batch(inputs(), 300, 1.5)", lambda: g().predict_batch(x(), N, 1.5))
    add("predict_batch/batch_-1", "smooth().predict_batch(inputs(), 300, 0.001, -1)",
        lambda: g().predict_batch(x(), N, ALPHA, -1))
    add("sample_counts/phase_3", "smooth().sample_counts(inputs(), 300, 3)", lambda: g().sample_counts(x(), N, 3))
    add("sample_counts/n_2**31", "smooth().sample_counts(inputs(), 2**31)", lambda: g().sample_counts(x(), 2**31))
    add("sample_counts/two/n_and_phase", "smooth().sample_counts(inputs(), 0, 3)", lambda: g().sample_counts(x(), 0, 3))
    add("sample_counts/two/phase_and_batch", "smooth().sample_counts(inputs(), 300, 3, 0)",
        lambda: g().sample_counts(x(), N, 3, 0))
    return cases


def run_api_refusal_case(case: dict):
    return {"call": case["call"], **outcome(case["function"])}


# -- all cases ---------------------------------------------------------------------------------

def needs_vision(case: dict) -> bool:
    """Whether a case reads an image folder (torchvision's ImageFolder, the vision extra)."""
    return any("images" in step for step in case.get("steps", ()))


def vision_importable() -> bool:
    """Whether torchvision imports here (torch 2.13.0's CPU build, the Quick start's, cannot)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install counts as absent
        return False
    return True


def all_cases() -> list[dict]:
    """Every case, in the order the generator runs them (names are unique)."""
    cases = [*matrix_cases(), *extra_run_cases(), *refusal_cases(), *stats_cases(), *smooth_cases(),
             *api_refusal_cases()]
    names = [case["name"] for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate golden case names: {duplicates}")
    return cases


def run_case(case: dict, workdir) -> dict:
    """The normalised, JSON-ready result of one case (``workdir``: an empty directory, used by cli cases)."""
    runner = {"cli": run_cli_case, "call": lambda c, _: run_call_case(c), "smooth": lambda c, _: run_smooth_case(c),
              "api_refusal": lambda c, _: run_api_refusal_case(c)}[case["kind"]]
    return json_ready(runner(case, workdir))


def json_ready(result):
    """``result`` as it reads back from a golden file (tuples become lists)."""
    return json.loads(json.dumps(result))


def file_of(case: dict, result: dict) -> str:
    """Which golden file holds a case's result."""
    if case["kind"] == "cli":
        refused = case["name"].startswith("refuse/") or (
            case["name"].startswith("matrix/") and result["steps"][0]["exit"] != 0)
        return "cli_refusals.json" if refused else "cli_runs.json"
    return {"call": "stats.json", "smooth": "smooth.json", "api_refusal": "api_refusals.json"}[case["kind"]]


def first_difference(actual, expected, path: str = "") -> str | None:
    """Where two JSON values first differ, as ``path: actual != expected``; None if equal."""
    if type(actual) is not type(expected):
        return f"{path or '.'}: {actual!r} != {expected!r}"
    if isinstance(actual, dict):
        for key in sorted(set(actual) | set(expected)):
            if key not in actual or key not in expected:
                return f"{path}/{key}: only in {'the run' if key in actual else 'the golden'}"
            found = first_difference(actual[key], expected[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(actual, list):
        for index, (a, e) in enumerate(zip(actual, expected)):
            found = first_difference(a, e, f"{path}[{index}]")
            if found:
                return found
        if len(actual) != len(expected):
            return f"{path or '.'}: {len(actual)} items != {len(expected)} in the golden"
        return None
    return None if actual == expected else f"{path or '.'}: {actual!r} != {expected!r}"


_INLINE_KEYS = ("data", "argv", "shape", "mpf", "stopped_early")


def _dumps(value, indent: int, key: str | None) -> str:
    pad, inner = " " * indent, " " * (indent + 1)
    one_line = json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, indent + 1, k)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value:
        scalars = all(not isinstance(v, (dict, list)) for v in value)
        if scalars and (key in _INLINE_KEYS or len(one_line) <= 60):
            return one_line
        items = [f"{inner}{_dumps(v, indent + 1, None)}" for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return one_line


def dump(document: dict) -> str:
    """The text of a golden file: JSON, one line per text line, arrays and argv on one line."""
    text = _dumps(document, 0, None) + "\n"
    assert json.loads(text) == document
    return text


def load_goldens() -> dict:
    """Every golden result by case name, from all of :data:`FILES`."""
    goldens = {}
    for name in FILES:
        document = json.loads((GOLDEN_DIR / name).read_text(encoding="utf-8"))
        for case_name, result in document["cases"].items():
            goldens[case_name] = {"file": name, "result": result}
    return goldens
