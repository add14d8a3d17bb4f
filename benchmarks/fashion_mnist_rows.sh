# Sourced by the Fashion-MNIST table scripts (train_families_fashion_mnist.sh on the CPU, gpu_train.sh on a GPU):
# FAMILY_ROWS, the NAME|FLAGS (of python -m leanconv.train) of every family's rows, from the registry
# (leanconv.families: each family's table_rows, at its ~10x point where it reaches it on ResNet-20).
mapfile -t FAMILY_ROWS < <(PYTHONPATH="$(dirname "${BASH_SOURCE[0]}")/../python${PYTHONPATH:+:$PYTHONPATH}" \
  "${PYTHON:-python3}" -c 'from leanconv.families import table_rows
print("\n".join(f"{name}|{flags}" for name, flags in table_rows()))')
[ "${#FAMILY_ROWS[@]}" -gt 0 ] || { echo "fashion_mnist_rows.sh: no rows from leanconv.families" >&2; exit 1; }
