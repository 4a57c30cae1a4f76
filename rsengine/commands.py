"""What the command-line subcommands do, given their parsed options (see ``rsengine.cli``).

``certify`` and ``predict`` turn their flags into a noise and a question (the flag grammar, and
rsengine.support's reasons in flag names) and hand them to rsengine.run, which runs them over the
data set. Each ``run_*`` function takes an ``argparse.Namespace`` and returns nothing; it raises
``ValueError``/``OSError`` subclasses with one-line messages, which ``rsengine.cli.main`` prints
without a traceback.

Example:
    >>> from rsengine.commands import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
"""
from __future__ import annotations

import dataclasses
import os
import sys

import torch

from . import analyze, distributed
from .checkpoints import bundled_checkpoint, load_classifier, save_checkpoint
from .data import dataset_num_classes, dataset_stats, load_dataset
from .flags import certify_question, check_plot_path, check_sampling, check_sound
from .inputs import InputCheck
from .models import build_model
from .noises import noise_named
from .options import PRECISIONS, RANDOM_SEED
from .questions import Predict, Question, TopK, question_type_of_record
from .results import read_results
from .resume import (file_digest, radius_norm, read_run_record, recorded_arguments, recorded_ceiling, recorded_pa_noise,
                     recorded_question, recorded_skipped, recorded_sound, recorded_top_k, samples_note, skipped_note)
from .run import DatasetRun, Results
from .smooth import Smooth
from .stats import floor_significant
from .train import check_recipe, resolve_method, train_model
from .training_methods import CatRS, catrs_confidences, method_named, published_defaults

__all__ = ["plot_title", "resolve_device", "run_certify", "run_predict", "run_analyze", "run_train"]


