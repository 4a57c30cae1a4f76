"""Fused kernels of rsengine, installed as ``rsengine.kernels``.

- ``reference``: pure-PyTorch versions (no Triton): the CPU path and the tests' oracle.
- ``noise``: Triton kernels fusing Philox noise, scaling and normalization into one write;
  ``box_muller``: their float32 Box-Muller step.
- ``votes``: Triton kernel fusing argmax and vote counting into device-side counts.
- ``compile_only``, ``machine_code``, ``compile_check``: compiling every kernel variant for real
  GPU targets on a machine without one, and reading the cubins' resources.

Importing this package imports no Triton; the other modules do, so the backend imports them
lazily.
"""

__all__: list[str] = []
