"""python -m leanconv.train: train a (compact) model and print its row of the results table."""
import argparse
import math
import os

import torch
from torch.utils.data import Subset

from .._extras import exit_on_missing_extra

with exit_on_missing_extra():
    from ._cli import checked_device
    from .. import models
    from ..families import FAMILIES
    from .data import random_images
    from .datasets import DATASETS, DatasetMissing, dataset, device_dataset
    from . import checkpoint as checkpoints
    from .checkpoint import CheckpointError
    from .loop import check_log_path, table, train

def _dacnn(variant):
    """--conv shared: the DACNN; --conv dense: the same network with an unshared conv per use."""
    def build(num_classes, in_channels, conv="shared", width=None, blocks=None, regulators=False, **options):
        if conv not in ("shared", "dense"):
            raise SystemExit(f"--model dacnn_{variant} is a shared-weight network: give --conv shared (or dense "
                             "for the same network unshared)")
        shape = {k: v for k, v in (("width", width), ("blocks", blocks)) if v is not None}
        return models.dacnn(variant, num_classes=num_classes, in_channels=in_channels, regulators=regulators,
                            unshared=conv == "dense", **shape, **options)
    return build



def _mgic_resnet(widths=None, blocks=None):
    """--conv multigrid: the MGIC ResNet (--group-size, --coarsest); another family: the same layout with basic
    blocks of that family's convs. ``widths``/``blocks``: the layout (None: mgic_resnet's defaults)."""
    layout = {k: v for k, v in (("widths", widths), ("blocks", blocks)) if v is not None}

    def build(num_classes, in_channels, conv="multigrid", group_size=None, coarsest=None, **options):
        if conv == "multigrid":
            shape = {k: v for k, v in (("group_size", group_size), ("coarsest", coarsest)) if v is not None}
            return models.mgic_resnet(num_classes, in_channels, **layout, **shape)
        return models.mgic_resnet(num_classes, in_channels, **layout, conv=conv, **options)
    return build


def _mobilenet_v2(num_classes, in_channels, conv="dense", **options):
    return models.mobilenet_v2(num_classes, in_channels, layout="cifar", conv=conv, **options)


MODELS = {"resnet20": models.resnet20, "resnet56": models.resnet56, "resnet18": models.resnet18,
          "resnet18_cifar": models.resnet18_cifar, "resnet34": models.resnet34,
          # The MGIC ResNet at the authors' widths, and at ResNet-20's (16-32-64, 3 blocks a stage).
          "mgic_resnet": _mgic_resnet(), "mgic_resnet20": _mgic_resnet((16, 32, 64), (3, 3, 3)),
          # Wide CIFAR ResNets (Zagoruyko and Komodakis): ResNet-20's layout at 2, 4 or 8 times its widths.
          **{f"wrn20_{k}": (lambda k: lambda *a, **o: models.wide_resnet(20, k, *a, **o))(k) for k in (2, 4, 8)},
          "mobilenet_v2": _mobilenet_v2, **{f"dacnn_{variant}": _dacnn(variant) for variant in models.dacnn_variants}}


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
    p.add_argument("--width", type=int, default=None, help="dacnn models: the plain variant's width (default 128)")
    p.add_argument("--blocks", default=None, help="dacnn models: blocks per stage, e.g. 3,4,6,3 (the default)")
    p.add_argument("--regulators", action="store_true", help="dacnn models: a regulator per residual block")
    p.add_argument("--dataset", choices=sorted(DATASETS) + ["random"], default="fashion-mnist",
                   help="torchvision's CIFAR10/CIFAR100/SVHN/ImageFolder or the Fashion-MNIST idx files (see "
                        "leanconv.train.datasets for the files each expects); random: synthetic images")
    p.add_argument("--data", "--data-dir", dest="data_dir", default=None,
                   help="the dataset's directory (Fashion-MNIST: Debian's dataset-fashion-mnist by default)")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("--data-on-device", action="store_true",
                   help="hold the whole dataset on the training device and augment it there (fashion-mnist, cifar10, "
                        "cifar100, svhn): no loader workers, the GPU is not kept waiting")
    p.add_argument("--flip", action="store_true", help="add a random horizontal flip (fashion-mnist; with "
                                                       "--data-on-device)")
    p.add_argument("--random-erasing", type=float, default=0.0,
                   help="random erasing with this probability (with --data-on-device)")
    p.add_argument("--train-subset", type=int, default=0, help="use the first N training images (0: all)")
    p.add_argument("--test-subset", type=int, default=0, help="evaluate on the first N test images (0: all)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4, help="on the weights; none on BatchNorm and biases")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--schedule", choices=["onecycle", "cosine", "step"], default="onecycle",
                   help="learning rate per step: one-cycle (15%% warm-up, cosine), cosine, or x0.1 at 1/3 and 2/3")
    p.add_argument("--compile", action="store_true", help="torch.compile the training steps")
    p.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision (fp16: GPU only)")
    p.add_argument("--channels-last", action="store_true", help="train in the channels_last memory format")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true",
                   help="torch.use_deterministic_algorithms(True): the same bits on every run of one machine")
    p.add_argument("--checkpoint", default=None, help="checkpoint file, written atomically (PATH.prev keeps the "
                                                      "previous one)")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also checkpoint every N steps within an epoch (0: at the end of each epoch only)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--log-csv", dest="log", default=None,
                   help="CSV log, a row per epoch (python -m leanconv.train.report draws several runs' logs)")
    return p.parse_args(argv)


