#!/usr/bin/env bash
# The multigrid family's results table on Fashion-MNIST: the MGIC ResNet (the authors' defaults: widths
# 32-64-128-256, blocks 1-2-2-2, group size 32, coarsest 32) against the same layout with dense basic blocks, and
# ResNet-20 with conv="multigrid" (group size 8, coarsest 8: its widths are 16-64) against the dense ResNet-20.
#
#   benchmarks/train_multigrid_fashion_mnist.sh RESULTS_DIR [EPOCHS] [TRAIN_SUBSET]
source "$(dirname "$0")/fashion_mnist_common.sh" "$@"
{
  header "MGIC ResNet: group size 32, coarsest 32; ResNet-20: group size 8, coarsest 8"
  run mgic-multigrid --model mgic_resnet --conv multigrid
  run mgic-dense --model mgic_resnet --conv dense
  run resnet20-multigrid --model resnet20 --conv multigrid --group-size 8 --coarsest 8
  run resnet20-dense --model resnet20 --conv dense
} | tee "$RESULTS/table.md"
