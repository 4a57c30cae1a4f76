"""Fused Gaussian noise + normalization: one read of x, one write of the model's batch.

The unfused chain (repeat, randn, scale, add, subtract mean, divide by std, cast) touches the
batch seven times; this kernel writes it once, in the model's dtype and memory format, with the
Philox stream of the random-number contract (see ``reference.py``, which this matches up to
float rounding of log/cos/sin).

Example (CPU tensors need TRITON_INTERPRET=1 set before triton is imported):
    >>> import torch
    >>> from rsengine.kernels.noise import noise_normalize
    >>> xs = torch.rand(2, 3, 8, 8)
    >>> batch = noise_normalize(xs, torch.tensor([0, 1]), start=0, count=4, n=2, sigma=0.5,
    ...                         seed=0, phase=1)
    >>> batch.shape
    torch.Size([4, 3, 8, 8])
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

__all__ = ["noise_normalize"]

# Philox blocks (4 normals each) per program: 1024 blocks = 4096 elements, the element count
# Liger-style elementwise kernels use; large blocks also keep the CPU interpreter's
# per-program overhead (~10 ms) affordable in tests. Not yet tuned on a GPU.
BLOCK_Q = 1024
_TWO_PI = 2.0 * math.pi
_TWO_POW_MINUS_32 = 2.0**-32


@triton.jit
def _uniform(words):
    # (u + 0.5) * 2**-32: never 0, so log() needs no clamp (tl.randn clamps at 1e-7).
    return (words.to(tl.float32) + 0.5) * _TWO_POW_MINUS_32


# start and n change from batch to batch and phase to phase: specializing on their values
# (divisibility by 16, == 1) would compile new variants in the middle of a run.
@triton.jit(do_not_specialize=["start", "n"])
def _noise_normalize_kernel(
    xs_ptr, streams_ptr, mean_ptr, std_ptr, out_ptr,
    start, n, numel, hw, stride_c, stride_hw, sigma, seed, phase,
    HAS_NORM: tl.constexpr, BLOCK_Q: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    pid_q = tl.program_id(1).to(tl.int64)
    global_row = start + row
    owner = global_row // n
    first = (global_row % n) * numel  # element index e of this row's first element, 64-bit
    q0 = first // 4 + pid_q * BLOCK_Q
    q = q0 + tl.arange(0, BLOCK_Q)  # [BLOCK_Q] Philox block indices
    zero = tl.zeros([BLOCK_Q], dtype=tl.uint32)
    # Unmasked: owner < M for every row the launcher's grid covers (rows < M * n).
    stream = tl.load(streams_ptr + owner).to(tl.uint32)
    w0, w1, w2, w3 = tl.philox(
        seed, (q & 0xFFFFFFFF).to(tl.uint32), (q >> 32).to(tl.uint32), zero + stream, zero + phase
    )
    r01 = tl.sqrt(-2.0 * tl.log(_uniform(w0)))
    r23 = tl.sqrt(-2.0 * tl.log(_uniform(w2)))
    theta01 = _TWO_PI * _uniform(w1)
    theta23 = _TWO_PI * _uniform(w3)
    # Lanes 0..3 of block q are elements 4q .. 4q + 3: interleave into one contiguous run.
    z = tl.interleave(
        tl.interleave(r01 * tl.cos(theta01), r23 * tl.cos(theta23)),
        tl.interleave(r01 * tl.sin(theta01), r23 * tl.sin(theta23)),
    )  # [4 * BLOCK_Q]
    # Element index within the input: it fits in 32 bits (numel < 2**31), and 32-bit division
    # by hw below is several times cheaper on a GPU than 64-bit.
    d = (4 * q0 - first).to(tl.int32) + tl.arange(0, 4 * BLOCK_Q)
    mask = (d >= 0) & (d < numel)
    x = tl.load(xs_ptr + owner * numel + d, mask=mask, other=0.0)
    y = x + sigma * z
    channel = d // hw
    if HAS_NORM:
        mean = tl.load(mean_ptr + channel, mask=mask, other=0.0)
        std = tl.load(std_ptr + channel, mask=mask, other=1.0)
        y = (y - mean) / std
    out = out_ptr + row * numel + channel * stride_c + (d % hw) * stride_hw
    tl.store(out, y.to(out_ptr.dtype.element_ty), mask=mask)


def noise_normalize(xs: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                    sigma: float, seed: int, phase: int, mean: torch.Tensor | None = None,
                    std: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
                    memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Triton version of :func:`rsengine.kernels.reference.noise_normalize` (same arguments).

    Args:
        xs: [M, *shape] float32 contiguous inputs; shape[0] is the channel axis.
        streams: [M] int64 stream indices. start, count, n: rows start .. start + count - 1 of
            the flattened (input, sample) grid, n samples per input.
        sigma, seed, phase: noise level, 64-bit seed, PHASE_* constant.
        mean, std: optional [shape[0]] float32 per-channel normalization.
        dtype: output dtype. memory_format: contiguous or channels_last (4-D batches).

    Returns:
        [count, *shape] tensor in ``dtype`` and ``memory_format``.
    """
    shape = xs.shape[1:]
    numel = shape.numel()
    # What the kernel assumes: flat float32 rows, 32-bit element offsets, rows inside the grid.
    if xs.dtype != torch.float32 or not xs.is_contiguous():
        raise ValueError(f"Expected `xs` float32 and contiguous, got {xs.dtype}, contiguous={xs.is_contiguous()}")
    if numel >= 2**31:
        raise ValueError(f"Expected inputs of fewer than 2**31 elements, got {numel}")
    if start + count > xs.shape[0] * n:
        raise ValueError(f"Expected rows start + count <= M * n = {xs.shape[0] * n}, got {start + count}")
    out = torch.empty((count, *shape), dtype=dtype, device=xs.device, memory_format=memory_format)
    hw = numel // shape[0]
    channels_last = memory_format == torch.channels_last
    stride_c, stride_hw = (1, shape[0]) if channels_last else (hw, 1)
    has_norm = mean is not None
    grid = (count, triton.cdiv(numel // 4 + 2, BLOCK_Q))
    _noise_normalize_kernel[grid](
        xs, streams, mean if has_norm else xs, std if has_norm else xs, out,
        start, n, numel, hw, stride_c, stride_hw, sigma, seed, phase,
        HAS_NORM=has_norm, BLOCK_Q=BLOCK_Q,
    )
    return out
