#!/usr/bin/env bash
# The whole verification on a GPU machine in one call: build with CUDA, every test (CUDA ones included),
# compute-sanitizer over the CUDA tests, the GPU benchmarks, and a results file.
#
# Needs torch, CMake, ninja and nvcc already installed; no network. GoogleTest's sources come from
# $LEANCONV_GTEST_SOURCE_DIR, else .gtest/ (copy /usr/src/googletest there beforehand), else the system.
# Results go to $OUT (or benchmarks/out/gpu) as results.md plus logs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT:-benchmarks/out/gpu}
mkdir -p "$OUT_DIR"
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ -z "${LEANCONV_GTEST_SOURCE_DIR:-}" ] && [ -f .gtest/CMakeLists.txt ]; then
  export LEANCONV_GTEST_SOURCE_DIR="$PWD/.gtest"
fi
export LEANCONV_BUILD_DIR="$PWD/build/gpu"
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
status=0
step() {  # step NAME COMMAND...: runs it, logs it, records pass/fail
  local name=$1; shift
  echo "=== $name"
  if "$@" > "$OUT_DIR/$name.log" 2>&1; then echo "PASS $name" | tee -a "$OUT_DIR/summary.txt"
  else echo "FAIL $name (see $name.log)" | tee -a "$OUT_DIR/summary.txt"; tail -40 "$OUT_DIR/$name.log"; status=1; fi
}
: > "$OUT_DIR/summary.txt"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -1
} > "$OUT_DIR/environment.txt"
cat "$OUT_DIR/environment.txt"

step build env LEANCONV_BUILD_TESTS=1 LEANCONV_CUDA=ON "$PYTHON" setup.py -q build_ext --inplace
step gtest "$LEANCONV_BUILD_DIR/tests/cpp/leanconv_tests"
step pytest "$PYTHON" -m pytest -q -ra tests/python
step consumer bash -c "cmake -S tests/consumer -B build/gpu-consumer -G Ninja -DCMAKE_PREFIX_PATH=\"\$($PYTHON -c 'import leanconv, torch; print(leanconv.cmake_prefix_path + \";\" + torch.utils.cmake_prefix_path)')\" && cmake --build build/gpu-consumer && ./build/gpu-consumer/leanconv_consumer"
if command -v compute-sanitizer >/dev/null; then
  step memcheck-gtest compute-sanitizer --tool memcheck --error-exitcode 1 \
    "$LEANCONV_BUILD_DIR/tests/cpp/leanconv_tests" --gtest_filter='*_CUDA'
  step memcheck-pytest env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 1 \
    "$PYTHON" -m pytest -q -x tests/python -k "cuda and not compile"
else
  echo "SKIP compute-sanitizer (not installed)" | tee -a "$OUT_DIR/summary.txt"
fi
step bench-generated "$PYTHON" benchmarks/bench_generated.py --out "$OUT_DIR/bench_generated"
step bench-filter-summary "$PYTHON" benchmarks/bench_filter_summary.py --devices cuda --out "$OUT_DIR/bench_filter_summary"
step bench-lowrank "$PYTHON" benchmarks/bench_lowrank.py --devices cuda --out "$OUT_DIR/bench_lowrank"

{
  echo "# GPU verification"
  echo; echo '```'; cat "$OUT_DIR/environment.txt"; echo '```'
  echo; echo "## Steps"; echo; sed 's/^/- /' "$OUT_DIR/summary.txt"
  echo; echo "## pytest"; echo; echo '```'; tail -5 "$OUT_DIR/pytest.log"; echo '```'
  for f in "$OUT_DIR"/bench_*.md; do [ -f "$f" ] && { echo; echo "## $(basename "$f" .md)"; echo; cat "$f"; }; done
} > "$OUT_DIR/results.md"
echo "=== summary"; cat "$OUT_DIR/summary.txt"
exit $status
