"""A :func:`leanconv.models.dacnn` network written the way the released code writes its networks, in plain
PyTorch, for tests and benchmarks: one ``nn.Conv2d`` per anchor called by every layer that shares it, the channel
rotations applied to the activations with ``torch.cat``, and separate BatchNorm, add and ReLU modules. Built from a
leanconv model with copies of its parameters and buffers, so both compute one function: it is leanconv's network
in the released code's form (the released mix network itself is ``released_rotation=True``, without the regulators
it builds and never calls; docs/shared.md), not the released code."""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dacnn import DACNN, AnchoredBlock
from ..nn.shared import AnchoredConv2d


def _plain_batch_norm(bn: nn.BatchNorm2d) -> nn.BatchNorm2d:
    source = bn.weight if bn.weight is not None else bn.running_mean
    factory = {} if source is None else {"device": source.device, "dtype": source.dtype}
    plain = nn.BatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, **factory)
    plain.load_state_dict(bn.state_dict())
    return plain


class _SharedUse(nn.Module):
    """A use of a shared conv: ``conv(cat(x[:, r:], x[:, :r]))``; the conv is a reference, registered elsewhere."""

    def __init__(self, conv: nn.Conv2d, rotate: int, stride, padding, dilation):
        super().__init__()
        object.__setattr__(self, "conv", conv)
        self.rotate, self.stride, self.padding, self.dilation = rotate, stride, padding, dilation

    def forward(self, x):
        if self.rotate:
            x = torch.cat([x[:, self.rotate:], x[:, :self.rotate]], dim=1)
        return F.conv2d(x, self.conv.weight, self.conv.bias, self.stride, self.padding, self.dilation)


class _ReferenceBlock(nn.Module):
    def __init__(self, block: AnchoredBlock, plain):
        super().__init__()
        self.conv1, self.bn1 = plain(block.conv1), _plain_batch_norm(block.bn1)
        self.conv2, self.bn2 = plain(block.conv2), _plain_batch_norm(block.bn2)
        self.regulator = copy.deepcopy(block.regulator)
        self.shortcut = plain(block.shortcut)
        self.rotate_output = block.rotate_output

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        if self.regulator is not None:
            h = self.regulator(h)
        shortcut = self.shortcut(x)
        r = self.rotate_output
        if r:  # the released mix code's swaps: the block's output once, the shortcut twice
            h = torch.cat([h[:, r:], h[:, :r]], dim=1)
            shortcut = torch.cat([shortcut[:, 2 * r:], shortcut[:, :2 * r]], dim=1)
        return F.relu(h + shortcut)


class ReferenceDACNN(nn.Module):
    """``unshared=True`` gives every use its own copy of its anchor: the same network without weight sharing."""

    def __init__(self, model: DACNN, unshared: bool = False):
        super().__init__()
        self.shared = nn.ModuleDict()
        for key, anchor in model.anchors.items():
            conv = nn.Conv2d(anchor.channels, anchor.channels, anchor.kernel_size, bias=anchor.bias is not None,
                             device=anchor.weight.device, dtype=anchor.weight.dtype)
            conv.load_state_dict(anchor.state_dict())
            self.shared[key] = conv
        convs = {id(anchor): self.shared[key] for key, anchor in model.anchors.items()}

        def plain(module: nn.Module) -> nn.Module:
            if isinstance(module, AnchoredConv2d):
                if unshared:
                    return module.materialize()
                return _SharedUse(convs[id(module.anchor)], module.rotate, module.stride, module.padding,
                                  module.dilation)
            if isinstance(module, AnchoredBlock):
                return _ReferenceBlock(module, plain)
            if isinstance(module, nn.BatchNorm2d):
                return _plain_batch_norm(module)
            if isinstance(module, nn.Sequential):
                return nn.Sequential(*[plain(m) for m in module])
            return copy.deepcopy(module)

        self.features = nn.Sequential(*[plain(m) for m in model.features])
        if unshared:
            del self.shared
        self.fc = copy.deepcopy(model.fc)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))
