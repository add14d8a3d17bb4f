"""Whole models: a training step of every family's ResNet-20 (the registry's table rows, the MGIC ResNet-20 at group
sizes 2 and 8) and ResNet-18 (CIFAR layout), against the dense model of the same layout, in one run.

A step is zero_grad, forward, cross-entropy, backward and an SGD (momentum 0.9) step on 3x32x32 images; the models
of one row group are timed round-robin (harness.measure_row), median of repeats after warm-up, ratios to the dense
model of the same run. Each row's notes give the model's learned parameters and the multiply-adds of one forward
(convolutions and linear layers, counted per layer from its shapes: a generated, shared or filter-summary conv does
the dense conv's work, an eigen conv its depthwise and pointwise stages, a V-cycle its grouped, restriction and
prolongation convs), so a time can be read against the work it does.

On CUDA the models run at the --batches (float32, and bfloat16 under autocast); on the CPU at --batch-cpu when
given (the GPU check's dry run), else at the --batches. --quick: the ResNet-20 rows at the first batch only.

    python benchmarks/bench_models.py [--batches 64,128] [--threads 2] [--devices cpu,cuda] [--dtypes float32]
                                      [--quick] [--out PREFIX]
"""
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import leanconv  # noqa: E402
from leanconv.families import table_rows  # noqa: E402
from leanconv.train.__main__ import MODELS, build_model, parse_args  # noqa: E402
from harness import Row, common_arguments, dtype_label, dtypes_of, measure_row, parse_arguments, report  # noqa: E402

MGIC_G8 = ("mgic-resnet20-g8", "--model mgic_resnet20 --conv multigrid --group-size 8 --coarsest 8")
def resnet18_rows():
    """Each family's first table row (leanconv.families) on the CIFAR ResNet-18 instead of ResNet-20: every family
    whose table model is ResNet-20, read from the registry (the multigrid family's model is its own MGIC ResNet)."""
    rows, seen = [], set()
    for name, flags in table_rows():
        family = parse_args(flags.split()).conv
        if flags.startswith("--model resnet20 ") and family not in seen:
            seen.add(family)
            rows.append((name.replace("resnet20", "resnet18_cifar"),
                         flags.replace("--model resnet20 ", "--model resnet18_cifar ", 1)))
    return rows


def model_of(flags: str) -> nn.Module:
    args = parse_args(flags.split())
    model, _ = build_model(args, num_classes=10, in_channels=3)
    return model


def forward_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward of ``model(x)``: leanconv.nn.multiply_adds (each layer reports its own)."""
    return leanconv.nn.multiply_adds(model, x)


def step_runner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    def step():
        opt.zero_grad(set_to_none=True)
        # float32 weights throughout; a lower precision is the training recipe's autocast (--amp).
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def rows_for(group: str, models, batch: int, device: str, dtype: torch.dtype, args):
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    built = {name: model_of(flags).to(device).train() for name, flags in models}
    mode = f"train step, {args.threads} threads" if device == "cpu" else "train step"
    row = Row("model training step", f"{group} batch {batch} 3x32x32 {dtype_label(dtype)}", device, mode)
    measure_row(row, {name: step_runner(m, x, y, dtype) for name, m in built.items()}, args.warmup, args.repeats)
    row.notes = {name: f"{sum(p.numel() for p in m.parameters()):,} learned params, "
                       f"{forward_macs(m, x[:1]) / 1e6:.1f} M forward multiply-adds per image"
                 for name, m in built.items()}
    return row


def main():
    parser = common_arguments(__doc__)
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-cpu", type=int, default=None, help="the CPU's batch, in place of --batches")
    args = parse_arguments(parser)
    torch.set_num_threads(args.threads)
    resnet20 = list(table_rows()) + [MGIC_G8]
    rows = []
    for device in args.devices.split(","):
        batches = [int(b) for b in args.batches.split(",")]
        if device == "cpu" and args.batch_cpu is not None:
            batches = [args.batch_cpu]
        for batch in batches[: 1 if args.quick else None]:
            for dtype in dtypes_of(args):
                rows.append(rows_for("ResNet-20 of each family", resnet20, batch, device, dtype, args))
                if not args.quick:
                    rows.append(rows_for("ResNet-18 (CIFAR) of each family", resnet18_rows(), batch, device, dtype,
                                         args))
    report(rows, args.out)


if __name__ == "__main__":
    assert set(MODELS) >= {"resnet20", "mgic_resnet20", "resnet18_cifar"}
    main()
