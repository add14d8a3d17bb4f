"""Multigrid (MGIC) benchmarks: the small-group grouped conv and the whole MultigridBlock.

Grouped conv rows, at the MGIC ResNet's CIFAR and ImageNet level shapes, group widths g in {8, 16, 32}, 3x3 (the
levels' convs) and 1x1 (restriction / prolongation), NCHW and channels_last: nn.Conv2d(groups=C/g) (baseline),
leanconv's kernel, and GroupedConv2d on the path the per-shape choice takes; forward and forward+backward. Notes
give the multiply-adds and the minimum bytes (input, weight and output once; the backward reads the input and the
output gradient and writes the input and weight gradients), for the roofline.

Block rows: MultigridBlock (R x once, fused corrections and BatchNorm tails) against the same block composed of
plain PyTorch modules as in the authors' code (R x twice; leanconv.reference.multigrid), and torch.compile of that;
forward+backward in training mode, with the activation bytes autograd saves.
"""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from leanconv.nn import GroupedConv2d, MultigridBlock  # noqa: E402
from leanconv.reference.multigrid import ReferenceMultigrid  # noqa: E402
from harness import (  # noqa: E402
    Row, common_arguments, dtype_label, dtypes_of, measure_row, module_runner, parse_arguments, report,
    saved_activation_mib)

# (channels, image size) of the levels with grouped convs: MGIC ResNet widths 64..256 and their halves.
CIFAR_LEVELS = [(64, 16), (128, 8), (256, 4)]          # 32x32 input
IMAGENET_LEVELS = [(64, 28), (128, 14), (256, 7)]      # 224x224 input, after the stem and max-pool
GROUP_WIDTHS = (8, 16, 32)


def roofline_note(channels, size, batch, group_width, kernel, element_bytes):
    pixels = batch * size * size
    macs = pixels * channels * group_width * kernel * kernel
    feature_map = pixels * channels * element_bytes
    weight = channels * group_width * kernel * kernel * element_bytes
    forward = 2 * feature_map + weight
    backward = 4 * feature_map + 2 * weight
    return (f"MACs {macs / 1e9:.3f} G ({macs / (forward / element_bytes):.1f} per element moved); min bytes forward "
            f"{forward / 2**20:.1f} MiB, backward {backward / 2**20:.1f} MiB")


def grouped_rows(device, batch, levels, args, label, dtype, group_widths=GROUP_WIDTHS, kernels=(3, 1)):
    rows = []
    for channels, size in levels:
        for channels_last in (False, True):
            x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            for g in group_widths:
                for kernel in kernels:
                    groups = channels // g
                    make = lambda path: GroupedConv2d(channels, channels, kernel, padding=kernel // 2, groups=groups,  # noqa: E731
                                                      bias=False, path=path, device=device, dtype=dtype)
                    aten = make("aten")
                    kernel_conv, auto = make("kernel"), make("auto")
                    for m in (kernel_conv, auto):
                        m.load_state_dict(aten.state_dict())
                    chosen = "kernel" if auto.uses_kernel(x) else "aten"
                    variants = {"nn.Conv2d(groups)": aten, "leanconv kernel": kernel_conv,
                                f"GroupedConv2d auto ({chosen})": auto}
                    layout = "channels_last" if channels_last else "nchw"
                    workload = (f"{label} {kernel}x{kernel} {channels}ch g{g} {size}x{size} b{batch} "
                                f"{dtype_label(dtype)} {layout}")
                    for mode in ("forward", "forward+backward"):
                        row = Row("grouped conv", workload, device, mode)
                        if mode == "forward":
                            row.notes = {"roofline": roofline_note(channels, size, batch, g, kernel, x.element_size())}
                        rows.append(measure_row(row, {k: module_runner(m, x, mode) for k, m in variants.items()},
                                                args.warmup, args.repeats))
    return rows


def block_rows(device, batch, levels, args, label, dtype, group_size=32, coarsest=32):
    rows = []
    for channels, size in levels:
        torch.manual_seed(0)
        block = MultigridBlock(channels, channels, group_size=group_size, coarsest=coarsest).to(device, dtype)
        reference = ReferenceMultigrid(copy.deepcopy(block)).to(device, dtype)
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
        variants = {"authors' composition (plain PyTorch)": reference}
        if not args.no_compile:
            torch._dynamo.reset()
            variants["torch.compile(authors' composition)"] = torch.compile(copy.deepcopy(reference))
        variants["leanconv MultigridBlock"] = block
        workload = f"{label} {channels}ch {size}x{size} b{batch} g{group_size} levels {block.levels} {dtype_label(dtype)}"
        row = Row("MultigridBlock", workload, device, "forward+backward")
        row.notes = {"saved activations": f"authors' {saved_activation_mib(reference, x):.1f} MiB, leanconv "
                                          f"{saved_activation_mib(block, x):.1f} MiB"}
        rows.append(measure_row(row, {k: module_runner(m, x, "forward+backward") for k, m in variants.items()},
                                args.warmup, args.repeats))
    return rows


def main():
    parser = common_arguments(__doc__)
    parser.add_argument("--batch-cpu", type=int, default=16, help="ImageNet-shape batch on the CPU (CIFAR: 2x)")
    parser.add_argument("--blocks-only", action="store_true")
    args = parse_arguments(parser)
    rows = []
    for device in args.devices.split(","):
        on_cuda = device == "cuda"
        imagenet_batch = 64 if on_cuda else args.batch_cpu
        cifar_batch = 128 if on_cuda else 2 * args.batch_cpu
        for dtype in dtypes_of(args):
            if args.quick:
                rows += grouped_rows(device, imagenet_batch, IMAGENET_LEVELS[:1], args, "ImageNet", dtype, (16,), (3,))
                rows += block_rows(device, imagenet_batch, IMAGENET_LEVELS[1:2], args, "ImageNet", dtype)
                continue
            if not args.blocks_only:
                rows += grouped_rows(device, cifar_batch, CIFAR_LEVELS, args, "CIFAR", dtype)
                rows += grouped_rows(device, imagenet_batch, IMAGENET_LEVELS, args, "ImageNet", dtype)
            rows += block_rows(device, cifar_batch, CIFAR_LEVELS, args, "CIFAR", dtype)
            rows += block_rows(device, imagenet_batch, IMAGENET_LEVELS, args, "ImageNet", dtype)
    report(rows, args.out)


if __name__ == "__main__":
    main()
