#!/usr/bin/env bash
# The shared-weight family's results table on the real Fashion-MNIST (Debian's dataset-fashion-mnist): plain DACNN
# and DACNN-mix, each with and without regulators, against the same network with unshared convs (the dense ResNet
# of the same depth), one recipe for all (python -m leanconv.train defaults: SGD + Nesterov, one-cycle cosine,
# weight decay 5e-4, batch 128). Logs and the combined table go to RESULTS_DIR.
#
#   benchmarks/train_shared_fashion_mnist.sh RESULTS_DIR [EPOCHS] [TRAIN_SUBSET]
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:?usage: $0 RESULTS_DIR [EPOCHS] [TRAIN_SUBSET]}
EPOCHS=${2:-2}
SUBSET=${3:-12000}
PYTHON=${PYTHON:-python3}
mkdir -p "$RESULTS"
run() {  # NAME ARGS...
  local name=$1
  shift
  PYTHONPATH=python "$PYTHON" -m leanconv.train --epochs "$EPOCHS" --train-subset "$SUBSET" --blocks 2,2,2 "$@" \
    > "$RESULTS/$name.log" 2>&1 || true
  grep "^| dacnn" "$RESULTS/$name.log" || echo "| $name | failed: see $name.log | | | | |"
}
{
  echo "Fashion-MNIST (28x28 padded to 32x32, 10 classes), first $SUBSET training images, $EPOCHS epochs, test set 10,000; blocks 2,2,2."
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(nproc) CPU threads, torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
  echo
  echo "| model | learned params | dense-equivalent params | compression | test accuracy | time (s) |"
  echo "|---|---:|---:|---:|---:|---:|"
  run plain-dense --model dacnn_plain --conv dense --width 64
  run plain-shared --model dacnn_plain --conv shared --width 64
  run plain-shared-regulators --model dacnn_plain --conv shared --width 64 --regulators
  run mix-dense --model dacnn_mix --conv dense
  run mix-shared --model dacnn_mix --conv shared --rotate 1
  run mix-shared-regulators --model dacnn_mix --conv shared --rotate 1 --regulators
} | tee "$RESULTS/table.md"
