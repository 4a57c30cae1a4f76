"""Fused noise + normalization on the CPU: the compiled C kernel and its launcher.

``cpu_noise.c`` is the Triton noise kernel's arithmetic in C (Philox4x32-10, the branch-free
float32 Box-Muller of ``box_muller.py``, the same fmas for the normalization), so a batch made
here is bit for bit the batch the Triton kernel makes on a GPU or in Triton's interpreter, and
agrees with the PyTorch reference (``reference.py``) up to its float rounding. It writes each
float32 value once, straight into the model's batch; other dtypes and memory formats are one
``copy_`` of that batch (round to nearest even, as Triton's stores).

The batch is split into contiguous element ranges over ``torch.get_num_threads()`` threads of a
pool (ctypes releases the GIL during the call), at least MIN_ELEMENTS_PER_THREAD each.

Example:
    >>> import torch
    >>> from rsengine.kernels.cpu_noise import noise_normalize
    >>> xs = torch.rand(2, 3, 8, 8)
    >>> batch = noise_normalize(xs, torch.tensor([0, 1]), start=0, count=4, n=2, sigma=0.5, seed=0, phase=1)
    >>> batch.shape
    torch.Size([4, 3, 8, 8])
"""
from __future__ import annotations

import ctypes
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from .contract import NOISE_CODES, check_fused_launch, check_noise, check_sound_launch, noise_scale, search_steps
from .cpu_build import load_library

__all__ = ["MIN_ELEMENTS_PER_THREAD", "noise_normalize", "sound_noise_normalize", "box_muller_pairs",
           "inverse_cdf_values", "threads_for"]

# A thread's share of a batch is worth the pool's hand-off (~20 µs) from ~64k elements on
# (~0.15 ms of work at the ~420 million normals per second one core makes here).
MIN_ELEMENTS_PER_THREAD = 1 << 16

_NOISE_ARGTYPES = (ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                   ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_int64)
_SOUND_ARGTYPES = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                   ctypes.c_uint32, ctypes.c_int64, ctypes.c_int64)
_WORDS_ARGTYPES = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
_PAIR_ARGTYPES = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


@functools.lru_cache(maxsize=None)
def _function(name: str, argtypes: tuple):
    function = getattr(load_library(), name)
    function.argtypes, function.restype = list(argtypes), None
    return function


