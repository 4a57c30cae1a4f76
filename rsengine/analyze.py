"""Certified accuracy from results files: numbers, tables and plots.

Approximate certified accuracy at radius r (the original code's ``ApproximateAccuracy``) is the
fraction of rows with ``correct == 1`` and ``radius >= r``: an input counts when its smoothed
prediction is right and certified at least that far. At r = 0 this is the smoothed classifier's
clean accuracy, the only value a predict file (which has no radii) can give.

Beside it: the average certified radius (ACR), the abstention rate, and the distribution of
lower bounds on pA, the smoothed probability of each input's true class, which Sun, Mao, Muller
& Vechev (ICML 2025, "Average Certified Radius is a Poor Metric for Randomized Smoothing")
recommend over ACR, whose mean rewards gains on inputs that are already easy. The bounds are read
back from the radii by the noise (``Noise.pa_lower``), so they need the run record's noise.

Plots use matplotlib's object API with an explicit Agg canvas: no pyplot, no global backend
switch, so plotting works headless and leaves the caller's matplotlib state alone. matplotlib is
imported only when a plot is drawn, and is an extra (``pip install "rsengine[plot]"``):
:func:`plot_unavailable` says, without importing it, whether a plot can be drawn here.

Example:
    >>> import numpy as np
    >>> from rsengine.results import ResultsTable
    >>> t = ResultsTable("certify", idx=np.arange(4), label=np.zeros(4, int),
    ...                  predict=np.array([0, 0, 0, -1]), radius=np.array([0.2, 0.5, 1.0, 0.0]),
    ...                  correct=np.array([1, 1, 1, 0]), time_seconds=np.ones(4))
    >>> certified_accuracy(t, [0.0, 0.5, 1.5]).tolist()
    [0.75, 0.5, 0.0]
    >>> print(format_table(["model"], certified_accuracy(t, [0.0, 0.5])[None, :], [0.0, 0.5]), end="")
    |  | r = 0.0 | r = 0.5 |
    | --- | ---: | ---: |
    | model | 0.75 | 0.50 |
    >>> from rsengine.noises import Gaussian
    >>> abstention_rate(t), pa_lower_distribution(t, Gaussian(0.5)).tolist()
    (0.25, [0.25, 0.5, 0.25, 0.0, 0.0])
"""
from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
from typing import Optional, Sequence

import numpy as np

from rsengine.results import ResultsTable
from rsengine.stats import floor_significant
from rsengine.validation import check_choice, check_positive_float, check_positive_int

__all__ = [
    "DATA_FORMATS",
    "PA_EDGES",
    "PLOT_FORMATS",
    "TABLE_FORMATS",
    "abstention_rate",
    "average_certified_radius",
    "certified_accuracy",
    "default_radii",
    "format_data",
    "format_pa_distribution",
    "format_table",
    "pa_bin_labels",
    "pa_lower_bounds",
    "pa_lower_distribution",
    "plot_certified_accuracy",
    "plot_unavailable",
]

# Points of the radius grid a plot evaluates on, besides every radius that occurs in a file
# (those make the step curve exact); 1000 steps is finer than any figure's pixel width.
_PLOT_GRID_STEPS = 1000
# The x axis runs this far past the largest radius or ceiling: the curves' last drops stay inside.
_PLOT_MARGIN = 1.05

PLOT_FORMATS = (".png", ".pdf")
TABLE_FORMATS = ("markdown", "latex")  # for people: two decimals, best values marked
DATA_FORMATS = ("csv", "json")  # for tools: full precision, ACR beside the accuracies
# Bins of pA's lower bound: below 1/2 nothing is certified; past 0.9 each bin is a tenth of the
# remaining error, the easy inputs where ACR's gains come from (n = 100k, alpha = 0.001 reaches
# 0.99993; n = 1,000 stops at 0.9931, so its last bin stays empty).
PA_EDGES = (0.5, 0.9, 0.99, 0.999)

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def plot_unavailable() -> Optional[str]:
    """Why no plot can be drawn here (matplotlib is not installed), or None when one can.

    Looks for matplotlib without importing it (0.3 s), so a command can refuse ``--plot`` before
    its run starts instead of failing after it.

    Example:
        >>> plot_unavailable() in (None, 'matplotlib is not installed: pip install "rsengine[plot]"')
        True
    """
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken install, or a module with no spec
        found = False
    return None if found else 'matplotlib is not installed: pip install "rsengine[plot]"'


