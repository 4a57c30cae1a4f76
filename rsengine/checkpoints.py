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

from rsengine.models import ARCHITECTURES, build_classifier, is_model_source
from rsengine.validation import check_mean_std, check_non_negative_float, check_positive_int
from rsengine.vision import MissingExtraError, require

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "LoadedCheckpoint",
    "bundled_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_classifier",
]

_FORMAT_VERSION = 1


def bundled_checkpoint() -> str:
    """Path of the MNIST CNN shipped in the package (trained at sigma = 0.25, see README).

    Example:
        >>> bundled_checkpoint().endswith("mnist_cnn_sigma0.25.pt")
        True
    """
    return str(resources.files("rsengine") / "weights" / "mnist_cnn_sigma0.25.pt")

# Where a checkpoint that is not rsengine's keeps its weights: PyTorch's ImageNet example and the
# original code use "state_dict"; timm "state_dict" (and "state_dict_ema"); DeiT and others "model".
_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "net")
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


def _meta_build(arch: str, num_classes: int | None):
    """``build_classifier(arch, num_classes)`` for its shapes, without memory or initialisation cost."""
    try:
        with torch.device("meta"):
            return build_classifier(arch, num_classes)
    except (RuntimeError, NotImplementedError):  # an initialiser (a factory's) that needs real tensors
        return build_classifier(arch, num_classes)


def _head_size(arch: str, state_dict: Mapping[str, Any], default) -> int | None:
    """The number of classes ``state_dict`` holds for ``arch``, read off its head's shapes.

    Built with its default head, the model differs from the weights only in the head's tensors,
    whose first dimension is the number of classes (``fc.weight`` and ``fc.bias``, ``head.*``).
    ``None`` when the weights differ otherwise (their mismatch is reported when they are loaded).
    ``default`` is ``_meta_build(arch, None)``, which the caller has built already.
    """
    built = default
    if built.num_classes is None:
        return None
    expected = {k: tuple(v.shape) for k, v in built.model.state_dict().items()}
    sizes = set()
    for key, value in state_dict.items():
        if key not in expected or not isinstance(value, torch.Tensor) or tuple(value.shape) == expected[key]:
            continue
        shape = tuple(value.shape)
        if not shape or shape[1:] != expected[key][1:] or expected[key][0] != built.num_classes:
            return None
        sizes.add(shape[0])
    if len(sizes) != 1:
        return None if sizes else built.num_classes
    size = sizes.pop()
    # Only a head that then matches as a whole: otherwise the default's mismatch is the clearer report.
    return size if _mismatch(_meta_build(arch, size).model, state_dict) is None else built.num_classes


def _unwrapped(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    arch: str,
    *,
    num_classes: int | None = None,
    sigma: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    extra: Any = None,
) -> None:
    """Save ``model`` with the metadata certification needs, in a weights_only-safe file.

    Args:
        path: file to write (overwritten).
        model: the classifier (an ``nn.DataParallel`` / ``DistributedDataParallel`` wrapper is
            unwrapped): any module that the model source ``arch`` builds.
        arch: the model source that rebuilds it when loaded: an rsengine architecture,
            ``torchvision:NAME``, ``timm:NAME`` or ``package.module:factory``
            (:func:`rsengine.models.build_classifier`).
        num_classes: its logits; default: ``model.num_classes``, else read off its head.
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
    if not isinstance(arch, str) or not is_model_source(arch):
        raise ValueError(f"Expected `arch` to name a model source ({', '.join(ARCHITECTURES)}, torchvision:NAME, "
                         f"timm:NAME or package.module:factory), got {arch!r}")
    model = _unwrapped(model)
    sigma = _check_sigma(sigma)
    mean, std = check_mean_std(mean, std)
    _check_plain("extra", extra)
    state_dict = model.state_dict()
    if num_classes is None:
        num_classes = getattr(model, "num_classes", None)
    if not isinstance(num_classes, int):
        num_classes = _head_size(arch, state_dict, _meta_build(arch, None))
    if num_classes is None:
        raise ValueError(f"Cannot tell how many classes `model` has for {arch!r}: pass num_classes=")
    num_classes = check_positive_int("num_classes", num_classes)
    problem = _mismatch(_meta_build(arch, num_classes).model, state_dict)
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
    """Load an rsengine, original locuslab/smoothing or PyTorch ImageNet-example checkpoint.

    Args:
        path: the checkpoint file: a dict with ``arch`` (a model source, see
            :func:`rsengine.models.build_classifier`; the original code's and PyTorch's examples'
            torchvision names included) and ``state_dict``.
        device: where to put the model.
        trust_pickle: load with ``weights_only=False`` (runs code from the file; warns). Only
            for files you trust that weights_only loading refuses.

    Returns:
        A :class:`LoadedCheckpoint` whose model is in eval mode on ``device``.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CheckpointError: not a torch file or corrupt; needs unsafe unpickling; missing
            ``arch`` or ``state_dict``; unknown arch; keys or shapes that do not match.
        rsengine.vision.MissingExtraError: the arch is torchvision's (``resnet50`` too) or timm's
            and that package is not installed.

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
    return _from_dict(path, _read_checkpoint(path, _read_file(path, trust_pickle)), device)


