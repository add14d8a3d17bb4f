"""Shared-weight (DACNN) benchmarks.

- The block epilogue: PyTorch's BatchNorm2d + add + ReLU (baseline), torch.compile of it, and
  leanconv.nn.FusedBatchNorm2d, training-mode forward+backward (and forward) at CIFAR shapes (N=128 on the GPU,
  --batch-cpu on the CPU; C=64-256 at 32x32-8x8), NCHW and, on the GPU, channels_last. Notes: minimum bytes moved
  by each, and the achieved bandwidth against a plain copy's measured in the same run (the memory-bandwidth roof).
- A DACNN-mix training step (rotation on) against the same network in the released code's plain-PyTorch style
  (leanconv.reference.dacnn: activation rotation by torch.cat, separate BN / add / ReLU modules); activation bytes
  autograd saves for each. (The released code itself: benchmarks/bench_released.py.)
- A plain DACNN training step against the same network with unshared convs.
- Folded inference (leanconv.shared.fold) against the eval-mode reference model and the unfolded model, batch 1
  and 64.

On the CPU, glibc's malloc returns freed feature-map-sized blocks to the system, so every fresh output page-faults
(several ms per 8 MiB in this VM), for PyTorch's ops and leanconv's alike; run it also with
MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000 (blocks kept, as a caching allocator keeps
them) to see the kernels rather than the page faults.
"""
import copy
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import leanconv  # noqa: E402
from leanconv.nn import FusedBatchNorm2d  # noqa: E402
from leanconv.reference.dacnn import ReferenceDACNN  # noqa: E402
from harness import (  # noqa: E402
    Row, common_arguments, dtype_label, dtypes_of, measure_row, parse_arguments, report, saved_activation_mib)

CIFAR_SHAPES = [(64, 32), (128, 16), (256, 8)]


class PlainTail(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x, residual):
        return F.relu(self.bn(x) + residual)


class FusedTail(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = FusedBatchNorm2d(channels, relu=True)

    def forward(self, x, residual):
        return self.bn(x, residual)


def tail_runner(module, x, residual, mode):
    if mode == "forward":
        def run():
            with torch.no_grad():
                module(x, residual)
        return run
    xg, rg = x.clone().requires_grad_(), residual.clone().requires_grad_()
    grad = torch.randn_like(x)  # a dense upstream gradient, as a conv's backward gives (not .sum()'s expanded one)

    def run():
        xg.grad = rg.grad = None
        module(xg, rg).backward(grad)
    return run


def tensor_moves(mode):
    """Feature-map-sized reads + writes, (plain PyTorch, fused), at the minimum each implementation needs.
    Forward (training): plain = BN (stats read, read + write) + add (2 reads + write) + ReLU (read + write) = 8;
    fused = stats read + (x, residual) read + write = 4. Backward: plain = ReLU backward (2 reads + write) + BN
    backward (reduction: 2 reads; then 2 reads + write) = 8; fused = reduction reading grad, output, x and writing
    the residual's gradient (4) + grad_x from it and x (3) = 7."""
    return (8, 4) if mode == "forward" else (16, 11)


def epilogue_rows(device, batch, args, dtype, channels_last=False):
    rows = []
    layout = " channels_last" if channels_last else ""
    for channels, size in CIFAR_SHAPES[1:2] if args.quick else CIFAR_SHAPES:
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        residual = torch.randn_like(x)
        # The roof: a plain copy of the feature map (one read, one write), timed in the same run.
        copy_row = measure_row(Row("memory copy", f"{channels}ch {size}x{size} b{batch}{layout}", device, "forward"),
                               {"x.clone()": lambda: x.clone()}, args.warmup, args.repeats)
        copy_ms = copy_row.measurements[0].median_ms
        bandwidth = 2 * x.numel() * x.element_size() / (copy_ms / 1e3)
        plain = PlainTail(channels).to(device)
        fused = FusedTail(channels).to(device)
        variants = {"PyTorch BN + add + ReLU": plain}
        if not args.no_compile:
            torch._dynamo.reset()
            variants["torch.compile(BN + add + ReLU)"] = torch.compile(copy.deepcopy(plain))
        variants["leanconv FusedBatchNorm2d"] = fused
        for mode in ("forward", "forward+backward"):
            row = Row("block epilogue (training)",
                      f"CIFAR {channels}ch {size}x{size} b{batch} {dtype_label(dtype)}{layout}", device, mode)
            measure_row(row, {k: tail_runner(m, x, residual, mode) for k, m in variants.items()}, args.warmup,
                        args.repeats)
            plain_moves, fused_moves = tensor_moves(mode)
            tensor_bytes = x.numel() * x.element_size()
            fused_ms = row.measurements[-1].median_ms
            roof_ms = fused_moves * tensor_bytes / bandwidth * 1e3
            row.notes = {"bytes": f"min bytes plain {plain_moves * tensor_bytes / 2**20:.0f} MiB, fused "
                                  f"{fused_moves * tensor_bytes / 2**20:.0f} MiB; copy bandwidth "
                                  f"{bandwidth / 1e9:.1f} GB/s; fused at roof {roof_ms:.2f} ms, measured "
                                  f"{fused_ms:.2f} ms ({roof_ms / fused_ms:.0%} of roof)"}
            rows.append(row)
    return rows


def step_runner(model, x, target):
    def run():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), target).backward()
    return run