def default_radii() -> list:
    """Return the radii of the usual certified-accuracy table: 0.0 to 2.25 in steps of 0.25.

    These are the columns most follow-up work reports (e.g. Salman et al. 2019); r = 0 is the
    clean accuracy of the smoothed classifier. Cohen et al.'s own tables use 0.25-1.5 (CIFAR-10)
    and 0.5-3.0 (ImageNet); pass those explicitly to reproduce them.

    Returns:
        A new list of 10 floats.

    Example:
        >>> default_radii()[:3]
        [0.0, 0.25, 0.5]
    """
    return [0.25 * step for step in range(10)]


def certified_accuracy(table: ResultsTable, radii) -> np.ndarray:
    """Approximate certified accuracy of one results table at each radius.

    Args:
        table: a table from :func:`rsengine.results.read_results` with N >= 1 rows.
        radii: a radius or a sequence of R radii, each finite and >= 0.

    Returns:
        float64 array of ``np.shape(radii)``: fraction of rows with ``correct == 1`` and
        ``radius >= r``. For a predict table only r = 0 is allowed and gives ``mean(correct)``.

    Raises:
        ValueError: the table is empty, a radius is negative or not finite, or a radius > 0 is
            asked of a predict table.

    Example:
        >>> import numpy as np
        >>> from rsengine.results import ResultsTable
        >>> t = ResultsTable("predict", np.arange(3), np.zeros(3, int), np.array([0, 0, 1]), None,
        ...                  np.array([1, 1, 0]), np.ones(3))
        >>> certified_accuracy(t, [0.0]).round(3).tolist()
        [0.667]
    """
    radii = np.asarray(radii, dtype=np.float64)
    if not np.all(np.isfinite(radii)) or np.any(radii < 0):
        raise ValueError(f"Expected `radii` to be finite numbers >= 0, got {radii.tolist()!r}")
    count = check_positive_int("len(table)", len(table))
    correct = table.correct == 1
    if table.kind == "predict":
        if np.any(radii > 0):
            source = table.path if table.path is not None else "this table"
            raise ValueError(
                f"Expected `radii` to be 0 for a predict file ({source} has no radius column; "
                f"certified accuracy at r > 0 needs a certify file), got {radii.tolist()!r}"
            )
        return np.full(radii.shape, np.count_nonzero(correct) / count)
    # Counting through a sorted array keeps a 1000-point plot grid over 1.28M ImageNet rows cheap.
    certified = np.sort(table.radius[correct])
    hits = certified.size - np.searchsorted(certified, radii, side="left")
    return hits.astype(np.float64) / count


def average_certified_radius(table: ResultsTable) -> float:
    """ACR: the mean over all rows of radius x correct (abstentions and wrong answers count 0).

    The average certified radius as MACER (Zhai et al. 2020) and later papers define it, from the
    file's radii (3 significant digits, rounded down). A top-k file's radius is the true class's.

    Raises:
        ValueError: the table is empty or is a predict table (no radii).

    Example:
        >>> import numpy as np
        >>> from rsengine.results import ResultsTable
        >>> t = ResultsTable("certify", np.arange(3), np.zeros(3, int), np.array([0, 0, -1]), np.array([0.5, 0.25, 0.0]),
        ...                  np.array([1, 0, 0]), np.ones(3))
        >>> round(average_certified_radius(t), 6)
        0.166667
    """
    count = check_positive_int("len(table)", len(table))
    if table.kind != "certify":
        raise ValueError(f"Expected a certify table for the average certified radius, got kind {table.kind!r}")
    return float(np.sum(np.where(table.correct == 1, table.radius, 0.0)) / count)


