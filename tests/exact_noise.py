"""float64 Box-Muller of the contract's exact uniforms: the oracle of both noise paths' tests.

Example:
    >>> import torch
    >>> z_cos, z_sin = float64_box_muller(torch.tensor([2**32 - 1]), torch.tensor([0]))
    >>> bool(z_cos[0] > 0), z_cos.dtype
    (True, torch.float64)
"""
import math

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
