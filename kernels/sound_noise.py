"""Sound mode's fused noise + normalization: integer pixels plus rounded-Gaussian integers, one write.

Sound mode (``rsengine.sound``, docs/sound_mode.md) feeds the classifier ``float32(i + k) / 255``
for integer pixels ``i`` and integer noise ``k`` drawn by inverse CDF from 64 Philox bits per
element against the integer thresholds of ``rsengine.sound.noise_table``. Nothing that depends on
``i`` happens in floating point before the sum, which is what makes the certificate sound. This
kernel does it in one pass, for any input shape:

- element ``e = sample * numel + d`` takes Philox block ``e // 2`` (counter and key as in
  ``contract.py``), words (w0, w1) for even ``e`` and (w2, w3) for odd, ``u = w_hi 2^32 + w_lo``;
- ``k = -support + #{j : T_j <= u}`` by a branch-free binary search of ``STEPS`` halvings over
  the table (read as int64 ``T_j - 2^63``, the same order in a signed type); 1,131 thresholds at
  sigma = 0.25 (11 steps), 4,441 at 1 (13), 8 KiB to 35 KiB: the table stays in L1/L2;
- ``u >= T_last`` *escapes*: the element is written as the clean pixel and the row is flagged in
  ``escaped``, so that it votes for no class (``vote_count``'s ``skip``);
- the value is ``div_rn(float32(i + k), 255)`` (the IEEE quotient, as torch's CPU division), then
  normalized as the float kernels do, ``fma(x, 1 / std, -mean / std)``, and cast to the model's
  dtype, stored in its memory format.

It matches ``rsengine.sound.discrete_noise`` + ``sound_inputs`` bit for bit (unnormalized) and
the compiled CPU kernel (``cpu_noise.c``) bit for bit in every case (tests/test_sound_kernels.py).

Example (CPU tensors need TRITON_INTERPRET=1 set before triton is imported):
    >>> import torch
    >>> from rsengine.kernels.sound_noise import sound_noise_normalize
    >>> from rsengine.sound import noise_table
    >>> table = noise_table(0.25)
    >>> pixels = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.int32)
    >>> batch, escaped = sound_noise_normalize(pixels, torch.tensor([0, 1]), 0, 4, 2, table.signed_thresholds(),
    ...                                        table.support, seed=0, phase=1)
    >>> batch.shape, escaped.tolist()
    (torch.Size([4, 1, 4, 4]), [0, 0, 0, 0])
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .contract import check_sound_launch, search_steps
from .noise import (_as_int32, _channel_scale_shift, _check_programs_per_row, _philox4x32_10, _row_origin,
                    _store_row_elements)

__all__ = ["BLOCK_Q", "NUM_WARPS", "sound_noise_normalize"]

# 256 Philox blocks (512 elements) per program, 4 warps: two blocks and four binary searches
# per thread, as the float rows kernel's 2 blocks per thread.
BLOCK_Q = 256
NUM_WARPS = 4

_SIGN = tl.constexpr(0x80000000)


@triton.jit
def _signed_uniform(w_hi, w_lo):
    """u - 2^63 as int64 for u = w_hi 2^32 + w_lo: flipping the top bit keeps the order."""
    return ((((w_hi ^ _SIGN).to(tl.uint64)) << 32) | w_lo.to(tl.uint64)).to(tl.int64, bitcast=True)


@triton.jit
def _count_at_most(thresholds_ptr, length, v, STEPS: tl.constexpr):
    """#{j < length : T_j <= v} for a sorted table, by STEPS halvings (2^STEPS > length)."""
    count = tl.zeros(v.shape, dtype=tl.int32)
    for level in tl.static_range(STEPS):
        candidate = count + (1 << (STEPS - 1 - level))  # a count to try: T_{candidate - 1} <= v?
        inside = candidate <= length
        t = tl.load(thresholds_ptr + (candidate - 1), mask=inside, other=0)
        count = tl.where(inside & (t <= v), candidate, count)
    return count


# Batch-to-batch values (rows, samples, seed, phase) and the sizes and strides are not
# specialized: one variant per dtype, normalization and search depth, whatever the shape.
@triton.jit(do_not_specialize=["start_owner", "start_sample", "n", "numel", "hw", "stride_c", "stride_hw", "length",
                               "support", "seed_lo", "seed_hi", "phase"])
