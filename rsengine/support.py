"""What is offered: the one table of noise x question (x deterministic mode) combinations that are not.

Every refusal of a combination lives here, with its reason written for the two ways rsengine is
driven: the Python API (``Smooth``, the native questions) names arguments, the CLI names flags.
A row refuses ``feature`` together with any of ``conflicts``; callers ask feature by feature in
the order their checks run (the CLI: sound, top-k, adaptive; ``Smooth``: its constructor's sound
mode, then a question's), so each surface keeps the precedence its messages always had.

Names: the noises "laplace", "uniform" (float noises other than the Gaussian); "sound" (sound
mode's rounded Gaussian); the questions "two_sided", "top_k", "adaptive"; "deterministic".

Example:
    >>> from rsengine.support import refuse
    >>> refuse("top_k", {"top_k", "laplace"}, "cli", noise="laplace")
    Traceback (most recent call last):
    ...
    ValueError: --top-k needs --noise gaussian (Jia et al.'s theorem is Gaussian, l2), got --noise laplace
    >>> refuse("adaptive", {"adaptive"}, "api") is None
    True
"""
from __future__ import annotations

from typing import NamedTuple

__all__ = ["SURFACES", "TABLE", "Refusal", "refuse", "features"]

SURFACES = ("api", "cli")


class Refusal(NamedTuple):
    """``feature`` is not offered with any of ``conflicts``; ``api``/``cli``: the message, formatted
    with the caller's values (``noise``, ``flag``, ``sound``)."""

    feature: str
    conflicts: tuple[str, ...]
    api: str
    cli: str


_FLOAT_OTHERS = ("laplace", "uniform")

TABLE = (
    Refusal("sound", _FLOAT_OTHERS,
            "Expected noise='gaussian' with sound=True (the rounded Gaussian on the grid), got noise={noise!r}",
            "--sound needs --noise gaussian (the rounded Gaussian on the 1/255 grid), got --noise {noise}"),
    # One row per conflict: the CLI names the first flag given, in this order.
    *(Refusal("sound", (question,),
              "Expected two_sided=False and adaptive=False with sound=True: sound mode's certificate is the "
              "one-sided CERTIFY",
              "--sound cannot be {flag}: sound mode's certificate is the one-sided CERTIFY")
      for question in ("two_sided", "top_k", "adaptive")),
    Refusal("top_k", (*_FLOAT_OTHERS, "sound"),
            "Expected noise='gaussian' and sound=False for top-k certificates (Jia et al.'s theorem is for float "
            "Gaussian noise), this Smooth has noise={noise!r}, sound={sound}",
            "--top-k needs --noise gaussian (Jia et al.'s theorem is Gaussian, l2), got --noise {noise}"),
    Refusal("adaptive", ("deterministic",),
            "Expected deterministic=False with adaptive=True: refilled batches mix inputs, which deterministic "
            "mode forbids",
            "--adaptive cannot be --deterministic: its refilled batches mix inputs"),
    Refusal("adaptive", _FLOAT_OTHERS,
            "Expected noise='gaussian' with adaptive=True (its sequential radii are l2 radii), this Smooth has "
            "noise={noise!r}",
            "--adaptive needs --noise gaussian (its sequential radii are l2), got --noise {noise}"),
)

_FLAGS = {"two_sided": "--two-sided", "top_k": "--top-k", "adaptive": "--adaptive"}


def features(noise, question: str | None = None, deterministic: bool = False) -> set[str]:
    """The names a run has: its noise's (``rsengine.noises.Noise``), its question's, deterministic mode."""
    names = {"sound" if noise.sound else noise.name}
    if question is not None:
        names.add(question)
    if deterministic:
        names.add("deterministic")
    return names


def refuse(feature: str, present: set[str], surface: str, **values) -> None:
    """Raise the first row's ValueError for ``feature`` whose conflict is ``present``; else None.

    Args:
        feature: the row's feature. present: every name the run has (:func:`features`).
        surface: "api" or "cli". values: ``noise`` (its name), ``sound`` (bool), for the messages.
    """
    if feature not in present:
        return
    for row in TABLE:
        if row.feature == feature:
            for conflict in row.conflicts:
                if conflict in present:
                    message = getattr(row, surface)
                    raise ValueError(message.format(flag=_FLAGS.get(conflict, conflict), **values))
