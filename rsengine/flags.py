"""The command line's flag grammar: certify's and predict's flags become a question, or one-line errors.

Combinations of a noise and a question that are not offered are refused with rsengine.support's
reasons in flag names; what is left here is the grammar (which flags go together) and the values'
checks, in the order the CLI has always made them, before any file is touched.

Example:
    >>> from rsengine.cli import _fill_defaults, build_parser
    >>> from rsengine.flags import certify_question
    >>> opts = build_parser().parse_args(["certify", "--top-k", "3", "--N", "1000"])
    >>> _fill_defaults(opts)
    >>> certify_question(opts)
    TopK(k=3, n0=100, n=1000, alpha=0.001)
"""
from __future__ import annotations

import os
import sys

import numpy as np

from . import analyze, distributed
from . import sound as sound_mode
from .data import dataset_num_classes
from .noises import noise_named
from .questions import AdaptiveRadius, AdaptiveTolerance, Certify, Question, TopK, TwoSided
from .stats import can_certify
from .support import refuse
from .validation import (check_choice, check_int_at_least, check_non_negative_float, check_positive_float,
                         check_positive_int, check_probability)

__all__ = ["certify_question", "check_plot_path", "check_sampling", "check_sound"]


def check_plot_path(path: str | None) -> None:
    """Refuse a plot analyze cannot write (its extension, or no matplotlib), before hours of work, not after."""
    if path is not None:
        check_choice("--plot extension", os.path.splitext(path)[1].lower(), analyze.PLOT_FORMATS)
        missing = analyze.plot_unavailable()
        if missing is not None:
            raise ValueError(f"--plot needs matplotlib, and {missing}")


def check_sound(opts) -> bool:
    """Whether a run is ``--sound``; refuses what sound mode cannot certify, before any work."""
    if not getattr(opts, "sound", False):
        return False
    flags = {"two_sided": getattr(opts, "two_sided", False), "top_k": getattr(opts, "top_k", None) is not None,
             "adaptive": getattr(opts, "adaptive", False)}
    refuse("sound", {"sound", opts.noise, *(name for name, given in flags.items() if given)}, "cli", noise=opts.noise)
    sigma = check_positive_float("SIGMA", opts.sigma)
    if float(np.float32(sigma)) > sound_mode.MAX_SIGMA:  # Smooth's test: the float32 sigma the noise uses
        raise ValueError(f"--sound needs SIGMA <= {sound_mode.MAX_SIGMA:g} (its noise table is tested that far), "
                         f"got {opts.sigma}")
    return True


def _check_top_k(opts) -> int | None:
    """The K of a ``--top-k`` run, None for a run without it (K < the classes: ``_smoothed_model``)."""
    k = getattr(opts, "top_k", None)
    if k is None:
        return None
    k = check_positive_int("--top-k", k)
    refuse("top_k", {"top_k", opts.noise}, "cli", noise=opts.noise)
    if opts.two_sided:
        raise ValueError("--top-k cannot be --two-sided: its bounds are two-sided already (--top-k 1 is the "
                         "two-sided certificate)")
    if getattr(opts, "adaptive", False):
        raise ValueError("--top-k cannot be --adaptive: the anytime-valid bounds certify one class")
    return k


def _check_adaptive(opts) -> dict | None:
    """The adaptive goal (``radius=`` or ``tolerance=``) of a certify run, None for a fixed run."""
    adaptive = getattr(opts, "adaptive", False)
    radius, tolerance = getattr(opts, "radius", None), getattr(opts, "tolerance", None)
    if not adaptive:
        if radius is not None or tolerance is not None:
            raise ValueError("--radius and --tolerance need --adaptive")
        return None
    if (radius is None) == (tolerance is None):
        raise ValueError("--adaptive needs exactly one of --radius R or --tolerance T")
    refuse("adaptive", {"adaptive", opts.noise, *(["deterministic"] if opts.deterministic else [])}, "cli",
           noise=opts.noise)
    if opts.two_sided:
        raise ValueError("--adaptive cannot be --two-sided: its anytime-valid bounds are one-sided")
    if radius is not None:
        return dict(radius=check_non_negative_float("--radius", radius))
    return dict(tolerance=check_positive_float("--tolerance", tolerance))


def check_sampling(opts) -> None:
    """The sampling flags' values, in the order the CLI has always checked them."""
    check_plot_path(getattr(opts, "plot", None))
    check_positive_float("SIGMA", opts.sigma)
    if opts.batch is not None:
        check_positive_int("--batch", opts.batch)
    check_positive_int("--skip", opts.skip)
    check_positive_int("--N", opts.N)
    if getattr(opts, "N0", None) is not None:
        check_positive_int("--N0", opts.N0)
    check_probability("--alpha", opts.alpha)
    if opts.max is not None:
        check_int_at_least("--max", opts.max, 0)


def certify_question(opts) -> Question:
    """The question of ``rsengine certify``'s flags; refusals in the order the CLI checks them."""
    check_sound(opts)
    top_k = _check_top_k(opts)
    goal = _check_adaptive(opts)
    if distributed.launched_rank() == 0:  # once per job, not once per rank
        _warn_if_nothing_can_be_certified(opts, top_k)
    check_sampling(opts)
    if goal is not None:
        return (AdaptiveRadius if "radius" in goal else AdaptiveTolerance)(opts.N0, opts.N, opts.alpha, **goal)
    if top_k is not None:
        return TopK(top_k, opts.N0, opts.N, opts.alpha)
    return (TwoSided if opts.two_sided else Certify)(opts.N0, opts.N, opts.alpha)


def _warn_if_nothing_can_be_certified(opts, top_k: int | None = None) -> None:
    # With alpha ** (1/N) <= 1/2 even N votes out of N give a bound of at most 1/2: every row
    # abstains. Said before the work, not discovered after it.
    sigma, n = check_positive_float("SIGMA", opts.sigma), check_positive_int("--N", opts.N)
    alpha = check_probability("--alpha", opts.alpha)
    if top_k is None:
        if not can_certify(n, alpha):
            print(f"warning: at N = {n} and alpha = {alpha} no input can be certified (even N of N votes bound pA "
                  f"by alpha ** (1/N) = {alpha ** (1 / n):.3g}, not above 1/2): every row will abstain; raise --N or "
                  "--alpha", file=sys.stderr)
        return
    # Staying among K needs no majority, so the one-sided limit does not apply: ask the top-k rule.
    try:
        num_classes = dataset_num_classes(opts.dataset)
    except (ValueError, OSError):  # the run itself says what is wrong with the data set
        return
    if top_k < num_classes and TopK(top_k, 1, n, alpha).largest_radius(noise_named("gaussian", sigma),
                                                                        num_classes) <= 0:
        print(f"warning: at N = {n} and alpha = {alpha} no top-{top_k} certificate can be issued (even N of N votes "
              "give radius 0): every row will abstain; raise --N or --alpha", file=sys.stderr)
