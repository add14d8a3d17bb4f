"""What every training command line checks before its first step, each as one line and no traceback: the device,
counts in range, and the Fashion-MNIST files being there."""
import argparse

import torch
from torch.utils.data import Subset

# The devices leanconv's kernels run on.
TRAINING_DEVICES = ("cpu", "cuda")


def checked_device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise SystemExit(f"--device: {text!r} is not a device (e.g. cpu, cuda, cuda:1)") from None
    if device.type not in TRAINING_DEVICES:
        raise SystemExit(f"--device {text}: training runs on {' or '.join(TRAINING_DEVICES)}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {text}: no CUDA GPU is available here (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise SystemExit(f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def count_at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (argparse names the flag in its one-line error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def check_subset(flag: str, count: int, batch_size: int) -> None:
    """A training subset that gives at least one full batch (checked before the data is read)."""
    if count < batch_size:
        raise SystemExit(f"{flag} {count}: fewer images than one batch of {batch_size}")


def first_images(flag: str, dataset, count: int, start: int = 0):
    """Images start .. start + count of the dataset, refused where it has fewer."""
    if start + count > len(dataset):
        raise SystemExit(f"{flag} {count}: the training set has {len(dataset):,} images"
                         + (f", and {start:,} of them go elsewhere" if start else ""))
    return Subset(dataset, range(start, start + count))


def fashion_mnist_or_exit(train: bool):
    """The Fashion-MNIST split, or the one-line advice to install it (or the extra that reads it)."""
    from .._extras import exit_on_missing_extra

    with exit_on_missing_extra():
        from .data import fashion_mnist
    try:
        return fashion_mnist(train)
    except FileNotFoundError as missing:
        raise SystemExit(f"leanconv: {missing}") from None
