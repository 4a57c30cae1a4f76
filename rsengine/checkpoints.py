"""Save and load base classifiers, including the checkpoints published with the paper.

An rsengine checkpoint is a plain dict, loadable with ``torch.load(weights_only=True)``::

    {"arch": str, "state_dict": {name: tensor},
     "rsengine": {"version": 1, "num_classes": int, "mean": [float] | None,
                  "std": [float] | None, "sigma": float | None, "extra": plain data | None}}

The original locuslab/smoothing checkpoints (``models/<dataset>/<arch>/noise_<sigma>/
checkpoint.pth.tar``) load as they are: a dict with ``arch``, ``epoch``, ``optimizer`` and the
``state_dict`` of ``nn.Sequential(NormalizeLayer, model)``. The normalize layer has no tensors,
so every key starts with ``1.``, and the ImageNet ResNet-50 sat inside ``nn.DataParallel``
(``1.module.``); both prefixes are stripped. That layer kept its mean and std in code, so they
come from the architecture's data set (``resnet50``: imagenet, ``cifar_*``: cifar10), and
``sigma`` is ``None`` (the training noise is only in the directory name).

Loading never runs code from the file: ``torch.load(weights_only=True)``. A file that needs
more than that is refused unless the caller passes ``trust_pickle=True``.

Example:
    >>> import os, tempfile
    >>> from rsengine.models import build_model
    >>> path = os.path.join(tempfile.mkdtemp(), "mnist.pt")
    >>> save_checkpoint(path, build_model("mnist_cnn"), "mnist_cnn", sigma=0.25,
    ...                 mean=(0.1307,), std=(0.3081,))
    >>> ckpt = load_checkpoint(path)
    >>> ckpt.arch, ckpt.num_classes, ckpt.sigma, ckpt.mean
    ('mnist_cnn', 10, 0.25, (0.1307,))
"""
from __future__ import annotations

import os
import re
import warnings
from importlib import resources
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from rsengine.data import dataset_stats
from rsengine.models import ARCHITECTURES, build_model
from rsengine.validation import check_choice, check_mean_std, check_non_negative_float, check_positive_int

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "LoadedCheckpoint",
    "bundled_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
]

_FORMAT_VERSION = 1


def bundled_checkpoint() -> str:
    """Path of the MNIST CNN shipped in the package (trained at sigma = 0.25, see README).

    Example:
        >>> bundled_checkpoint().endswith("mnist_cnn_sigma0.25.pt")
        True
    """
    return str(resources.files("rsengine") / "weights" / "mnist_cnn_sigma0.25.pt")

# Data set whose normalization the original (locuslab/smoothing) architectures were trained with.
_ORIGINAL_ARCH_DATASET = {
    "resnet50": "imagenet",
    "cifar_resnet20": "cifar10",
    "cifar_resnet110": "cifar10",
}
_MAX_LISTED = 3  # mismatched keys named in an error message


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded; the one-line message names the file and the reason."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class LoadedCheckpoint(NamedTuple):
    """A loaded base classifier and what certifying with it needs.

    Attributes:
        model: the network in eval mode, taking normalized input.
        arch: its architecture name (a key of :data:`rsengine.models.ARCHITECTURES`).
        mean: per-channel mean for ``Smooth(mean=...)``, or ``None`` (no normalization).
        std: per-channel std for ``Smooth(std=...)``, or ``None``.
        num_classes: number of logits.
        sigma: the training noise level, or ``None`` when the file does not record it.
        extra: the ``extra`` data given to :func:`save_checkpoint`, or ``None``.
    """

    model: nn.Module
    arch: str
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    num_classes: int
    sigma: float | None
    extra: Any = None


