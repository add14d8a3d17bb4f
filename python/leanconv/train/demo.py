"""The main job (`make demo`): a dense and a generated-weight ResNet-20 on Fashion-MNIST, side by side.

The generated model's ring holds 1/10 of the dense model's conv weights. A short CPU schedule (a subset of the
training set, a few epochs) keeps it to a few minutes on two cores; the test set is the full 10,000 images.
"""
import argparse

import torch

from .._extras import exit_on_missing_extra

with exit_on_missing_extra():  # (the training extra: a missing one is a line, even for --help)
    from .. import models
    from ._cli import check_subset, checked_device, count_at_least, fashion_mnist_or_exit, first_images
    from .loop import table, train

BATCH_SIZE = 128


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train.demo", description=__doc__)
    p.add_argument("--train-subset", type=count_at_least(1), default=12000)
    p.add_argument("--epochs", type=count_at_least(1), default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    checked_device(args.device)
    check_subset("--train-subset", args.train_subset, BATCH_SIZE)
    train_set = first_images("--train-subset", fashion_mnist_or_exit(True), args.train_subset)
    test_set = fashion_mnist_or_exit(False)
    results = []
    for conv, options in (("dense", {}), ("generated", {"ring_size": 0.1})):
        model = models.resnet20(num_classes=10, in_channels=1, conv=conv, **options)
        results.append(train(f"ResNet-20 {conv}", model, train_set, test_set, args.epochs, batch_size=BATCH_SIZE,
                             device=args.device))
    print()
    print(f"Fashion-MNIST, {args.train_subset} training images, {args.epochs} epochs, full test set, {args.device}")
    print(table(results))


if __name__ == "__main__":
    main()
