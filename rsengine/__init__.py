"""rsengine: fast, exact randomized-smoothing certification (Cohen, Rosenfeld & Kolter 2019).

Example:
    >>> import torch
    >>> from rsengine import Smooth, ABSTAIN
    >>> model = torch.nn.Linear(2, 2)
    >>> Smooth(model, num_classes=2, sigma=0.5).predict(torch.zeros(2), n=100, alpha=0.001) in (0, 1, ABSTAIN)
    True
"""
__version__ = "0.1.0"  # first: rsengine.run records it

from .normalization import InputRangeWarning  # noqa: E402
from .run import Results, certify_dataset  # noqa: E402
from .smooth import ABSTAIN, Smooth  # noqa: E402

__all__ = ["ABSTAIN", "InputRangeWarning", "Results", "Smooth", "__version__", "certify_dataset"]
