#!/usr/bin/env bash
# One prepared run on a lent GPU machine (H100/H200, the device tool), logs and JSON under $OUT:
#   1. the compile check for this GPU's target (every engine kernel variant, static resources;
#      CI checks all three targets on its CPU);
#   2. the test suite on the real Triton compiler (test_compile_check.py is step 1 again: skipped);
#   3. the kernels' real registers, spills and driver occupancy next to step 1's static figures;
#   4. the static cost model of the noise kernel, then the benchmarks;
#   5. each training method's CIFAR ResNet-20 epoch time, if time is left.
#
# The device image has torch, triton, pytest and pytest-benchmark but no registry, no torchvision
# and no ../shared beside the checkout (the embedded MNIST ships in the package). Prepare once, here,
# in the repo root:
#   echo /.device/ >> .git/info/exclude
#   mkdir -p .device/wheels && cp -r ../shared/reference-results .device/ && git rev-parse --short HEAD > .device/commit
# and, where the device's torch version is known (gpu.txt of an earlier run), the torchvision wheel built
# for it, for the ImageNet benchmarks' ResNet-50 and the vision tests (without it they skip, naming the extra):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .device/wheels torchvision==V
# then call the device tool's run with carry [".device"] and command `bash bench/device_check.sh`
# (timeout_s 590). Copy $OUT's records into bench/results/ and run
# `python bench/report.py --write-readme`; compare device_resources.log with the compile check's
# figures and the benchmarks' fused-noise time with noise_cost_model.log (bench/README.md).
set -uo pipefail
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg RSENGINE_REFERENCE_RESULTS="$PWD/.device/reference-results"
export TRITON_DEFAULT_FP_FUSION=0  # the launchers pass it; silences Triton 3.9's warning about the default
unset TRITON_INTERPRET  # the real compiler: the point of this run
out="${OUT:?set by the device tool}"
shopt -s nullglob
wheels=(.device/wheels/*.whl)
if [ "${#wheels[@]}" -gt 0 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "${wheels[@]}" \
        && export PYTHONPATH=/tmp/site || exit 1
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"

# 1. Static: what the compiler makes of every variant, for this GPU's target.
arch=$(python3 -c "import torch; major, minor = torch.cuda.get_device_capability(); print(10 * major + minor)")
timeout 60 python3 -m rsengine.kernels.compile_check --targets "$arch" --jobs "$(nproc)" \
    --json "$out/compile_check.json" 2>&1 | tee "$out/compile_check.log"
compile_status=${PIPESTATUS[0]}
echo "compile check exit status: $compile_status" | tee -a "$out/compile_check.log"

# 2. Tests: a speed figure counts only if correctness holds on this machine.
timeout 220 python3 -m pytest -q -rs -x -p no:cacheprovider tests rsengine kernels \
    --ignore=tests/test_compile_check.py 2>&1 | tee "$out/tests.log"
tests_status=${PIPESTATUS[0]}
echo "tests exit status: $tests_status" | tee -a "$out/tests.log"
[ "$tests_status" -eq 0 ] || exit "$tests_status"

# 3. Real resources of the loaded kernels next to the static ones.
timeout 70 python3 bench/device_resources.py --static "$out/compile_check.json" --json "$out/device_resources.json" \
    2>&1 | tee "$out/device_resources.log"

# 4. The static cost model (for comparison with the measured fused-noise time), then benchmarks.
timeout 30 python3 bench/noise_cost_model.py --json "$out/noise_cost_model.json" > "$out/noise_cost_model.log" 2>&1
RSENGINE_BENCH_OUT="$out" RSENGINE_BENCH_COMMIT="$(cat .device/commit 2>/dev/null || echo unknown)" \
    timeout 180 python3 -m pytest bench/ -q -p no:cacheprovider --benchmark-enable --ignore=bench/test_noise_cost_model.py \
    --benchmark-json="$out/pytest-benchmark.json" 2>&1 | tee "$out/bench.log"
bench_status=${PIPESTATUS[0]}

# 5. Each training method's CIFAR ResNet-20 epoch (docs/training.md), in whatever time is left.
if [ "$SECONDS" -lt 540 ]; then
    timeout $((575 - SECONDS)) python3 bench/training_methods.py --epoch-times cuda \
        --out "$out/training_epoch_times.json" 2>&1 | tee "$out/training_epoch_times.log"
fi
[ "$compile_status" -eq 0 ] || exit "$compile_status"
exit "$bench_status"
