"""One input of a data set, loaded and checked before it is sampled, or one line saying what is wrong.

A certification of ImageNet's 50,000 validation images runs for days: one bad file must cost a
clear message, never a hunt. Every failure that comes from one input (a file that cannot be read
or is truncated, another size or channel count than the run's inputs, NaN or infinite values, a
label outside the model's classes) becomes a :class:`BadInputError` naming the data set, the
input's index and its file, and what to do. A run checks each chunk's inputs before sampling
them, so the rows of the inputs before a bad one are written (rsengine.run).

Example:
    >>> import torch
    >>> data = [(torch.zeros(1, 2, 2), 0), (torch.zeros(1, 3, 2), 1)]
    >>> check = InputCheck(data, "toy", num_classes=2)
    >>> check.load(0)[1]
    0
    >>> check.load(1)
    Traceback (most recent call last):
    ...
    rsengine.inputs.BadInputError: input 1 of data set 'toy' is 1x3x2, not 1x2x2 like input 0: resize or crop the images to one size (rsengine certify: --resize/--crop) or remove it
"""
from __future__ import annotations

import math
import operator
import os
from typing import NamedTuple

import torch

from . import sound as sound_mode

__all__ = ["BAD_INPUT_POLICIES", "BadInputError", "InputCheck", "Reference", "input_file"]

# What a run does with a bad input: stop there (the default), or record it as unreadable and go on.
BAD_INPUT_POLICIES = ("stop", "skip")
_REASON_LENGTH = 200  # characters of a loader's own message kept in ours


class BadInputError(ValueError):
    """One input cannot be certified: ``index`` is its data set index, ``reason`` what is wrong
    with it (naming the data set and the file), the message that and what to do."""

    def __init__(self, reason: str, advice: str, index: int):
        super().__init__(f"{reason}: {advice}")
        self.reason, self.advice, self.index = reason, advice, index

    def __reduce__(self):  # torchrun ranks pass it to rank 0 pickled
        return BadInputError, (self.reason, self.advice, self.index)


def input_file(dataset, index: int) -> str | None:
    """The file input ``index`` is read from, where the data set says (torchvision's ``samples``).

    Example:
        >>> class Folder(list):
        ...     samples = [("/data/cat/0.png", 0)]
        >>> input_file(Folder(), 0), input_file([], 0)
        ('/data/cat/0.png', None)
    """
    samples = getattr(dataset, "samples", None)
    try:
        path = samples[index][0] if samples is not None else None
    except (TypeError, IndexError, KeyError):
        return None
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else None


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _REASON_LENGTH else text[:_REASON_LENGTH - 3] + "..."


def _shape(x: torch.Tensor) -> str:
    return "x".join(map(str, x.shape)) or "a scalar"


class Reference(NamedTuple):
    """The input a run's others are compared with: its index, shape and dtype."""

    index: int
    shape: tuple[int, ...]
    dtype: torch.dtype


class InputCheck:
    """Loads inputs of ``dataset`` for a run and refuses, by index and file, the ones it cannot use.

    Args:
        dataset: a sequence of ``(x, label)`` (x a tensor in pixel space).
        name: how messages name the data set (the CLI's DATASET, a folder, a class name).
        num_classes: the model's classes; labels must lie in [0, num_classes).
        sound: a sound-mode run's inputs must be 8-bit images (values i / 255, rsengine.sound).

    The first input loaded fixes the shape and dtype every later one must have (the inputs of a
    chunk are stacked into one batch, which would cast a uint8 image's 255 to 255.0).
    """

    def __init__(self, dataset, name: str, num_classes: int, *, sound: bool = False):
        self.dataset = dataset
        self.name = name
        self.num_classes = num_classes
        self.sound = sound
        self.reference: Reference | None = None  # the first input loaded

    def _refuse(self, index: int, problem: str, advice: str) -> BadInputError:
        path = input_file(self.dataset, index)
        where = f" ({path})" if path is not None else ""
        return BadInputError(f"input {index} of data set {self.name!r}{where} {problem}", advice, index)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """``dataset[index]``, checked; raises :class:`BadInputError` naming what is wrong."""
        try:
            item = self.dataset[index]
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as error:  # noqa: BLE001 - any loader's failure is this input's, said in one line
            raise self._refuse(index, f"cannot be read ({_one_line(error)})",
                               "replace or remove the file, or skip such inputs (rsengine certify: "
                               "--on-bad-input skip)") from None
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise self._refuse(index, f"is a {type(item).__name__}, not an (x, label) pair",
                               "a data set's items are (image tensor, int label)")
        x, label = item
        if not isinstance(x, torch.Tensor):
            raise self._refuse(index, f"holds a {type(x).__name__}, not a tensor",
                               "transform images to tensors in [0, 1] (torchvision's ToTensor)")
        if not math.prod(x.shape):
            raise self._refuse(index, "is empty", "remove the file")
        reference = self.reference
        if reference is not None and tuple(x.shape) != reference.shape:
            raise self._refuse(index, f"is {_shape(x)}, not {'x'.join(map(str, reference.shape))} like input "
                                      f"{reference.index}",
                               "resize or crop the images to one size (rsengine certify: --resize/--crop) or "
                               "remove it")
        if reference is not None and x.dtype != reference.dtype:  # stacked, it would be cast: 255 stays 255.0
            raise self._refuse(index, f"is {str(x.dtype).removeprefix('torch.')}, not "
                                      f"{str(reference.dtype).removeprefix('torch.')} like input {reference.index}",
                               "give every input the same type (float pixels in [0, 1], as ToTensor makes)")
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise self._refuse(index, "holds NaN or infinite values", "fix or remove the file")
        if self.sound:
            try:
                sound_mode.to_grid(x)
            except (ValueError, TypeError) as error:  # TypeError: not float32 or integer pixels
                raise self._refuse(index, f"is off the 1/255 grid ({_one_line(error)})",
                                   "sound mode needs 8-bit images (float32 values i / 255)") from None
        label = self._label(index, label)
        if self.reference is None:  # the first input that passes every check
            self.reference = Reference(index, tuple(x.shape), x.dtype)
        return x, label

    def first_usable(self, indices, passable) -> tuple[int, torch.Tensor] | None:
        """``(index, x)`` of the first of ``indices`` that loads, or None if none does.

        An input refused on the way is passed over where ``passable(index)`` says so (a skip run,
        an input done already), else its :class:`BadInputError` is raised.
        """
        for index in indices:
            try:
                x, _ = self.load(index)
            except BadInputError:
                if not passable(index):
                    raise
                continue
            return index, x
        return None

    def _label(self, index: int, label) -> int:
        try:  # ints, numpy's and one-element integer tensors
            value = operator.index(label.item() if isinstance(label, torch.Tensor) and label.numel() == 1 else label)
        except TypeError:
            value = None
        if isinstance(label, bool) or value is None or not 0 <= value < self.num_classes:
            raise self._refuse(index, f"has label {label!r}, not a class of the model (0 to {self.num_classes - 1})",
                               "labels must index the model's classes")
        return value
