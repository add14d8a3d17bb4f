#!/usr/bin/env bash
# The GPU check: the first command of a short GPU window. Nothing is compiled here: `make gpu-pack`, on the CPU
# machine, builds everything into .gpu/ (libleanconv with the sm_90 kernels and -lineinfo, the GoogleTest binary,
# the C++ example and consumer, the CUDA kernel driver). Python loads the op library from the pack
# (LEANCONV_LIBRARY), without the pybind11 extension, which is built for the CPU machine's Python: the C++-module
# parity tests skip, GoogleTest covers those modules.
#
#   benchmarks/gpu_check.sh RESULTS_DIR        PACK=.gpu by default; GPU_CHECK_STAGES=24 runs stages 2 and 4 only
#                                              (a rerun of what failed, in the rest of a window)
#
# Stages, each under its own time limit. A stage that fails, hangs or crashes never stops the next one, and
# RESULTS_DIR/results.md and RESULTS_DIR/logs.tar.gz are rewritten as each stage ends, so a run cut off still
# leaves what it did. Without a GPU the same script is a dry run: the CUDA parts say "skipped: no GPU" and the
# plumbing (pack, selection and sharding of the CUDA tests, the driver's CPU side, benchmarks at batch 1, results)
# runs.
#
# Budget: 375 s in all (the stages' budgets), so a 15-minute window (the machine's start included) has room to fix
# and rerun the stages that fail. Each stage's budget is its estimate with about a third of slack; the estimates are
# beside each stage and are predictions until a GPU run measures them (results.md prints budget and time side by
# side).
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:?usage: benchmarks/gpu_check.sh RESULTS_DIR}
PACK=${PACK:-.gpu}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
LOGS=$(mktemp -d)
STARTED=$(date +%s)

if [ ! -f "$PACK/lib/libleanconv.so.0" ]; then
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
export LEANCONV_LIBRARY="$PACK/lib/libleanconv.so.0"
export PYTHONPATH="$PWD/python:$PWD/tests/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  GPU=1
else
  GPU=0
fi

NOT_RUN=75  # a stage's status when a tool it needs is missing
[ -x /usr/local/cuda/bin/compute-sanitizer ] && export PATH="$PATH:/usr/local/cuda/bin"
if [ "$GPU" = 1 ]; then
  # A fresh machine reads torch and the CUDA libraries from disk the first time: untimed here, so that the first
  # stage's limits measure the check, not the disk.
  timeout 120 "$PYTHON" -c 'import torch; torch.zeros(1, device="cuda")' > /dev/null 2>&1
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
# The budgets are the GPU machine's. A dry run checks plumbing on the build machine, whose two cores may be shared
# with other work (a background training run took stage 4 from 27 s to 89 s): its limits get DRY_RUN_SLACK times as
# long, so they still catch a hang but not a busy CPU.
DRY_RUN_SLACK=${DRY_RUN_SLACK:-4}
step() {
  local log=$1 budget=$2
  shift 2
  [ "$GPU" = 0 ] && budget=$(( budget * DRY_RUN_SLACK ))
  echo "\$ $*" >> "$LOGS/$log"
  timeout --kill-after=3 "$budget" "$@" >> "$LOGS/$log" 2>&1
}

# together STEP... : runs several `step` calls at once (each given as one quoted string) and returns the first
# non-zero status, so independent steps share a stage's wall time. On the GPU machine each gets its share of the
# cores: OpenMP's default (every core, in each process) would have them spin against each other in their CPU
# references and gradchecks.
together() {
  local pids=() status=0 s threads=$(( $(nproc) / $# ))
  for command in "$@"; do
    if [ "$GPU" = 1 ]; then
      (export OMP_NUM_THREADS=$(( threads > 0 ? threads : 1 )); eval "step $command") &
    else
      eval "step $command" &
    fi
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { s=$?; [ "$status" = 0 ] && status=$s; }
  done
  return $status
}

# stage NAME BUDGET FUNCTION: runs FUNCTION (whose steps have budgets within BUDGET) and records the outcome.
stage() {
  local name=$1 budget=$2 function=$3 begin status outcome
  begin=$(date +%s)
  echo "=== $name (budget ${budget}s)"
  "$function"
  status=$?
  case $status in
    0) outcome="passed" ;;
    124|137) outcome="TIMED OUT" ;;
    "$NOT_RUN") outcome="NOT RUN: a tool it needs is missing (its log says which)" ;;
    *) outcome="FAILED (status $status)" ;;
  esac
  [ "$GPU" = 0 ] && outcome="$outcome; skipped: no GPU (dry run)"
  STAGES+=("$name|$budget|$(( $(date +%s) - begin ))|$outcome")
  echo "    $outcome"
  write_results
}