def abstention_rate(table: ResultsTable) -> float:
    """The fraction of rows where the smoothed classifier abstained: ``predict == -1``.

    Raises:
        ValueError: the table is empty, or is a top-k table (its ``labels``): a top-k row is -1
            wherever the true class is not certified among the labels, abstention or not. (A file
            of one label, or of -1 rows only, has no ``labels``: its run record says it is top-k,
            ``Question.abstention_unavailable``.)

    Example:
        >>> import numpy as np
        >>> from rsengine.results import ResultsTable
        >>> t = ResultsTable("predict", np.arange(4), np.zeros(4, int), np.array([0, -1, 1, -1]), None,
        ...                  np.array([1, 0, 0, 0]), np.ones(4))
        >>> abstention_rate(t)
        0.5
    """
    count = check_positive_int("len(table)", len(table))
    if table.labels is not None:
        raise ValueError("Expected a table that is not top-k for the abstention rate, got one with top-k labels: "
                         "its -1 rows are every row whose true class is not certified among them")
    return float(np.count_nonzero(table.predict == -1) / count)


def pa_lower_bounds(table: ResultsTable, noise) -> np.ndarray:
    """Per row, a lower bound on pA: the smoothed probability of the row's true class, read back
    from its radius.

    ``noise.pa_lower(radius)`` where the row is certified correct; 0.0 (no bound above 1/2) where
    it abstained or certified another class (whose bound above 1/2 leaves the true class below
    1/2). The file's radii are rounded down to 3 significant digits, so each value is itself a
    lower bound on the run's pA_lower. The run must have asked the one-sided CERTIFY (or adaptive
    in tolerance mode): check ``Question.pa_lower_unavailable`` first, a table cannot tell.

    Args:
        table: a certify table with N >= 1 rows, not top-k.
        noise: the run's :class:`rsengine.noises.Noise` (``noise_of_record`` reads it from a run
            record), whose sigma the radii were computed with.

    Returns:
        float64 [N], each 0.0 or in [1/2, 1].

    Raises:
        ValueError: the table is empty, a predict table (no radii) or a top-k table.

    Example:
        >>> import numpy as np
        >>> from rsengine.noises import Gaussian
        >>> from rsengine.results import ResultsTable
        >>> t = ResultsTable("certify", np.arange(3), np.zeros(3, int), np.array([0, 1, -1]),
        ...                  np.array([0.5, 0.9, 0.0]), np.array([1, 0, 0]), np.ones(3))
        >>> pa_lower_bounds(t, Gaussian(0.5)).round(4).tolist()
        [0.8413, 0.0, 0.0]
    """
    check_positive_int("len(table)", len(table))
    if table.kind != "certify" or table.labels is not None:
        what = "a predict table (no radii)" if table.kind != "certify" else "a top-k table"
        raise ValueError(f"Expected a one-sided certify table for pA's lower bounds, got {what}")
    return np.where(table.correct == 1, noise.pa_lower(table.radius), 0.0)


def pa_lower_distribution(table: ResultsTable, noise, edges: Sequence[float] = PA_EDGES) -> np.ndarray:
    """The share of all rows whose pA lower bound (:func:`pa_lower_bounds`) falls in each bin.

    Bins are ``[0, e_1), [e_1, e_2), ..., [e_k, 1]``: with the default edges ``< 0.5`` (not
    certified correct: abstained or wrong), ``0.5-0.9``, ``0.9-0.99``, ``0.99-0.999`` and
    ``>= 0.999`` (:func:`pa_bin_labels`).

    Args:
        table, noise: as in :func:`pa_lower_bounds`.
        edges: k increasing numbers in (0, 1].

    Returns:
        float64 [k + 1] shares, summing to 1.

    Example:
        >>> import numpy as np
        >>> from rsengine.noises import Gaussian
        >>> from rsengine.results import ResultsTable
        >>> t = ResultsTable("certify", np.arange(4), np.zeros(4, int), np.array([0, 0, 0, -1]),
        ...                  np.array([0.5, 1.2, 2.0, 0.0]), np.array([1, 1, 1, 0]), np.ones(4))
        >>> pa_lower_distribution(t, Gaussian(0.5)).tolist()  # Phi(1) = 0.84, Phi(2.4) = 0.992, Phi(4) = 0.99997
        [0.25, 0.25, 0.0, 0.25, 0.25]
    """
    edges = _check_edges(edges)
    bounds = pa_lower_bounds(table, noise)
    return np.bincount(np.searchsorted(edges, bounds, side="right"), minlength=len(edges) + 1) / len(bounds)


