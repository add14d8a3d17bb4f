"""Filter-summary (FSNet) benchmarks at ResNet-18 stage shapes, compression 9 and 18.

Per shape: dense nn.Conv2d (baseline), FilterSummaryConv2d on the direct path (1x1 conv + shifted sum), on the
gather path (build the filters, dense conv), the plain-PyTorch FSNet layer (int64 index gather, autograd's
scatter) and torch.compile of it; forward and forward+backward. Then the filter build alone (gather +
overlap-add backward) against the index-based plain version, at compression 9 (one thread per summary entry) and
64 (K/s = 64 terms per entry: a warp per entry on CUDA). Notes give multiplies per output element and the
roofline inputs (FLOPs, minimum bytes) of the dense conv and of the direct path. On CUDA also the shifted sum
alone, NCHW and channels_last, against a copy of its input (the bandwidth roof: it reads z and writes y).
"""
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from leanconv.nn import FilterSummaryConv2d  # noqa: E402
from leanconv.reference.filter_summary import PlainFilterSummaryConv2d  # noqa: E402
from harness import (  # noqa: E402
    Row, common_arguments, dtype_label, dtypes_of, measure_row, module_runner, parse_arguments, report)

IMAGENET_STAGES = [(64, 56), (128, 28), (256, 14), (512, 7)]
CIFAR_STAGES = [(64, 32), (128, 16), (256, 8), (512, 4)]


def roofline_note(channels, size, batch, element_bytes=4):
    dense_flops = 2 * batch * channels * channels * 9 * size * size
    direct_flops = 2 * batch * channels * channels * size * size + batch * channels * 9 * size * size
    act_bytes = 2 * batch * channels * size * size * element_bytes  # read x, write y
    return (f"mults/output dense {channels * 9}, direct {channels} (+9 adds); dense {dense_flops / 1e9:.2f} GFLOP, "
            f"direct {direct_flops / 1e9:.2f} GFLOP; min bytes {act_bytes / 2**20:.1f} MiB (+ z round trip "
            f"{2 * act_bytes / 2**20:.1f} MiB on the direct path)")


def layer_rows(device, batch, stages, compression, args, label, dtype=torch.float32):
    rows = []
    for channels, size in stages:
        factory = {"device": device, "dtype": dtype}
        direct = FilterSummaryConv2d(channels, channels, 3, padding=1, bias=False, compression=compression,
                                     path="direct", **factory)
        gather = FilterSummaryConv2d(channels, channels, 3, padding=1, bias=False, compression=compression,
                                     path="gather", **factory)
        gather.load_state_dict(direct.state_dict())
        dense = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False, **factory)
        plain = PlainFilterSummaryConv2d(direct.summary, channels, channels, 3, direct.summary_stride, 1, 1)
        x = torch.randn(batch, channels, size, size, **factory)
        variants = {"dense nn.Conv2d": dense, "leanconv direct": direct, "leanconv gather": gather,
                    "plain FSNet (index gather)": plain}
        if not args.no_compile:
            torch._dynamo.reset()  # a fresh compile per shape, not a fallback to eager past the recompile limit
            variants["torch.compile(plain FSNet)"] = torch.compile(plain)
        workload = f"{label} conv3x3 {channels}ch {size}x{size} b{batch} c{compression} {dtype_label(dtype)}"
        for mode in ("forward", "forward+backward"):
            row = Row("filter summary layer", workload, device, mode)
            if mode == "forward":
                row.notes = {"roofline": roofline_note(channels, size, batch, x.element_size())}
            rows.append(measure_row(row, {k: module_runner(m, x, mode) for k, m in variants.items()}, args.warmup,
                                    args.repeats))
    return rows


def shifted_sum_rows(device, batch, channels, size, args, dtype=torch.float32):
    rows = []
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
    inputs = {"NCHW": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    workload = f"3x3 step 2, {channels}ch {size}x{size} b{batch} {dtype_label(dtype)}"
    for mode in ("forward", "backward"):
        def runner(z, mode=mode):
            if mode == "forward":
                return lambda: torch.ops.leanconv.shifted_sum(z, 3, 3, 2, [1, 1], [1, 1], [1, 1])
            return lambda: torch.ops.leanconv.shifted_sum_backward(z, 3, 3, 2, [1, 1], [1, 1], [1, 1], [size, size])
        variants = {"x.clone() (copy: the roof)": lambda: x.clone()}
        variants.update({f"shifted sum {layout}": runner(z) for layout, z in inputs.items()})
        rows.append(measure_row(Row("shifted sum alone", workload, device, mode), variants, args.warmup,
                                args.repeats))
    return rows


def filter_build_rows(device, args, channel_counts=(256, 512), compressions=(9,)):
    rows = []
    for channels, compression in itertools.product(channel_counts, compressions):
        layer = FilterSummaryConv2d(channels, channels, 3, compression=compression, device=device)
        plain = PlainFilterSummaryConv2d(layer.summary, channels, channels, 3, layer.summary_stride)
        grad = torch.randn(channels, channels, 3, 3, device=device)

        def ours():
            torch.autograd.backward(layer.weight, grad)

        def plain_build():
            torch.autograd.backward(layer.summary[plain.index], grad)

        row = Row("filter build + overlap-add", f"{channels}x{channels}x3x3 c{compression}", device,
                  "forward+backward")
        rows.append(measure_row(row, {"plain (index gather, autograd scatter)": plain_build, "leanconv": ours},
                                args.warmup, args.repeats))
    return rows


def main():
    parser = common_arguments(__doc__)
    parser.add_argument("--batch-cpu", type=int, default=8)
    parser.add_argument("--batch-cuda", type=int, default=64)
    parser.add_argument("--layer", default=None, metavar="CxS",
                        help="only this layer (C channels, SxS images), e.g. 128x32, at --layer-batches")
    parser.add_argument("--layer-batches", default="16,64")
    args = parse_arguments(parser)
    rows = []
    if args.layer:
        channels, size = (int(v) for v in args.layer.split("x"))
        for device in args.devices.split(","):
            for batch in (int(b) for b in args.layer_batches.split(",")):
                rows += layer_rows(device, batch, [(channels, size)], 9, args, "layer", dtypes_of(args)[0])
        report(rows, args.out)
        return
    for device in args.devices.split(","):
        imagenet_batch = args.batch_cuda if device == "cuda" else args.batch_cpu
        cifar_batch = 128 if device == "cuda" else 2 * args.batch_cpu
        if args.quick:
            for dtype in dtypes_of(args):
                rows += layer_rows(device, imagenet_batch, IMAGENET_STAGES[1:2], 9, args, "ImageNet", dtype)
            if device == "cuda":
                rows += shifted_sum_rows(device, imagenet_batch, *IMAGENET_STAGES[1], args)
                rows += filter_build_rows(device, args, (128,), (9, 64))
            continue
        for dtype in dtypes_of(args):
            for compression in (9, 18):
                rows += layer_rows(device, imagenet_batch, IMAGENET_STAGES, compression, args, "ImageNet", dtype)
                rows += layer_rows(device, cifar_batch, CIFAR_STAGES, compression, args, "CIFAR", dtype)
        rows += filter_build_rows(device, args, compressions=(9, 64))
        if device == "cuda":
            for dtype in dtypes_of(args):
                for channels, size in IMAGENET_STAGES:
                    rows += shifted_sum_rows(device, imagenet_batch, channels, size, args, dtype)
    report(rows, args.out)


if __name__ == "__main__":
    main()
