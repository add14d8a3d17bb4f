#!/usr/bin/env bash
# The GPU training stage: the dense ResNet-20 and every family's (benchmarks/fashion_mnist_rows.sh) on the full
# Fashion-MNIST at the README recipe (python -m leanconv.train defaults: SGD + Nesterov, one-cycle, batch 128), all
# rows at once on the one GPU, the data held on the GPU and augmented there (--data-on-device), within a fixed time.
# Nothing is compiled there: it runs from the pack (`make gpu-pack`, which also carries the dataset's idx files).
#
#   benchmarks/gpu_train.sh RESULTS_DIR [EPOCHS]     on the GPU machine, .gpu/ sent along (PACK=.gpu)
#   benchmarks/gpu_train.sh --dry-run RESULTS_DIR    here: one tiny epoch of every row on the CPU (make test)
#
#   GPU_TRAIN_SECONDS (300): every row is stopped at this limit, finished or not.
#   GPU_TRAIN_ROWS: a file of NAME|FLAGS lines to train instead of the family table (e.g. a recipe's rows).
#
# RESULTS_DIR gets table.md, accuracy.png (test accuracy by epoch), points.md and rows.tar.gz (per row NAME.csv, a
# row per epoch, and NAME.log), rewritten every 15 s while the rows train, so a run cut off keeps every finished
# epoch; and summary.log. Five files: a window sends back at most eight, and the rows are more than that.
#
# EPOCHS (default 10) is chosen so the rows finish inside the 300 s; an estimate until a GPU run measures it. These
# models are launch-bound on an H200: a training step at batch 128 dispatches 309 (dense) to 957 (low-rank rank 5)
# ops for the ResNet-20 rows and 3,370 for the MGIC row (counted on the CPU: benchmarks/gpu/count_ops.py), each at
# least one kernel of ~5-10 us at these sizes and ~6-8 us of CPU time in eager PyTorch. All rows together are
# ~6,000 kernels a step, ~7 us each on the one GPU: ~20 s an epoch of 469 steps (the MGIC row's own CPU side, ~25 ms
# a step, ~12 s an epoch, runs beside it on its own core). 10 epochs: ~200 s, after ~30 s of start (imports, CUDA
# context, cuDNN's first calls); 15 would not fit if the estimate is a third too low.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then
  DRY=1
  shift
fi
RESULTS=${1:?usage: benchmarks/gpu_train.sh [--dry-run] RESULTS_DIR [EPOCHS]}
EPOCHS=${2:-10}
PACK=${PACK:-.gpu}
PYTHON=${PYTHON:-python3}
SECONDS_ALLOWED=${GPU_TRAIN_SECONDS:-300}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
STARTED=$(date +%s)
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ -f "$PACK/lib/libleanconv.so.0" ]; then  # the pack's op library (with the CUDA kernels) without the extension
  export LEANCONV_LIBRARY="$PACK/lib/libleanconv.so.0"
fi

DATA="$PACK/data/fashion-mnist"
[ -d "$DATA" ] || DATA=/usr/share/datasets/fashion-mnist
source benchmarks/fashion_mnist_rows.sh
ROWS=("${FAMILY_ROWS[@]}")
if [ -n "${GPU_TRAIN_ROWS:-}" ]; then
  mapfile -t ROWS < <(grep -v '^\s*\(#\|$\)' "$GPU_TRAIN_ROWS")
fi
common=(--dataset fashion-mnist --data "$DATA" --data-on-device --workers 0 --epochs "$EPOCHS")
NOTE="Fashion-MNIST, all 60,000 training images, test set 10,000; all rows at once on one GPU, data on the GPU"
if [ "$DRY" = 1 ]; then  # every row's command runs one epoch of two batches on the CPU, with the whole pipeline
  EPOCHS=1
  common=(--dataset fashion-mnist --data "$DATA" --data-on-device --workers 0 --epochs 1 --train-subset 256
          --test-subset 256 --device cpu)
  NOTE="Dry run: the first 256 training and test images, all rows at once on the CPU"
  export OMP_NUM_THREADS=1
  SECONDS_ALLOWED=${GPU_TRAIN_SECONDS:-240}
elif ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_train: no GPU here (use --dry-run for the CPU check)" >&2
  exit 2
else  # the rows share the machine's cores: each only launches kernels, and OpenMP's default would spin every core
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fi

ROW_LOGS=$(mktemp -d)  # each row's NAME.csv and NAME.log, sent back packed as rows.tar.gz
trap 'rm -rf "$ROW_LOGS"' EXIT
summarize() {  # the table (ordered as the rows), the curves and the packed row logs, from the epochs logged so far
  "$PYTHON" benchmarks/gpu/train_table.py "$ROW_LOGS" "$EPOCHS" "$NOTE" "${ROWS[@]}" > "$RESULTS/table.md.tmp" 2>> "$RESULTS/summary.log" && mv "$RESULTS/table.md.tmp" "$RESULTS/table.md"
  if compgen -G "$ROW_LOGS/*.csv" > /dev/null; then
    "$PYTHON" -m leanconv.train.report "$ROW_LOGS"/*.csv --by-epoch --out "$RESULTS/accuracy.png" \
      > "$RESULTS/points.md" 2>> "$RESULTS/summary.log" || true
  fi
  tar -czf "$RESULTS/rows.tar.gz.tmp" -C "$ROW_LOGS" . && mv "$RESULTS/rows.tar.gz.tmp" "$RESULTS/rows.tar.gz"
}

echo "gpu_train: ${#ROWS[@]} rows, $EPOCHS epochs, at most ${SECONDS_ALLOWED}s, results in $RESULTS"
pids=()
for row in "${ROWS[@]}"; do
  name=${row%%|*}
  # shellcheck disable=SC2086
  timeout --kill-after=5 "$SECONDS_ALLOWED" "$PYTHON" -m leanconv.train ${row#*|} "${common[@]}" \
    --log-csv "$ROW_LOGS/$name.csv" > "$ROW_LOGS/$name.log" 2>&1 &
  pids+=($!)
done
alive() {
  local pid
  for pid in "${pids[@]}"; do kill -0 "$pid" 2> /dev/null && return 0; done
  return 1
}
while alive; do  # the table and the curves every 15 s while rows train
  for _ in $(seq 15); do alive && sleep 1; done
  summarize
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
summarize
echo "gpu_train: done in $(( $(date +%s) - STARTED ))s"
cat "$RESULTS/table.md"
exit $status
