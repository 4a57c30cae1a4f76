"""Fused noise + normalization: one read of x, one write of the model's batch.

The unfused chain (repeat, randn, scale, add, subtract mean, divide by std, cast) touches the
batch seven times; these kernels write it once, in the model's dtype and memory format, with the
Philox stream of the random-number contract (see ``reference.py``, which they match up to float
rounding of the Box-Muller transform).

Two kernels, one launcher:
- ``_noise_image_kernel`` for images (H*W a multiple of 4, at most 3 channels: MNIST, CIFAR,
  ImageNet). A program owns up to TILES tiles of 512 pixels of one noisy row and makes each
  tile channel by channel; every Philox block lies inside one channel, so the normalization
  constants are per-program scalars. Contiguous batches are stored channel by channel (vector
  stores). channels_last batches are stored pixel-major: for 3 channels, the 12 values of 4
  pixels are packed into three 64-bit words in registers and stored as a [blocks, words] tile
  that consecutive lanes write word after word (coalesced), instead of one store per value at
  stride 3; for 2 channels, a [pixels, 2] tile with contiguous rows.
- ``_noise_rows_kernel`` for any other shape: a program owns a run of a row's flat elements.

Gaussian, Laplace or uniform noise (the NOISE constexpr): Gaussian from Box-Muller pairs of
Philox words, the others by their inverse CDF of one word each (``inverse_cdf.py``).

The Box-Muller step (``box_muller.py``) takes the Philox words themselves, not float32 uniforms
(which lose the low bits of words >= 2**31 and round the top 128 words to 1), and uses only
float32 add/mul/fma and integer operations, compiled without fp fusion, so the interpreter and a
GPU produce the same bits; it is within 2.07 ulp of the exact transform of the words' uniforms
(bench/noise_accuracy.py).

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

import torch
import triton
import triton.language as tl

from .box_muller import box_muller
from .contract import NOISE_CODES, PHILOX_KEY_INCREMENTS, PHILOX_ROUND_MULTIPLIERS, check_fused_launch, noise_scale
from .inverse_cdf import standard_laplace, standard_uniform

__all__ = ["noise_normalize"]

# Image kernel: a tile is 128 Philox blocks (512 pixels) per channel, one block per thread of 4
# warps; a program loops over up to 8 tiles. From the SASS (sm_90, bf16 channels_last, ImageNet):
# 1 tile per program costs 60.6 instructions per element, 8 tiles 54.3 (the row set-up
# amortized), at 77 registers (24 resident warps per SM); 2 blocks per thread take 137 registers.
# bench/README.md, "2026-11-29: kernels tuned from their machine code", has the whole sweep.
IMAGE_BLOCK_Q = 128
IMAGE_NUM_WARPS = 4
IMAGE_TILES = 8
# General kernel (shapes the image kernel does not take): 256 blocks per program, 2 per thread.
ROWS_BLOCK_Q = 256
ROWS_NUM_WARPS = 4
# CUDA's limit on a grid's second axis: ~67M-element rows in the general kernel, ~268M pixels
# per channel in the image kernel.
_MAX_GRID_Y = 65535
# The image kernel unrolls its channels; more go to the general kernel. With 4 the compiler
# interleaves the channels' work up to 118-122 registers (sm_90/sm_100), at the 128 goal.
MAX_IMAGE_CHANNELS = 3

# Kernel globals must be tl.constexpr instances: the compiler rejects plain Python globals
# (the interpreter does not).
_ROUND_A, _ROUND_B = (tl.constexpr(m) for m in PHILOX_ROUND_MULTIPLIERS)
_KEY_A, _KEY_B = (tl.constexpr(k) for k in PHILOX_KEY_INCREMENTS)
_GAUSSIAN, _LAPLACE = tl.constexpr(NOISE_CODES["gaussian"]), tl.constexpr(NOISE_CODES["laplace"])


@triton.jit
def _philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (Salmon et al. 2011; Random123's constants), as reference.philox4x32_10.

    Each multiply-high/low pair is one 32x32 -> 64-bit product (one IMAD.WIDE.U32 on a GPU;
    separate mul.hi and mul.lo cost an instruction more per multiply).
    """
    for _ in tl.static_range(10):
        product_a = c0.to(tl.uint64) * _ROUND_A
        product_b = c2.to(tl.uint64) * _ROUND_B
        c0, c1, c2, c3 = ((product_b >> 32).to(tl.uint32) ^ c1 ^ k0, product_b.to(tl.uint32),
                          (product_a >> 32).to(tl.uint32) ^ c3 ^ k1, product_a.to(tl.uint32))
        k0 = k0 + _KEY_A
        k1 = k1 + _KEY_B
    return c0, c1, c2, c3


