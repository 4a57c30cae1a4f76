"""Fused argmax + vote counting: logits in, per-input class counts out, all on the device.

The original code copied every batch's predictions to the host and counted them in a Python
loop; here each row's winning class is added to ``counts[input, class]`` with an atomic, so the
host sees counts once per phase. Ties go to the lowest class index (torch.argmax's rule). Rows
with a NaN or +-inf logit are not counted; they increment ``nonfinite`` so the sampler can raise
at the end of the phase (see ``reference.vote_count``, which this matches exactly).

Example (CPU tensors need TRITON_INTERPRET=1 set before triton is imported):
    >>> import torch
    >>> from rsengine.kernels.votes import vote_count
    >>> counts = torch.zeros(2, 3, dtype=torch.int32); bad = torch.zeros(1, dtype=torch.int32)
    >>> vote_count(torch.tensor([[0., 1, 0], [2, 2, 0], [0, 0, 1], [5, 0, 0]]), 0, 2, counts, bad)
    >>> counts.tolist()
    [[1, 1, 0], [1, 0, 1]]
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["vote_count"]

# Rows per program and classes per inner step: 1000-class ImageNet logits take 4 steps of 256;
# 32 rows x 256 classes keeps one tile in registers. Not yet tuned on a GPU.
BLOCK_B = 32
BLOCK_K = 256


# start and n change from batch to batch: specializing on their values would recompile mid-run.
@triton.jit(do_not_specialize=["start", "n"])
def _vote_kernel(logits_ptr, counts_ptr, nonfinite_ptr, rows, start, n, num_classes, stride_row,
                 BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    row = pid * BLOCK_B + tl.arange(0, BLOCK_B)  # [BLOCK_B]
    row_ok = row < rows
    best = tl.full([BLOCK_B], float("-inf"), tl.float32)
    best_class = tl.zeros([BLOCK_B], tl.int32)
    bad = tl.zeros([BLOCK_B], tl.int32)
    for k0 in range(0, num_classes, BLOCK_K):
        cls = k0 + tl.arange(0, BLOCK_K)  # [BLOCK_K]
        mask = row_ok[:, None] & (cls[None, :] < num_classes)
        v = tl.load(logits_ptr + row[:, None] * stride_row + cls[None, :], mask=mask,
                    other=float("-inf")).to(tl.float32)  # [BLOCK_B, BLOCK_K]
        finite = (v == v) & (tl.abs(v) != float("inf"))
        bad = tl.maximum(bad, tl.max(tl.where(mask & ~finite, 1, 0), axis=1))
        step_best = tl.max(v, axis=1)
        # Lowest class attaining the step's maximum; a later step must be strictly greater.
        step_class = tl.min(tl.where(mask & (v == step_best[:, None]), cls[None, :], num_classes), axis=1)
        better = step_best > best
        best = tl.where(better, step_best, best)
        best_class = tl.where(better, step_class, best_class)
    owner = (start + row) // n
    tl.atomic_add(counts_ptr + owner * num_classes + best_class, 1, mask=row_ok & (bad == 0))
    bad_rows = tl.sum(tl.where(row_ok, bad, 0), axis=0)
    if bad_rows > 0:  # one atomic per program, and none in the common all-finite case
        tl.atomic_add(nonfinite_ptr, bad_rows)


def vote_count(logits: torch.Tensor, start: int, n: int, counts: torch.Tensor,
               nonfinite: torch.Tensor) -> None:
    """Triton version of :func:`rsengine.kernels.reference.vote_count` (same arguments).

    Args:
        logits: [B, K] float logits (fp32, bf16 or fp16), rows global rows start .. start + B - 1.
        start: first global row. n: samples per input in this phase.
        counts: [M, K] int32 device counts, updated in place.
        nonfinite: [1] int32 device counter of rows with non-finite logits, updated in place.
    """
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    rows, num_classes = logits.shape
    grid = (triton.cdiv(rows, BLOCK_B),)
    _vote_kernel[grid](logits, counts, nonfinite, rows, start, n, num_classes, logits.stride(0),
                       BLOCK_B=BLOCK_B, BLOCK_K=BLOCK_K)
