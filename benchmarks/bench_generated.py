"""Generated-weight (RPG) benchmarks.

1. One conv layer at ResNet-18 stage shapes: dense nn.Conv2d (baseline) vs GeneratedConv2d vs the
   plain-PyTorch RPG layer (int64 index gather + sign mask, as the paper's code) vs torch.compile of it;
   forward and forward+backward. The ring holds a tenth of the layer's weights.
2. All of a ResNet-18's generated weights from one ring (N = 2,359,296, one 512->512 3x3 conv, as the
   paper): generating them and reducing their gradient into the ring, leanconv vs the plain-PyTorch way
   (index gather + sign mask, autograd's scatter); index bytes of each.
3. On CUDA: the share of that generation + reduction in a ResNet-18 training step.
4. On CUDA: the ring gradient of one 512->512 3x3 layer, deterministic (sorted by ring entry) against the atomic
   scatter, in a ResNet-18-sized sequence and far into a sequence of 2^33 (the deterministic time must not grow
   with the sequence's length; target: at most twice the atomic time).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import leanconv  # noqa: E402
from leanconv.nn import GeneratedConv2d, ParameterRing  # noqa: E402
from leanconv.reference.generated import PlainGeneratedConv2d, ring_indices_and_signs  # noqa: E402
from harness import Row, common_arguments, dtype_label, dtypes_of, measure_row, parse_arguments, report  # noqa: E402

STAGES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # ResNet-18 3x3 convs: channels, spatial size


def layer_rows(device, batch, stages, args, dtype=torch.float32):
    rows = []
    for channels, size in stages:
        numel = channels * channels * 9
        holder = torch.nn.Module()  # the model that owns the ring
        holder.ring = ring = ParameterRing(numel // 10, device=device, dtype=dtype)
        conv = GeneratedConv2d(ring, channels, channels, 3, padding=1, bias=False)
        dense = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False, device=device, dtype=dtype)
        plain = PlainGeneratedConv2d(ring.ring, 0, ring._total, conv._offset, channels, channels, 3, 1, 1, conv.scale)
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype)
        variants = {"dense nn.Conv2d": dense, "leanconv GeneratedConv2d": conv, "plain RPG (index+sign)": plain}
        if not args.no_compile:
            torch._dynamo.reset()  # a fresh compile per shape, not a fallback to eager past the recompile limit
            variants["torch.compile(plain RPG)"] = torch.compile(plain)
        workload = f"conv3x3 {channels}ch {size}x{size} batch {batch} {dtype_label(dtype)}"
        index_bytes = plain.index.numel() * plain.index.element_size() + plain.sign.numel() * plain.sign.element_size()
        for mode in ("forward", "forward+backward"):
            row = Row("generated layer", workload, device, mode)
            row.notes = {"index bytes": f"leanconv 0, plain {index_bytes:,}"} if mode == "forward" else {}

            def runner(module, mode=mode):
                if mode == "forward":
                    def run():
                        with torch.no_grad():
                            module(x)
                else:
                    xg = x.clone().requires_grad_()

                    def run():
                        module(xg).sum().backward()
                return run

            rows.append(measure_row(row, {k: runner(m) for k, m in variants.items()}, args.warmup, args.repeats))
    return rows


def resnet18_generation_row(device, args):
    model = leanconv.models.resnet18(conv="generated", ring_size=2359296).to(device)
    ring = model.rings["model"]
    layers = [m for m in model.modules() if isinstance(m, GeneratedConv2d)]
    total = ring._total
    grads = [torch.randn(m.weight_shape, device=device) for m in layers]
    index, sign = ring_indices_and_signs(ring._seed, total, ring.size)
    index, sign = index.to(device), sign.to(device)
    scales = torch.cat([torch.full((m.weight.numel(),), m.scale, device=device) for m in layers])
    sign = sign * scales
    sizes = [g.numel() for g in grads]
    flat_grad = torch.cat([g.flatten() for g in grads])

    def leanconv_way():
        weights = [m.weight for m in layers]
        torch.autograd.backward(weights, grads)

    def plain_way():
        w = ring.ring[index] * sign
        parts = torch.split(w, sizes)
        torch.autograd.backward(parts, list(torch.split(flat_grad, sizes)))

    row = Row("ResNet-18 generation+reduction", f"T={total:,} N={ring.size:,}", device, "forward+backward")
    row.notes = {"index bytes": f"leanconv 0, plain {index.numel() * 8 + sign.numel() * sign.element_size():,}"}
    measure_row(row, {"plain (gather + sign, autograd scatter)": plain_way, "leanconv": leanconv_way},
                args.warmup, args.repeats)
    return row, model, leanconv_way


def training_step_row(device, model, generation, batch, args):
    model.train()
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    row = Row("ResNet-18 training step", f"batch {batch} 224x224", device, "train step")
    return measure_row(row, {"full training step": step, "generation+reduction alone": generation},
                       args.warmup, args.repeats)


def deterministic_backward_rows(device, args):
    numel, ring_size = 512 * 512 * 9, 2359296  # the ring of section 2: runs of about one term per entry
    grad = torch.randn(numel, device=device)
    rows = []
    for label, total in (("T=11,678,912 (ResNet-18)", 11678912), ("T=2^33", 1 << 33)):
        offset = total - 2 * numel

        def backward(deterministic, total=total, offset=offset):
            def run():
                previous = torch.are_deterministic_algorithms_enabled()
                torch.use_deterministic_algorithms(deterministic)
                try:
                    torch.ops.leanconv.generate_weights_backward(grad, ring_size, 0, total, offset, 1.0)
                finally:
                    torch.use_deterministic_algorithms(previous)
            return run

        row = Row("generated backward, deterministic vs atomic", f"512x512x3x3 layer, N={ring_size:,}, {label}",
                  device, "backward")
        row.notes = {"target": "deterministic at most 2x atomic"}
        rows.append(measure_row(row, {"atomic scatter": backward(False), "deterministic (sorted)": backward(True)},
                                args.warmup, args.repeats))
    return rows


def main():
    parser = common_arguments(__doc__)
    parser.add_argument("--batch-cpu", type=int, default=16)
    parser.add_argument("--batch-cuda", type=int, default=64)
    args = parse_arguments(parser)
    rows = []
    for device in args.devices.split(","):
        batch = args.batch_cuda if device == "cuda" else args.batch_cpu
        stages = STAGES[1:2] if args.quick else STAGES
        if device == "cuda":  # first: a second or two, and the row a window must not lose to the time limit
            rows += deterministic_backward_rows(device, args)
        for dtype in dtypes_of(args):
            rows += layer_rows(device, batch, stages, args, dtype)
        gen_row, model, generation = resnet18_generation_row(device, args)
        rows.append(gen_row)
        if device == "cuda":
            rows.append(training_step_row(device, model, generation, 64 if args.quick else 256, args))
    report(rows, args.out)


if __name__ == "__main__":
    main()
