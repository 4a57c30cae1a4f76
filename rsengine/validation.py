"""Argument checks shared by the API, the statistics and the CLI.

One helper per argument family and one message template, so every bad argument reads the same
way: ``Expected `alpha` in (0, 1), got 1.5``. Nothing here clamps or converts silently: a value
is returned unchanged (as a Python scalar) or an error naming the argument is raised.

Example:
    >>> from rsengine.validation import check_probability
    >>> check_probability("alpha", 0.001)
    0.001
    >>> check_probability("alpha", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: Expected `alpha` in (0, 1), got 1.5
"""
from __future__ import annotations

import math
import numbers

__all__ = [
    "check_positive_int",
    "check_int_at_least",
    "check_positive_float",
    "check_non_negative_float",
    "check_probability",
    "check_choice",
    "check_flag",
    "check_mean_std",
    "check_not_a_data_set",
    "reject",
]


def reject(name: str, expectation: str, got: str, error=ValueError):
    """Raise ``error`` with the one message template: Expected `name` expectation, got got.

    ``got`` is already text (a repr, or e.g. "dtype float32" for an array argument).

    Example:
        >>> reject("n", "to be an integer >= 1", "0")
        Traceback (most recent call last):
        ...
        ValueError: Expected `n` to be an integer >= 1, got 0
    """
    raise error(f"Expected `{name}` {expectation}, got {got}")


def _fail(name: str, expectation: str, value, error=ValueError):
    reject(name, expectation, repr(value), error)


def check_int_at_least(name: str, value, minimum: int) -> int:
    """Return ``value`` if it is an integer (not a bool) >= ``minimum``, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _fail(name, f"to be an integer >= {minimum}", value, TypeError)
    if value < minimum:
        _fail(name, f"to be an integer >= {minimum}", value)
    return int(value)


def check_positive_int(name: str, value) -> int:
    """Return ``value`` if it is an integer >= 1, else raise."""
    return check_int_at_least(name, value, 1)


def check_positive_float(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite real number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, "to be a finite number > 0", value, TypeError)
    if not math.isfinite(value) or value <= 0:
        _fail(name, "to be a finite number > 0", value)
    return float(value)


def check_non_negative_float(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, "to be a finite number >= 0", value, TypeError)
    if not math.isfinite(value) or value < 0:
        _fail(name, "to be a finite number >= 0", value)
    return float(value)


def check_probability(name: str, value) -> float:
    """Return ``value`` as a float if it lies strictly inside (0, 1), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _fail(name, "in (0, 1)", value, TypeError)
    if not (0.0 < value < 1.0):  # also rejects NaN
        _fail(name, "in (0, 1)", value)
    return float(value)


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise."""
    if value not in choices:
        _fail(name, "to be one of " + ", ".join(repr(c) for c in choices), value)
    return value


def check_flag(name: str, value) -> bool:
    """Return ``value`` if it is True or False (not 0, 1 or None), else raise TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected `{name}` to be True or False, got {value!r}")
    return value


def check_not_a_data_set(name: str, value, expectation: str) -> None:
    """Raise TypeError pointing at ``rsengine.certify_dataset`` if ``value`` is a data set, not a batch.

    A data set is a torch Dataset or DataLoader, or a sequence whose first item is an
    ``(x, label)`` pair: what the tensor methods of Smooth are often handed by mistake. Anything
    else returns, for the caller's own message.

    Example:
        >>> import torch
        >>> check_not_a_data_set("xs", [(torch.zeros(3), 0)], "to be a tensor")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: Expected `xs` to be a tensor, got a list of (x, label) pairs: ...rsengine.certify_dataset(...
    """
    from torch.utils.data import DataLoader, Dataset  # here: validation does not import torch at start-up

    if isinstance(value, DataLoader):
        got, argument = "a torch DataLoader", "loader.dataset"
    elif isinstance(value, Dataset):
        got, argument = f"a torch Dataset ({type(value).__name__})", "dataset"
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)) and len(value[0]) == 2:
        got, argument = f"a {type(value).__name__} of (x, label) pairs", "dataset"
    else:
        return
    hint = ", or torch.stack the inputs" if argument == "dataset" and got.endswith("pairs") else ""
    reject(name, expectation, f"{got}: ask of a data set with rsengine.certify_dataset(smooth, {argument}, "
                              f"question){hint}", TypeError)


def check_mean_std(mean, std) -> tuple[tuple[float, ...], tuple[float, ...]] | tuple[None, None]:
    """Validate normalization statistics (both ``None``, or both given): per channel, or one number for all.

    A number (or a 0-d tensor) is a 1-value sequence; one value serves every channel of the
    input (rsengine.normalization.per_channel repeats it), and an input's channel count is
    checked against the length when the input arrives.

    Returns:
        ``(mean, std)`` as tuples of floats, or ``(None, None)``.

    Raises:
        ValueError, TypeError: only one given, lengths differ or are zero, a non-finite mean,
            or a std that is not a finite number > 0.

    Example:
        >>> check_mean_std([0.5], (0.25,))
        ((0.5,), (0.25,))
        >>> check_mean_std(0.5, 0.25)
        ((0.5,), (0.25,))
        >>> check_mean_std((0.5,), None)
        Traceback (most recent call last):
        ...
        ValueError: Expected `mean` and `std` both given or both None, got (0.5,), None
    """
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise ValueError(
            f"Expected `mean` and `std` both given or both None, got {mean!r}, {std!r}"
        )
    # Tensors and arrays become lists, 0-d ones numbers (validation imports neither torch nor numpy).
    mean = mean.tolist() if hasattr(mean, "tolist") else mean
    std = std.tolist() if hasattr(std, "tolist") else std
    mean = [mean] if isinstance(mean, numbers.Real) else mean
    std = [std] if isinstance(std, numbers.Real) else std
    for name, values in (("mean", mean), ("std", std)):
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(f"Expected `{name}` to be a number or a sequence of numbers, got {values!r}")
    if len(mean) == 0 or len(mean) != len(std):
        raise ValueError(
            f"Expected `mean` and `std` of the same non-zero length, got {mean!r}, {std!r}"
        )
    for m in mean:
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not math.isfinite(m):
            raise ValueError(f"Expected `mean` to hold finite numbers, got {mean!r}")
    return tuple(float(m) for m in mean), tuple(check_positive_float("std", s) for s in std)