def resolve_device(name: str | None) -> torch.device:
    """The device named on the command line, default CUDA when present; errors if absent."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"Expected `--device` to name a torch device such as cpu or cuda:0, got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"CUDA device {name!r} is not available here (torch.cuda.is_available() is False); "
                             "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"CUDA device {name!r} does not exist: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return device


# -- the run -------------------------------------------------------------------------------------


def _smoothed_model(opts, seed: int | None = None, device_name: str | None = None):
    """Load the classifier and data set and build the Smooth (seed: default opts.seed;
    device_name: default opts.device, a torchrun rank passes its own)."""
    device = resolve_device(opts.device if device_name is None else device_name)
    dtype = PRECISIONS[opts.precision]
    classifier = load_classifier(opts.base_classifier, weights=opts.weights, num_classes=opts.num_classes,
                                 device=device, trust_pickle=opts.trust_pickle)
    if opts.weights is None and not os.path.exists(opts.base_classifier) and distributed.launched_rank() == 0:
        print(f"note: {opts.base_classifier} has random weights (give its weights with --weights FILE)",
              file=sys.stderr)
    dataset = load_dataset(opts.dataset, opts.split, opts.data_dir, resize=opts.resize, crop=opts.crop,
                           channels=opts.channels, num_classes=classifier.num_classes or None)
    data_classes = dataset_num_classes(opts.dataset)
    num_classes = classifier.num_classes or data_classes  # 0: a pickled model or factory that does not say
    # An image folder may hold some of the model's classes (its folder names say which); a named
    # data set's labels are fixed, and another class count means another data set's model.
    if num_classes != data_classes and not (os.path.isdir(opts.dataset) and num_classes > data_classes):
        raise ValueError(f"The classifier {opts.base_classifier} has {num_classes} classes but data set "
                         f"{opts.dataset!r} has {data_classes}")
    opts.model_classes = num_classes  # for the summary's top-k ceiling
    top_k = getattr(opts, "top_k", None)
    if top_k is not None and top_k >= num_classes:  # every class is always in a top K of K
        raise ValueError(f"Expected `--top-k` < the number of classes of {opts.dataset!r} ({num_classes}), got {top_k}")
    # The checkpoint (or the model's package) says how its classifier normalizes (original
    # checkpoints get their data set's statistics when loaded); None: it takes pixels as they are.
    mean, std = (classifier.mean, classifier.std) if opts.mean is None and opts.std is None else (opts.mean, opts.std)
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
    model = classifier.model.to(device=device, dtype=dtype, memory_format=memory_format).eval()
    smooth = Smooth(model, num_classes, opts.sigma, mean=mean, std=std,
                    seed=opts.seed if seed is None else seed, backend=opts.backend, device=device, dtype=dtype,
                    memory_format=memory_format, noise=opts.noise, sound=getattr(opts, "sound", False),
                    deterministic=opts.deterministic)
    _check_compatible(smooth, dataset, opts)
    return smooth, dataset


def _selection(opts, length: int) -> range:
    """Inputs 0, skip, 2 * skip, ... below min(--max, the data set's length). (The original stopped
    only when the index hit --max exactly.)"""
    return range(0, length if opts.max is None else min(opts.max, length), opts.skip)


def _check_compatible(smooth: Smooth, dataset, opts) -> None:
    # One noisy forward pass before any row is written: a checkpoint that cannot take this
    # data set's inputs fails here with one clear line instead of inside the run. Its input is the
    # first selected one that loads (a bad one stops the run here unless --on-bad-input skip).
    if not len(dataset):
        raise ValueError(f"Data set {opts.dataset!r} ({opts.split} split) is empty")
    check = InputCheck(dataset, opts.dataset, smooth.num_classes, sound=smooth.sound)
    # Inputs an earlier run of this file skipped stay skipped: the resume does not stop on them.
    skipped = set() if opts.overwrite or opts.retry_skipped else set(recorded_skipped(read_run_record(opts.outfile)))
    first = check.first_usable(_selection(opts, len(dataset)),
                               lambda index: opts.on_bad_input == "skip" or index in skipped)
    if first is None:
        return  # nothing selected loads: the run says so
    index, x = first
    try:
        smooth.sample_counts(x[None], 1, streams=[index])
    except RuntimeError as error:
        # An image folder's images can be converted: say how when the channels are what differs.
        hint = ("; --channels 1 or --channels 3 converts the folder's images" if os.path.isdir(opts.dataset)
                and "channels" in str(error) else "")
        raise ValueError(f"The classifier in {opts.base_classifier} cannot take inputs of data set "
                         f"{opts.dataset!r} (shape {list(x.shape)}): {error}{hint}") from None


def _data_arguments(opts) -> dict:
    """The run-record keys of the CLI's data set, checkpoint and classifier set-up."""
    dataset = os.path.abspath(opts.dataset) if os.path.isdir(opts.dataset) else opts.dataset
    # Where the data came from too: the same name may point at another copy next time.
    data_dir = opts.data_dir or os.environ.get("IMAGENET_DIR" if opts.dataset == "imagenet" else "RSENGINE_DATA")
    built = not os.path.exists(opts.base_classifier)  # a model source, not a checkpoint file
    arguments = dict(dataset=dataset, data_dir=os.path.abspath(data_dir) if data_dir else None, split=opts.split,
                     checkpoint_sha256=None if built else file_digest(opts.base_classifier), skip=opts.skip,
                     max=opts.max, precision=opts.precision, channels_last=opts.channels_last)
    # The model's options enter the record only when given, so a run without them keeps the keys
    # (and resumes the results files) of earlier versions.
    model = dict(model=opts.base_classifier if built else None,
                 weights_sha256=file_digest(opts.weights) if opts.weights else None, num_classes=opts.num_classes,
                 mean=opts.mean, std=opts.std, resize=opts.resize, crop=opts.crop, channels=opts.channels)
    return {**arguments, **{key: value for key, value in model.items() if value is not None}}


