"""Marks for tests that need the ``vision`` extra (torchvision; timm for some).

Without the package they skip, saying what to install; CI runs them (``pytest -m vision``) in a
second venv with torch 2.14.1, torchvision 0.29.1 and timm (``.ci/run``), since the CPU build of
torch 2.13.0 that the Quick start pins cannot import torchvision.
"""
import importlib

import pytest

__all__ = ["marks", "needs"]


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a broken install (torchvision beside the wrong torch) counts as absent
        return False
    return True


def marks(*packages: str) -> list:
    """The marks of a test that needs ``packages`` ("torchvision", "timm"): for ``pytestmark``."""
    missing = [name for name in packages if not _importable(name)]
    reason = f"needs {', '.join(missing)}: pip install \"rsengine[vision]\" (CI runs it in its vision venv)"
    return [pytest.mark.vision, pytest.mark.skipif(bool(missing), reason=reason)]


def needs(*packages: str):
    """Decorate a test that needs ``packages``."""
    def mark(test):
        for each in marks(*packages):
            test = each(test)
        return test

    return mark
