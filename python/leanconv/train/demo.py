"""The main job (`make demo`): a dense and a generated-weight ResNet-20 on Fashion-MNIST, side by side.

The generated model's ring holds 1/10 of the dense model's conv weights. A short CPU schedule (a subset of the
training set, a few epochs) keeps it to a few minutes on two cores; the test set is the full 10,000 images.
"""
import argparse

import torch
from torch.utils.data import Subset

from .. import models
from .data import fashion_mnist
from .loop import table, train


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train.demo", description=__doc__)
    p.add_argument("--train-subset", type=int, default=12000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    train_set = Subset(fashion_mnist(True), range(args.train_subset))
    test_set = fashion_mnist(False)
    results = []
    for conv, options in (("dense", {}), ("generated", {"ring_size": 0.1})):
        model = models.resnet20(num_classes=10, in_channels=1, conv=conv, **options)
        results.append(train(f"ResNet-20 {conv}", model, train_set, test_set, args.epochs, device=args.device))
    print()
    print(f"Fashion-MNIST, {args.train_subset} training images, {args.epochs} epochs, full test set, {args.device}")
    print(table(results))


if __name__ == "__main__":
    main()