def _from_dict(path: str, checkpoint: Mapping, device) -> LoadedCheckpoint:
    arch, meta = checkpoint["arch"], checkpoint.get("rsengine")
    if isinstance(meta, Mapping):
        state_dict, num_classes, mean, std, sigma, extra = _rsengine_format(path, checkpoint, meta)
    else:
        # The original format records no class count (it fixed 1,000 for ImageNet): read off the head.
        (state_dict, num_classes), sigma, extra = _weights_for(arch, checkpoint["state_dict"]), None, None
    built = build_classifier(arch, num_classes)
    if not isinstance(meta, Mapping):
        # The original code's normalize layer kept its statistics in code: the arch's data set's.
        mean, std = built.mean, built.std
    _load_weights(path, built.model, state_dict, arch)
    return LoadedCheckpoint(
        model=built.model.to(device).eval(),
        arch=arch,
        mean=mean,
        std=std,
        num_classes=built.num_classes if num_classes is None else num_classes,
        sigma=sigma,
        extra=extra,
    )


def load_classifier(
    source: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    trust_pickle: bool = False,
) -> LoadedCheckpoint:
    """A base classifier from what a user has: a checkpoint file, or a model source and its weights.

    Args:
        source: a checkpoint file (:func:`load_checkpoint`'s formats; with ``trust_pickle``, a
            whole model saved by ``torch.save(model)``), or a model source
            (:func:`rsengine.models.build_classifier`: ``cifar_resnet20``,
            ``torchvision:resnet50``, ``timm:NAME``, ``package.module:factory``).
        weights: with a model source, the weights file: a plain state dict, a torchvision or timm
            checkpoint (``state_dict``/``model`` entries), or rsengine's and the original formats.
            ``None``: random weights.
        num_classes: the head's size; default: the checkpoint's, the weights' head, the
            source's default (a whole pickled model: ``model.num_classes``, else unknown, 0).
        device: where to put the model.
        trust_pickle: load files with ``weights_only=False`` (runs their code; warns).

    Returns:
        A :class:`LoadedCheckpoint` in eval mode on ``device``; ``mean``/``std`` are the
        normalization its source records (torchvision's and timm's pretrained configurations,
        the checkpoint's metadata), else ``None``; ``arch`` is the source.

    Raises:
        CheckpointError: as :func:`load_checkpoint`, for the checkpoint or the weights file.
        ValueError: an unknown source, or ``weights`` given with a checkpoint file.

    Example:
        >>> import os, tempfile, torch
        >>> from rsengine.models import build_model
        >>> path = os.path.join(tempfile.mkdtemp(), "weights.pt")
        >>> torch.save(build_model("cifar_resnet20", 100).state_dict(), path)   # a plain state dict
        >>> loaded = load_classifier("cifar_resnet20", weights=path)
        >>> loaded.arch, loaded.num_classes
        ('cifar_resnet20', 100)
    """
    source = os.fspath(source)
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    if not os.path.exists(source) and not is_model_source(source) and not os.path.splitext(source)[1] \
            and os.sep not in source:  # a bare name: a model the user meant, not a file
        raise CheckpointNotFoundError(f"{source}: no such checkpoint file, nor a model source; a model is one of "
                                      f"{', '.join(ARCHITECTURES)}, torchvision:NAME, timm:NAME or "
                                      f"package.module:factory (torchvision:{source}?)")
    if os.path.exists(source) or not is_model_source(source):
        if weights is not None:
            raise ValueError(f"{source} is a checkpoint file: weights go with a model source such as "
                             f"torchvision:resnet50, not with a checkpoint")
        return _checkpoint_file(source, num_classes, device, trust_pickle)
    state_dict = None
    if weights is not None:
        weights = os.fspath(weights)
        state_dict, head = _weights_for(source, _weights_state_dict(weights, trust_pickle))
        if num_classes is None:
            num_classes = head
    built = build_classifier(source, num_classes)
    if state_dict is not None:
        _load_weights(weights, built.model, state_dict, source)
    return LoadedCheckpoint(model=built.model.to(device).eval(), arch=source, mean=built.mean, std=built.std,
                            num_classes=built.num_classes or num_classes or 0, sigma=None)


