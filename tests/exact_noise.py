"""float64 Box-Muller of the contract's exact uniforms: the oracle of both noise paths' tests.

Example:
    >>> import torch
    >>> z_cos, z_sin = float64_box_muller(torch.tensor([2**32 - 1]), torch.tensor([0]))
    >>> bool(z_cos[0] > 0), z_cos.dtype
    (True, torch.float64)
"""
import importlib.util
import math
from pathlib import Path

import torch


def float64_box_muller(w0, w1, t_as_float32=False):
    """float64 (r cos 2 pi u1, r sin 2 pi u1) of int64 words [N]: r = sqrt(-2 ln u0).

    u0 = (w0 + 0.5) * 2**-32 is exact in float64, and log1p of the exact 1 - u0 near 1 keeps it
    so; 2 pi u1 = n pi / 2 + pi t with n = (w1 + 2**29) >> 30 and t = 2 u1 - n / 2 =
    (4 w1 + 2 mod 2**32, signed) * 2**-33, exact from the word. ``t_as_float32`` rounds t to
    float32 first, as the Triton kernels do: their only departure from u1's exact value (up to
    0.3 ulp more, bench/noise_accuracy.py).
    """
    log_u0 = torch.where(w0 >= 2**31, torch.log1p(-((2**32 - w0).double() - 0.5) * 2.0**-32),
                         torch.log((w0.double() + 0.5) * 2.0**-32))
    r = torch.sqrt(-2.0 * log_u0)
    low = (4 * w1 + 2) & 0xFFFFFFFF
    t = (low - ((low >> 31) << 32))
    t = (t.float() if t_as_float32 else t).double() * 2.0**-33
    cos, sin = torch.cos(math.pi * t), torch.sin(math.pi * t)
    n = (w1 + 2**29) >> 30
    swap, negate = (n & 1) == 1, (n & 2) == 2
    cos, sin = torch.where(swap, -sin, cos), torch.where(swap, cos, sin)
    return r * torch.where(negate, -cos, cos), r * torch.where(negate, -sin, sin)


def ulps(z, exact):
    """|z - exact| in float32 ulps of the exact value."""
    return (z.double() - exact).abs() / torch.ldexp(torch.ones_like(exact), torch.frexp(exact.abs())[1] - 24)


def measured_model():
    """bench/noise_accuracy.py, the numpy model of the kernels' transform that was measured against float64."""
    spec = importlib.util.spec_from_file_location("noise_accuracy", Path(__file__).parents[1] / "bench" /
                                                  "noise_accuracy.py")
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    return model


def edge_words():
    """int64 word pairs [N] where float32 uniforms fail: u0 within 2**-20 of 1 (every word, the
    top 128 of which round to 1), u0 near 1/2 and 2/3 (where -2 ln u0 changes formula) and near
    0; each with u1 next to the zeros of cos and sin (u1 = 0, 1/4, 1/2, 3/4, 1), at the quadrant
    switches (u1 = 1/8, 3/8, 5/8, 7/8) and at random."""
    generator = torch.Generator().manual_seed(13)
    w0 = torch.cat([2**32 - 1 - torch.arange(4096), torch.arange(256), 2**31 + torch.arange(-256, 256),
                    0xAAAAAA81 + torch.arange(-256, 256), torch.randint(0, 2**32, (512,), generator=generator)])
    zeros = torch.tensor([0, 2**30, 2**31, 3 * 2**30, 2**32])
    switches = torch.tensor([1, 3, 5, 7]) * 2**29
    w1 = torch.cat([zeros[:-1], zeros[1:] - 1, switches - 1, switches,
                    torch.randint(0, 2**32, (2,), generator=generator)])
    return w0.repeat_interleave(w1.numel()), w1.repeat(w0.numel())