def _sound_rows_kernel(
    pixels_ptr, streams_ptr, thresholds_ptr, mean_ptr, std_ptr, out_ptr, escaped_ptr,
    start_owner, start_sample, n, numel, hw, stride_c, stride_hw, length, support, seed_lo, seed_hi, phase,
    HAS_NORM: tl.constexpr, STEPS: tl.constexpr, BLOCK_Q: tl.constexpr,
):
    """Grid (rows, programs per row): program j of row r makes the row's elements of Philox
    blocks [j BLOCK_Q, (j + 1) BLOCK_Q) counted from the block holding its first element.
    pixels: [M, numel] int32 in [0, 255]; out: [rows, numel] at channel * stride_c + pixel *
    stride_hw; escaped: [rows] int32, set to 1 for a row with an escaped element."""
    owner, sample, stream, phase32, k0, k1 = _row_origin(streams_ptr, start_owner, start_sample, n, seed_lo,
                                                        seed_hi, phase)
    first = sample * numel  # element index e of this row's first element, 64-bit
    q0 = first // 2 + tl.program_id(1).to(tl.int64) * BLOCK_Q
    q = q0 + tl.arange(0, BLOCK_Q)
    zero = tl.zeros(q.shape, dtype=tl.uint32)
    w0, w1, w2, w3 = _philox4x32_10(q.to(tl.uint32), (q >> 32).to(tl.uint32), zero + stream, zero + phase32, k0, k1)
    v = tl.interleave(_signed_uniform(w0, w1), _signed_uniform(w2, w3))  # [2 * BLOCK_Q] elements 2 q0 ..
    count = _count_at_most(thresholds_ptr, length, v, STEPS)
    # Element index within the input: numel < 2**31, so 32-bit math.
    d = (2 * q0 - first).to(tl.int32) + tl.arange(0, 2 * BLOCK_Q)
    mask = (d >= 0) & (d < numel)
    escape = mask & (count == length)
    pixel = tl.load(pixels_ptr + owner * numel + d, mask=mask, other=0)
    total = pixel + tl.where(escape, 0, count - support)  # exact int32
    x = tl.div_rn(total.to(tl.float32), 255.0)
    channel = d // hw
    if HAS_NORM:
        x_scale, x_shift = _channel_scale_shift(mean_ptr, std_ptr, channel, mask)
        x = tl.fma(x, x_scale, x_shift)
    _store_row_elements(out_ptr, numel, hw, stride_c, stride_hw, d, channel, mask, x)
    if tl.max(escape.to(tl.int32), axis=0) > 0:  # ~1e-17 per element: almost never taken
        tl.store(escaped_ptr + tl.program_id(0), 1)


def sound_noise_normalize(pixels: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                          thresholds: torch.Tensor, support: int, seed: int, phase: int,
                          mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                          dtype: torch.dtype = torch.float32,
                          memory_format: torch.memory_format = torch.contiguous_format):
    """Sound-mode noisy batch: rows ``start .. start + count - 1`` of the (input, sample) grid.

    Args:
        pixels: [M, *shape] int32 contiguous grid pixels ``i`` in [0, 255] (``rsengine.sound.to_grid``).
        streams: [M] int64 stream indices. start, count, n: as in ``reference.noise_normalize``.
        thresholds: [L] int64 ``T_j - 2^63`` on the device (``NoiseTable.signed_thresholds``).
        support: the table's ``S``: offsets run -S .. S, L = 2 S + 1.
        seed, phase: the contract's 64-bit seed and PHASE_* constant.
        mean, std: optional [shape[0]] float32 per-channel normalization.
        dtype, memory_format: of the model's batch.

    Returns:
        (batch [count, *shape] in ``dtype`` and ``memory_format``, escaped [count] int32: 1 where
        the row must vote for no class).
    """
    check_sound_launch(pixels, start, count, n, seed, thresholds, support)
    shape = pixels.shape[1:]
    numel = shape.numel()
    channels = shape[0]
    hw = numel // channels
    programs = triton.cdiv(numel // 2 + 2, BLOCK_Q)
    _check_programs_per_row(programs, numel)
    out = torch.empty((count, *shape), dtype=dtype, device=pixels.device, memory_format=memory_format)
    escaped = torch.zeros(count, dtype=torch.int32, device=pixels.device)
    channels_last = memory_format == torch.channels_last and channels > 1
    stride_c, stride_hw = (1, channels) if channels_last else (hw, 1)
    has_norm = mean is not None
    length = thresholds.numel()
    _sound_rows_kernel[(count, programs)](
        pixels, streams, thresholds, mean if has_norm else pixels, std if has_norm else pixels, out, escaped,
        start // n, start % n, n, numel, hw, stride_c, stride_hw, length, support,
        _as_int32(seed & 0xFFFFFFFF), seed >> 32, phase, HAS_NORM=has_norm, STEPS=search_steps(length),
        BLOCK_Q=BLOCK_Q, num_warps=NUM_WARPS, enable_fp_fusion=False)
    return out, escaped