def _run(opts, question: Question) -> Results | None:
    """Run ``question`` over the data set's selected inputs (:func:`_selection`)."""
    run = DatasetRun(lambda seed, local_rank: _smoothed_model(opts, seed, distributed.rank_device(opts.device,
                                                                                                  local_rank)),
                     question, lambda length: _selection(opts, length),
                     opts.outfile, seed=None if opts.seed == RANDOM_SEED else opts.seed,
                     arguments=lambda: _data_arguments(opts), batch_size=opts.batch, overwrite=opts.overwrite,
                     resume_with_changes=opts.resume_with_changes, name=opts.dataset,
                     on_bad_input=opts.on_bad_input, retry_skipped=opts.retry_skipped)
    results = run.execute()
    return results if distributed.launched_rank() == 0 else None


def run_certify(opts) -> None:
    """CERTIFY every selected input of a data set; one results row per input."""
    question = certify_question(opts)
    results = _run(opts, question)
    if results is not None and len(results):
        # The classifier's classes (a folder may hold fewer than the model).
        num_classes = (getattr(opts, "model_classes", None) or dataset_num_classes(opts.dataset)
                       if isinstance(question, TopK) else 0)
        _summarize(results, opts, question, num_classes)


def run_predict(opts) -> None:
    """PREDICT every selected input of a data set; one results row per input."""
    sound = check_sound(opts)
    check_sampling(opts)
    results = _run(opts, Predict(opts.N, opts.alpha))
    if results is not None and len(results):
        print(f"smoothed accuracy {results.table.correct.mean():.3f} ({len(results)} inputs{', sound mode' * sound})")
        note = skipped_note(os.path.basename(opts.outfile), results.table, read_run_record(opts.outfile))
        if note:
            print(note)


def _summarize(results: Results, opts, question: Question, num_classes: int) -> None:
    noise = noise_named(opts.noise, opts.sigma, getattr(opts, "sound", False))
    # Columns stop at the largest radius n and alpha allow (n votes of n): beyond it every value
    # is 0 by design.
    ceiling = question.largest_radius(noise, num_classes)
    radii = [r for r in analyze.default_radii() if r <= ceiling] or [0.0]
    record = read_run_record(opts.outfile)
    arguments = recorded_arguments(record)
    target = recorded_question(arguments).get("radius")
    if isinstance(target, (int, float)) and target not in radii:
        radii = sorted([*radii, target])
    limit = (f"no certificate can exceed {floor_significant(ceiling)}" if ceiling > 0 else
             "no input can be certified")
    mode = "; sound mode: radii for perturbations on the 1/255 grid" if noise.sound else ""
    print(f"\n{question.title(noise)} at {noise.norm} radius >= r, {opts.noise} noise{mode}); {limit} at "
          f"sigma = {opts.sigma}, N = {opts.N}, alpha = {opts.alpha}\n")
    print(analyze.format_table([opts.outfile], results.certified_accuracy(radii)[None], radii))
    print(f"average certified radius (ACR) {results.acr:.3f}")
    rate_reason, pa_reason = question.abstention_unavailable, question.pa_lower_unavailable
    for line in _metric_lines(None if rate_reason else results.abstention_rate, rate_reason,
                              None if pa_reason else results.pa_lower_distribution(), pa_reason):
        print(line)
    for note in (samples_note(os.path.basename(opts.outfile), results.table, arguments),
                 skipped_note(os.path.basename(opts.outfile), results.table, record)):
        if note:
            print(note)
    if opts.plot:
        analyze.plot_certified_accuracy([results.table], opts.plot, names=[os.path.basename(opts.outfile)],
                                        norm=noise.norm, title=plot_title([arguments], opts.base_classifier),
                                        ceilings=[ceiling if ceiling > 0 else None])
        print(f"plot saved to {os.path.abspath(opts.plot)}")
    elif getattr(opts, "plot_skipped", None):  # the embedded default's plot, without matplotlib
        print(f"note: no plot ({opts.plot_skipped})", file=sys.stderr)


