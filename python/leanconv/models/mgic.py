"""The MGIC ResNet: a ResNet whose residual blocks are :class:`leanconv.nn.MultigridBlock` V-cycles.

The authors' command-line defaults: stage widths 32-64-128-256, blocks 1-2-2-2, group size 32, and the full-conv
threshold 32, which puts the coarsest level at 16 channels (``coarsest=16`` here: leanconv names the level, the
authors' flag the first width below which it lies). Every conv is Kaiming-normal (fan_out) as theirs. Where this
differs from their driver: the ``"cifar"`` layout's 3x3 stem (their driver builds the 7x7 stride-2 stem and max-pool
for CIFAR too; ``layout="imagenet"`` is that stem), and a group size must divide the widths it groups (their code
rounds the group count down, to 1 where the width is below the group size); docs/multigrid.md.
The first block of every stage after the first halves the resolution (its entry conv has stride 2). Layouts:
``"cifar"`` (3x3 stem, 32x32 inputs) and ``"imagenet"`` (7x7 stride-2 stem and a max-pool). Stem and classifier
stay ordinary.

``conv="multigrid"`` (the default) is the MGIC network; any other family gives the ResNet of the same layout with
basic residual blocks (two 3x3 convs, 1x1 projection shortcuts) whose convs come from that family: ``"dense"``
is the baseline the MGIC network is compared with.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..families import build
from ..nn.block_epilogue import FusedBatchNorm2d
from ..nn.multigrid import MultigridBlock
from .resnet import basic_stages


class MGICResNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128, 256),
                 blocks: Sequence[int] = (1, 2, 2, 2), group_size: int = 32, coarsest: int = 16,
                 layout: str = "cifar", convs=None):
        super().__init__()
        if layout not in ("cifar", "imagenet"):
            raise ValueError(f"leanconv: mgic_resnet layout must be 'cifar' or 'imagenet', got {layout!r}")
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"leanconv: mgic_resnet needs one block count per width, got widths {tuple(widths)} and "
                             f"blocks {tuple(blocks)}")
        if layout == "cifar":
            stem = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), FusedBatchNorm2d(widths[0], relu=True)]
        else:
            stem = [nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), FusedBatchNorm2d(widths[0], relu=True),
                    nn.MaxPool2d(3, 2, 1)]
        self.stem = nn.Sequential(*stem)
        if convs is not None:  # the same layout with basic blocks of another family's convs
            self.blocks = basic_stages(convs, widths[0], list(widths), list(blocks), shortcut="conv")
        else:
            layers, width = [], widths[0]
            for stage, (channels, count) in enumerate(zip(widths, blocks)):
                for b in range(count):
                    stride = 2 if stage > 0 and b == 0 else 1
                    layers.append(MultigridBlock(width, channels, stride, group_size, coarsest))
                    width = channels
            self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)
        if convs is None:  # the authors' initialisation of every conv, the stem's too (the V-cycles' own do theirs)
            nn.init.kaiming_normal_(self.stem[0].weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def mgic_resnet(num_classes: int = 10, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128, 256),
                blocks: Sequence[int] = (1, 2, 2, 2), group_size: int = 32, coarsest: int = 16,
                layout: str = "cifar", conv: str = "multigrid", **conv_options) -> nn.Module:
    if conv == "multigrid" and not conv_options:
        return MGICResNet(num_classes, in_channels, widths, blocks, group_size, coarsest, layout)
    if conv == "multigrid":
        raise TypeError(f"leanconv: mgic_resnet takes group_size and coarsest as arguments, got {sorted(conv_options)}")
    return build(lambda c: MGICResNet(num_classes, in_channels, widths, blocks, layout=layout, convs=c), conv,
                 **conv_options)