def _checkpoint_file(path: str, num_classes: int | None, device, trust_pickle: bool) -> LoadedCheckpoint:
    contents = _read_file(path, trust_pickle)
    if isinstance(contents, nn.Module):  # torch.save(model), readable with trust_pickle only
        model = _unwrapped(contents)
        known = getattr(model, "num_classes", None)
        return LoadedCheckpoint(model=model.to(device).eval(), arch=type(model).__name__, mean=None, std=None,
                                num_classes=num_classes or (known if isinstance(known, int) else 0), sigma=None)
    loaded = _from_dict(path, _read_checkpoint(path, contents), device)
    if num_classes is not None and num_classes != loaded.num_classes:
        raise CheckpointError(f"{path}: holds a {loaded.num_classes}-class head, not {num_classes} classes")
    return loaded


def _weights_state_dict(path: str, trust_pickle: bool) -> dict[str, Any]:
    """The state dict a weights file holds: plain, or under one of the keys checkpoints use."""
    loaded = _read_file(path, trust_pickle)
    if isinstance(loaded, nn.Module):
        return dict(_unwrapped(loaded).state_dict())
    if isinstance(loaded, Mapping) and not _is_state_dict(loaded):
        inner = next((loaded[key] for key in _STATE_DICT_KEYS if isinstance(loaded.get(key), Mapping)), None)
        if inner is None:
            raise CheckpointError(f"{path}: holds no state dict: neither tensors nor a "
                                  f"{'/'.join(_STATE_DICT_KEYS)} entry, but {_listing(list(map(str, loaded)))}")
        loaded = inner
    if not isinstance(loaded, Mapping) or not _is_state_dict(loaded):
        raise CheckpointError(f"{path}: holds a {type(loaded).__name__}, not a state dict of tensors")
    return dict(loaded)


def _is_state_dict(value: Mapping) -> bool:
    return bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _load_weights(path: str, model: nn.Module, state_dict: Mapping[str, Any], arch: str) -> None:
    problem = _mismatch(model, state_dict)
    if problem is not None:
        raise CheckpointError(f"{path}: state_dict does not match {arch!r}: {problem}")
    model.load_state_dict(dict(state_dict))


def _read_file(path: str, trust_pickle: bool):
    """What a torch file holds, after the checks that name a missing, empty or unreadable file."""
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint or corrupt (empty file)")
    return _torch_load(path, trust_pickle)