@triton.jit
def _standard_noise(q, stream, phase, k0, k1, NOISE: tl.constexpr):
    """Standard noise values 4q .. 4q + 3 of the stream, in element order. q: [BLOCK_Q] int64 block
    indices; NOISE: a contract.NOISE_CODES value."""
    zero = tl.zeros(q.shape, dtype=tl.uint32)
    w0, w1, w2, w3 = _philox4x32_10(q.to(tl.uint32), (q >> 32).to(tl.uint32), zero + stream, zero + phase, k0, k1)
    if NOISE == _GAUSSIAN:
        z0, z1 = box_muller(w0, w1)
        z2, z3 = box_muller(w2, w3)
    elif NOISE == _LAPLACE:
        z0, z1, z2, z3 = standard_laplace(w0), standard_laplace(w1), standard_laplace(w2), standard_laplace(w3)
    else:
        z0, z1, z2, z3 = standard_uniform(w0), standard_uniform(w1), standard_uniform(w2), standard_uniform(w3)
    # Lanes 0..3 of block q are elements 4q .. 4q + 3: interleave into one contiguous run.
    return tl.interleave(tl.interleave(z0, z2), tl.interleave(z1, z3))


@triton.jit
def _row_origin(streams_ptr, start_owner, start_sample, n, seed_lo, seed_hi, phase):
    """(input index, sample index, stream, phase, key words) of this program's noisy row."""
    # start_sample < n < 2**31 and row < 2**31, so the sum fits in 32 unsigned bits: a 32-bit
    # division, inlined by ptxas (a 64-bit one is a call that spills registers around it).
    s = start_sample.to(tl.uint32) + tl.program_id(0).to(tl.uint32)
    n32 = n.to(tl.uint32)
    owner_step = s // n32
    owner = start_owner + owner_step.to(tl.int64)
    sample = (s - owner_step * n32).to(tl.int64)
    stream = tl.load(streams_ptr + owner).to(tl.uint32)
    return owner, sample, stream, phase.to(tl.uint32), seed_lo.to(tl.uint32, bitcast=True), \
        seed_hi.to(tl.uint32, bitcast=True)


@triton.jit
def _affine(mean_ptr, std_ptr, c, sigma, HAS_NORM: tl.constexpr):
    """(noise scale, x scale, x shift) of channel c: (x + sigma z - mean) / std is
    z * (sigma / std) + (x / std - mean / std), two fmas per element."""
    if HAS_NORM:
        scale = tl.div_rn(1.0, tl.load(std_ptr + c))  # IEEE division: the interpreter's bits
        return sigma * scale, scale, -tl.load(mean_ptr + c) * scale
    return sigma, 1.0, 0.0


@triton.jit
def _normalized(x, z, noise_scale, x_scale, x_shift, HAS_NORM: tl.constexpr):
    if HAS_NORM:
        return tl.fma(z, noise_scale, tl.fma(x, x_scale, x_shift))
    return tl.fma(z, noise_scale, x)


