#!/usr/bin/env bash
# The multigrid family's results table on Fashion-MNIST: the MGIC ResNet-20 (ResNet-20's widths 16-32-64 and 3
# blocks a stage, each block one V-cycle) at group size 2 (its ~10x point) and 8, against the same layout with dense
# basic blocks and against the dense ResNet-20. Rows run one after another, one thread each.
#
#   benchmarks/train_multigrid_fashion_mnist.sh RESULTS_DIR [EPOCHS] [TRAIN_SUBSET]
source "$(dirname "$0")/fashion_mnist_common.sh" "$@"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
{
  header "MGIC ResNet-20 (widths 16-32-64, 3 blocks a stage); one thread"
  run mgic-resnet20-g2 --model mgic_resnet20 --conv multigrid --group-size 2 --coarsest 2 --workers 0 \
    --log-csv "$RESULTS/mgic-resnet20-g2.csv"
  run mgic-resnet20-g8 --model mgic_resnet20 --conv multigrid --group-size 8 --coarsest 8 --workers 0 \
    --log-csv "$RESULTS/mgic-resnet20-g8.csv"
  run mgic-resnet20-dense --model mgic_resnet20 --conv dense --workers 0 --log-csv "$RESULTS/mgic-resnet20-dense.csv"
  run resnet20-dense --model resnet20 --conv dense --workers 0 --log-csv "$RESULTS/resnet20-dense.csv"
} | tee "$RESULTS/table.md"
