"""Noisy copies for training, drawn by the certification engine's own kernels.

The training methods that look at several noisy copies of each input (consistency, MACER,
SmoothAdv, SmoothMix, CAT-RS: rsengine.training_methods) take them from the fused noise kernel
the certificates use (the compiled CPU kernel, Triton's on a GPU, the PyTorch reference where
neither runs), so every noise a certificate supports can be trained with, scaled by the Noise
object exactly as certification scales it, and a run draws the same copies on every device.

Which copies: training input number ``s`` of the run (``s = epoch * len(dataset) + position in
the epoch's shuffled order``) is stream ``s`` of phase ``PHASE_TRAINING`` (3) under the
training seed; its copy ``j`` is sample ``j`` of that stream. Certification draws only phases
0-2, so no training copy is ever a certificate's sample, whatever the seeds (the contract,
rsengine.kernels.contract). Plain Gaussian augmentation (``method="gaussian"``, the default)
keeps torch's generator, so ``rsengine train`` without ``--method`` writes the same weights as
before the methods existed.

Example:
    >>> import torch
    >>> from rsengine.noises import Gaussian
    >>> copies = EngineNoise(Gaussian(0.5), seed=0, device="cpu", backend="torch")
    >>> delta = copies.draw(torch.zeros(3, 1, 4, 4), copies=2, first_stream=0)
    >>> delta.shape, round(float(delta.std()), 1)
    (torch.Size([3, 2, 1, 4, 4]), 0.5)
"""
from __future__ import annotations

import torch

from .backends import resolve_backend
from .kernels.contract import PHASE_TRAINING
from .noises import Noise
from .streams import MAX_STREAM, check_seed

__all__ = ["EngineNoise", "MAX_TRAINING_STREAMS"]

# The stream index is one 32-bit counter word: 2**32 training inputs in a run (ImageNet's 1.28M
# images for 3,300 epochs).
MAX_TRAINING_STREAMS = MAX_STREAM


class EngineNoise:
    """Pixel-space noise ``[B, m, *shape]`` for ``m`` copies of each of ``B`` training inputs.

    Args:
        noise: the Noise object of the certificates (its kernel name and float32 scale).
        seed: the training seed, 0 <= seed < 2**63.
        device: where the inputs (and the noise) live.
        backend: rsengine.backends name ("auto": the compiled CPU kernel on the CPU, Triton on CUDA).
    """

    def __init__(self, noise: Noise, seed: int, device, backend: str = "auto"):
        if noise.sound:
            raise ValueError("Expected a float noise to train with (sound mode trains like the Gaussian of its sigma)")
        self.noise = noise
        self.seed = check_seed(seed)
        self.device = torch.device(device)
        self.backend = resolve_backend(backend, self.device)
        self._zeros: torch.Tensor | None = None

    def draw(self, x: torch.Tensor, copies: int, first_stream: int) -> torch.Tensor:
        """The noise of ``copies`` copies of each input of ``x`` [B, *shape]; input i is stream
        ``first_stream + i``. Returns float32 [B, copies, *shape] on ``x``'s device."""
        batch, shape = x.shape[0], x.shape[1:]
        if first_stream < 0 or first_stream + batch > MAX_TRAINING_STREAMS:
            raise ValueError(f"Expected fewer than 2**32 training inputs in a run (epochs x data set size), "
                             f"got stream {first_stream + batch - 1}")
        if self._zeros is None or self._zeros.shape != x.shape:
            # The kernel writes x + scale * z: on zeros, the noise alone (the attacks move x under it).
            self._zeros = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        streams = torch.arange(first_stream, first_stream + batch, dtype=torch.int64, device=x.device)
        delta = self.backend.noise_normalize(self._zeros, streams, 0, batch * copies, copies, self.noise.applied_sigma,
                                             self.seed, PHASE_TRAINING, noise=self.noise.name)
        return delta.view(batch, copies, *shape)
