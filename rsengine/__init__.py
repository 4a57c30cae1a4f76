"""rsengine: fast, exact randomized-smoothing certification (Cohen, Rosenfeld & Kolter 2019).

Example:
    >>> import torch
    >>> from rsengine import Smooth, ABSTAIN
    >>> model = torch.nn.Linear(2, 2)
    >>> Smooth(model, num_classes=2, sigma=0.5).predict(torch.zeros(2), n=100, alpha=0.001) in (0, 1, ABSTAIN)
    True
"""
from importlib import metadata as _metadata

# First: rsengine.run records it. The number's one home is setup.py, read back from the installed
# package's metadata (importlib.metadata is imported by rsengine.run anyway: no start-up cost).
try:
    __version__ = _metadata.version("rsengine")
except _metadata.PackageNotFoundError:  # a checkout used without being installed
    __version__ = "0+unknown"

from .normalization import InputRangeWarning  # noqa: E402
from .run import Results, certify_dataset  # noqa: E402
from .smooth import ABSTAIN, Smooth  # noqa: E402

__all__ = ["ABSTAIN", "InputRangeWarning", "Results", "Smooth", "__version__", "certify_dataset"]
