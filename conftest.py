"""Shared test set-up.

Without a GPU the Triton kernels run in Triton's CPU interpreter, which must be switched on
before triton is first imported; with a GPU they run on the real compiler.
"""
import os

# Idle OpenMP threads sleep instead of spinning: on a 2-core machine shared with the CLI
# subprocesses the tests start, spinning threads slowed torch down 30x. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device the Triton kernels run on here: CUDA when present, else the CPU interpreter."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Doctests of the vision extra's code need torchvision: marked `vision` (CI's second venv runs
# them), skipped where it cannot be imported (torch 2.13.0's CPU build, the Quick start's).
_VISION_DOCTESTS = ("rsengine.vision", "rsengine.models.resnet50")


def pytest_collection_modifyitems(config, items):
    vision = [item for item in items if type(item).__name__ == "DoctestItem" and item.name.startswith(_VISION_DOCTESTS)]
    if not vision:
        return
    try:
        import torchvision  # noqa: F401
        missing = None
    except Exception as error:  # noqa: BLE001 - a broken install counts as absent
        missing = pytest.mark.skip(reason=f"needs torchvision ({error}): pip install \"rsengine[vision]\"")
    for item in vision:
        item.add_marker(pytest.mark.vision)
        if missing is not None:
            item.add_marker(missing)
