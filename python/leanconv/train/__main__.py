"""python -m leanconv.train: train a (compact) model and print its row of the results table."""
import argparse

import torch
from torch.utils.data import Subset

from .. import models
from .data import fashion_mnist, random_images
from .loop import table, train

MODELS = {"resnet20": models.resnet20, "resnet56": models.resnet56, "resnet18": models.resnet18,
          "resnet18_cifar": models.resnet18_cifar, "resnet34": models.resnet34}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train", description=__doc__)
    p.add_argument("--model", choices=sorted(MODELS), default="resnet20")
    p.add_argument("--conv", choices=["dense", "generated", "filter_summary", "lowrank"], default="dense")
    p.add_argument("--ring-size", type=float, default=0.1,
                   help="ring parameters per ring: a count (>= 1) or a fraction of the generated weights (< 1)")
    p.add_argument("--ring-scope", choices=["model", "stage", "block"], default="model")
    p.add_argument("--compression", type=float, default=9, help="filter_summary: C_in*k*k / s")
    p.add_argument("--quant-bits", type=int, default=None, help="filter_summary: fake-quantise the summaries")
    p.add_argument("--dataset", choices=["fashion-mnist", "random"], default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--train-subset", type=int, default=0, help="use the first N training images (0: all)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--rank", default="4", help="lowrank: basis filters per channel, or one per stage: 6,5,4")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def conv_options(args):
    if args.conv == "dense":
        return {}
    if args.conv == "filter_summary":
        return {"compression": args.compression, "quant_bits": args.quant_bits}
    if args.conv == "lowrank":
        ranks = [int(r) for r in args.rank.split(",")]
        return {"rank": ranks[0] if len(ranks) == 1 else ranks}
    size = int(args.ring_size) if args.ring_size >= 1 else args.ring_size
    return {"ring_size": size, "ring_scope": args.ring_scope, "seed": args.seed}


def main(argv=None):
    args = parse_args(argv)
    if args.dataset == "fashion-mnist":
        train_set, test_set = fashion_mnist(True, args.data_dir), fashion_mnist(False, args.data_dir)
        in_channels, num_classes = 1, 10
    else:
        train_set, test_set = random_images(2048, (3, 32, 32), 10), random_images(512, (3, 32, 32), 10, seed=1)
        in_channels, num_classes = 3, 10
    if args.train_subset:
        train_set = Subset(train_set, range(min(args.train_subset, len(train_set))))
    model = MODELS[args.model](num_classes=num_classes, in_channels=in_channels, conv=args.conv, **conv_options(args))
    result = train(f"{args.model}-{args.conv}", model, train_set, test_set, args.epochs, args.batch_size, args.lr,
                   args.weight_decay, args.device, args.seed)
    print(table([result]))


if __name__ == "__main__":
    main()
