"""Model builders; each takes ``conv='dense'|'generated'|'filter_summary'`` and that family's options."""
from .resnet import resnet18, resnet18_cifar, resnet20, resnet34, resnet56

__all__ = ["resnet18", "resnet18_cifar", "resnet20", "resnet34", "resnet56"]
