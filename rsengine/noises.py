"""The smoothing noises: each owns its formulas, in the spirit of ``torch.distributions``.

A noise knows the sigma it was asked for and the float32 sigma the kernels apply, its scale and
norm, how inputs are prepared for its kernel, its one- and two-sided radii, the run-record keys
it writes (and reads back, side by side), and the noise training draws.

- :class:`Gaussian`: l2 radii, ``sigma PhiInv(pA)`` (Cohen et al. 2019).
- :class:`Laplace`: l1 radii, ``-b ln(2 (1 - pA))`` with ``b = sigma / sqrt(2)`` (Teng et al. 2020).
- :class:`Uniform` on ``[-lambda, lambda]``: l1 radii, ``2 lambda (pA - 1/2)``, ``lambda = sigma sqrt(3)``
  (Yang et al. 2020).
- :class:`RoundedGaussian`: sound mode (Voracek & Hein 2023; ``rsengine.sound``): the Gaussian
  rounded to the 1/255 grid, drawn in integers; inputs are 8-bit images, radii are l2 radii for
  perturbations on the grid.

Example:
    >>> from rsengine.noises import Laplace, noise_named
    >>> noise = Laplace(0.25)
    >>> noise.norm, noise.applied_sigma == float(np.float32(0.25))
    ('l1', True)
    >>> pred, radius = noise.certify([3], [990], 1000, 0.001)
    >>> pred.tolist(), round(float(radius[0]), 4)
    ([3], 0.5371)
    >>> noise_named("gaussian", 0.5, sound=True)
    RoundedGaussian(sigma=0.5)
    >>> noise.pa_lower(radius).round(4).tolist()  # the inverse: pA's lower bound behind that radius
    [0.976]
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from . import certificates
from . import sound as sound_mode
from .kernels.contract import check_noise, noise_scale
from .support import refuse
from .validation import check_flag, check_not_a_data_set, check_positive_float, reject

__all__ = ["Gaussian", "Laplace", "Noise", "RoundedGaussian", "Uniform", "check_sigma", "noise_named", "noise_of_record"]


def check_sigma(sigma) -> float:
    """A noise's sigma: a finite number > 0 whose float32 is neither 0 nor infinite."""
    checked = check_positive_float("sigma", sigma)
    if not 0.0 < float(np.float32(checked)) < math.inf:
        raise ValueError(f"Expected `sigma` within float32 range (1.4e-45 to 3.4e38), got {sigma!r}")
    return checked


