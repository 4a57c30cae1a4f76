"""Model factories for the ``package.module:factory`` model source in the tests (the CLI's too:
its subprocesses run in this folder or with it on PYTHONPATH)."""
import torch
from torch import nn


def tiny_gray_net(num_classes: int = 10) -> nn.Module:
    """A linear classifier of 1x28x28 inputs (MNIST-sized), random weights."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


def fixed_head_net() -> nn.Module:
    """A factory that takes no num_classes: 10 logits of 1x28x28 inputs."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def not_a_module(num_classes: int = 10):
    return torch.zeros(num_classes)
