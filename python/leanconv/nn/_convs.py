"""Conv factories: a model builder asks one for each of its convs, so one builder serves every family.

A builder calls ``convs.conv(in, out, k, stride, padding, scope=(stage, block))`` for each conv the family may
replace (stems and heads stay ordinary) and ``convs.finish(model)`` at the end, which registers any state the convs
share (rings, anchors) on the model once. Each family's factory lives beside its modules (``leanconv.nn.<family>``)
and builds a model with ``Factory.build(make_model, **options)``; ``leanconv.families`` lists them.
"""
from typing import Callable, Dict, Hashable, Tuple

from torch import nn

Scope = Tuple[int, int]  # (stage, block) of the conv in the network


class DenseConvs:
    """Ordinary ``nn.Conv2d`` layers (the baseline), and the protocol every family's factory follows."""

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)) -> nn.Module:
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)

    def finish(self, model: nn.Module) -> nn.Module:
        return model

    @classmethod
    def build(cls, make_model: Callable[["DenseConvs"], nn.Module], **options) -> nn.Module:
        """``make_model(convs)`` with this factory's convs, made with ``options``."""
        convs = cls(**options)
        return convs.finish(make_model(convs))


class _CountingConvs(DenseConvs):
    """A dry run: meta-device convs, recording how many weights each key of ``key_of(scope)`` would hold."""

    def __init__(self, key_of: Callable[[Scope], Hashable]):
        self.key_of = key_of
        self.counts: Dict[Hashable, int] = {}

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        key = self.key_of(scope)
        self.counts[key] = self.counts.get(key, 0) + out_channels * in_channels * kernel_size * kernel_size
        return nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False, device="meta")


def count_conv_weights(make_model, key_of: Callable[[Scope], Hashable]) -> Dict[Hashable, int]:
    """How many conv weights the builder makes under each key of ``key_of(scope)``: a dry run on meta convs."""
    counting = _CountingConvs(key_of)
    make_model(counting)
    return counting.counts
