#!/usr/bin/env bash
# The shared-weight family's results table on Fashion-MNIST: plain DACNN and DACNN-mix, each with and without
# regulators, against the same network with unshared convs (the dense ResNet of the same depth); blocks 2,2,2.
#
#   benchmarks/train_shared_fashion_mnist.sh RESULTS_DIR [EPOCHS] [TRAIN_SUBSET]
source "$(dirname "$0")/fashion_mnist_common.sh" "$@"
{
  header "blocks 2,2,2"
  run plain-dense --model dacnn_plain --conv dense --width 64 --blocks 2,2,2
  run plain-shared --model dacnn_plain --conv shared --width 64 --blocks 2,2,2
  run plain-shared-regulators --model dacnn_plain --conv shared --width 64 --blocks 2,2,2 --regulators
  run mix-dense --model dacnn_mix --conv dense --blocks 2,2,2
  run mix-shared --model dacnn_mix --conv shared --rotate 1 --blocks 2,2,2
  run mix-shared-regulators --model dacnn_mix --conv shared --rotate 1 --blocks 2,2,2 --regulators
} | tee "$RESULTS/table.md"