def model_rows(device, batch, args):
    rows = []
    x = torch.randn(batch, 3, 32, 32, device=device)
    target = torch.randint(0, 10, (batch,), device=device)
    mix = leanconv.models.dacnn("mix", rotate=1, num_classes=10).to(device)
    reference = ReferenceDACNN(mix).to(device)
    row = Row("DACNN-mix training step", f"CIFAR 32x32 b{batch} rotate=1", device, "forward+backward")
    measure_row(row, {"plain-PyTorch form (cat rotation, BN/add/ReLU modules)": step_runner(reference, x, target),
                      "leanconv dacnn('mix')": step_runner(mix, x, target)}, args.warmup, args.model_repeats)
    row.notes = {"saved activations": f"reference {saved_activation_mib(reference, x):.0f} MiB, leanconv "
                                      f"{saved_activation_mib(mix, x):.0f} MiB"}
    rows.append(row)
    if args.quick:
        return rows
    plain = leanconv.models.dacnn("plain", width=args.plain_width, num_classes=10).to(device)
    unshared = ReferenceDACNN(plain, unshared=True).to(device)
    row = Row("plain DACNN training step", f"CIFAR 32x32 b{batch} width {args.plain_width}", device,
              "forward+backward")
    measure_row(row, {"unshared convs (plain PyTorch)": step_runner(unshared, x, target),
                      "leanconv dacnn('plain')": step_runner(plain, x, target)}, args.warmup, args.model_repeats)
    rows.append(row)
    for _ in range(2):
        plain(x)  # running statistics away from their initial values
    plain.eval()
    eval_reference = ReferenceDACNN(plain).to(device).eval()
    folded = leanconv.shared.fold(copy.deepcopy(plain))
    for infer_batch in (1, 64):
        xb = torch.randn(infer_batch, 3, 32, 32, device=device)
        row = Row("folded inference", f"plain DACNN width {args.plain_width} 32x32 b{infer_batch}", device, "forward")

        def infer(m):
            def run():
                with torch.no_grad():
                    m(xb)
            return run
        measure_row(row, {"eval-mode reference model": infer(eval_reference), "leanconv eval (unfolded)": infer(plain),
                          "leanconv.shared.fold": infer(folded)}, args.warmup, args.model_repeats)
        rows.append(row)
    return rows


def main():
    parser = common_arguments(__doc__)
    parser.add_argument("--batch-cpu", type=int, default=32, help="batch of the epilogue rows on the CPU")
    parser.add_argument("--model-batch-cpu", type=int, default=16, help="training-step batch on the CPU")
    parser.add_argument("--model-repeats", type=int, default=5)
    parser.add_argument("--plain-width", type=int, default=128)
    args = parse_arguments(parser)
    rows = []
    for device in args.devices.split(","):
        on_cuda = device == "cuda"
        for dtype in dtypes_of(args):
            rows += epilogue_rows(device, 128 if on_cuda else args.batch_cpu, args, dtype)
        if on_cuda:  # the NHWC passes (channel tiles, row chunks), float32
            rows += epilogue_rows(device, 128, args, torch.float32, channels_last=True)
        rows += model_rows(device, 128 if on_cuda else args.model_batch_cpu, args)
    report(rows, args.out)


if __name__ == "__main__":
    main()
