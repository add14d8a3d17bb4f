# Sourced by the benchmarks/train_*_fashion_mnist.sh scripts: one results table on the real Fashion-MNIST (Debian's
# dataset-fashion-mnist), one recipe for every row (python -m leanconv.train defaults: SGD + Nesterov, one-cycle
# cosine, weight decay 5e-4, batch 128). Each row's log goes to RESULTS_DIR/NAME.log.
#
#   usage in a script:  source benchmarks/fashion_mnist_common.sh "$@"; { header "note"; run NAME ARGS...; } | tee ...
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RESULTS=${1:?usage: $0 RESULTS_DIR [EPOCHS] [TRAIN_SUBSET]}
EPOCHS=${2:-2}
SUBSET=${3:-12000}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"

header() {  # NOTE: what the rows share beyond the recipe
  local images="first $SUBSET"
  (( SUBSET )) || images="all 60,000"
  echo "Fashion-MNIST (28x28 padded to 32x32, 10 classes), $images training images, $EPOCHS epochs, test set 10,000${1:+; $1}."
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc --all) CPU cores, torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
  echo
  echo "| model | learned params | dense-equivalent params | compression | test accuracy | images/s | time (s) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
}

run() {  # NAME ARGS...: one row of the table
  local name=$1
  shift
  PYTHONPATH=python "$PYTHON" -m leanconv.train --epochs "$EPOCHS" --train-subset "$SUBSET" "$@" \
    > "$RESULTS/$name.log" 2>&1 || true
  grep "^| [a-z]" "$RESULTS/$name.log" | grep -v "^| model" || echo "| $name | failed: see $name.log | | | | | |"
}