def pa_bin_labels(edges: Sequence[float] = PA_EDGES) -> list:
    """Names of :func:`pa_lower_distribution`'s bins, each ``[low, high)``, as every format prints them.

    Example:
        >>> pa_bin_labels()
        ['<0.5', '0.5-0.9', '0.9-0.99', '0.99-0.999', '>=0.999']
    """
    edges = [f"{edge:.6g}" for edge in _check_edges(edges)]
    return [f"<{edges[0]}", *(f"{low}-{high}" for low, high in zip(edges, edges[1:])), f">={edges[-1]}"]


def format_pa_distribution(shares, edges: Sequence[float] = PA_EDGES) -> str:
    """One line of :func:`pa_lower_distribution`'s shares for people: each bin's label and share.

    Example:
        >>> format_pa_distribution([0.25, 0.25, 0.5, 0.0, 0.0])
        '<0.5 0.250, 0.5-0.9 0.250, 0.9-0.99 0.500, 0.99-0.999 0.000, >=0.999 0.000'
    """
    labels = pa_bin_labels(edges)
    shares = np.asarray(shares, dtype=np.float64)
    if shares.shape != (len(labels),):
        raise ValueError(f"Expected `shares` of shape ({len(labels)},), one per bin, got {shares.shape}")
    return ", ".join(f"{label} {share:.3f}" for label, share in zip(labels, shares.tolist()))


def _check_edges(edges) -> np.ndarray:
    checked = np.asarray(edges, dtype=np.float64)
    if checked.ndim != 1 or not checked.size or not np.all((checked > 0) & (checked <= 1)) \
            or np.any(np.diff(checked) <= 0):
        raise ValueError(f"Expected `edges` to be increasing numbers in (0, 1], got {np.asarray(edges).tolist()!r}")
    return checked


