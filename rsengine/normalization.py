"""Per-channel normalization: mean/std broadcast to an input's channels, and the check for inputs normalized twice.

rsengine adds the noise in pixel space and normalizes afterwards, ``(x + noise - mean) / std``,
so the radius is measured in pixels. Two things go wrong with that often enough to guard:

- one ``mean``/``std`` value for a 3-channel input (``mean=0.5``, a grayscale data set's
  statistics): :func:`per_channel` repeats it for every channel, the one place a kernel's
  [C] statistics are built, so every backend (Triton, the CPU kernel, the PyTorch reference,
  sound mode) and training see the same per-channel values;
- inputs that were normalized already (a ``torchvision.transforms.Normalize`` left in the data
  set's transform): normalized twice, the model sees garbage and the radii are in the wrong
  units. :func:`warn_if_normalized` says so, with an :class:`InputRangeWarning`.

Example:
    >>> import torch
    >>> from rsengine.normalization import per_channel
    >>> mean, std = per_channel(torch.tensor([0.5]), torch.tensor([0.25]), 3)
    >>> mean.tolist(), std.tolist()
    ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
"""
from __future__ import annotations

import os
import sys
import warnings

import torch

__all__ = ["InputRangeWarning", "PIXEL_SLACK", "per_channel", "warn_if_normalized"]

# How far outside [0, 1] pixels may stray before they look normalized: resampling (bicubic or
# antialiased resizes) overshoots [0, 1] by a few hundredths, while a Normalize moves an image by
# whole units (ImageNet's statistics map [0, 1] to [-2.1, 2.6], MNIST's to [-0.42, 2.8]).
PIXEL_SLACK = 0.05


class InputRangeWarning(UserWarning):
    """Inputs outside [0, 1] given to a classifier that normalizes them itself (``mean``/``std``).

    A warning, not an error: rsengine cannot know that values outside [0, 1] are wrong for a
    given model. Make it an error with ``warnings.simplefilter("error", InputRangeWarning)``,
    or silence it with ``warnings.simplefilter("ignore", InputRangeWarning)``.
    """


def per_channel(mean: torch.Tensor, std: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``mean`` and ``std`` ([1] or [channels]) as [channels] contiguous tensors, one value per channel.

    ``channels`` is an input's first dimension (x.shape[0]; the features of a flat input).

    Raises:
        ValueError: a length that is neither 1 nor ``channels`` (both are named).

    Example:
        >>> per_channel(torch.tensor([0.1, 0.2]), torch.tensor([1.0, 1.0]), 3)
        Traceback (most recent call last):
        ...
        ValueError: Expected `mean`/`std` with 1 value or one per channel (x.shape[0] = 3), got 2
    """
    if mean.numel() == channels:
        return mean, std
    if mean.numel() != 1:
        raise ValueError(f"Expected `mean`/`std` with 1 value or one per channel (x.shape[0] = {channels}), "
                         f"got {mean.numel()}")
    return mean.expand(channels).contiguous(), std.expand(channels).contiguous()


def warn_if_normalized(xs: torch.Tensor, what: str = "the inputs lie") -> bool:
    """Warn (InputRangeWarning) when float pixels ``xs`` stray outside [0, 1]; True if it warned.

    For callers whose mean/std normalization happens inside rsengine: one min/max over ``xs``.
    Raw inputs without mean/std are the model's business (it may normalize them itself) and
    are not checked. ``what``: the message's subject and verb.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_if_normalized(torch.tensor([[-1.5, 2.0]]))
        True
        >>> caught[0].category.__name__
        'InputRangeWarning'
    """
    low, high = torch.aminmax(xs.detach())
    low, high = float(low), float(high)
    if -PIXEL_SLACK <= low and high <= 1 + PIXEL_SLACK:
        return False
    warnings.warn(InputRangeWarning(
        f"{what} in [{low:.3g}, {high:.3g}], but rsengine expects pixels in [0, 1] (ToTensor's) and applies "
        "mean/std itself, after the noise: drop the Normalize from the transform (or divide 0-255 pixels by "
        "255), else the images are normalized twice and the radii are not in pixel units"),
        stacklevel=_outside_rsengine())
    return True


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _outside_rsengine() -> int:
    # The stacklevel of the first caller outside the package: the warning points at the user's line.
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        level, frame = level + 1, frame.f_back
    return level