def conv_options(args):
    """The chosen family's options: those given on the command line, parsed as the registry says. An option of
    another family is refused: it would change nothing."""
    family = FAMILIES[args.conv]
    own = {o.name for o in family.options}
    for other in FAMILIES.values():
        for option in other.options:
            if option.on_command_line and option.name not in own and getattr(args, option.name, None) is not None:
                raise SystemExit(f"--{option.name.replace('_', '-')} is an option of --conv {other.name}, not of "
                                 f"--conv {args.conv}")
    options = {}
    for option in family.options:
        if option.on_command_line and getattr(args, option.name) is not None:
            flag = "--" + option.name.replace("_", "-")
            try:
                value = option.parse(getattr(args, option.name))
            except (ValueError, TypeError):
                raise SystemExit(f"{flag}: invalid value {getattr(args, option.name)!r} ({option.help})") from None
            if option.choices and value not in option.choices:
                raise SystemExit(f"{flag} must be one of {list(option.choices)}")
            options[option.name] = value
    if any(o.name == "seed" for o in family.options):
        options["seed"] = args.seed
    return options


def model_options(args):
    """The DACNN builders' shape options, when given (other models take none)."""
    if not args.model.startswith("dacnn_"):
        if args.width is not None or args.blocks is not None or args.regulators:
            raise SystemExit("--width, --blocks and --regulators apply to the dacnn models only")
        return {}
    options = {"regulators": args.regulators, "width": args.width}
    if args.blocks is not None:
        try:
            options["blocks"] = tuple(int(b) for b in args.blocks.split(","))
        except ValueError:
            raise SystemExit(f"--blocks must be comma-separated counts, e.g. 3,4,6,3; got {args.blocks!r}")
    return options


