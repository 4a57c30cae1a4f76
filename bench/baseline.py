"""What rsengine is measured against: the original sampling loop and plain-PyTorch equivalents.

- :func:`original_counts`: locuslab/smoothing's ``core.Smooth._sample_noise`` as it ran with
  the published models: fp32, ``x.repeat``, ``torch.randn_like``, the classifier wrapped behind
  its ``NormalizeLayer`` (which repeats mean and std to the batch shape on every call), and the
  predictions copied to the host and counted there after every batch. The original counted them
  with a Python loop (``_count_arr``); ``np.bincount`` here is faster, so the baseline is, if
  anything, flattered.
- :func:`plain_counts`: the same loop written well in plain PyTorch, in the engine's dtype and
  memory format (bf16 channels_last on a GPU), votes counted on the device and read once. The
  engine's own contribution is its margin over this loop, not over the original.
- :func:`unfused_noise_normalize` and :func:`argmax_bincount`: the unfused PyTorch chains the
  two Triton kernels replace, for the kernel benchmarks.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    >>> x = torch.rand(3, 2, 2)
    >>> counts = original_counts(model, x, num=10, sigma=0.25, batch_size=4, num_classes=5,
    ...                          mean=[0.5] * 3, std=[0.2] * 3)
    >>> int(counts.sum())
    10
"""
from __future__ import annotations

from math import ceil

import numpy as np
import torch

__all__ = ["original_normalize", "original_counts", "plain_counts", "unfused_noise_normalize",
           "argmax_bincount"]


def original_normalize(batch: torch.Tensor, means: torch.Tensor, sds: torch.Tensor) -> torch.Tensor:
    """The original ``NormalizeLayer.forward``: mean and std repeated to the batch shape per call.

    Args:
        batch: [B, C, H, W]. means, sds: [C] on the batch's device.
    """
    batch_size, _, height, width = batch.shape
    means = means.repeat((batch_size, height, width, 1)).permute(0, 3, 1, 2)
    sds = sds.repeat((batch_size, height, width, 1)).permute(0, 3, 1, 2)
    return (batch - means) / sds


def original_counts(model: torch.nn.Module, x: torch.Tensor, num: int, sigma: float, batch_size: int,
                    num_classes: int, mean, std) -> np.ndarray:
    """Votes of ``num`` noisy copies of ``x``, counted the way the original code did.

    Args:
        model: fp32 classifier taking normalized input. x: one input [C, H, W] on the model's
            device. num: noisy copies. sigma: noise level. batch_size: copies per forward.
        num_classes: logit width. mean, std: per-channel normalization.

    Returns:
        [num_classes] int64 host counts.
    """
    means = torch.tensor(mean, dtype=torch.float32, device=x.device)
    sds = torch.tensor(std, dtype=torch.float32, device=x.device)
    with torch.no_grad():
        counts = np.zeros(num_classes, dtype=np.int64)
        for _ in range(ceil(num / batch_size)):
            this_batch_size = min(batch_size, num)
            num -= this_batch_size
            batch = x.repeat((this_batch_size, 1, 1, 1))
            noise = torch.randn_like(batch) * sigma
            predictions = model(original_normalize(batch + noise, means, sds)).argmax(1)
            counts += np.bincount(predictions.cpu().numpy(), minlength=num_classes)  # host sync per batch
        return counts


def plain_counts(model: torch.nn.Module, x: torch.Tensor, num: int, sigma: float, batch_size: int,
                 num_classes: int, mean, std, dtype: torch.dtype = torch.bfloat16,
                 memory_format: torch.memory_format = torch.channels_last) -> np.ndarray:
    """Votes of ``num`` noisy copies of ``x`` in plain PyTorch, in ``dtype`` and ``memory_format``, one sync.

    Args:
        model: classifier already in ``dtype`` and ``memory_format``, taking normalized input.
        x: one fp32 input [C, H, W] on the model's device. dtype, memory_format: of the model's
            batches (default bf16 channels_last). Other arguments as :func:`original_counts`.

    Returns:
        [num_classes] int64 host counts.
    """
    mean = torch.tensor(mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
    counts = torch.zeros(num_classes, dtype=torch.int64, device=x.device)
    ones = torch.ones(batch_size, dtype=torch.int64, device=x.device)
    with torch.inference_mode():
        for start in range(0, num, batch_size):
            rows = min(batch_size, num - start)
            batch = x.expand(rows, *x.shape)
            noisy = (batch + sigma * torch.randn_like(batch) - mean) / std
            logits = model(noisy.to(dtype=dtype, memory_format=memory_format))
            # index_add_ rather than torch.bincount: bincount reads its input's max on the host
            # to size its output, a sync per batch on CUDA.
            counts.index_add_(0, logits.argmax(1), ones[:rows])
    return counts.cpu().numpy()


def unfused_noise_normalize(x: torch.Tensor, count: int, sigma: float, mean: torch.Tensor,
                            std: torch.Tensor, dtype: torch.dtype,
                            memory_format: torch.memory_format) -> torch.Tensor:
    """The PyTorch chain the fused noise kernel replaces: repeat, randn, scale, add, normalize, cast.

    Args:
        x: one fp32 input [C, H, W]. count: noisy copies. sigma: noise level.
        mean, std: [C] float32 on x's device. dtype, memory_format: of the returned batch.

    Returns:
        [count, C, H, W] batch in ``dtype`` and ``memory_format``.
    """
    batch = x.repeat((count, 1, 1, 1))  # [count, C, H, W]
    noise = torch.randn_like(batch) * sigma
    normalized = (batch + noise - mean.view(-1, 1, 1)) / std.view(-1, 1, 1)
    return normalized.to(dtype=dtype, memory_format=memory_format)


def argmax_bincount(logits: torch.Tensor, counts: torch.Tensor) -> None:
    """The PyTorch chain the vote kernel replaces: ``counts += bincount(argmax(logits))``.

    Args:
        logits: [B, K]. counts: [K] int64, updated in place.
    """
    counts += torch.bincount(logits.argmax(1), minlength=counts.numel())
