"""Model builders; each takes ``conv=`` a family name of ``leanconv.families`` and that family's options."""
from .dacnn import VARIANTS as dacnn_variants, dacnn
from .mgic import mgic_resnet
from .mobilenet import mobilenet_v2
from .resnet import resnet18, resnet18_cifar, resnet20, resnet34, resnet56, wide_resnet

__all__ = ["dacnn", "dacnn_variants", "mgic_resnet", "mobilenet_v2", "resnet18", "resnet18_cifar", "resnet20", "resnet34", "resnet56",
           "wide_resnet"]