# Each numeric flag's valid range, checked before anything is built: (test, what it must be).
RANGES = {
    "epochs": (lambda v: v >= 1, "at least 1"), "batch_size": (lambda v: v >= 1, "at least 1"),
    "workers": (lambda v: v >= 0, "at least 0"), "lr": (lambda v: math.isfinite(v) and v > 0, "a positive number"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a number >= 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"), "train_subset": (lambda v: v >= 0, "at least 0"),
    "test_subset": (lambda v: v >= 0, "at least 0"), "checkpoint_every": (lambda v: v >= 0, "at least 0"),
    "random_erasing": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    # Each epoch's sample order is seeded with seed * 1,000,003 + epoch, which must stay within 64 bits.
    "seed": (lambda v: 0 <= v < 2 ** 40, "in [0, 2^40)"),
}
def check_arguments(args) -> None:
    """Everything about the command line that can be checked before the first step: one line each, no traceback."""
    for name, (valid, expected) in RANGES.items():
        if not valid(getattr(args, name)):
            raise SystemExit(f"--{name.replace('_', '-')} must be {expected}, got {getattr(args, name)}")
    if args.resume and not args.checkpoint:
        raise SystemExit("--resume needs --checkpoint PATH")
    device = checked_device(args.device)
    if args.amp == "fp16" and device.type != "cuda":
        raise SystemExit("--amp fp16 needs a GPU (bf16 works on the CPU)")
    if (args.flip or args.random_erasing) and not args.data_on_device:
        raise SystemExit("--flip and --random-erasing are augmentations of --data-on-device")
    if args.data_on_device and args.dataset == "random":
        raise SystemExit("--data-on-device holds fashion-mnist, cifar10, cifar100 or svhn, not random images")
    try:
        if args.log:
            check_log_path(args.log)
        if args.checkpoint:
            checkpoints.check_destination(args.checkpoint)
    except (ValueError, CheckpointError) as error:
        raise SystemExit(str(error)) from None
    if args.log and args.checkpoint:
        log = os.path.realpath(args.log)
        if log in (os.path.realpath(args.checkpoint), os.path.realpath(checkpoints.previous_path(args.checkpoint))):
            raise SystemExit(f"--log-csv {args.log} and --checkpoint {args.checkpoint} name the same file: give each "
                             "its own path")


def run_options(args, options) -> dict:
    """What defines this run, recorded in its checkpoints: a --resume must continue the same run."""
    defining = ("model", "conv", "width", "blocks", "regulators", "dataset", "train_subset", "flip", "random_erasing",
                "epochs",
                "batch_size", "lr", "weight_decay", "label_smoothing", "schedule", "seed", "amp")
    return {**{name: getattr(args, name) for name in defining}, **{f"{args.conv}.{k}": v for k, v in options.items()}}


def build_model(args, num_classes, in_channels):
    """The model the flags describe; the builders' own argument errors (``leanconv: ...``) end the run with their
    message."""
    options = conv_options(args)
    try:
        model = MODELS[args.model](num_classes=num_classes, in_channels=in_channels, conv=args.conv, **options,
                                   **model_options(args))
    except (ValueError, TypeError) as error:
        if not str(error).startswith("leanconv:"):
            raise
        raise SystemExit(str(error)) from None
    return model, options


def main(argv=None):
    args = parse_args(argv)
    check_arguments(args)
    # Under torchrun (WORLD_SIZE > 1): one process per device, NCCL between GPUs, gloo between CPU processes.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        on_gpu = args.device.startswith("cuda")
        if on_gpu:
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(args.device)
        torch.distributed.init_process_group("nccl" if on_gpu else "gloo")
    torch.manual_seed(args.seed)  # before the model is built: its initialisation is part of the run
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    if args.dataset != "random":
        try:
            if args.data_on_device:
                train_set, test_set = (device_dataset(args.dataset, args.data_dir, train, args.device, args.flip,
                                                      args.random_erasing) for train in (True, False))
            else:
                train_set, test_set = (dataset(args.dataset, args.data_dir, train) for train in (True, False))
        except (DatasetMissing, ValueError) as error:
            raise SystemExit(str(error))
        in_channels, num_classes = DATASETS[args.dataset].in_channels, DATASETS[args.dataset].num_classes
    else:
        train_set, test_set = random_images(2048, (3, 32, 32), 10), random_images(512, (3, 32, 32), 10, seed=1)
        in_channels, num_classes = 3, 10
    if args.train_subset:
        count = min(args.train_subset, len(train_set))
        train_set = train_set.first(count) if args.data_on_device else Subset(train_set, range(count))
    if args.test_subset:
        count = min(args.test_subset, len(test_set))
        test_set = test_set.first(count) if args.data_on_device else Subset(test_set, range(count))
    if len(train_set) < args.batch_size:
        raise SystemExit(f"--batch-size {args.batch_size} is more than the {len(train_set)} training images")
    model, options = build_model(args, num_classes, in_channels)
    name = f"{args.model}-{args.conv}" + ("-regulators" if args.regulators else "")
    if args.lr != parse_args([]).lr:
        name += f"-lr{args.lr:g}"  # rows of one table, trained with different learning rates
    try:
        result = train(name, model, train_set, test_set, args.epochs, args.batch_size, args.lr,
                   args.weight_decay, args.device, args.seed, workers=args.workers, checkpoint=args.checkpoint,
                       checkpoint_every=args.checkpoint_every, resume=args.resume, log=args.log,
                       family=args.conv, label_smoothing=args.label_smoothing, amp=args.amp,
                       channels_last=args.channels_last, schedule=args.schedule, compile=args.compile,
                       options=run_options(args, options))
    except CheckpointError as error:
        raise SystemExit(str(error))
    if not distributed or torch.distributed.get_rank() == 0:
        print(table([result]))
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