# ---- 1. environment, smoke and the kernel driver (40 s; estimate 25 s) --------------------------------------------
# environment ~3 s; smoke ~12 s (imports ~6 s, CUDA context ~3 s, one sample of every op); the driver natively
# ~10 s (CUDA context, 14 cases x 4 dtypes, CPU side included), which alone covers half, bfloat16, float64 and
# channels_last of every kernel.
environment_and_smoke() {
  local status=0
  timeout 10 bash benchmarks/gpu/environment.sh "$PACK" "$PYTHON" > "$LOGS/environment.txt" 2>&1
  cat "$LOGS/environment.txt"
  together "smoke.log 20 $PYTHON benchmarks/gpu/smoke.py" "driver.log 25 $PACK/bin/leanconv_cuda_driver" || status=$?
  return $status
}

# ---- 2. every CUDA test (130 s; estimate 95 s) --------------------------------------------------------------------
# pytest -m cuda: ~1,240 cases (op contract: every sample in 4 dtypes, gradcheck, autocast and determinism; the
# grouped conv's 160; the speed paths' ~150; modules; the CUDA paths), split round-robin into 4 shards run at once on
# the one GPU (LEANCONV_TEST_SHARD, tests/python/conftest.py): the cases are launch-bound (small tensors;
# CUDA_LAUNCH_BLOCKING=1 so an asynchronous fault names its own test), and their CPU side is measured at ~0.1 s a
# case on the 2-core build machine, so ~30 s of work a shard on the GPU machine's 16 cores plus the gradchecks
# (~15 s a shard) and ~15 s of imports and collection. GoogleTest's CUDA cases run beside them (~10 s); then the C++
# example and consumer (~5 s). Every test's name and outcome is streamed to the log as it ends (-v): a shard cut
# off names what it finished and the test it was in.
# A window has no in-tree build (build/ is ignored, so it is not sent): the emulated kernels' suite, which loads
# build/cmake's emulation library and holds no CUDA test, is left out, and CI is unset, under which a test module
# takes a missing in-tree build for an error (make test builds it). Either would stop every shard at collection.
cuda_tests() {
  local status=0 shards=4 runs=() k
  local pytest="env -u CI $PYTHON -m pytest -m cuda -p no:cacheprovider --ignore=tests/python/test_cuda_emulation.py"
  export CUDA_LAUNCH_BLOCKING=1
  for ((k = 0; k < shards; ++k)); do
    if [ "$GPU" = 1 ]; then
      runs+=("pytest$k.log 100 env LEANCONV_TEST_SHARD=$k/$shards $pytest -v --timeout 60 -o junit_family=xunit1 \
        --junitxml=$LOGS/pytest$k.xml tests/python")
    else  # the dry run: each shard's selection
      runs+=("pytest$k.log 60 env LEANCONV_TEST_SHARD=$k/$shards $pytest -q --collect-only tests/python")
    fi
  done
  if [ "$GPU" = 1 ]; then
    runs+=("gtest.log 30 $PACK/bin/leanconv_tests --gtest_filter=*_CUDA:TestSetup.*")
  else
    runs+=("gtest.log 20 $PACK/bin/leanconv_tests --gtest_list_tests --gtest_filter=*_CUDA")
  fi
  together "${runs[@]}" || status=$?
  unset CUDA_LAUNCH_BLOCKING
  step examples.log 10 "$PACK/bin/example_tiny_generated_net" || status=$?
  step examples.log 10 "$PACK/bin/leanconv_consumer" || status=$?
  "$PYTHON" benchmarks/gpu/summarize.py failures "$LOGS" > "$LOGS/failures.md"
  return $status
}

