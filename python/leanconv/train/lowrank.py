"""The DeCEF workflow on Fashion-MNIST: train a dense ResNet-20, report how each layer's effective rank changes
with depth, convert it to eigen-filter convs (each layer at its effective rank, initialised by SVD), and
fine-tune; prints the rank report and a table of the dense, converted and fine-tuned models.
"""
import argparse
import time

import torch
from torch.utils.data import DataLoader

from .._extras import exit_on_missing_extra

with exit_on_missing_extra():  # (the training extra: a missing one is a line, even for --help)
    from .. import convert, lowrank, models
    from ..nn import parameter_counts
    from ._cli import check_subset, checked_device, count_at_least, fashion_mnist_or_exit, first_images
    from .data import random_images
    from .loop import TrainResult, evaluate, table, train

BATCH_SIZE = 128


def _evaluated(name: str, model, test_set, device) -> TrainResult:
    started = time.time()
    accuracy = evaluate(model.to(device), DataLoader(test_set, batch_size=512), device)
    learned, dense = parameter_counts(model)
    return TrainResult(name, learned, dense, accuracy, time.time() - started)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train.lowrank", description=__doc__)
    p.add_argument("--train-subset", type=count_at_least(1), default=12000)
    p.add_argument("--epochs", type=count_at_least(1), default=2, help="dense training epochs")
    p.add_argument("--finetune-epochs", type=count_at_least(1), default=1)
    p.add_argument("--energy", type=float, default=0.7, help="singular-value energy the ranks keep")
    p.add_argument("--dataset", choices=["fashion-mnist", "random"], default="fashion-mnist")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    checked_device(args.device)
    if not 0 < args.energy <= 1:
        raise SystemExit(f"--energy must be in (0, 1], got {args.energy}")
    if args.dataset == "fashion-mnist":
        check_subset("--train-subset", args.train_subset, BATCH_SIZE)
        train_set, test_set = fashion_mnist_or_exit(True), fashion_mnist_or_exit(False)
        train_set = first_images("--train-subset", train_set, args.train_subset)
    else:
        train_set, test_set = random_images(256, (1, 28, 28), 10), random_images(128, (1, 28, 28), 10, seed=1)
    dense = models.resnet20(num_classes=10, in_channels=1)
    results = [train("ResNet-20 dense", dense, train_set, test_set, args.epochs, batch_size=BATCH_SIZE,
                     device=args.device)]
    report = lowrank.rank_report(dense, energy=args.energy)
    # The stem (3x3 from one channel) has k^2 > C_in filters per channel and nothing to share: keep it dense.
    eigen = convert(dense, "lowrank", energy=args.energy, skip=["stem.0"]).to(args.device)
    results.append(_evaluated(f"converted (energy {args.energy})", eigen, test_set, args.device))
    results.append(train("converted + fine-tuned", eigen, train_set, test_set, args.finetune_epochs,
                         lr=0.02, device=args.device))
    print()
    print(f"Effective rank by depth (energy {args.energy}):")
    print(lowrank.format_report(report))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