def _read_checkpoint(path: str, checkpoint) -> Mapping:
    """The checkpoint's dict, with a model source as ``arch`` and a ``state_dict`` mapping."""
    if isinstance(checkpoint, Mapping) and _is_state_dict(checkpoint):
        raise CheckpointError(f"{path}: a plain state dict, which does not say its model: name the model and "
                              f"pass the file as its weights (rsengine certify ... torchvision:NAME --weights "
                              f"{path}; API: load_classifier('torchvision:NAME', weights=...))")
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict with 'arch' and 'state_dict', got {type(checkpoint).__name__}"
        )
    for key in ("arch", "state_dict"):
        if key not in checkpoint:
            raise CheckpointError(
                f"{path}: no {key!r} entry; an rsengine or locuslab/smoothing checkpoint holds "
                f"'arch' and 'state_dict', this one {_listing(list(map(str, checkpoint)))}; a file of weights "
                f"alone goes with its model: torchvision:NAME --weights {path}"
            )
    if not isinstance(checkpoint["state_dict"], Mapping):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(checkpoint['state_dict']).__name__}, not a dict")
    return {**checkpoint, "arch": _arch(path, checkpoint["arch"])}


def _arch(path: str, arch) -> str:
    """The model source of a checkpoint's ``arch``: rsengine's, or a torchvision name (PyTorch's
    ImageNet example saves ``{"arch": "resnet18", "state_dict": ...}``)."""
    if isinstance(arch, str) and is_model_source(arch):
        return arch
    if not isinstance(arch, str):
        raise CheckpointError(f"{path}: 'arch' is {arch!r}, not a model name")
    try:
        torchvision = require("torchvision")
    except MissingExtraError:
        raise CheckpointError(f"{path}: unknown arch {arch!r}: not rsengine's ({', '.join(ARCHITECTURES)}); if it "
                              f"is torchvision's, install the vision extra (pip install \"rsengine[vision]\")"
                              ) from None
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise CheckpointError(f"{path}: unknown arch {arch!r}: neither rsengine's ({', '.join(ARCHITECTURES)}) "
                              f"nor a torchvision classification model")
    return f"torchvision:{arch}"


def _rsengine_format(path: str, checkpoint: Mapping, meta: Mapping) -> tuple:
    """(state_dict, num_classes, mean, std, sigma, extra) of a checkpoint ``save_checkpoint`` wrote."""
    try:
        num_classes = meta.get("num_classes")
        if num_classes is None and checkpoint["arch"] in ARCHITECTURES:
            num_classes = ARCHITECTURES[checkpoint["arch"]].num_classes
        num_classes = check_positive_int("num_classes", num_classes)
        mean, std = check_mean_std(meta.get("mean"), meta.get("std"))
        sigma = _check_sigma(meta.get("sigma"))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad rsengine metadata: {error}") from None
    return checkpoint["state_dict"], num_classes, mean, std, sigma, meta.get("extra")


def _weights_for(arch: str, state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], int | None]:
    """``state_dict`` aligned with ``arch``'s keys (:func:`_strip_prefixes`) and its head's size
    (:func:`_head_size`), both against one shapes-only build of the model."""
    default = _meta_build(arch, None)
    state_dict = _strip_prefixes(state_dict, set(default.model.state_dict()))
    return state_dict, _head_size(arch, state_dict, default)


def _strip_prefixes(state_dict: Mapping[str, Any], expected: set[str]) -> dict[str, Any]:
    """``state_dict`` with the wrappers' key prefixes that the model's own keys (``expected``) lack removed.

    The original code's ``Sequential(NormalizeLayer, model)`` puts the model at ``1.``;
    ``DataParallel`` and ``DistributedDataParallel`` add ``module.``. A prefix goes only when the
    keys then match the model's better: an ``nn.Sequential`` model's own keys start with ``1.`` too.
    """
    best = dict(state_dict)
    for prefixes in (("module.",), ("1.",), ("1.", "module.")):
        candidate = dict(state_dict)
        for prefix in prefixes:
            if candidate and all(isinstance(k, str) and k.startswith(prefix) for k in candidate):
                candidate = {k[len(prefix):]: v for k, v in candidate.items()}
        if len(expected & set(candidate)) > len(expected & set(best)):
            best = candidate
    return best