# ---- 3. compute-sanitizer (45 s; estimate 30 s) --------------------------------------------------------------------
# Four tools at once, each on its own driver process: memcheck and initcheck of leanconv's kernels, racecheck and
# synccheck (many times slower) of the small float32 cases of every kernel with shared memory, a barrier or a warp
# shuffle (the driver's group "sync": the warp-per-entry overlap-add and the per-channel finish among them). The
# driver's shapes run every loop of every kernel at least twice. Each
# run is ~3-10x the native ~10 s (torch's CUDA start dominates; the kernels are small). The eigen conv's backward
# runs through cuDNN and is left to the native run: a sanitizer there would check aten, not leanconv.
sanitizer() {
  local status=0 driver="$PACK/bin/leanconv_cuda_driver"
  export PYTORCH_NO_CUDA_MEMORY_CACHING=1  # so memcheck sees each allocation's real bounds
  if [ "$GPU" = 1 ] && ! command -v compute-sanitizer > /dev/null; then
    # Not a pass: a machine without the tool checked nothing (the CUDA toolkit's bin/ may be off the PATH).
    echo "compute-sanitizer: not on the PATH nor in /usr/local/cuda/bin" >> "$LOGS/sanitizer-memcheck.log"
    status=$NOT_RUN
  elif [ "$GPU" = 1 ]; then
    together "sanitizer-memcheck.log 40 compute-sanitizer --tool memcheck --error-exitcode 1 $driver --group leanconv" \
      "sanitizer-initcheck.log 40 compute-sanitizer --tool initcheck --error-exitcode 1 $driver --group leanconv" \
      "sanitizer-racecheck.log 40 compute-sanitizer --tool racecheck --error-exitcode 1 $driver --group sync --float32" \
      "sanitizer-synccheck.log 40 compute-sanitizer --tool synccheck --error-exitcode 1 $driver --group sync --float32" \
      || status=$?
  else
    step sanitizer-memcheck.log 10 "$driver" --list --group leanconv || status=$?
    step sanitizer-racecheck.log 10 "$driver" --list --group sync --float32 || status=$?
  fi
  unset PYTORCH_NO_CUDA_MEMORY_CACHING
  "$PYTHON" benchmarks/gpu/summarize.py driver "$LOGS" > "$LOGS/driver.md"
  return $status
}

# ---- 4. benchmarks, quick mode (160 s; estimate 90 s) --------------------------------------------------------------
# One after another (timings must not share the GPU), fp32 and bf16, no torch.compile variants (a cold compile is
# ~10 s a graph: those are for a later window), every row written as soon as it is measured. Per family ~10-15 s:
# imports and CUDA start ~6 s, then rows of 3-4 variants x 2 modes x 25 runs of 0.1-30 ms; the models' ResNet-20 steps
# ~10 s (8 models x 2 dtypes x 25 steps).
benchmarks() {
  local status=0 device=cuda extra=(--repeats 20 --warmup 5 --dtypes float32,bfloat16 --no-compile)
  if [ "$GPU" = 0 ]; then
    device=cpu
    extra=(--repeats 1 --warmup 0 --dtypes float32,bfloat16 --no-compile --batch-cpu 1)
  fi
  local script name own
  # Every family's benchmark, as the registry (leanconv.families) names them; the shared family's also times a
  # DACNN training step, fewer times.
  for script in $("$PYTHON" -c 'from leanconv.families import benchmarks; print(" ".join(benchmarks()))'); do
    name=${script%.py}
    own=()
    if [ "$name" = bench_shared ]; then
      own=(--model-repeats 3)
      [ "$GPU" = 0 ] && own=(--model-repeats 1 --model-batch-cpu 2)
    fi
    step "$name.log" 25 "$PYTHON" "benchmarks/$script" --devices "$device" --quick "${extra[@]}" "${own[@]}" \
      --out "$LOGS/$name" || status=$?
  done
  # Then whole models: every family's ResNet-20 training step against dense, parameters and multiply-adds beside.
  step bench_models.log 30 "$PYTHON" benchmarks/bench_models.py --devices "$device" --quick "${extra[@]}" \
    --out "$LOGS/bench_models" || status=$?
  "$PYTHON" benchmarks/gpu/summarize.py benchmarks "$LOGS" > "$LOGS/benchmarks.md"
  return $status
}

echo "GPU check: pack $PACK, results in $RESULTS, GPU: $([ "$GPU" = 1 ] && echo yes || echo 'none (dry run)')"
SELECTED=${GPU_CHECK_STAGES:-1234}
selected() { [[ $SELECTED == *$1* ]]; }
if ! selected 1; then  # the environment report heads every results.md
  timeout 10 bash benchmarks/gpu/environment.sh "$PACK" "$PYTHON" > "$LOGS/environment.txt" 2>&1
fi
selected 1 && stage "1. environment, smoke, driver" 40 environment_and_smoke
selected 2 && stage "2. CUDA tests" 130 cuda_tests
selected 3 && stage "3. compute-sanitizer" 45 sanitizer
selected 4 && stage "4. benchmarks (quick)" 160 benchmarks
overall=0
for s in "${STAGES[@]}"; do
  case $s in *"passed"*) ;; *) overall=1 ;; esac
done
write_results
echo "=== results: $RESULTS/results.md (total $(( $(date +%s) - STARTED )) s)"
cat "$RESULTS/results.md"
rm -rf "$LOGS"
exit $overall
