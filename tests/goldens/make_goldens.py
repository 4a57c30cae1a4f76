"""Regenerate the golden files beside this script from the installed rsengine.

Run ``python tests/goldens/make_goldens.py`` (with rsengine installed, from the commit whose
behaviour is to be frozen); it rewrites every file of ``cases.FILES``. What runs and how it is
normalised lives in ``cases.py``, which ``tests/test_goldens.py`` shares. Options: ``--only
PREFIX`` regenerates the cases whose names start with PREFIX and keeps the others' goldens.
Cases that read an image folder need torchvision: where it does not import, their goldens are
kept; ``--only-vision`` (in a venv with the vision extra) regenerates them alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _environment() -> None:
    # As the repository's conftest.py sets them for the tests: before torch (OpenMP) and triton.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="PREFIX", help="regenerate only the cases whose names start with PREFIX")
    parser.add_argument("--only-vision", action="store_true", help="regenerate only the image-folder cases")
    args = parser.parse_args(argv)
    _environment()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, where the tests import goldens from
    from goldens import cases

    documents = {name: {"about": about, "cases": {}} for name, about in cases.FILES.items()}
    vision = cases.vision_importable()
    if args.only_vision and not vision:
        parser.error("--only-vision needs torchvision importable")

    def regenerated(case) -> bool:
        if cases.needs_vision(case):
            return vision and (args.only is None or case["name"].startswith(args.only))
        return not args.only_vision and (args.only is None or case["name"].startswith(args.only))

    names = {case["name"]: case for case in cases.all_cases()}
    kept = {name: golden for name, golden in cases.load_goldens().items()
            if name in names and not regenerated(names[name])}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="goldens-") as scratch:
        for number, case in enumerate(cases.all_cases()):
            name = case["name"]
            if name in kept:
                documents[kept[name]["file"]]["cases"][name] = kept[name]["result"]
                continue
            workdir = Path(scratch) / str(number)
            workdir.mkdir()
            result = cases.run_case(case, workdir)
            documents[cases.file_of(case, result)]["cases"][name] = result
    for name, document in documents.items():
        (cases.GOLDEN_DIR / name).write_text(cases.dump(document), encoding="utf-8")
        print(f"{name}: {len(document['cases'])} cases")
    print(f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
