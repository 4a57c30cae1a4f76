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

from .contract import check_skip

__all__ = ["vote_count"]

# Rows per program and classes per step: a [16, 32] tile puts one class slot on each lane of a
# warp and the rows on the warps, so the running maxima are per-lane registers and the only
# cross-lane reduction comes once, after the class loop. See bench/README.md, "2026-11-29:
# kernels tuned from their machine code", for the figures behind the choice.
BLOCK_B = 16
BLOCK_K = 32
NUM_WARPS = 4


# rows, start_owner, start_sample and n change from batch to batch: specializing on their values
# would recompile in the middle of a run. The class count and row stride gain nothing from it
# (one class per lane, scalar loads): one variant per logit dtype.
@triton.jit(do_not_specialize=["rows", "start_owner", "start_sample", "n", "num_classes", "stride_row"])
def _vote_kernel(logits_ptr, counts_ptr, nonfinite_ptr, skip_ptr, rows, start_owner, start_sample, n, num_classes,
                 stride_row, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, HAS_SKIP: tl.constexpr):
    row = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)  # [BLOCK_B] int32: rows < 2**31
    row_ok = row < rows
    if HAS_SKIP:  # sound mode's escaped rows vote for no class
        row_ok = row_ok & (tl.load(skip_ptr + row, mask=row_ok, other=1) == 0)
    # bf16/fp16 logits compare exactly in fp32; fp64 logits stay fp64 (rounding could tie them).
    compute_ty = tl.float64 if logits_ptr.dtype.element_ty == tl.float64 else tl.float32
    slot = tl.arange(0, BLOCK_K)
    # Per slot j: the largest logit among classes j, j + BLOCK_K, ... and the first class holding it.
    best = tl.full([BLOCK_B, BLOCK_K], float("-inf"), compute_ty)
    best_class = tl.zeros([BLOCK_B, BLOCK_K], tl.int32)
    bad = tl.zeros([BLOCK_B, BLOCK_K], tl.int1)
    row_ptr = logits_ptr + row.to(tl.int64)[:, None] * stride_row  # [BLOCK_B, 1]
    for k0 in range(0, num_classes, BLOCK_K):
        cls = k0 + slot[None, :]  # [1, BLOCK_K]
        mask = row_ok[:, None] & (cls < num_classes)
        v = tl.load(row_ptr + cls, mask=mask, other=float("-inf")).to(compute_ty)  # [BLOCK_B, BLOCK_K]
        bad = bad | (mask & ((v != v) | (tl.abs(v) == float("inf"))))
        better = v > best  # strict: an equal later class never replaces an earlier one
        best = tl.where(better, v, best)
        best_class = tl.where(better, cls, best_class)
    top = tl.max(best, axis=1)  # [BLOCK_B]
    # Lowest class attaining the row's maximum: ties go to the lowest index, as torch.argmax.
    winner = tl.min(tl.where(best == top[:, None], best_class, num_classes), axis=1)
    row_bad = tl.max(bad.to(tl.int32), axis=1)
    # Row -> input without 64-bit division (a subroutine call on a GPU): start_sample < n < 2**31
    # and row < 2**31, so the sum fits in 32 unsigned bits.
    s = start_sample.to(tl.uint32) + row.to(tl.uint32)
    owner = start_owner + (s // n.to(tl.uint32)).to(tl.int64)
    tl.atomic_add(counts_ptr + owner * num_classes + winner, 1, mask=row_ok & (row_bad == 0))
    bad_rows = tl.sum(tl.where(row_ok, row_bad, 0), axis=0)
    if bad_rows > 0:  # one atomic per program, and none in the common all-finite case
        tl.atomic_add(nonfinite_ptr, bad_rows)


def vote_count(logits: torch.Tensor, start: int, n: int, counts: torch.Tensor,
               nonfinite: torch.Tensor, skip: torch.Tensor | None = None) -> None:
    """Triton version of :func:`rsengine.kernels.reference.vote_count` (same arguments).

    Args:
        logits: [B, K] float logits (fp32, bf16, fp16 or fp64), rows global rows start .. start + B - 1.
        start: first global row. n: samples per input in this phase.
        counts: [M, K] int32 device counts, updated in place.
        nonfinite: [1] int32 device counter of rows with non-finite logits, updated in place.
        skip: optional [B] int32 device flags: non-zero rows neither vote nor are checked.
    """
    check_skip(skip, logits)
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    rows, num_classes = logits.shape
    if not 1 <= n < 2**31 or rows >= 2**31:
        raise ValueError(f"Expected 1 <= n < 2**31 and fewer than 2**31 rows, got n={n}, rows={rows}")
    grid = (triton.cdiv(rows, BLOCK_B),)
    _vote_kernel[grid](logits, counts, nonfinite, counts if skip is None else skip, rows, start // n, start % n, n,
                       num_classes, logits.stride(0), BLOCK_B=BLOCK_B, BLOCK_K=BLOCK_K, HAS_SKIP=skip is not None,
                       num_warps=NUM_WARPS, enable_fp_fusion=False)
