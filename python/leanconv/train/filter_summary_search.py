"""Differentiable FSNet search on Fashion-MNIST: `python -m leanconv.train.filter_summary_search`.

Every 3x3 block conv of a CIFAR ResNet-20 becomes a DifferentiableFilterSummaryConv2d over candidate
compressions; weights and architecture parameters are trained alternately (first-order DARTS, see
leanconv.filter_summary), with a penalty on the expected parameter count. The layers are then discretised to their
argmax compression, fine-tuned briefly, and the chosen compressions and test accuracy are printed.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from .._extras import exit_on_missing_extra

with exit_on_missing_extra():  # (the training extra: a missing one is a line, even for --help)
    from .. import filter_summary as tools
    from ..nn._convs import DenseConvs
    from ..models.resnet import CifarResNet
    from ..nn import FilterSummaryConv2d, parameter_counts
    from ._cli import check_subset, count_at_least, fashion_mnist_or_exit, first_images
    from .loop import evaluate


class DifferentiableConvs(DenseConvs):
    def __init__(self, compressions):
        self.compressions = compressions

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope=(0, 0)):
        if kernel_size == 1:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return tools.DifferentiableFilterSummaryConv2d(in_channels, out_channels, kernel_size, stride, padding,
                                                      bias=False, compressions=self.compressions)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train.filter_summary_search", description=__doc__)
    p.add_argument("--compressions", default="4,9,18", help="candidate compression ratios")
    p.add_argument("--train-subset", type=count_at_least(1), default=4000,
                   help="training images; as many more are the held-out images of the architecture steps")
    p.add_argument("--search-steps", type=count_at_least(0), default=150)
    p.add_argument("--finetune-steps", type=count_at_least(0), default=100)
    p.add_argument("--size-penalty", type=float, default=2e-6)
    p.add_argument("--batch-size", type=count_at_least(1), default=64)
    args = p.parse_args(argv)
    check_subset("--train-subset", args.train_subset, args.batch_size)
    try:
        compressions = tuple(float(c) for c in args.compressions.split(","))
    except ValueError:
        raise SystemExit(f"--compressions takes numbers separated by commas, got {args.compressions!r}") from None
    if not all(c >= 1 for c in compressions):
        raise SystemExit(f"--compressions must each be at least 1, got {args.compressions}")
    torch.manual_seed(0)
    data = fashion_mnist_or_exit(True)
    train_set = first_images("--train-subset", data, args.train_subset)
    val_set = first_images("--train-subset", data, args.train_subset, start=args.train_subset)  # (held out)
    test_set = fashion_mnist_or_exit(False)
    test_set = Subset(test_set, range(min(2000, len(test_set))))
    model = CifarResNet(DifferentiableConvs(compressions), 20, num_classes=10, in_channels=1)
    weight_opt = torch.optim.SGD(tools.weight_parameters(model), lr=0.05, momentum=0.9)
    arch_opt = torch.optim.Adam(tools.arch_parameters(model), lr=0.05)
    train_iter = iter(DataLoader(train_set, args.batch_size, shuffle=True, drop_last=True))
    val_iter = iter(DataLoader(val_set, args.batch_size, shuffle=True, drop_last=True))
    started = time.time()
    model.train()
    for step in range(args.search_steps):
        try:
            batch, val_batch = next(train_iter), next(val_iter)
        except StopIteration:
            train_iter = iter(DataLoader(train_set, args.batch_size, shuffle=True, drop_last=True))
            val_iter = iter(DataLoader(val_set, args.batch_size, shuffle=True, drop_last=True))
            batch, val_batch = next(train_iter), next(val_iter)
        stats = tools.search_step(model, F.cross_entropy, batch, val_batch, weight_opt, arch_opt, args.size_penalty)
        if step % 25 == 0:
            print(f"search step {step}: loss {stats['loss']:.3f}, expected params "
                  f"{tools.expected_params(model).item():,.0f}")
    tools.discretize(model)
    chosen = [m.compression_arg for m in model.modules() if isinstance(m, FilterSummaryConv2d)]
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loader = DataLoader(train_set, args.batch_size, shuffle=True, drop_last=True)
    steps = 0
    while steps < args.finetune_steps:
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            steps += 1
            if steps >= args.finetune_steps:
                break
    learned, dense = parameter_counts(model)
    accuracy = evaluate(model, DataLoader(test_set, 500), "cpu")
    print("chosen compression per layer:", ", ".join(f"{c:g}" for c in chosen))
    print(f"learned params {learned:,} (dense {dense:,}, {dense / learned:.2f}x), test accuracy "
          f"{100 * accuracy:.2f}% on 2000 images, {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