def _metric_lines(rate: float | None, rate_reason: str | None, shares, pa_reason: str | None) -> list[str]:
    """The abstention rate's and pA's lines of the certify summary and of analyze; each says why
    not where its file cannot give it (a reason given instead of the value)."""
    abstention = (f"abstention rate {rate:.3f}" if rate_reason is None
                  else f"abstention rate not available: {rate_reason}")
    pa = (f"pA lower bounds (true class), share of inputs per bin [low, high): {analyze.format_pa_distribution(shares)}"
          if pa_reason is None else f"pA lower bounds not available: {pa_reason}")
    return [abstention, pa]


def _file_metrics(table, record: dict | None) -> tuple:
    """(abstention rate, why not, pA shares, why not) of a results file and its run record."""
    question = question_type_of_record(recorded_arguments(record), table.kind)
    # A top-k file of k >= 2 says so itself, with or without its record.
    rate_reason = question.abstention_unavailable or (TopK.abstention_unavailable if table.labels is not None else None)
    noise, pa_reason = recorded_pa_noise(record, table.kind)
    pa_reason = pa_reason or (TopK.pa_lower_unavailable if table.labels is not None else None)
    return (None if rate_reason else analyze.abstention_rate(table), rate_reason,
            None if pa_reason else analyze.pa_lower_distribution(table, noise), pa_reason)


def plot_title(arguments: list[dict], checkpoint: str | None = None) -> str | None:
    """A plot's title: the sigma, N, alpha, noise and model the files' run records share (None: none).

    Example:
        >>> print(plot_title([{"sigma": 0.25, "N": 10000, "alpha": 0.001, "dataset": "mnist"}], "model.pt"))
        sigma = 0.25, N = 10000, alpha = 0.001
        model model.pt on mnist

    The model is the checkpoint's file name (or the model source) where the run is at hand, else
    the record's model source, else read from its digest: the bundled model's name, or the
    digest's first 12 hex digits.
    """
    def shared(key):
        values = [args.get(key) for args in arguments]
        return values[0] if values and all(value == values[0] for value in values) else None

    parts = [f"{label} = {shared(key)}" for key, label in (("sigma", "sigma"), ("N", "N"), ("alpha", "alpha"))
             if shared(key) is not None]
    if shared("noise") not in (None, "gaussian"):
        parts.append(f"{shared('noise')} noise")
    digest = shared("checkpoint_sha256")
    if checkpoint is not None:
        model = checkpoint if shared("model") == checkpoint else os.path.basename(checkpoint)
    elif isinstance(shared("model"), str):  # a model source (torchvision:resnet50), not a file
        model = shared("model")
    elif isinstance(digest, str):
        model = (os.path.basename(bundled_checkpoint()) if digest == file_digest(bundled_checkpoint())
                 else f"checkpoint {digest[:12]}")
    else:
        model = None
    lines = [", ".join(parts)] if parts else []
    if model is not None:  # a line of its own: a long file name would run off the figure
        lines.append(f"model {model}" + (f" on {shared('dataset')}" if isinstance(shared("dataset"), str) else ""))
    return "\n".join(lines) or None


# -- analyze, train ------------------------------------------------------------------------------


def _warn_if_unfinished(path: str, record: dict | None) -> None:
    # A results file of a run that stopped early looks like any other: say so (on stderr, so
    # the table on stdout stays clean). record: None for files of the original code: nothing to say.
    if record is not None and record.get("complete") is False:
        print(f"note: {path} is from a run that has not finished; rerun its command to complete it",
              file=sys.stderr)


