"""Base classifiers: a small MNIST CNN, He et al.'s CIFAR ResNets and torchvision's ResNet-50.

Every model here takes NORMALIZED input, ``(x - mean) / std``: rsengine applies the
normalization inside its fused noise kernel, after the noise is added in pixel space, so the
models themselves hold no normalize layer (the original locuslab/smoothing models did:
``nn.Sequential(NormalizeLayer, model)``; :mod:`rsengine.checkpoints` strips that wrapper).

Module names and parameter shapes match the checkpoints published with the paper, so their
``state_dict`` loads as it is once the wrapper prefix is gone:

* ``cifar_resnet20`` / ``cifar_resnet110``: the CIFAR ResNet of locuslab/smoothing
  (``archs/cifar_resnet.py``, itself from bearpaw/pytorch-classification): 3x3 convolutions
  without bias, 16/32/64 channels, ``(depth - 2) / 6`` BasicBlocks per stage, a 1x1 convolution
  + BatchNorm shortcut (``downsample.0`` / ``downsample.1``) where the shape changes.
* ``resnet50``: torchvision's ResNet-50 (v1.5: the stride sits on the 3x3 convolution of a
  Bottleneck), re-implemented here with identical ``state_dict`` keys because torchvision is
  not a dependency of rsengine.

Example:
    >>> import torch
    >>> from rsengine.models import build_model
    >>> model = build_model("mnist_cnn").eval()
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rsengine.validation import check_choice, check_positive_int

__all__ = [
    "ArchSpec",
    "ARCHITECTURES",
    "MnistCNN",
    "CifarResNet",
    "ResNet50",
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


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = _conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)  # torchvision v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, out_planes)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
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


class ResNet50(nn.Module):
    """torchvision's ResNet-50 (v1.5), with the same ``state_dict`` keys and shapes.

    conv1 (3->64, 7x7, stride 2), bn1, relu, maxpool (3x3, stride 2), layer1..layer4 of
    3/4/6/3 Bottleneck blocks (64/128/256/512 planes, x4 expansion), global average pooling,
    fc (2048 -> num_classes). 25,557,032 parameters for 1000 classes.

    Args:
        num_classes: number of output logits.

    Shapes:
        input ``[B, 3, H, W]`` (normalized; 224x224 for ImageNet), output ``[B, num_classes]``.

    Example:
        >>> import torch
        >>> ResNet50(num_classes=10).eval()(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 10])
    """

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 64, 3, stride=1)
        self.layer2 = self._make_layer(256, 128, 4, stride=2)
        self.layer3 = self._make_layer(512, 256, 6, stride=2)
        self.layer4 = self._make_layer(1024, 512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * _Bottleneck.expansion, num_classes)
        _init_weights(self)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_planes = planes * _Bottleneck.expansion
        layers = [_Bottleneck(in_planes, planes, stride)]
        layers += [_Bottleneck(out_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))  # [B, 64, H/4, W/4]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # [B, 2048, H/32, W/32]
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


def resnet50(num_classes: int = 1000) -> ResNet50:
    """Return a randomly initialised :class:`ResNet50`.

    Example:
        >>> sum(p.numel() for p in resnet50().parameters())
        25557032
    """
    return ResNet50(num_classes)


class ArchSpec(NamedTuple):
    """What :func:`build_model` needs to know about an architecture."""

    constructor: Callable[..., nn.Module]
    input_shape: tuple[int, int, int]  # [C, H, W] of one input
    num_classes: int  # default number of classes


ARCHITECTURES: dict[str, ArchSpec] = {
    "mnist_cnn": ArchSpec(mnist_cnn, (1, 28, 28), 10),
    "cifar_resnet20": ArchSpec(cifar_resnet20, (3, 32, 32), 10),
    "cifar_resnet110": ArchSpec(cifar_resnet110, (3, 32, 32), 10),
    "resnet50": ArchSpec(resnet50, (3, 224, 224), 1000),
}


def build_model(arch: str, num_classes: int | None = None) -> nn.Module:
    """Build a randomly initialised model by architecture name.

    Args:
        arch: a key of :data:`ARCHITECTURES`.
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
    spec = ARCHITECTURES[check_choice("arch", arch, tuple(ARCHITECTURES))]
    if num_classes is None:
        num_classes = spec.num_classes
    return spec.constructor(check_positive_int("num_classes", num_classes))
