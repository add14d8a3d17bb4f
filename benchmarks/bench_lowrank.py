"""Low-rank (DeCEF) benchmarks at CIFAR ResNet-20/56 and ImageNet ResNet-18 stage shapes, R in {2, 4, 6}.

Per shape: dense nn.Conv2d (baseline), the plain-PyTorch two-op layer (depthwise conv with channel multiplier R,
then 1x1 conv), torch.compile of it, EigenConv2d on the fused path, on the materialised path, and on the path
'auto' chooses; forward and forward+backward. Notes give the roofline inputs: multiply-adds and minimum bytes
of the dense conv, of the fused kernel and of the two-op version (which writes and reads the C_in*R
intermediate). Then a whole ResNet-18 training step: time and the activation bytes autograd saves
(saved-tensor hooks, any device), fused against two-op.
"""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from leanconv.models import resnet  # noqa: E402
from leanconv.nn import EigenConv2d  # noqa: E402
from leanconv.reference.lowrank import PlainEigenConv2d, plain_copy  # noqa: E402
from harness import (  # noqa: E402
    Row, common_arguments, dtype_label, dtypes_of, measure_row, module_runner, parse_arguments, report,
    saved_activation_mib)

CIFAR_STAGES = [(16, 32), (32, 16), (64, 8)]                      # batch 128
IMAGENET_STAGES = [(64, 56), (128, 28), (256, 14), (512, 7)]      # batch 64
RANKS = (2, 4, 6)


def roofline_note(channels, size, batch, rank, element_bytes=4):
    pixels = batch * size * size
    dense = pixels * channels * channels * 9
    fused = pixels * (channels * rank * 9 + channels * channels * rank)
    act = 2 * pixels * channels * element_bytes               # read x, write y
    mid = 2 * pixels * channels * rank * element_bytes        # two-op: write z, read it back
    return (f"MACs dense {dense / 1e9:.3f} G, factored {fused / 1e9:.3f} G ({fused / dense:.2f}x); min bytes fused "
            f"{act / 2**20:.1f} MiB, two-op {(act + mid) / 2**20:.1f} MiB")


def layer_rows(device, batch, stages, args, label, ranks=RANKS, dtype=torch.float32):
    rows = []
    for channels, size in stages:
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
        dense = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False, device=device, dtype=dtype)
        for rank in ranks:
            fused = EigenConv2d(channels, channels, 3, padding=1, bias=False, rank=rank, path="fused", device=device,
                                dtype=dtype)
            materialized = copy.deepcopy(fused)
            materialized.path = "materialized"
            auto = copy.deepcopy(fused)
            auto.path = "auto"
            plain = PlainEigenConv2d(fused)
            variants = {"dense nn.Conv2d": dense, "plain two-op": plain}
            if not args.no_compile:
                torch._dynamo.reset()  # a fresh compile per shape
                variants["torch.compile(plain two-op)"] = torch.compile(plain)
            variants.update({"leanconv fused": fused, "leanconv materialized": materialized,
                             f"leanconv auto ({auto.chosen_path(device)})": auto})
            workload = f"{label} conv3x3 {channels}ch {size}x{size} b{batch} R{rank} {dtype_label(dtype)}"
            for mode in ("forward", "forward+backward"):
                row = Row("eigen conv layer", workload, device, mode)
                if mode == "forward":
                    row.notes = {"roofline": roofline_note(channels, size, batch, rank, x.element_size())}
                rows.append(measure_row(row, {k: module_runner(m, x, mode) for k, m in variants.items()}, args.warmup,
                                        args.repeats))
    return rows


def model_rows(device, batch, size, args):
    rows = []
    for rank in (4,):
        fused = resnet.resnet18(conv="lowrank", rank=rank, path="fused").to(device)
        plain = plain_copy(copy.deepcopy(fused))
        x = torch.randn(batch, 3, size, size, device=device)
        row = Row("ResNet-18 training step", f"{size}x{size} b{batch} R{rank}", device, "forward+backward")
        row.notes = {"saved activations": f"two-op {saved_activation_mib(plain, x):.1f} MiB, fused "
                                          f"{saved_activation_mib(fused, x):.1f} MiB"}
        rows.append(measure_row(row, {"plain two-op": module_runner(plain, x, "forward+backward"),
                                      "leanconv fused": module_runner(fused, x, "forward+backward")}, args.warmup, args.repeats))
    return rows


def main():
    parser = common_arguments(__doc__)
    parser.add_argument("--batch-cpu", type=int, default=16, help="ImageNet-shape batch on the CPU (CIFAR: 4x)")
    args = parse_arguments(parser)
    rows = []
    for device in args.devices.split(","):
        on_cuda = device == "cuda"
        imagenet_batch = 64 if on_cuda else args.batch_cpu
        cifar_batch = 128 if on_cuda else 4 * args.batch_cpu
        if args.quick:
            for dtype in dtypes_of(args):
                rows += layer_rows(device, imagenet_batch, IMAGENET_STAGES[1:2], args, "ImageNet", (4,), dtype)
            continue
        for dtype in dtypes_of(args):
            rows += layer_rows(device, cifar_batch, CIFAR_STAGES, args, "CIFAR", dtype=dtype)
            rows += layer_rows(device, imagenet_batch, IMAGENET_STAGES, args, "ImageNet", dtype=dtype)
        rows += model_rows(device, imagenet_batch if on_cuda else 8, 224, args)
    report(rows, args.out)


if __name__ == "__main__":
    main()