class Noise:
    """A smoothing noise of standard deviation ``sigma`` per coordinate, in input (pixel) units.

    Args:
        sigma: > 0 and finite. The kernels apply ``applied_sigma``, the float32 nearest to it
            (0.12 becomes 0.11999999731779099), and every radius is computed for that value.

    Attributes:
        name: the kernels' name for the noise ("gaussian", "laplace", "uniform").
        norm: "l2" or "l1", the norm of this noise's radii.
        sound: whether this is sound mode's integer noise (inputs on the 1/255 grid).
    """

    name: ClassVar[str]
    sound: ClassVar[bool] = False

    def __init__(self, sigma: float):
        self.sigma = check_sigma(sigma)
        self.applied_sigma = float(np.float32(self.sigma))

    @property
    def norm(self) -> str:
        return certificates.NORMS[self.name]

    @property
    def scale(self) -> float:
        """The float32 factor the kernels multiply a standard noise value by."""
        return noise_scale(self.name, self.applied_sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.sigma == other.sigma

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.sigma))

    # -- sampling ---------------------------------------------------------------------------

    def kernel_table(self, device) -> tuple[torch.Tensor | None, int]:
        """Sound mode's (signed thresholds, support) for the kernels; (None, 0) for a float noise."""
        return None, 0

    def prepare(self, xs, device) -> torch.Tensor:
        """Inputs [M, *shape] (a tensor, or a sequence of M same-shaped tensors) as the kernel takes
        them: float32, contiguous, on ``device``, finite (sound mode: int32 pixels). A data set
        (a torch Dataset or DataLoader, (x, label) pairs) is refused with a pointer to
        ``rsengine.certify_dataset``."""
        check_not_a_data_set("xs", xs, "to be a tensor [M, *shape]")
        if isinstance(xs, (list, tuple)):
            if not xs or not all(isinstance(x, torch.Tensor) for x in xs):
                raise TypeError("Expected `xs` to be a tensor [M, *shape] or a non-empty sequence of tensors")
            if len({tuple(x.shape) for x in xs}) != 1:
                raise ValueError(f"Expected all inputs in `xs` to share one shape, got "
                                 f"{sorted({tuple(x.shape) for x in xs})}")
            xs = torch.stack([x.to(device) for x in xs])
        if not isinstance(xs, torch.Tensor):
            raise TypeError(f"Expected `xs` to be a torch.Tensor, got {type(xs).__name__}")
        if xs.ndim < 2 or xs.shape[0] == 0 or xs.shape[1:].numel() == 0:
            raise ValueError(f"Expected `xs` of shape [M >= 1, *input_shape], got {list(xs.shape)}")
        return self._to_kernel_inputs(xs, device)

    def _to_kernel_inputs(self, xs: torch.Tensor, device) -> torch.Tensor:
        if not xs.is_floating_point():
            raise TypeError(f"Expected `x` to be a floating-point tensor, got dtype {xs.dtype}")
        xs = xs.to(device=device, dtype=torch.float32).contiguous()
        if not bool(torch.isfinite(xs).all()):
            raise ValueError("Expected `x` to be finite, got NaN or infinite entries")
        return xs

    def training_noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        """Noise of this standard deviation for training, on ``generator``'s device (torch's RNG,
        not the certification contract: training needs the distribution, not the stream)."""
        raise NotImplementedError

    # -- certificates -----------------------------------------------------------------------

    def certify(self, guess, n_a, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """One-sided CERTIFY from counts: int64 [M] classes (ABSTAIN = -1) and float64 [M] radii in
        ``norm`` (rsengine.certificates.certify_one_sided)."""
        return certificates.certify_one_sided(guess, n_a, n, alpha, self.applied_sigma, self.name)

    def certify_two_sided(self, guess, counts, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """CERTIFY with the runner-up bounded too (rsengine.certificates.certify_two_sided)."""
        return certificates.certify_two_sided(guess, counts, n, alpha, self.applied_sigma, self.name)

    def pa_lower(self, radius) -> np.ndarray:
        """The lower bound on pA whose one-sided radius (:meth:`certify`) is ``radius``: its inverse.

        Gaussian (and sound mode): ``Phi(R / sigma)``; Laplace: ``1 - exp(-R / b) / 2``; uniform:
        ``1/2 + R / (2 lambda)``, with the applied float32 sigma and scale the radii were computed
        with. Only a one-sided radius has an inverse: a two-sided or top-k radius depends on the
        other classes' upper bounds too (``Question.pa_lower_unavailable``).

        A radius read from a results file is rounded down to 3 significant digits, and every
        function here grows with R, so the value is itself a lower bound on the run's pA_lower
        (the rounding costs more than float64's, ~1e-16): a lower bound on a lower bound.

        Args:
            radius: float scalar or array of radii, each finite and >= 0 (0 gives 1/2).

        Returns:
            float64 array of ``np.shape(radius)``, in [1/2, 1].

        Raises:
            ValueError: a radius that is negative, NaN or infinite.

        Example:
            >>> Gaussian(0.5).pa_lower([0.0, 0.5]).round(4).tolist()
            [0.5, 0.8413]
        """
        radii = np.asarray(radius, dtype=np.float64)
        if not np.all(np.isfinite(radii) & (radii >= 0)):
            reject("radius", "to be finite numbers >= 0", repr(radii[~(np.isfinite(radii) & (radii >= 0))].flat[0].item()))
        return self._pa_of_radius(radii)

    def _pa_of_radius(self, radii: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- the run record ---------------------------------------------------------------------

    def record(self, kind: str) -> dict:
        """The run-record keys of this noise (``kind``: "certify" or "predict"). A Gaussian float
        run writes only ``sigma``, as every record before the other noises did."""
        keys = {"sigma": self.sigma}
        if self.name != "gaussian":
            keys["noise"] = self.name
            if kind == "certify":
                keys["radius_norm"] = self.norm
        return keys


class Gaussian(Noise):
    """N(0, sigma^2 I): l2 radii ``sigma PhiInv(pA)``, the paper's noise."""

    name = "gaussian"

    def _pa_of_radius(self, radii: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr  # deferred: scipy costs every `import rsengine` otherwise

        return ndtr(radii / self.scale)

    def training_noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        return self.sigma * torch.randn(shape, generator=generator, device=generator.device)


class Laplace(Noise):
    """Laplace noise of scale ``b = sigma / sqrt(2)`` per coordinate: l1 radii."""

    name = "laplace"

    def _pa_of_radius(self, radii: np.ndarray) -> np.ndarray:
        return 1.0 - 0.5 * np.exp(-radii / self.scale)  # R = -b ln(2 (1 - pA))

    def training_noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        device = generator.device  # b * Exp(1) with a random sign
        magnitude = torch.empty(shape, device=device).exponential_(generator=generator)
        sign = torch.rand(shape, generator=generator, device=device) < 0.5
        return noise_scale(self.name, self.sigma) * torch.where(sign, -magnitude, magnitude)


class Uniform(Noise):
    """Uniform noise on ``[-lambda, lambda]``, ``lambda = sigma sqrt(3)``: l1 radii."""

    name = "uniform"

    def _pa_of_radius(self, radii: np.ndarray) -> np.ndarray:
        return np.minimum(0.5 + radii / (2.0 * self.scale), 1.0)  # R = 2 lambda (pA - 1/2)

    def training_noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        uniform = torch.rand(shape, generator=generator, device=generator.device)
        return noise_scale(self.name, self.sigma) * (2.0 * uniform - 1.0)


class RoundedGaussian(Gaussian):
    """Sound mode's noise: N(0, sigma^2) rounded to the 1/255 grid, drawn in integers.

    Inputs are 8-bit images (uint8, or float32 values exactly i / 255); radii are l2 radii for
    perturbations on the grid, computed in high precision and rounded down (rsengine.sound).
    Trains like the Gaussian of the same sigma.
    """

    sound = True

    def __init__(self, sigma: float):
        super().__init__(sigma)
        if self.applied_sigma > sound_mode.MAX_SIGMA:
            raise ValueError(f"Expected `sigma` <= {sound_mode.MAX_SIGMA} with sound=True, got {sigma!r}")

    def kernel_table(self, device) -> tuple[torch.Tensor | None, int]:
        table = sound_mode.noise_table(self.applied_sigma)
        return table.signed_thresholds(device), table.support

    def _to_kernel_inputs(self, xs: torch.Tensor, device) -> torch.Tensor:
        # Integer pixels, int32 (rsengine.sound.to_grid): anything off the grid is refused.
        return sound_mode.to_grid(xs.to(device)).contiguous()

    def certify(self, guess, n_a, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        return sound_mode.certify_sound_from_counts(guess, n_a, n, alpha, self.applied_sigma)

    def record(self, kind: str) -> dict:
        return {**super().record(kind), "sound": True}


_FLOAT_NOISES = {noise.name: noise for noise in (Gaussian, Laplace, Uniform)}


def noise_named(name: str, sigma: float, sound: bool = False) -> Noise:
    """The noise of ``Smooth``'s arguments ``sigma``, ``noise=name`` and ``sound=``, checked in that
    order (sound mode with another noise than the Gaussian: rsengine.support's table)."""
    check_sigma(sigma)
    cls = _FLOAT_NOISES[check_noise(name)]
    refuse("sound", {"sound", name} if check_flag("sound", sound) else set(), "api", noise=name)
    return RoundedGaussian(sigma) if sound else cls(sigma)


def noise_of_record(arguments: dict) -> Noise | None:
    """The noise a run record's arguments name, None where they name none that can be built."""
    name = arguments.get("noise", "gaussian")
    try:
        return noise_named(name, arguments.get("sigma"), arguments.get("sound") is True)
    except (TypeError, ValueError, KeyError):
        return None
