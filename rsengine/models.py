"""Base classifiers: rsengine's own (an MNIST CNN, He et al.'s CIFAR ResNets) and where others come from.

Every model here takes NORMALIZED input, ``(x - mean) / std``: rsengine applies the
normalization inside its fused noise kernel, after the noise is added in pixel space, so the
models themselves hold no normalize layer (the original locuslab/smoothing models did:
``nn.Sequential(NormalizeLayer, model)``; :mod:`rsengine.checkpoints` strips that wrapper).

A model *source* names a classifier to build (:func:`build_classifier`):

* one of :data:`ARCHITECTURES`: ``mnist_cnn``, ``cifar_resnet20``, ``cifar_resnet110`` (the CIFAR
  ResNet of locuslab/smoothing, ``archs/cifar_resnet.py``, with the same module names and shapes,
  so its published checkpoints load as they are), and ``resnet50``, torchvision's ResNet-50 as the
  paper used it;
* ``torchvision:NAME`` and ``timm:NAME``: those packages' classification models (the ``vision``
  extra, :mod:`rsengine.vision`), with the mean and std their published weights expect;
* ``package.module:factory``: any function returning an ``nn.Module``, called with
  ``num_classes=`` when it takes that argument (the module is looked up on ``sys.path``, then in
  the current directory).

Example:
    >>> import torch
    >>> from rsengine.models import build_model
    >>> model = build_model("mnist_cnn").eval()
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rsengine.data import dataset_stats
from rsengine.validation import check_choice, check_positive_int
from rsengine.vision import VISION_SOURCES, build_vision_model

__all__ = [
    "ArchSpec",
    "ARCHITECTURES",
    "BuiltModel",
    "is_model_source",
    "build_classifier",
    "MnistCNN",
    "CifarResNet",
    "mnist_cnn",
    "cifar_resnet20",
    "cifar_resnet110",
    "resnet50",
    "build_model",
]


class MnistCNN(nn.Module):
    """A LeNet-style CNN for 1x28x28 MNIST, sized to be cheap on a CPU.

    conv 1->8 5x5, maxpool 2, relu, conv 8->16 5x5, maxpool 2, relu, fc 256->64, relu,
    fc 64->num_classes: 20,522 parameters for 10 classes. Certification runs the base
    classifier ~10^5 times per input, so its forward cost is what a CPU certification spends:
    this width runs ~80k samples/s (batch 1000, channels_last, 2 idle CPU cores). The 16/32/128
    variant (80,202 parameters) ran ~26k samples/s and, trained the same way at sigma = 0.25 on
    the 4,000-image split, was within 0.2 points of it under sigma = 0.25 noise (97.2% vs 97.0%
    on the 1,000 test images, in that comparison). Pooling before the ReLU gives the same output
    as after it (max and ReLU commute) on a quarter of the elements.

    Args:
        num_classes: number of output logits.

    Shapes:
        input ``[B, 1, 28, 28]`` (normalized), output ``[B, num_classes]``.

    Example:
        >>> import torch
        >>> MnistCNN()(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 10])
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # [B, 8, 12, 12]
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # [B, 16, 4, 4]
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    # Keys downsample.0 (conv) / downsample.1 (BN) are what both published layouts use.
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(_conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


def _init_weights(model: nn.Module) -> None:
    # He initialisation over fan_out, as both reference implementations do: for a conv this is
    # N(0, 2 / (k * k * out_channels)), the formula in locuslab's cifar_resnet.py.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet with ``(depth - 2) / 6`` BasicBlocks per stage.

    conv1 (3->16, 3x3), bn1, relu, layer1 (16 channels, 32x32), layer2 (32, 16x16),
    layer3 (64, 8x8), global average pooling, fc (64 -> num_classes). 272,474 parameters at
    depth 20 and 1,730,714 at depth 110 (10 classes). The original pools with AvgPool2d(8),
    which equals the global average used here on 32x32 inputs.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        num_classes: number of output logits.

    Shapes:
        input ``[B, 3, 32, 32]`` (normalized), output ``[B, num_classes]``.

    Example:
        >>> import torch
        >>> CifarResNet(depth=20)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, depth: int, num_classes: int = 10):
        super().__init__()
        depth = check_positive_int("depth", depth)
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"Expected `depth` of the form 6n + 2 with n >= 1, got {depth!r}")
        self.num_classes = check_positive_int("num_classes", num_classes)
        blocks = (depth - 2) // 6
        self.conv1 = _conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, 16, blocks, stride=1)
        self.layer2 = self._make_layer(16, 32, blocks, stride=2)
        self.layer3 = self._make_layer(32, 64, blocks, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [_BasicBlock(in_planes, planes, stride)]
        layers += [_BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # [B, 16, 32, 32]
        x = self.layer3(self.layer2(self.layer1(x)))  # [B, 64, 8, 8]
        return self.fc(torch.flatten(self.avgpool(x), 1))


def mnist_cnn(num_classes: int = 10) -> MnistCNN:
    """Return a randomly initialised :class:`MnistCNN`.

    Example:
        >>> sum(p.numel() for p in mnist_cnn().parameters())
        20522
    """
    return MnistCNN(num_classes)


def cifar_resnet20(num_classes: int = 10) -> CifarResNet:
    """Return a randomly initialised 20-layer :class:`CifarResNet` (3 blocks per stage).

    Example:
        >>> sum(p.numel() for p in cifar_resnet20().parameters())
        272474
    """
    return CifarResNet(20, num_classes)


def cifar_resnet110(num_classes: int = 10) -> CifarResNet:
    """Return a randomly initialised 110-layer :class:`CifarResNet` (18 blocks per stage).

    Example:
        >>> sum(p.numel() for p in cifar_resnet110().parameters())
        1730714
    """
    return CifarResNet(110, num_classes)


def resnet50(num_classes: int = 1000) -> nn.Module:
    """Return a randomly initialised torchvision ResNet-50 (v1.5), the paper's ImageNet model.

    Needs the ``vision`` extra (``pip install "rsengine[vision]"``).

    Example:
        >>> sum(p.numel() for p in resnet50().parameters())
        25557032
    """
    return build_vision_model("torchvision", "resnet50", num_classes).model


class ArchSpec(NamedTuple):
    """What :func:`build_model` needs to know about an architecture."""

    constructor: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]  # [C, H, W] of one input
    num_classes: int  # default number of classes
    dataset: str  # whose normalization it is trained with (the original checkpoints' too)


ARCHITECTURES: dict[str, ArchSpec] = {
    "mnist_cnn": ArchSpec(mnist_cnn, (1, 28, 28), 10, "mnist"),
    "cifar_resnet20": ArchSpec(cifar_resnet20, (3, 32, 32), 10, "cifar10"),
    "cifar_resnet110": ArchSpec(cifar_resnet110, (3, 32, 32), 10, "cifar10"),
    "resnet50": ArchSpec(resnet50, (3, 224, 224), 1000, "imagenet"),
}

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # package.module:function


class BuiltModel(NamedTuple):
    """A randomly initialised classifier from a model source, and what certifying with it needs.

    Attributes:
        model: the network, in training mode, taking normalized input.
        num_classes: its logits, ``None`` when a factory does not say.
        mean, std: the normalization it expects, ``None`` when its source records none.
    """

    model: nn.Module
    num_classes: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


def is_model_source(text: str) -> bool:
    """Whether ``text`` names a model to build rather than a file (see the module docstring).

    Example:
        >>> is_model_source("torchvision:resnet50"), is_model_source("cifar_resnet20"), is_model_source("m.pt")
        (True, True, False)
    """
    return text in ARCHITECTURES or text.split(":", 1)[0] in VISION_SOURCES or bool(_FACTORY.match(text))


def _factory(source: str) -> Callable[..., nn.Module]:
    module_name, function = source.split(":")
    try:
        module = _import(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not module_name.startswith(error.name):
            raise  # the module exists but lacks one of its own imports: its message says which
        raise ValueError(f"No module {error.name!r} for the model source {source!r}, and no file of that name; a "
                         f"model is {', '.join(ARCHITECTURES)}, torchvision:NAME, timm:NAME or package.module:factory"
                         ) from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ValueError(f"{module_name} has no function {function!r} to build the model with")
    return factory


def _import(module_name: str):
    """The module, looked up on sys.path and then in the current directory (a console script does
    not put it on sys.path, as ``python -m`` does); an error inside it is one line naming it."""
    cwd_first = os.getcwd() not in sys.path
    try:
        if cwd_first:
            sys.path.insert(0, os.getcwd())
        return importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's module failed as it ran: say where
        raise ImportError(f"{module_name} failed as it was imported: {type(error).__name__}: {error}") from None
    finally:
        if cwd_first:
            sys.path.remove(os.getcwd())


def _build_from_factory(source: str, num_classes: int | None) -> BuiltModel:
    factory = _factory(source)
    try:
        takes_classes = "num_classes" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C function: no signature to read
        takes_classes = False
    model = factory(num_classes=num_classes) if takes_classes and num_classes is not None else factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"{source} returned a {type(model).__name__}, not a torch.nn.Module")
    known = getattr(model, "num_classes", None)
    return BuiltModel(model, known if isinstance(known, int) else num_classes if takes_classes else None, None, None)


def build_classifier(source: str, num_classes: int | None = None) -> BuiltModel:
    """Build the classifier a model source names, with random weights.

    Args:
        source: an rsengine architecture, ``torchvision:NAME``, ``timm:NAME`` or
            ``package.module:factory``.
        num_classes: the head's size; ``None``: the source's default.

    Raises:
        ValueError: an unknown source or model name.
        rsengine.vision.MissingExtraError: torchvision or timm is needed and not installed.

    Example:
        >>> built = build_classifier("cifar_resnet20", num_classes=100)
        >>> built.num_classes, built.mean
        (100, (0.4914, 0.4822, 0.4465))
    """
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    if source in ARCHITECTURES:
        spec = ARCHITECTURES[source]
        model = spec.constructor(spec.num_classes if num_classes is None else num_classes)
        return BuiltModel(model, spec.num_classes if num_classes is None else num_classes,
                          *dataset_stats(spec.dataset))
    kind, _, name = source.partition(":")
    if kind in VISION_SOURCES:
        return BuiltModel(*build_vision_model(kind, name, num_classes))
    if _FACTORY.match(source):
        return _build_from_factory(source, num_classes)
    raise ValueError(f"Expected a model source ({', '.join(ARCHITECTURES)}, torchvision:NAME, timm:NAME or "
                     f"package.module:factory), got {source!r}")


def build_model(arch: str, num_classes: int | None = None) -> nn.Module:
    """Build a randomly initialised model by architecture name or model source.

    Args:
        arch: a key of :data:`ARCHITECTURES`, or any source :func:`build_classifier` takes.
        num_classes: number of output logits; ``None`` takes the architecture's default.

    Returns:
        The model, in training mode, on the current default device.

    Raises:
        ValueError: ``arch`` is unknown (the message lists the known ones) or ``num_classes``
            is not a positive integer.

    Example:
        >>> build_model("cifar_resnet20", num_classes=100).fc.out_features
        100
    """
    if isinstance(arch, str) and arch not in ARCHITECTURES and is_model_source(arch):
        return build_classifier(arch, num_classes).model
    check_choice("arch", arch, tuple(ARCHITECTURES))
    return build_classifier(arch, num_classes).model
