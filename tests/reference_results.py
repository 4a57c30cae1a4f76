"""Where the original code's published results are, and how the tests that read them skip without them.

CI lays shared/ beside the clone; elsewhere (a GPU machine) RSENGINE_REFERENCE_RESULTS says where.
A fresh clone with nothing beside it has neither: the tests that read these files skip, with
SKIP_REASON, and the rest run as usual.

Example:
    >>> HAVE_REFERENCE == REFERENCE.is_dir()
    True
    >>> all(p.is_file() for p in reference_files("certify"))
    True
"""
import os
import pathlib

import pytest

REFERENCE = pathlib.Path(os.environ.get("RSENGINE_REFERENCE_RESULTS",
                                        pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference-results"))
HAVE_REFERENCE = REFERENCE.is_dir()
SKIP_REASON = "needs the original code's results: ../shared/reference-results or $RSENGINE_REFERENCE_RESULTS"

# Marks a test that reads REFERENCE: skipped, with SKIP_REASON, when the folder is absent.
needs_reference = pytest.mark.skipif(not HAVE_REFERENCE, reason=SKIP_REASON)


def reference_files(under=".", keep=lambda path: True):
    """The files under REFERENCE / under that keep accepts, sorted; none when the folder is absent."""
    return sorted(p for p in (REFERENCE / under).rglob("*") if p.is_file() and keep(p)) if HAVE_REFERENCE else []


def each_reference_file(files):
    """files as parametrize's values; with the folder absent, one value that skips with SKIP_REASON.

    (An empty parameter set would skip too, but as NOTSET, saying nothing of what is missing.)
    """
    if HAVE_REFERENCE:
        return files
    return [pytest.param(None, id="no-reference-results", marks=pytest.mark.skip(reason=SKIP_REASON))]


def relative(path):
    """A reference file's path under REFERENCE, for test ids: 'certify/cifar10/resnet110/...'."""
    return path.relative_to(REFERENCE).as_posix()
