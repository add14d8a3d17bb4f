"""The aten (and leanconv) ops one training step of each Fashion-MNIST row dispatches, counted on the CPU: on a GPU
each is at least one kernel launch, so at these small sizes the count sets the step's time (benchmarks/gpu_train.sh
estimates its epochs from it).

    python benchmarks/gpu/count_ops.py [--batch 128] [NAME "FLAGS" ...]     (default: the family table's rows)
"""
import argparse
import os
import shlex
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from conv_params import build  # noqa: E402


class Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def family_rows():
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fashion_mnist_rows.sh")
    listed = subprocess.check_output(["bash", "-c", f'source "{script}"; printf "%s\\n" "${{FAMILY_ROWS[@]}}"'],
                                     text=True)
    return [tuple(line.split("|", 1)) for line in listed.splitlines() if line]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("rows", nargs="*", help="NAME FLAGS pairs (default: benchmarks/fashion_mnist_rows.sh)")
    args = p.parse_args()
    rows = list(zip(args.rows[::2], args.rows[1::2])) if args.rows else family_rows()
    print("| row | ops per training step (batch %d) |\n|---|---:|" % args.batch)
    for name, flags in rows:
        torch.manual_seed(0)
        model = build(flags, "fashion-mnist")
        # foreach: the optimizer's default on a GPU (a few multi-tensor kernels, not one loop per parameter).
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, foreach=True)
        x, y = torch.randn(args.batch, 1, 32, 32), torch.randint(0, 10, (args.batch,))
        step(model, opt, x, y)  # the first step builds the lazy state (momentum buffers)
        counter = Count()
        with counter:
            step(model, opt, x, y)
        print(f"| {name} | {counter.calls} |")


def step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


if __name__ == "__main__":
    main()