def run_analyze(opts) -> None:
    """Certified-accuracy table (and optional plot) of one or more results files."""
    check_plot_path(opts.plot)
    tables = [read_results(path) for path in opts.files]
    records = [read_run_record(path) for path in opts.files]
    arguments = [recorded_arguments(record) for record in records]
    for path, table, record in zip(opts.files, tables, records):
        _warn_if_unfinished(path, record)
        if not len(table):
            raise ValueError(f"{path}: no rows yet (a run stopped before its first input)")
    kinds = {table.kind for table in tables}
    norms = {radius_norm(args) for args, table in zip(arguments, tables) if table.kind == "certify"}
    if len(norms) > 1:
        raise ValueError(f"the files' radii are in different norms ({' and '.join(sorted(norms))}): analyze them "
                         "separately")
    norm = norms.pop() if norms else "l2"
    if norm != "l2":
        print(f"radii are {norm} radii (from the files' run records)", file=sys.stderr)
    if opts.plot and kinds != {"certify"}:
        raise ValueError("--plot needs certify results files (predict files have no radii)")
    ceilings = [recorded_ceiling(args) if table.kind == "certify" else None for args, table in zip(arguments, tables)]
    radii = opts.radii
    if radii is None:
        # A prediction carries no radius: with predict files only clean accuracy makes sense.
        radii = [0.0] if "predict" in kinds else analyze.default_radii()
        if None not in ceilings:  # as the certify summary: columns past every file's ceiling are 0 by design
            radii = [r for r in radii if r <= max(ceilings)] or [0.0]
    accuracies = [analyze.certified_accuracy(table, radii) for table in tables]
    acrs = [analyze.average_certified_radius(table) if table.kind == "certify" else None for table in tables]
    metrics = [_file_metrics(table, record) for table, record in zip(tables, records)]
    if opts.format in analyze.DATA_FORMATS:
        print(analyze.format_data(opts.files, accuracies, radii, acrs, fmt=opts.format,
                                  abstentions=[rate for rate, *_ in metrics],
                                  pa_shares=[shares for _, _, shares, _ in metrics]), end="")
    else:
        print(analyze.format_table(opts.files, accuracies, radii, fmt=opts.format))
    notes = sys.stdout if opts.format == "markdown" else sys.stderr  # LaTeX, CSV and JSON stay clean
    said = set()
    for path, table, args, acr, record, metric in zip(opts.files, tables, arguments, acrs, records, metrics):
        k = recorded_top_k(args)
        note = samples_note(path, table, args)
        skipped = skipped_note(path, table, record)
        if skipped:
            print(skipped, file=notes)
        if opts.format not in analyze.DATA_FORMATS:  # CSV and JSON hold these
            if acr is not None:
                print(f"{path}: average certified radius (ACR) {acr:.3f}", file=notes)
            # A predict file's pA line would only say it has no radii, as its missing ACR line does.
            for line in _metric_lines(*metric)[:1 if table.kind == "predict" else 2]:
                if "not available" not in line:
                    print(f"{path}: {line}", file=notes)
                elif line not in said:  # a reason several files share (no run record, say) is said once
                    said.add(line)
                    others = sum(_metric_lines(*m).count(line) for m in metrics) - 1
                    print(f"{path}{f' and {others} more file' + 's' * (others > 1) if others else ''}: {line}",
                          file=notes)
        if k is not None:  # another question than the other rows': say which
            print(f"{path}: certified top-{k} accuracy (its true class certified among {k} labels)", file=sys.stderr)
        if recorded_sound(args):  # another guarantee: on the grid, against any classifier
            print(f"{path}: sound mode" + (": radii for perturbations on the 1/255 grid" if table.kind == "certify"
                                           else " (the smoothed classifier on the 1/255 grid)"), file=sys.stderr)
        if note:
            print(note, file=notes)
    if opts.plot:
        analyze.plot_certified_accuracy(tables, opts.plot, names=opts.files, norm=norm, title=plot_title(arguments),
                                        ceilings=[c if c is not None and c > 0 else None for c in ceilings])
        print(f"plot saved to {os.path.abspath(opts.plot)}")


def _hyperparameters(settings: list[str]) -> dict:
    """``--hparam NAME=VALUE`` settings as {name: int or float}."""
    values = {}
    for setting in settings:
        name, equals, text = setting.partition("=")
        try:
            value = int(text) if text.strip().lstrip("+-").isdigit() else float(text)
        except ValueError:
            value = None
        if not equals or not name or value is None:
            raise ValueError(f"--hparam: expected NAME=NUMBER, e.g. lam=5, got {setting!r}")
        if name in values:
            raise ValueError(f"--hparam: {name} given twice ({values[name]:g} and {value:g})")
        values[name] = value
    return values


