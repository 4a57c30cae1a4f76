"""Today's behaviour, frozen in tests/goldens/: every case there, rerun and compared exactly.

Results files and run records byte for byte (the time column's values and the environment's
volatile values masked), the CLI's stdout, stderr and exit status, the float64 results of the
statistics and of ``Smooth`` (as float.hex), and every refusal's message. The cases and their
normalisation are in tests/goldens/cases.py; ``python tests/goldens/make_goldens.py`` rewrites
the goldens (only when a change of behaviour is intended).
"""
import pytest

from goldens import cases

CASES = cases.all_cases()


@pytest.fixture(scope="module")
def goldens() -> dict:
    return cases.load_goldens()


def test_the_goldens_are_the_cases(goldens):
    names = [case["name"] for case in CASES]
    assert sorted(goldens) == sorted(names), (
        f"cases without a golden: {sorted(set(names) - set(goldens))[:10]}; "
        f"goldens without a case: {sorted(set(goldens) - set(names))[:10]}")


# Image-folder cases need torchvision: CI runs them in its vision venv (pytest -m vision).
_VISION = [pytest.mark.vision, pytest.mark.skipif(not cases.vision_importable(),
                                                  reason='reads an image folder: needs pip install "rsengine[vision]"')]


@pytest.mark.parametrize("case", [pytest.param(case, marks=_VISION if cases.needs_vision(case) else [])
                                  for case in CASES], ids=[case["name"] for case in CASES])
def test_golden(case, goldens, tmp_path):
    golden = goldens.get(case["name"])
    if golden is None:
        pytest.fail(f"no golden for {case['name']}: run tests/goldens/make_goldens.py")
    result = cases.run_case(case, tmp_path)
    difference = cases.first_difference(result, golden["result"])
    assert difference is None, f"{case['name']} differs from {golden['file']} at {difference}"
    assert cases.file_of(case, result) == golden["file"]


# A real `python -m rsengine` process for one run (one process: about 5 s): what the in-process runs
# above compare is what a command prints and writes.
SUBPROCESS_CASES = ("option/seed7",)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_golden_in_a_real_process(name, goldens, tmp_path):
    case = next(case for case in CASES if case["name"] == name)
    result = cases.json_ready(cases.run_cli_case(case, tmp_path, runner=cases.run_cli_subprocess))
    difference = cases.first_difference(result, goldens[name]["result"])
    assert difference is None, f"{name} run as a process differs from {goldens[name]['file']} at {difference}"
