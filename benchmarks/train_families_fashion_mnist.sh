#!/usr/bin/env bash
# Every family against the dense ResNet-20 on Fashion-MNIST, each at about 10x fewer conv parameters where the family
# reaches it on ResNet-20 (the low-rank family also at about 2/3 of the dense conv parameters), one recipe for all
# (the python -m leanconv.train defaults). Two rows train at a time, one CPU thread each (on 2 cores that trains
# about 1.5x more images per second than one row on two threads); images/s is therefore per single thread.
# Each row writes NAME.log and NAME.csv (per epoch); the table goes to table.md, the rows' conv-parameter counts to
# conv_params.md, the PNG to accuracy.png (its points to points.md).
#
#   benchmarks/train_families_fashion_mnist.sh RESULTS_DIR [EPOCHS] [TRAIN_SUBSET (0: all 60,000)]
source "$(dirname "$0")/fashion_mnist_common.sh" "$@"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
source "$(dirname "$0")/fashion_mnist_rows.sh"
stream_of() {  # NAME: stream 1 takes the two slowest rows (multigrid, shared), stream 0 the rest
  case $1 in *mgic*|*shared*) echo 1 ;; *) echo 0 ;; esac
}
stream() {  # STREAM: its rows, one after another
  local row name
  for row in "${FAMILY_ROWS[@]}"; do
    name=${row%%|*}
    [[ $(stream_of "$name") == "$1" ]] || continue
    # shellcheck disable=SC2086
    run "$name" ${row#*|} --workers 0 --log-csv "$RESULTS/$name.csv" |
      sed "s/^| [^|]* |/| $name |/" > "$RESULTS/$name.row"  # the row named as its files are
  done
}
stream 0 & stream 1 & wait
{
  header "ResNet-20 of each family; two rows at a time, one thread each"
  for row in "${FAMILY_ROWS[@]}"; do cat "$RESULTS/${row%%|*}.row"; done
} | tee "$RESULTS/table.md"
rm -f "$RESULTS"/*.row
conv_rows=()  # NAME FLAGS pairs: the conv parameters of each row
for row in "${FAMILY_ROWS[@]}"; do conv_rows+=("${row%%|*}" "${row#*|}"); done
PYTHONPATH=python "$PYTHON" benchmarks/conv_params.py "${conv_rows[@]}" | tee "$RESULTS/conv_params.md"
PYTHONPATH=python "$PYTHON" -m leanconv.train.report "$RESULTS"/*.csv --out "$RESULTS/accuracy.png" > "$RESULTS/points.md" || true
