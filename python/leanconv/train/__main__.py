"""python -m leanconv.train: train a (compact) model and print its row of the results table."""
import argparse

import torch
from torch.utils.data import Subset

from .. import models
from ..families import FAMILIES
from .data import fashion_mnist, random_images
from .loop import table, train

def _dacnn(variant):
    def build(num_classes, in_channels, conv="shared", **options):
        if conv != "shared":
            raise SystemExit(f"--model dacnn_{variant} is a shared-weight network: give --conv shared")
        return models.dacnn(variant, num_classes=num_classes, in_channels=in_channels, **options)
    return build


MODELS = {"resnet20": models.resnet20, "resnet56": models.resnet56, "resnet18": models.resnet18,
          "resnet18_cifar": models.resnet18_cifar, "resnet34": models.resnet34,
          **{f"dacnn_{variant}": _dacnn(variant) for variant in models.dacnn_variants}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m leanconv.train", description=__doc__)
    p.add_argument("--model", choices=sorted(MODELS), default="resnet20")
    p.add_argument("--conv", choices=sorted(FAMILIES), default="dense")
    # Each family's options, from the registry; one flag serves every family that has an option of that name.
    flags = {}
    for family in FAMILIES.values():
        for option in family.options:
            if option.on_command_line:
                flags.setdefault(option.name, []).append((family.name, option))
    for name, owners in sorted(flags.items()):
        help_text = "; ".join(f"{f}: {o.help} (default {o.default})" for f, o in owners)
        p.add_argument("--" + name.replace("_", "-"), dest=name, default=None, help=help_text)
    p.add_argument("--dataset", choices=["fashion-mnist", "random"], default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--train-subset", type=int, default=0, help="use the first N training images (0: all)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def conv_options(args):
    """The chosen family's options: those given on the command line, parsed as the registry says."""
    family = FAMILIES[args.conv]
    options = {}
    for option in family.options:
        if option.on_command_line and getattr(args, option.name) is not None:
            value = option.parse(getattr(args, option.name))
            if option.choices and value not in option.choices:
                raise SystemExit(f"--{option.name.replace('_', '-')} must be one of {list(option.choices)}")
            options[option.name] = value
    if any(o.name == "seed" for o in family.options):
        options["seed"] = args.seed
    return options


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
