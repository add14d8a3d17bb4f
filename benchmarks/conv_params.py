"""The conv parameters of training-table rows: each row's model built from its python -m leanconv.train flags, its
learned parameters outside BatchNorm and the classifier (the convs, rings, anchors, summaries, bases) against the
same model's with dense convs. Prints a markdown table.

    python benchmarks/conv_params.py [--dataset fashion-mnist] NAME "FLAGS" [NAME "FLAGS" ...]
    e.g. python benchmarks/conv_params.py resnet20-lowrank "--model resnet20 --conv lowrank --rank 1"
"""
import argparse
import shlex

from torch import nn

from leanconv.train.__main__ import MODELS, conv_options, model_options, parse_args
from leanconv.train.datasets import DATASETS


def conv_parameters(model: nn.Module) -> int:
    """Learned parameters (each shared tensor once) outside BatchNorm and Linear layers."""
    outside = {id(p) for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Linear))
               for p in m.parameters(recurse=False)}
    return sum(p.numel() for p in model.parameters() if id(p) not in outside)


def build(flags, dataset: str, dense: bool = False) -> nn.Module:
    args = parse_args(shlex.split(flags) + (["--conv", "dense"] if dense else []))  # the last --conv wins
    spec = DATASETS[dataset]
    return MODELS[args.model](num_classes=spec.num_classes, in_channels=spec.in_channels, conv=args.conv,
                              **conv_options(args), **model_options(args))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    p.add_argument("rows", nargs="+", help="NAME FLAGS pairs")
    args = p.parse_args()
    if len(args.rows) % 2:
        p.error("rows come in NAME FLAGS pairs")
    print("| row | conv parameters | dense conv parameters | fraction | conv compression |")
    print("|---|---:|---:|---:|---:|")
    for name, flags in zip(args.rows[::2], args.rows[1::2]):
        learned, dense = conv_parameters(build(flags, args.dataset)), conv_parameters(build(flags, args.dataset, True))
        print(f"| {name} | {learned:,} | {dense:,} | {learned / dense:.3f} | {dense / learned:.2f}x |")


if __name__ == "__main__":
    main()
