#!/usr/bin/env bash
# The GPU check: the one command of a short GPU window. Nothing is compiled here: `make gpu-pack`, on the CPU
# machine, builds everything into .gpu/ (libleanconv with the sm_90 kernels, the GoogleTest binary, the C++
# example and consumer, the CUDA kernel driver). Python loads the op library from the pack (LEANCONV_LIBRARY),
# without the pybind11 extension, which is built for the CPU machine's Python: the C++-module parity tests skip,
# GoogleTest covers those modules.
#
#   benchmarks/gpu_check.sh RESULTS_DIR        (PACK=.gpu by default; GPU_CHECK_STAGES=24 runs stages 2 and 4 only,
#                                               for a rerun of what failed in the rest of a window)
#
# Stages, each under its own time limit (budgets are predictions until a GPU run measures them; the estimate
# behind each is beside it). A stage that fails, hangs or crashes never stops the next one, and
# RESULTS_DIR/results.md and RESULTS_DIR/logs.tar.gz are rewritten as each stage ends, so a run cut off still
# leaves what it did. Without a GPU the same script is a dry run: the CUDA parts say "skipped: no GPU" and the
# plumbing (pack, selection of the CUDA tests, driver, benchmarks at batch 1, results) runs.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:?usage: benchmarks/gpu_check.sh RESULTS_DIR}
PACK=${PACK:-.gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
LOGS=$(mktemp -d)
STARTED=$(date +%s)

if [ ! -f "$PACK/lib/libleanconv.so" ]; then
  echo "gpu_check: no pack at $PACK (run 'make gpu-pack' on the build machine and send $PACK along)" >&2
  exit 2
fi
PACK=$(cd "$PACK" && pwd)
# The C++ binaries find torch's libraries, and the CUDA libraries torch's wheel brings (nvidia/*/lib), through
# LD_LIBRARY_PATH: the paths the pack was linked with exist only on the build machine.
TORCH_LIBS=$("$PYTHON" -c 'import glob, os, torch
base = os.path.dirname(torch.__file__)
print(":".join([os.path.join(base, "lib")] + sorted(glob.glob(os.path.join(base, "..", "nvidia", "*", "lib")))))')
export LD_LIBRARY_PATH="$PACK/lib:$TORCH_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LEANCONV_LIBRARY="$PACK/lib/libleanconv.so"
export PYTHONPATH="$PWD/python:$PWD/tests/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  GPU=1
else
  GPU=0
fi

STAGES=()  # "name|budget|seconds|outcome" per stage, in order
write_results() {
  {
    echo "# GPU check"
    echo
    echo '```'
    cat "$LOGS/environment.txt" 2>/dev/null
    echo '```'
    echo
    echo "| stage | budget s | took s | outcome |"
    echo "|---|---:|---:|---|"
    for stage in "${STAGES[@]}"; do
      IFS='|' read -r name budget took outcome <<< "$stage"
      echo "| $name | $budget | $took | $outcome |"
    done
    echo
    echo "Total: $(( $(date +%s) - STARTED )) s. Logs of every stage: logs.tar.gz."
    for section in failures.md driver.md benchmarks.md; do
      if [ -s "$LOGS/$section" ]; then echo; cat "$LOGS/$section"; fi
    done
  } > "$RESULTS/results.md.tmp"
  mv "$RESULTS/results.md.tmp" "$RESULTS/results.md"
  tar -czf "$RESULTS/logs.tar.gz.tmp" -C "$LOGS" . && mv "$RESULTS/logs.tar.gz.tmp" "$RESULTS/logs.tar.gz"
}

# step LOG BUDGET COMMAND...: one command under its own time limit; appends to LOG; returns its status (124: timed out).
step() {
  local log=$1 budget=$2
  shift 2
  echo "\$ $*" >> "$LOGS/$log"
  timeout --kill-after=5 "$budget" "$@" >> "$LOGS/$log" 2>&1
}

# stage NAME BUDGET FUNCTION: runs FUNCTION (which calls step with budgets inside BUDGET) and records the outcome.
stage() {
  local name=$1 budget=$2 function=$3 begin status outcome
  begin=$(date +%s)
  echo "=== $name (budget ${budget}s)"
  "$function"
  status=$?
  case $status in
    0) outcome="passed" ;;
    124|137) outcome="TIMED OUT" ;;
    *) outcome="FAILED (status $status)" ;;
  esac
  [ "$GPU" = 0 ] && outcome="$outcome; skipped: no GPU (dry run)"
  STAGES+=("$name|$budget|$(( $(date +%s) - begin ))|$outcome")
  echo "    $outcome"
  write_results
}

# ---- 1. environment and smoke (30 s: environment 10 s; smoke: imports ~8 s, CUDA context ~5 s, eight ops) ------------------------
environment_and_smoke() {
  timeout 10 bash benchmarks/gpu/environment.sh "$PACK" "$PYTHON" > "$LOGS/environment.txt" 2>&1
  cat "$LOGS/environment.txt"
  step smoke.log 20 "$PYTHON" benchmarks/gpu/smoke.py
}

