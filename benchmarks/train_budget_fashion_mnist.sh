#!/usr/bin/env bash
# What each family costs in accuracy at a real training budget: every row of benchmarks/budget_fashion_mnist.rows
# (dense ResNet-20, each family near 10x and near 3x fewer learned parameters, second seeds) on all 60,000
# Fashion-MNIST training images for EPOCHS epochs, one recipe for all (python -m leanconv.train defaults).
# JOBS rows train at a time, one CPU thread each, under nice (the machine stays usable); each row checkpoints every
# 50 steps, so the script can be stopped at any moment and run again: a finished row is skipped, a stopped one
# resumes from its checkpoint (bit-exact, see leanconv.train.loop), a row not started starts.
#
#   benchmarks/train_budget_fashion_mnist.sh RESULTS_DIR [EPOCHS (10)] [JOBS (2)]
#   BUDGET_ROWS=FILE: other NAME|FLAGS rows (e.g. a gap-closing experiment) into the same RESULTS_DIR.
#
# RESULTS_DIR gets NAME.csv (a row per epoch), NAME.log (appended across resumes) and, while a row is unfinished,
# checkpoints/NAME.pt (removed once the row is done); then table.md (benchmarks/budget_table.py), accuracy.png
# (test accuracy against learned parameters) and epochs.png (test accuracy by epoch), both from the CSV logs by
# python -m leanconv.train.report.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:?usage: benchmarks/train_budget_fashion_mnist.sh RESULTS_DIR [EPOCHS] [JOBS]}
EPOCHS=${2:-10}
JOBS=${3:-2}
ROWS_FILE=${BUDGET_ROWS:-benchmarks/budget_fashion_mnist.rows}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS/checkpoints"
RESULTS=$(cd "$RESULTS" && pwd)
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mapfile -t ROWS < <(grep -v '^\s*\(#\|$\)' "$ROWS_FILE")
CLAIMS="$RESULTS/.claims"
rm -rf "$CLAIMS" && mkdir -p "$CLAIMS"  # no row is training now: the claims of a stopped run are stale

epochs_logged() {  # NAME: epochs in its CSV log
  local csv="$RESULTS/$1.csv"
  [ -f "$csv" ] && echo $(( $(wc -l < "$csv") - 1 )) || echo 0
}

train_row() {  # NAME FLAGS...
  local name=$1 checkpoint="$RESULTS/checkpoints/$1.pt"
  shift
  if [ ! -f "$checkpoint" ] && [ ! -f "$checkpoint.prev" ] && [ "$(epochs_logged "$name")" -gt 0 ]; then
    echo "budget: $name has a log but no checkpoint to resume from: it starts again" >&2
    rm -f "$RESULTS/$name.csv"
  fi
  echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') $name: epoch $(( $(epochs_logged "$name") + 1 )) of $EPOCHS, commit $(git rev-parse --short HEAD 2>/dev/null)" >> "$RESULTS/$name.log"
  # shellcheck disable=SC2068
  nice -n 10 "$PYTHON" -m leanconv.train "$@" --epochs "$EPOCHS" --workers 0 --checkpoint "$checkpoint" \
    --checkpoint-every 50 --resume --log-csv "$RESULTS/$name.csv" >> "$RESULTS/$name.log" 2>&1
  local status=$?
  if [ $status -eq 0 ] && [ "$(epochs_logged "$name")" -ge "$EPOCHS" ]; then
    rm -f "$checkpoint" "$checkpoint.prev"
  else
    echo "budget: $name stopped (exit $status) after $(epochs_logged "$name") epochs: see $name.log" >&2
  fi
}

worker() {  # takes the next unclaimed unfinished row until none is left
  local row name
  for row in "${ROWS[@]}"; do
    name=${row%%|*}
    [ "$(epochs_logged "$name")" -ge "$EPOCHS" ] && continue
    mkdir "$CLAIMS/$name" 2> /dev/null || continue
    # shellcheck disable=SC2086
    train_row "$name" ${row#*|}
  done
}

echo "budget: ${#ROWS[@]} rows, $EPOCHS epochs, $JOBS at a time, results in $RESULTS"
for _ in $(seq "$JOBS"); do worker & done
wait
rm -rf "$CLAIMS"
"$PYTHON" benchmarks/budget_table.py "$RESULTS" "$EPOCHS" "$ROWS_FILE" | tee "$RESULTS/table.md"
csvs=("$RESULTS"/*.csv)
"$PYTHON" -m leanconv.train.report "${csvs[@]}" --out "$RESULTS/accuracy.png" > "$RESULTS/points.md"
"$PYTHON" -m leanconv.train.report "${csvs[@]}" --by-epoch --out "$RESULTS/epochs.png" > /dev/null