@triton.jit
def _image_channel(xs_row, q_first, hw, c, block, stream, phase, k0, k1, noise_scale, x_scale, x_shift,
                   HAS_NORM: tl.constexpr, BLOCK_Q: tl.constexpr, NOISE: tl.constexpr):
    """Pixels, mask and normalized noisy values [4 * BLOCK_Q] of channel c from Philox block `block` on."""
    # hw % 4 == 0: the channel starts on a Philox block boundary.
    z = _standard_noise(q_first + c * (hw // 4) + block + tl.arange(0, BLOCK_Q), stream, phase, k0, k1, NOISE)
    p = (4 * block).to(tl.int32) + tl.arange(0, 4 * BLOCK_Q)  # [4 * BLOCK_Q] pixel index
    mask = p < hw
    x = tl.load(xs_row + c * hw + p, mask=mask, other=0.0)
    return p, mask, _normalized(x, z, noise_scale, x_scale, x_shift, HAS_NORM)


@triton.jit
def _lanes(y, BLOCK_Q: tl.constexpr):
    """[4 * BLOCK_Q] values of pixels 4j + i -> four [BLOCK_Q] tensors, i = 0..3 (one thread holds all four)."""
    even, odd = tl.split(tl.reshape(y, [BLOCK_Q, 2, 2]))
    lane0, lane2 = tl.split(even)
    lane1, lane3 = tl.split(odd)
    return lane0, lane1, lane2, lane3


@triton.jit
def _bits(y, out_ty: tl.constexpr):
    """The bit pattern of y stored as out_ty (16 or 32 bits), zero-extended to uint32."""
    if out_ty.primitive_bitwidth == 16:
        return y.to(out_ty).to(tl.uint16, bitcast=True).to(tl.uint32)
    return y.to(tl.uint32, bitcast=True)


@triton.jit
def _word(low, high):
    """A uint64 from two uint32 halves."""
    return low.to(tl.uint64) | (high.to(tl.uint64) << 32)


@triton.jit
def _words4(w0, w1, w2, w3):
    """Four [BLOCK_Q] word tensors -> [BLOCK_Q, 4] with word k in column k.

    join appends a last axis: join(join(a, b), join(c, d))[.., j, i] is (a, b) or (c, d)[i][j],
    flattened at 2 * j + i, so the words go in as (w0, w2), (w1, w3).
    """
    return tl.reshape(tl.join(tl.join(w0, w2), tl.join(w1, w3)), [w0.shape[0], 4])


@triton.jit
def _words8(w0, w1, w2, w3, w4, w5, w6, w7):
    """Eight [BLOCK_Q] word tensors -> [BLOCK_Q, 8] with word k in column k."""
    return tl.reshape(tl.join(tl.join(tl.join(w0, w4), tl.join(w2, w6)), tl.join(tl.join(w1, w5), tl.join(w3, w7))),
                      [w0.shape[0], 8])


@triton.jit
def _store_rgb_channels_last(out_ptr, numel, hw, block, y0, y1, y2, BLOCK_Q: tl.constexpr):
    """Store three channels' [4 * BLOCK_Q] values pixel-major (channels_last) as 64-bit words.

    Four pixels of three channels (one Philox block of each) are 12 consecutive values of the
    output: 3 words of 16-bit values, 6 of 32-bit ones, assembled in registers. The words are
    stored as one [blocks, words] tile (padded to 4 or 8 columns, the padding masked), which
    the compiler redistributes through shared memory so that consecutive lanes write
    consecutive words: each warp store fills whole 32-byte sectors.
    """
    out_ty = out_ptr.dtype.element_ty
    words = out_ptr.to(tl.pointer_type(tl.uint64), bitcast=True)
    row = tl.program_id(0).to(tl.int64)
    blocks = block + tl.arange(0, BLOCK_Q)  # [BLOCK_Q] Philox block = 4 pixels
    mask = blocks < hw // 4
    a0, a1, a2, a3 = _lanes(y0, BLOCK_Q)
    b0, b1, b2, b3 = _lanes(y1, BLOCK_Q)
    c0, c1, c2, c3 = _lanes(y2, BLOCK_Q)
    if out_ty.primitive_bitwidth == 16:  # a0 b0 c0 a1 | b1 c1 a2 b2 | c2 a3 b3 c3
        w0 = _word(_bits(a0, out_ty) | (_bits(b0, out_ty) << 16), _bits(c0, out_ty) | (_bits(a1, out_ty) << 16))
        w1 = _word(_bits(b1, out_ty) | (_bits(c1, out_ty) << 16), _bits(a2, out_ty) | (_bits(b2, out_ty) << 16))
        w2 = _word(_bits(c2, out_ty) | (_bits(a3, out_ty) << 16), _bits(b3, out_ty) | (_bits(c3, out_ty) << 16))
        column = tl.arange(0, 4)
        tl.store(words + row * (numel // 4) + 3 * blocks[:, None] + column[None, :], _words4(w0, w1, w2, w0),
                 mask=mask[:, None] & (column < 3)[None, :])
    else:  # a0 b0 | c0 a1 | b1 c1 | a2 b2 | c2 a3 | b3 c3
        w0 = _word(_bits(a0, out_ty), _bits(b0, out_ty))
        w1 = _word(_bits(c0, out_ty), _bits(a1, out_ty))
        w2 = _word(_bits(b1, out_ty), _bits(c1, out_ty))
        w3 = _word(_bits(a2, out_ty), _bits(b2, out_ty))
        w4 = _word(_bits(c2, out_ty), _bits(a3, out_ty))
        w5 = _word(_bits(b3, out_ty), _bits(c3, out_ty))
        column = tl.arange(0, 8)
        tl.store(words + row * (numel // 2) + 6 * blocks[:, None] + column[None, :],
                 _words8(w0, w1, w2, w3, w4, w5, w0, w0), mask=mask[:, None] & (column < 6)[None, :])


# start_sample, n, seed halves and phase change between batches, phases and runs: specializing
# on their values (== 1, divisibility by 16) would compile new variants in the middle of a run.
# hw stays specialized: with hw % 16 == 0 known, the loads and stores vectorize (measured: 56.6
# instructions per element with it, 66.1 without, even when told hw % 4 == 0).
@triton.jit(do_not_specialize=["start_owner", "start_sample", "n", "seed_lo", "seed_hi", "phase"])
def _noise_image_kernel(
    xs_ptr, streams_ptr, mean_ptr, std_ptr, out_ptr,
    start_owner, start_sample, n, hw, sigma, seed_lo, seed_hi, phase,
    C: tl.constexpr, HAS_NORM: tl.constexpr, CHANNELS_LAST: tl.constexpr, BLOCK_Q: tl.constexpr,
    TILES: tl.constexpr, NOISE: tl.constexpr,
):
    """Grid (rows, programs per row): row r of the batch is global row start + r of the (input,
    sample) grid; program j of it makes pixels [P j, P (j + 1)), P = 4 * BLOCK_Q * TILES, of all
    C channels. xs: [M, C, H*W] float32; out: [rows, C, H, W] in its dtype and memory format."""
    owner, sample, stream, phase32, k0, k1 = _row_origin(streams_ptr, start_owner, start_sample, n, seed_lo,
                                                        seed_hi, phase)
    numel = C * hw
    xs_row = xs_ptr + owner * numel
    out_row = out_ptr + tl.program_id(0).to(tl.int64) * numel
    out_ty = out_ptr.dtype.element_ty
    q_first = sample * (numel // 4)  # block index of the row's first element (64-bit)
    # Per-channel constants, before the loop (the compiler cannot hoist loads above stores that
    # might alias them).
    n0, a0, b0 = _affine(mean_ptr, std_ptr, 0, sigma, HAS_NORM)
    n1, a1, b1 = n0, a0, b0
    n2, a2, b2 = n0, a0, b0
    if C > 1:
        n1, a1, b1 = _affine(mean_ptr, std_ptr, 1, sigma, HAS_NORM)
    if C > 2:
        n2, a2, b2 = _affine(mean_ptr, std_ptr, 2, sigma, HAS_NORM)
    # Up to TILES tiles of BLOCK_Q Philox blocks per channel, one after the other in a loop (not
    # unrolled: its count is a run-time value): the per-row set-up above is paid once per program
    # while only one tile's values are live in registers.
    first_block = tl.program_id(1) * (TILES * BLOCK_Q)
    for tile in range(0, tl.minimum(TILES, tl.cdiv(hw // 4 - first_block, BLOCK_Q))):
        block = (first_block + tile * BLOCK_Q).to(tl.int64)
        p, mask, y0 = _image_channel(xs_row, q_first, hw, 0, block, stream, phase32, k0, k1, n0, a0, b0, HAS_NORM,
                                     BLOCK_Q, NOISE)
        y1 = y0
        y2 = y0
        if not CHANNELS_LAST:  # channel-major: store each channel as soon as it is made
            tl.store(out_row + p, y0.to(out_ty), mask=mask)
        if C > 1:
            _, _, y1 = _image_channel(xs_row, q_first, hw, 1, block, stream, phase32, k0, k1, n1, a1, b1, HAS_NORM,
                                      BLOCK_Q, NOISE)
            if not CHANNELS_LAST:
                tl.store(out_row + hw + p, y1.to(out_ty), mask=mask)
        if C > 2:
            _, _, y2 = _image_channel(xs_row, q_first, hw, 2, block, stream, phase32, k0, k1, n2, a2, b2, HAS_NORM,
                                      BLOCK_Q, NOISE)
            if not CHANNELS_LAST:
                tl.store(out_row + 2 * hw + p, y2.to(out_ty), mask=mask)
        if CHANNELS_LAST:  # C = 2 or 3: pixel-major, C values per pixel
            if C == 3:
                _store_rgb_channels_last(out_ptr, numel, hw, block, y0, y1, y2, BLOCK_Q)
            else:  # [pixels, 2]: rows contiguous and 2-aligned, vector stores
                channel = tl.arange(0, 2)
                tl.store(out_row + p[:, None] * 2 + channel[None, :], tl.join(y0, y1).to(out_ty), mask=mask[:, None])


@triton.jit
def _channel_scale_shift(mean_ptr, std_ptr, channel, mask):
    """Per element of channel ``channel``: (1 / std, -mean / std), the first by IEEE division
    (the interpreter's bits), so (x - mean) / std is fma(x, scale, shift)."""
    x_scale = tl.div_rn(1.0, tl.load(std_ptr + channel, mask=mask, other=1.0))
    return x_scale, -tl.load(mean_ptr + channel, mask=mask, other=0.0) * x_scale


@triton.jit
def _store_row_elements(out_ptr, numel, hw, stride_c, stride_hw, d, channel, mask, y):
    """Store elements d (of channel ``channel``) of this program's row at channel * stride_c +
    pixel * stride_hw, in the output's dtype."""
    out = out_ptr + tl.program_id(0).to(tl.int64) * numel + channel * stride_c + (d - channel * hw) * stride_hw
    tl.store(out, y.to(out_ptr.dtype.element_ty), mask=mask)


# The general kernel's stores and loads start at arbitrary element offsets, so specializing on
# the sizes and strides (divisibility, == 1) would only multiply variants: one per dtype and
# normalization, whatever the shape.
@triton.jit(do_not_specialize=["start_owner", "start_sample", "n", "numel", "hw", "stride_c", "stride_hw", "seed_lo",
                               "seed_hi", "phase"])
def _noise_rows_kernel(
    xs_ptr, streams_ptr, mean_ptr, std_ptr, out_ptr,
    start_owner, start_sample, n, numel, hw, stride_c, stride_hw, sigma, seed_lo, seed_hi, phase,
    HAS_NORM: tl.constexpr, BLOCK_Q: tl.constexpr, NOISE: tl.constexpr,
):
    """Grid (rows, programs per row): program j of row r makes the row's elements of Philox blocks
    [j BLOCK_Q, (j + 1) BLOCK_Q) counted from the block holding its first element. xs: [M, numel]
    float32; out: [rows, numel] elements at channel * stride_c + pixel * stride_hw."""
    owner, sample, stream, phase32, k0, k1 = _row_origin(streams_ptr, start_owner, start_sample, n, seed_lo,
                                                        seed_hi, phase)
    first = sample * numel  # element index e of this row's first element, 64-bit
    q0 = first // 4 + tl.program_id(1).to(tl.int64) * BLOCK_Q
    z = _standard_noise(q0 + tl.arange(0, BLOCK_Q), stream, phase32, k0, k1, NOISE)  # [4 * BLOCK_Q]
    # Element index within the input: numel < 2**31, so 32-bit math (cheaper on a GPU).
    d = (4 * q0 - first).to(tl.int32) + tl.arange(0, 4 * BLOCK_Q)
    mask = (d >= 0) & (d < numel)
    x = tl.load(xs_ptr + owner * numel + d, mask=mask, other=0.0)
    channel = d // hw
    noise_scale = sigma
    x_scale = 1.0
    x_shift = 0.0
    if HAS_NORM:
        x_scale, x_shift = _channel_scale_shift(mean_ptr, std_ptr, channel, mask)
        noise_scale = sigma * x_scale
    y = _normalized(x, z, noise_scale, x_scale, x_shift, HAS_NORM)
    _store_row_elements(out_ptr, numel, hw, stride_c, stride_hw, d, channel, mask, y)


def _check_programs_per_row(programs: int, numel: int) -> None:
    """A one-line ValueError where a noisy row needs more programs than a grid's second axis holds."""
    if programs > _MAX_GRID_Y:  # CUDA launches at most 65,535 programs along a grid's second axis
        raise ValueError(f"Expected inputs of at most {_MAX_GRID_Y} programs per noisy row, got {numel} elements "
                         f"({programs} programs)")


def _as_int32(word: int) -> int:
    # A 32-bit word passed as a signed int32, so Triton types it i32 whatever its value.
    return word - 2**32 if word >= 2**31 else word


def noise_normalize(xs: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                    sigma: float, seed: int, phase: int, mean: torch.Tensor | None = None,
                    std: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
                    memory_format: torch.memory_format = torch.contiguous_format,
                    noise: str = "gaussian") -> torch.Tensor:
    """Triton version of :func:`rsengine.kernels.reference.noise_normalize` (same arguments).

    Args:
        xs: [M, *shape] float32 contiguous inputs; shape[0] is the channel axis.
        streams: [M] int64 stream indices. start, count, n: rows start .. start + count - 1 of
            the flattened (input, sample) grid, n samples per input (n < 2**31).
        sigma, seed, phase: the noise's standard deviation, 64-bit seed, PHASE_* constant.
        mean, std: optional [shape[0]] float32 per-channel normalization.
        dtype: output dtype. memory_format: contiguous or channels_last (4-D batches).
        noise: one of ``contract.NOISES`` (the kernels multiply by ``noise_scale(noise, sigma)``).

    Returns:
        [count, *shape] tensor in ``dtype`` and ``memory_format``.
    """
    check_fused_launch(xs, start, count, n, seed)
    shape = xs.shape[1:]
    numel = shape.numel()
    channels = shape[0]
    hw = numel // channels
    image = hw % 4 == 0 and channels <= MAX_IMAGE_CHANNELS
    programs = triton.cdiv(hw, 4 * IMAGE_BLOCK_Q * IMAGE_TILES) if image else triton.cdiv(numel // 4 + 2, ROWS_BLOCK_Q)
    _check_programs_per_row(programs, numel)
    out = torch.empty((count, *shape), dtype=dtype, device=xs.device, memory_format=memory_format)
    channels_last = memory_format == torch.channels_last and channels > 1
    has_norm = mean is not None
    row_args = (xs, streams, mean if has_norm else xs, std if has_norm else xs, out, start // n, start % n, n)
    key_args = (noise_scale(noise, sigma), _as_int32(seed & 0xFFFFFFFF), seed >> 32, phase)
    if image:
        _noise_image_kernel[(count, programs)](*row_args, hw, *key_args, C=channels, HAS_NORM=has_norm,
                                               CHANNELS_LAST=channels_last, BLOCK_Q=IMAGE_BLOCK_Q, TILES=IMAGE_TILES,
                                               NOISE=NOISE_CODES[noise], num_warps=IMAGE_NUM_WARPS,
                                               enable_fp_fusion=False)
    else:
        stride_c, stride_hw = (1, channels) if channels_last else (hw, 1)
        _noise_rows_kernel[(count, programs)](*row_args, numel, hw, stride_c, stride_hw, *key_args, HAS_NORM=has_norm,
                                              BLOCK_Q=ROWS_BLOCK_Q, NOISE=NOISE_CODES[noise], num_warps=ROWS_NUM_WARPS,
                                              enable_fp_fusion=False)
    return out