# ---- 2. every CUDA test (190 s: ~480 CUDA pytest cases at ~0.2 s each, measured 0.1-0.3 s per case on the CPU,
#         plus ~15 s start; GoogleTest's CUDA cases ~10 s; the C++ example and consumer ~5 s) ------------------
cuda_tests() {
  local status=0
  if [ "$GPU" = 1 ]; then
    step pytest.log 150 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider --timeout 60 -o junit_family=xunit1 \
      --junitxml="$LOGS/pytest.xml" tests/python || status=$?
    step gtest.log 20 "$PACK/bin/leanconv_tests" --gtest_filter='*_CUDA' || status=$?
  else
    step pytest.log 60 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider --collect-only tests/python || status=$?
    step gtest.log 20 "$PACK/bin/leanconv_tests" --gtest_list_tests --gtest_filter='*_CUDA' || status=$?
  fi
  step examples.log 10 "$PACK/bin/example_tiny_generated_net" || status=$?
  step examples.log 10 "$PACK/bin/leanconv_consumer" || status=$?
  "$PYTHON" benchmarks/gpu/summarize.py failures "$LOGS" > "$LOGS/failures.md"
  return $status
}

# ---- 3. compute-sanitizer (90 s: the driver runs 22 small cases in ~2 s natively; memcheck of torch's CUDA
#         start and of cuDNN is the slow part, ~10x; racecheck/synccheck only the shared-memory kernel) ---------
sanitizer() {
  local status=0 driver="$PACK/bin/leanconv_cuda_driver"
  export PYTORCH_NO_CUDA_MEMORY_CACHING=1  # so memcheck sees each allocation's real bounds
  if [ "$GPU" = 1 ] && command -v compute-sanitizer >/dev/null; then
    step sanitizer.log 40 compute-sanitizer --tool memcheck --error-exitcode 1 "$driver" --group leanconv || status=$?
    step sanitizer.log 25 compute-sanitizer --tool memcheck --error-exitcode 1 "$driver" --group cudnn || status=$?
    step sanitizer.log 15 compute-sanitizer --tool racecheck --error-exitcode 1 "$driver" --group shared-memory || status=$?
    step sanitizer.log 10 compute-sanitizer --tool synccheck --error-exitcode 1 "$driver" --group shared-memory || status=$?
  else
    step sanitizer.log 10 "$driver" --list || status=$?
    step sanitizer.log 10 "$driver" || status=$?
  fi
  unset PYTORCH_NO_CUDA_MEMORY_CACHING
  "$PYTHON" benchmarks/gpu/summarize.py driver "$LOGS/sanitizer.log" > "$LOGS/driver.md"
  return $status
}

# ---- 4. benchmarks, quick mode (190 s: per family one ResNet-18 stage shape at the GPU batch, fp32 and bf16,
#         6 variants x 2 modes x 20 repeats of 0.1-2 ms; torch.compile of the plain layer, ~10 s a graph) -------
benchmarks() {
  local status=0 device=cuda extra=(--repeats 20 --warmup 5 --dtypes float32,bfloat16)
  if [ "$GPU" = 0 ]; then
    device=cpu
    extra=(--repeats 1 --warmup 0 --dtypes float32,bfloat16 --no-compile --batch-cpu 1)
  fi
  for family in generated filter_summary lowrank; do
    step "bench_$family.log" 35 "$PYTHON" "benchmarks/bench_$family.py" --devices "$device" --quick "${extra[@]}" \
      --out "$LOGS/bench_$family" || status=$?
  done
  # The grouped conv at one ImageNet level shape (both layouts) and one MultigridBlock against the authors'
  # composition and its torch.compile (~10 s a dtype).
  step "bench_multigrid.log" 40 "$PYTHON" benchmarks/bench_multigrid.py --devices "$device" --quick "${extra[@]}" \
    --out "$LOGS/bench_multigrid" || status=$?
  # The block epilogue at one CIFAR shape (torch.compile of the plain tail: ~10 s a dtype) and a DACNN-mix
  # training step (its own budget: 45 s).
  local shared_extra=(--model-repeats 3)
  [ "$GPU" = 0 ] && shared_extra=(--model-repeats 1 --model-batch-cpu 2)
  step "bench_shared.log" 45 "$PYTHON" benchmarks/bench_shared.py --devices "$device" --quick "${extra[@]}" \
    "${shared_extra[@]}" --out "$LOGS/bench_shared" || status=$?
  "$PYTHON" benchmarks/gpu/summarize.py benchmarks "$LOGS" > "$LOGS/benchmarks.md"
  return $status
}

echo "GPU check: pack $PACK, results in $RESULTS, GPU: $([ "$GPU" = 1 ] && echo yes || echo 'none (dry run)')"
SELECTED=${GPU_CHECK_STAGES:-1234}
selected() { [[ $SELECTED == *$1* ]]; }
if ! selected 1; then  # the environment report heads every results.md
  timeout 10 bash benchmarks/gpu/environment.sh "$PACK" "$PYTHON" > "$LOGS/environment.txt" 2>&1
fi
selected 1 && stage "1. environment and smoke" 30 environment_and_smoke
selected 2 && stage "2. CUDA tests" 190 cuda_tests
selected 3 && stage "3. compute-sanitizer" 90 sanitizer
selected 4 && stage "4. benchmarks (quick)" 190 benchmarks
overall=0
for s in "${STAGES[@]}"; do
  case $s in *"passed"*) ;; *) overall=1 ;; esac
done
write_results
echo "=== results: $RESULTS/results.md (total $(( $(date +%s) - STARTED )) s)"
cat "$RESULTS/results.md"
rm -rf "$LOGS"
exit $overall
