"""Fused kernels of rsengine, installed as ``rsengine.kernels``.

- ``reference``: pure-PyTorch versions (no Triton): the CPU path and the tests' oracle.
- ``noise``: Triton kernel fusing Philox noise, scaling and normalization into one write.
- ``votes``: Triton kernel fusing argmax and vote counting into device-side counts.

Importing this package imports no Triton; ``noise`` and ``votes`` do, so the backend imports
them lazily.
"""

__all__: list[str] = []