def _check_prepass_flag(opts) -> None:
    """--prepass-model: CAT-RS's alone, and needed by it but on MNIST (the bundled model)."""
    if opts.prepass_model is not None and opts.method != "catrs":
        raise ValueError(f"--prepass-model is CAT-RS's (--method catrs), got --method {opts.method}")
    if opts.method == "catrs" and opts.prepass_model is None and opts.dataset != "mnist":
        raise ValueError("--method catrs needs --prepass-model: a checkpoint trained with Gaussian noise (the paper's "
                         "at sigma 0.25), whose smoothed votes on the training set weigh the loss")


def _training_method(opts, device, dataset):
    """The --method with its published defaults and the --hparam settings, checked against the run
    before any costly work; CAT-RS with its pre-pass run."""
    family = opts.dataset if opts.dataset in ("mnist", "cifar10") else "cifar10"
    method = method_named(opts.method, family, opts.sigma, **_hyperparameters(opts.hparam))
    resolve_method(method, opts.sigma, opts.noise, dataset_size=len(dataset), epochs=opts.epochs, seed=opts.seed,
                   need_confidences=False)
    _, published_sigma, source = published_defaults(opts.method, family, opts.sigma)
    settings = " ".join(f"{k}={v:g}" for k, v in method.hyperparameters().items())
    changed = ", with --hparam" if opts.hparam else ""
    print(f"method {opts.method}: {settings} ({source}, sigma {published_sigma:g}{changed})")
    if isinstance(method, CatRS):
        prepass = load_classifier(opts.prepass_model or bundled_checkpoint(), device=device)
        classes = dataset_num_classes(opts.dataset)
        if prepass.num_classes != classes:
            raise ValueError(f"--prepass-model has {prepass.num_classes} classes, {opts.dataset} {classes}")
        if prepass.sigma is not None and prepass.sigma != method.prepass_sigma:
            print(f"note: the pre-pass model was trained at sigma {prepass.sigma:g}; its votes are drawn at "
                  f"prepass_sigma {method.prepass_sigma:g}", file=sys.stderr)
        confidences = catrs_confidences(prepass.model, dataset, prepass.num_classes, sigma=method.prepass_sigma,
                                        n=method.prepass_n, mean=prepass.mean, std=prepass.std, seed=opts.seed,
                                        device=device, log=print)
        method = dataclasses.replace(method, confidences=confidences)
    return method


def run_train(opts) -> None:
    """Train an architecture with a method (--method, default noise augmentation) and save a checkpoint."""
    device = resolve_device(opts.device)
    num_classes = dataset_num_classes(opts.dataset)
    check_recipe(sigma=opts.sigma, epochs=opts.epochs, batch_size=opts.batch, lr=opts.lr, lr_schedule=opts.lr_schedule,
                 seed=opts.seed, noise=opts.noise)
    _check_prepass_flag(opts)
    dataset = load_dataset(opts.dataset, "train", opts.data_dir)
    method = _training_method(opts, device, dataset)
    torch.manual_seed(opts.seed)  # the initial weights too, so the command reproduces a checkpoint
    model = build_model(opts.arch, num_classes)
    mean, std = dataset_stats(opts.dataset)
    train_model(model, dataset, sigma=opts.sigma, epochs=opts.epochs, batch_size=opts.batch, lr=opts.lr,
                lr_schedule=opts.lr_schedule, mean=mean, std=std, seed=opts.seed, device=device, log=print,
                noise=opts.noise, method=method)
    # The checkpoint format records a Gaussian sigma; the training noise and method go in `extra`.
    extra = {"noise": opts.noise, "method": method.name, "hyperparameters": method.hyperparameters()}
    save_checkpoint(opts.outfile, model.cpu(), opts.arch, sigma=opts.sigma, mean=mean, std=std, extra=extra)
    print(f"saved {opts.arch} trained by {method.name} with {opts.noise} noise at sigma={opts.sigma} to "
          f"{os.path.abspath(opts.outfile)}")