def _check_plain(name: str, value) -> None:
    # weights_only loading accepts these and nothing else, so refuse the rest when saving. Exact
    # types: a numpy float64 is a float but would pickle as a numpy scalar the loader refuses.
    if value is None or type(value) in (bool, int, float, str) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(name, item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(name, key)
            _check_plain(name, item)
        return
    raise TypeError(
        f"Expected `{name}` to hold only None, bool, int, float, str, tensors, lists, tuples and "
        f"dicts, got {type(value).__name__} {value!r}"
    )


def _check_sigma(sigma) -> float | None:
    return None if sigma is None else check_non_negative_float("sigma", sigma)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (", ..." if len(items) > _MAX_LISTED else "") if items else "nothing"


def _mismatch(model: nn.Module, state_dict: Mapping[str, Any]) -> str | None:
    """Describe how ``state_dict`` differs from ``model``'s in keys or shapes, or return None."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # PyTorch < 0.4.1 saved BatchNorm without num_batches_tracked; load_state_dict fills it in.
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [str(k) for k in state_dict if k not in expected]
    shapes = {
        k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        for k, v in state_dict.items()
        if k in expected
    }
    wrong = [f"{k} {shape} != {expected[k]}" for k, shape in shapes.items() if shape != expected[k]]
    problems = [
        f"{len(items)} {what} ({_listing(items)})"
        for what, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", wrong))
        if items
    ]
    return "; ".join(problems) or None


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    arch: str,
    *,
    sigma: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    extra: Any = None,
) -> None:
    """Save ``model`` with the metadata certification needs, in a weights_only-safe file.

    Args:
        path: file to write (overwritten).
        model: a model built by :func:`rsengine.models.build_model` for ``arch`` (an
            ``nn.DataParallel`` / ``DistributedDataParallel`` wrapper is unwrapped).
        arch: its architecture name.
        sigma: the Gaussian noise level it was trained with (>= 0), if known.
        mean, std: the per-channel normalization it expects (both or neither).
        extra: any further plain data (None, bool, int, float, str, tensors, and lists,
            tuples and dicts of those), e.g. training history.

    Raises:
        ValueError, TypeError: an unknown ``arch``, a model whose parameters do not match it,
            or a bad ``sigma`` / ``mean`` / ``std`` / ``extra``.

    Example:
        >>> import os, tempfile
        >>> from rsengine.models import build_model
        >>> save_checkpoint(os.path.join(tempfile.mkdtemp(), "m.pt"), build_model("mnist_cnn"),
        ...                 "mnist_cnn", extra={"epochs": 30})
    """
    check_choice("arch", arch, tuple(ARCHITECTURES))
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    sigma = _check_sigma(sigma)
    mean, std = check_mean_std(mean, std)
    _check_plain("extra", extra)
    num_classes = getattr(model, "num_classes", ARCHITECTURES[arch].num_classes)
    state_dict = model.state_dict()
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        reference = build_model(arch, num_classes)
    problem = _mismatch(reference, state_dict)
    if problem is not None:
        raise ValueError(
            f"`model` does not match arch {arch!r} with {num_classes} classes: {problem}"
        )
    torch.save(
        {
            "arch": arch,
            "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
            "rsengine": {
                "version": _FORMAT_VERSION,
                "num_classes": num_classes,
                "mean": None if mean is None else list(mean),
                "std": None if std is None else list(std),
                "sigma": sigma,
                "extra": extra,
            },
        },
        os.fspath(path),
    )


def _torch_load(path: str, trust_pickle: bool):
    if trust_pickle:
        warnings.warn(
            f"{path}: loading with weights_only=False (trust_pickle=True) runs any code the file "
            f"contains; do this only for a file from a source you trust",
            stacklevel=3,
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as error:  # torch.load raises many types for a bad file; all mean the same
        message = str(error)
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", message)
        if unsafe:
            raise CheckpointError(
                f"{path}: cannot be loaded safely: it needs {unsafe.group(1)}, which "
                f"weights_only loading refuses; pass trust_pickle=True (rsengine certify: "
                f"--trust-pickle) only if you trust the file"
            ) from None
        # torch wraps the reason in paragraphs of advice: keep its first sentence.
        detail = message.split("WeightsUnpickler error:")[-1]
        reason = next((line.strip() for line in detail.splitlines() if line.strip()), "")
        reason = reason.split(". ")[0].rstrip(".")
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint or corrupt ({type(error).__name__}: {reason})"
        ) from None


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu", *, trust_pickle: bool = False
) -> LoadedCheckpoint:
    """Load an rsengine or original locuslab/smoothing checkpoint.

    Args:
        path: the checkpoint file.
        device: where to put the model.
        trust_pickle: load with ``weights_only=False`` (runs code from the file; warns). Only
            for files you trust that weights_only loading refuses.

    Returns:
        A :class:`LoadedCheckpoint` whose model is in eval mode on ``device``.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CheckpointError: not a torch file or corrupt; needs unsafe unpickling; missing
            ``arch`` or ``state_dict``; unknown arch; keys or shapes that do not match.

    Example:
        An original locuslab/smoothing checkpoint: Sequential(NormalizeLayer, model) weights.

        >>> import os, tempfile, torch
        >>> from rsengine.models import build_model
        >>> path = os.path.join(tempfile.mkdtemp(), "checkpoint.pth.tar")
        >>> state = {"1." + k: v for k, v in build_model("cifar_resnet20").state_dict().items()}
        >>> torch.save({"arch": "cifar_resnet20", "state_dict": state, "epoch": 90}, path)
        >>> ckpt = load_checkpoint(path)
        >>> ckpt.arch, ckpt.mean, ckpt.sigma
        ('cifar_resnet20', (0.4914, 0.4822, 0.4465), None)
    """
    path = os.fspath(path)
    checkpoint = _read_checkpoint(path, trust_pickle)
    arch, meta = checkpoint["arch"], checkpoint.get("rsengine")
    if isinstance(meta, Mapping):
        state_dict, num_classes, mean, std, sigma, extra = _rsengine_format(path, checkpoint, meta)
    else:
        state_dict, num_classes, mean, std, sigma, extra = _original_format(checkpoint)
    model = build_model(arch, num_classes)
    problem = _mismatch(model, state_dict)
    if problem is not None:
        raise CheckpointError(f"{path}: state_dict does not match {arch!r}: {problem}")
    model.load_state_dict(dict(state_dict))
    return LoadedCheckpoint(
        model=model.to(device).eval(),
        arch=arch,
        mean=mean,
        std=std,
        num_classes=num_classes,
        sigma=sigma,
        extra=extra,
    )


def _read_checkpoint(path: str, trust_pickle: bool) -> Mapping:
    """The checkpoint's dict, with a known ``arch`` and a ``state_dict`` mapping (both formats)."""
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint or corrupt (empty file)")
    checkpoint = _torch_load(path, trust_pickle)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict with 'arch' and 'state_dict', got {type(checkpoint).__name__}"
        )
    for key in ("arch", "state_dict"):
        if key not in checkpoint:
            raise CheckpointError(
                f"{path}: no {key!r} entry; an rsengine or locuslab/smoothing checkpoint holds "
                f"'arch' and 'state_dict', this one {_listing(list(map(str, checkpoint)))}"
            )
    arch, state_dict = checkpoint["arch"], checkpoint["state_dict"]
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown arch {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, not a dict")
    return checkpoint


def _rsengine_format(path: str, checkpoint: Mapping, meta: Mapping) -> tuple:
    """(state_dict, num_classes, mean, std, sigma, extra) of a checkpoint ``save_checkpoint`` wrote."""
    try:
        num_classes = check_positive_int("num_classes",
                                         meta.get("num_classes", ARCHITECTURES[checkpoint["arch"]].num_classes))
        mean, std = check_mean_std(meta.get("mean"), meta.get("std"))
        sigma = _check_sigma(meta.get("sigma"))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad rsengine metadata: {error}") from None
    return checkpoint["state_dict"], num_classes, mean, std, sigma, meta.get("extra")


def _original_format(checkpoint: Mapping) -> tuple:
    """(state_dict, num_classes, mean, std, sigma, extra) of a locuslab/smoothing checkpoint.

    Its weights are those of ``Sequential(NormalizeLayer, model)``; the normalization layer had
    no parameters, so it comes back as the statistics of the data set the architecture was
    trained on, for the fused kernel to apply. Sigma is not recorded in that format.
    """
    arch = checkpoint["arch"]
    dataset = _ORIGINAL_ARCH_DATASET.get(arch)
    mean, std = dataset_stats(dataset) if dataset else (None, None)
    return _strip_original_prefixes(checkpoint["state_dict"]), ARCHITECTURES[arch].num_classes, mean, std, None, None


def _strip_original_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    # Sequential(NormalizeLayer, model) puts the model at index 1; DataParallel adds "module.".
    for prefix in ("1.", "module."):
        if state_dict and all(isinstance(k, str) and k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)