def threads_for(elements: int) -> int:
    """Threads a batch of ``elements`` values is split over: torch's thread count, capped by the work.

    Example:
        >>> threads_for(1000)
        1
    """
    return max(1, min(torch.get_num_threads(), elements // MIN_ELEMENTS_PER_THREAD))


def _run_split(call, elements: int) -> None:
    """``call(first, last)`` over ``elements`` split into ``threads_for(elements)`` ranges."""
    global _pool, _pool_size
    threads = threads_for(elements)
    bounds = [elements * i // threads for i in range(threads + 1)]
    if threads == 1:
        call(0, elements)
        return
    with _pool_lock:
        if _pool is None or _pool_size < threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(threads, thread_name_prefix="rsengine-noise"), threads
        pool = _pool
    for future in [pool.submit(call, bounds[i], bounds[i + 1]) for i in range(threads)]:
        future.result()


def noise_normalize(xs: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                    sigma: float, seed: int, phase: int, mean: torch.Tensor | None = None,
                    std: torch.Tensor | None = None, dtype: torch.dtype = torch.float32,
                    memory_format: torch.memory_format = torch.contiguous_format,
                    noise: str = "gaussian") -> torch.Tensor:
    """:func:`rsengine.kernels.reference.noise_normalize` (same arguments and result) in the
    Triton kernel's bits; ``xs`` float32, contiguous and on the CPU, ``streams`` on the CPU."""
    check_fused_launch(xs, start, count, n, seed)
    kernel, shape, numel, channels, streams = _prepare("rsengine_noise_normalize", _NOISE_ARGTYPES, "xs", xs, streams)
    # The per-channel constants as the Triton kernel computes them, in float32.
    scale32 = torch.tensor(noise_scale(noise, sigma), dtype=torch.float32)
    if mean is not None:
        x_scale = 1.0 / std.to(torch.float32)
        z_scale, x_shift = scale32 * x_scale, -mean.to(torch.float32) * x_scale
    else:
        z_scale, x_scale, x_shift = scale32.expand(channels), torch.ones(channels), torch.zeros(channels)
    z_scale, x_scale, x_shift = (t.contiguous() for t in (z_scale, x_scale, x_shift))
    out, target = _batch_and_target(count, shape, dtype, memory_format)

    def call(first: int, last: int) -> None:
        kernel(NOISE_CODES[noise], xs.data_ptr(), streams.data_ptr(), target.data_ptr(), start // n, start % n, n, numel,
               numel // channels, int(mean is not None), z_scale.data_ptr(), x_scale.data_ptr(),
               x_shift.data_ptr(), seed & 0xFFFFFFFF, seed >> 32, phase, first, last)

    _run_split(call, count * numel)
    if target is not out:
        out.copy_(target)
    return out


def _prepare(function: str, argtypes: tuple, name: str, inputs: torch.Tensor, streams: torch.Tensor):
    """(kernel, input shape, numel, channels, int64 streams) of a launch on CPU ``inputs``."""
    if inputs.device.type != "cpu":
        raise ValueError(f"Expected `{name}` on the CPU for the compiled CPU kernel, got device {str(inputs.device)!r}")
    shape = inputs.shape[1:]
    return _function(function, argtypes), shape, shape.numel(), shape[0], streams.to(torch.int64).contiguous()


def _batch_and_target(count: int, shape: torch.Size, dtype: torch.dtype, memory_format: torch.memory_format):
    # The model's batch, and the contiguous float32 one the C kernel writes (the same tensor
    # when the model takes contiguous float32; otherwise copied over in one copy_).
    out = torch.empty((count, *shape), dtype=dtype, memory_format=memory_format)
    return out, out if dtype == torch.float32 and out.is_contiguous() else torch.empty((count, *shape))


def sound_noise_normalize(pixels: torch.Tensor, streams: torch.Tensor, start: int, count: int, n: int,
                          thresholds: torch.Tensor, support: int, seed: int, phase: int,
                          mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                          dtype: torch.dtype = torch.float32,
                          memory_format: torch.memory_format = torch.contiguous_format):
    """:func:`rsengine.kernels.sound_noise.sound_noise_normalize` (same arguments and result) in
    the Triton kernel's bits, on CPU tensors.

    Example:
        >>> from rsengine.sound import noise_table
        >>> table = noise_table(0.25)
        >>> batch, escaped = sound_noise_normalize(torch.zeros(1, 3, 2, 2, dtype=torch.int32), torch.tensor([0]),
        ...                                        0, 5, 5, table.signed_thresholds(), table.support, 0, 1)
        >>> batch.shape, int(escaped.sum())
        (torch.Size([5, 3, 2, 2]), 0)
    """
    check_sound_launch(pixels, start, count, n, seed, thresholds, support)
    kernel, shape, numel, channels, streams = _prepare("rsengine_sound_noise_normalize", _SOUND_ARGTYPES, "pixels",
                                                       pixels, streams)
    if mean is not None:
        x_scale = (1.0 / std.to(torch.float32)).contiguous()
        x_shift = (-mean.to(torch.float32) * x_scale).contiguous()
    else:
        x_scale, x_shift = torch.ones(channels), torch.zeros(channels)
    out, target = _batch_and_target(count, shape, dtype, memory_format)
    escaped = torch.zeros(count, dtype=torch.int32)
    length = thresholds.numel()

    def call(first: int, last: int) -> None:
        kernel(pixels.data_ptr(), streams.data_ptr(), thresholds.data_ptr(), length, support, search_steps(length),
               target.data_ptr(), escaped.data_ptr(), start // n, start % n, n, numel, numel // channels,
               int(mean is not None), x_scale.data_ptr(), x_shift.data_ptr(), seed & 0xFFFFFFFF, seed >> 32, phase,
               first, last)

    _run_split(call, count * numel)
    if target is not out:
        out.copy_(target)
    return out, escaped


def box_muller_pairs(w0: torch.Tensor, w1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's Box-Muller pair (r cos 2 pi u1, r sin 2 pi u1) of 32-bit words, for tests.

    Args:
        w0, w1: integer tensors of one shape holding words in [0, 2**32).

    Returns:
        Two float32 tensors of that shape.

    Example (the smallest radius, at w0 = 2**32 - 1, is 2**-16, not 0):
        >>> z_cos, _ = box_muller_pairs(torch.tensor([2**32 - 1]), torch.tensor([0]))
        >>> float(z_cos[0]) == 2.0**-16
        True
    """
    if w0.shape != w1.shape:
        raise ValueError(f"Expected `w0` and `w1` of one shape, got {list(w0.shape)} and {list(w1.shape)}")
    words = [w.to(torch.int64).contiguous().view(-1).to(torch.int32).contiguous() for w in (w0, w1)]
    z_cos, z_sin = torch.empty(w0.shape), torch.empty(w0.shape)
    _function("rsengine_box_muller", _PAIR_ARGTYPES)(words[0].data_ptr(), words[1].data_ptr(), w0.numel(), z_cos.data_ptr(), z_sin.data_ptr())
    return z_cos, z_sin


def inverse_cdf_values(noise: str, words: torch.Tensor) -> torch.Tensor:
    """The kernel's standard Laplace or uniform value of each 32-bit word, for tests.

    Args:
        noise: "laplace" or "uniform". words: integer tensor of words in [0, 2**32).

    Returns:
        float32 tensor of the words' shape.

    Example (the smallest Laplace magnitude is 2**-32, not 0):
        >>> float(inverse_cdf_values("laplace", torch.tensor([2**31]))[0]) == 2.0**-32
        True
    """
    if check_noise(noise) == "gaussian":
        raise ValueError("Expected `noise` laplace or uniform (Gaussian values come in pairs: box_muller_pairs)")
    flat = words.to(torch.int64).contiguous().view(-1).to(torch.int32).contiguous()
    out = torch.empty(words.shape)
    _function("rsengine_inverse_cdf", _WORDS_ARGTYPES)(NOISE_CODES[noise], flat.data_ptr(), words.numel(), out.data_ptr())
    return out