def format_table(
    names: Sequence[str],
    accuracies,
    radii: Sequence[float],
    fmt: str = "markdown",
    *,
    escape: bool = True,
) -> str:
    """Format certified accuracies as a Markdown or LaTeX table, best value per column marked
    (when there are two rows or more).

    Values are printed with two decimals. In each column every cell whose printed value equals
    the column's best printed value is marked, so ties are all marked (bold ``**0.61**`` in
    Markdown, ``\\textbf{0.61}`` in LaTeX).

    Args:
        names: F row labels, one per results file.
        accuracies: [F, R] fractions in [0, 1], e.g. stacked :func:`certified_accuracy` rows.
        radii: R radii, the column headers (``r = 0.5``).
        fmt: ``"markdown"`` or ``"latex"`` (a ``tabular`` environment, plain ``\\hline`` rules).
        escape: escape characters the format gives a meaning to in ``names`` (``|`` in
            Markdown; ``\\ & % $ # _ { } ~ ^`` in LaTeX). Pass False to give LaTeX markup
            such as ``$\\sigma = 0.25$``.

    Returns:
        The table, one line per row, ending with a newline.

    Raises:
        ValueError: unknown ``fmt``, shapes that disagree, a value outside [0, 1], or a name
            containing a line break.

    Example:
        >>> print(format_table(["a", "b"], [[0.61, 0.2], [0.61, 0.3]], [0.0, 0.5], "latex"), end="")
        \\begin{tabular}{lrr}
        \\hline
         & $r = 0.0$ & $r = 0.5$ \\\\
        \\hline
        a & \\textbf{0.61} & 0.20 \\\\
        b & \\textbf{0.61} & \\textbf{0.30} \\\\
        \\hline
        \\end{tabular}
    """
    check_choice("fmt", fmt, TABLE_FORMATS)
    names = [str(name) for name in names]
    radii = [float(radius) for radius in radii]
    if not all(np.isfinite(radius) and radius >= 0 for radius in radii):
        raise ValueError(f"Expected `radii` to be finite numbers >= 0, got {radii!r}")
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if accuracies.shape != (len(names), len(radii)):
        raise ValueError(
            f"Expected `accuracies` of shape (len(names), len(radii)) = {(len(names), len(radii))}, "
            f"got {accuracies.shape}"
        )
    if not np.all((accuracies >= 0) & (accuracies <= 1)):
        raise ValueError(f"Expected `accuracies` in [0, 1], got {accuracies.tolist()!r}")
    for name in names:
        if "\n" in name or "\r" in name:
            raise ValueError(f"Expected `names` without line breaks, got {name!r}")

    cells = [["{:.2f}".format(value) for value in row] for row in accuracies.tolist()]
    # Best is judged on the printed values: two cells that both read 0.61 are both best.
    best = [max((row[j] for row in cells), key=float, default=None) for j in range(len(radii))]
    # With one row there is nothing to compare: marking every cell would say nothing.
    marked = [[len(cells) > 1 and text == best[j] for j, text in enumerate(row)] for row in cells]
    labels = [_radius_label(radius) for radius in radii]

    if fmt == "markdown":
        names = [name.replace("|", r"\|") for name in names] if escape else names
        lines = ["|  | " + " | ".join(f"r = {label}" for label in labels) + " |"]
        lines.append("| --- | " + " | ".join("---:" for _ in labels) + " |")
        for name, row, marks in zip(names, cells, marked):
            body = " | ".join(f"**{text}**" if mark else text for text, mark in zip(row, marks))
            lines.append(f"| {name} | {body} |")
        return "\n".join(lines) + "\n"

    names = ["".join(_LATEX_SPECIALS.get(char, char) for char in name) for name in names] if escape else names
    lines = [r"\begin{tabular}{l" + "r" * len(radii) + "}", r"\hline"]
    lines.append(" & " + " & ".join(f"$r = {label}$" for label in labels) + r" \\")
    lines.append(r"\hline")
    for name, row, marks in zip(names, cells, marked):
        body = " & ".join(rf"\textbf{{{text}}}" if mark else text for text, mark in zip(row, marks))
        lines.append(f"{name} & {body}" + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def format_data(
    names: Sequence[str],
    accuracies,
    radii: Sequence[float],
    acrs: Sequence[Optional[float]],
    fmt: str = "csv",
    *,
    abstentions: Optional[Sequence[Optional[float]]] = None,
    pa_shares: Optional[Sequence] = None,
    pa_edges: Sequence[float] = PA_EDGES,
) -> str:
    """Certified accuracies for tools: CSV with a header row, or JSON, at full precision.

    CSV: a header ``file,acr,r=<radius>...`` and one row per file (``acr`` empty for a predict
    file). JSON: a list with one object per file, ``{"file", "acr", "certified_accuracy":
    {"<radius>": value, ...}}`` (``acr`` null for a predict file), radii in the columns' order.
    Given ``abstentions``, CSV ends with an ``abstention_rate`` column and JSON objects with an
    ``"abstention_rate"`` key; given ``pa_shares``, CSV ends with one ``pa_lower:<bin>`` column
    per bin of :func:`pa_bin_labels` and JSON with ``"pa_lower": {"<bin>": share, ...}``. Where a
    value is None (not available for that file) the cells are empty and the JSON value is null.

    Args:
        names: F file names. accuracies: [F, R] fractions in [0, 1]. radii: R radii.
        acrs: F average certified radii, None where a file has none. fmt: ``"csv"`` or ``"json"``.
        abstentions: F abstention rates (:func:`abstention_rate`), None where not available.
        pa_shares: F arrays of :func:`pa_lower_distribution` shares over ``pa_edges``' bins, None
            where not available.

    Returns:
        The text, ending with a newline.

    Example:
        >>> print(format_data(["a.tsv"], [[0.75, 0.5]], [0.0, 0.5], [0.6]), end="")
        file,acr,r=0.0,r=0.5
        a.tsv,0.6,0.75,0.5
        >>> print(format_data(["a.tsv"], [[0.75, 0.5]], [0.0, 0.5], [0.6], "json"), end="")
        [{"file": "a.tsv", "acr": 0.6, "certified_accuracy": {"0.0": 0.75, "0.5": 0.5}}]
        >>> print(format_data(["a.tsv", "b.tsv"], [[0.75], [0.5]], [0.0], [0.6, 0.3], abstentions=[0.25, None],
        ...                   pa_shares=[[0.25, 0.75], None], pa_edges=[0.5]), end="")
        file,acr,r=0.0,abstention_rate,pa_lower:<0.5,pa_lower:>=0.5
        a.tsv,0.6,0.75,0.25,0.25,0.75
        b.tsv,0.3,0.5,,,
    """
    check_choice("fmt", fmt, DATA_FORMATS)
    names, labels = [str(name) for name in names], [_radius_label(float(radius)) for radius in radii]
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if accuracies.shape != (len(names), len(labels)) or len(acrs) != len(names):
        raise ValueError(f"Expected `accuracies` of shape {(len(names), len(labels))} and {len(names)} `acrs`, "
                         f"got {accuracies.shape} and {len(acrs)}")
    bins = pa_bin_labels(pa_edges)
    extras = _extra_fields(len(names), abstentions, pa_shares, bins)
    rows = [(name, None if acr is None else float(acr), row) for name, acr, row in zip(names, acrs, accuracies.tolist())]
    if fmt == "json":
        return json.dumps([{"file": name, "acr": acr, "certified_accuracy": dict(zip(labels, row)), **extra}
                           for (name, acr, row), extra in zip(rows, extras)]) + "\n"
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")  # quotes a name holding a comma
    extra_columns = (["abstention_rate"] if abstentions is not None else []) + \
        ([f"pa_lower:{label}" for label in bins] if pa_shares is not None else [])
    writer.writerow(["file", "acr", *(f"r={label}" for label in labels), *extra_columns])
    for (name, acr, row), extra in zip(rows, extras):
        cells = [_cell(extra["abstention_rate"])] if "abstention_rate" in extra else []
        if "pa_lower" in extra:
            cells += [_cell(None if extra["pa_lower"] is None else extra["pa_lower"][label]) for label in bins]
        writer.writerow([name, _cell(acr), *map(repr, row), *cells])
    return text.getvalue()


def _extra_fields(count: int, abstentions, pa_shares, bins: list) -> list:
    """Each file's ``abstention_rate`` and ``pa_lower`` (a dict by bin), only the keys given."""
    extras = [{} for _ in range(count)]
    for name, values in (("abstentions", abstentions), ("pa_shares", pa_shares)):
        if values is not None and len(values) != count:
            raise ValueError(f"Expected one `{name}` entry per file ({count}), got {len(values)}")
    if abstentions is not None:
        for extra, rate in zip(extras, abstentions):
            extra["abstention_rate"] = None if rate is None else float(rate)
    if pa_shares is not None:
        for extra, shares in zip(extras, pa_shares):
            shares = None if shares is None else np.asarray(shares, dtype=np.float64)
            if shares is not None and shares.shape != (len(bins),):
                raise ValueError(f"Expected `pa_shares` entries of shape ({len(bins)},), got {shares.shape}")
            extra["pa_lower"] = None if shares is None else dict(zip(bins, shares.tolist()))
    return extras


def _cell(value: Optional[float]) -> str:
    return "" if value is None else repr(value)


def plot_certified_accuracy(
    tables: Sequence[ResultsTable],
    path,
    names: Optional[Sequence[str]] = None,
    *,
    max_radius: Optional[float] = None,
    title: Optional[str] = None,
    norm: str = "l2",
    ceilings: Optional[Sequence[Optional[float]]] = None,
):
    """Plot certified accuracy against radius, one step curve per certify table; returns the Figure.

    The curves are exact: each is evaluated on a 1000-step grid from 0 to ``max_radius`` plus
    every radius that occurs in the tables, and drawn as a step function that is constant on
    ``(r_k, r_k+1]`` (accuracy at r counts radii >= r, so it drops just *after* each radius).

    Args:
        tables: certify tables, e.g. from :func:`rsengine.results.read_results`.
        path: output file; ``.png`` or ``.pdf`` (case-insensitive) picks the format.
        names: legend entries, one per table; default each table's ``path``. Each entry is
            followed by its table's ACR.
        max_radius: right end of the x axis; default 5% past the largest radius and ceiling over
            the tables (1.0 if all are 0), so that each curve's last drop is seen.
        title: optional figure title.
        norm: the radii's norm, "l2" or "l1", for the x axis's label.
        ceilings: one per table, the largest radius its run could certify (n votes of n at its n,
            alpha and sigma: ``Question.largest_radius``), drawn as a dashed vertical line in the
            curve's colour; None where it is not known.

    Returns:
        The matplotlib ``Figure`` (on an Agg canvas), already saved to ``path``.

    Raises:
        ValueError: an extension other than .png/.pdf, a predict table, no tables, names of
            the wrong length, or a bad ``max_radius``.
        ImportError: matplotlib is not installed (the message names the ``plot`` extra).

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from rsengine.results import ResultsTable
        >>> t = ResultsTable("certify", np.arange(2), np.zeros(2, int), np.zeros(2, int),
        ...                  np.array([0.3, 0.9]), np.ones(2, int), np.ones(2))
        >>> out = os.path.join(tempfile.mkdtemp(), "curve.png")
        >>> figure = plot_certified_accuracy([t], out, ["toy"], ceilings=[1.2], title="toy run")
        >>> open(out, "rb").read(4)
        b'\\x89PNG'
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    check_choice("path extension", extension, PLOT_FORMATS)
    tables = list(tables)
    check_positive_int("len(tables)", len(tables))
    if names is None:
        names = [table.path if table.path is not None else f"table {i}" for i, table in enumerate(tables)]
    names = [str(name) for name in names]
    if len(names) != len(tables):
        raise ValueError(f"Expected `names` to have one entry per table ({len(tables)}), got {len(names)}")
    for name, table in zip(names, tables):
        if table.kind != "certify":
            raise ValueError(f"Expected `tables` to be certify tables, got a {table.kind} table ({name})")

    ceilings = [None] * len(tables) if ceilings is None else list(ceilings)
    if len(ceilings) != len(tables):
        raise ValueError(f"Expected `ceilings` to have one entry per table ({len(tables)}), got {len(ceilings)}")
    known = [check_positive_float("ceilings", c) for c in ceilings if c is not None]
    largest = max([float(table.radius.max(initial=0.0)) for table in tables] + known)
    if max_radius is None:
        max_radius = _PLOT_MARGIN * largest if largest > 0 else 1.0
    else:
        max_radius = check_positive_float("max_radius", max_radius)
    grid = np.linspace(0.0, max_radius, _PLOT_GRID_STEPS + 1)
    jumps = np.concatenate([table.radius for table in tables])
    grid = np.union1d(grid, jumps[jumps <= max_radius])

    missing = plot_unavailable()
    if missing is not None:
        raise ImportError(f"Plots need matplotlib: {missing}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.8))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, table, ceiling in zip(names, tables, ceilings):
        # Each curve's ACR beside its name: the one number papers quote next to the curve.
        (curve,) = axes.step(grid, certified_accuracy(table, grid), where="pre",
                             label=f"{name} (ACR {average_certified_radius(table):.3f})")
        if ceiling is not None:  # beyond it no input of this run can be certified, by design
            axes.axvline(ceiling, color=curve.get_color(), linestyle="--", linewidth=1.0,
                         label=f"largest certifiable radius {floor_significant(ceiling)}")
    axes.set_xlim(0.0, max_radius)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel(f"radius ({check_choice('norm', norm, ('l2', 'l1'))})")
    axes.set_ylabel("certified accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left")  # curves fall from the top left: the lower left stays clear
    if title is not None:
        axes.set_title(title, fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, format=extension[1:], dpi=150)
    return figure


def _radius_label(radius: float) -> str:
    """Short text for a radius header: 0.5 -> '0.5', 1.0 -> '1.0', 0.30000000000000004 -> '0.3'."""
    text = f"{radius:.6g}"
    return text if any(char in text for char in ".en") else text + ".0"
