"""ResNets for CIFAR-style inputs (ResNet-20/56, He et al. 2016) and ImageNet (ResNet-18/34).

Every 3x3 block conv and every 1x1 downsample conv comes from the conv factory; the stem, the BatchNorms and
the classifier stay ordinary, as in the compact-conv papers.
"""
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from ..families import build
from ..nn._convs import DenseConvs


class BasicBlock(nn.Module):
    def __init__(self, convs: DenseConvs, in_planes: int, planes: int, stride: int, scope, shortcut: str):
        super().__init__()
        self.conv1 = convs.conv(in_planes, planes, 3, stride, 1, scope=scope)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = convs.conv(planes, planes, 3, 1, 1, scope=scope)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut_kind = shortcut
        self.downsample = None
        self.pad = 0
        if stride != 1 or in_planes != planes:
            if shortcut == "conv":  # option B: 1x1 conv + BN
                self.downsample = nn.Sequential(convs.conv(in_planes, planes, 1, stride, 0, scope=scope),
                                                nn.BatchNorm2d(planes))
            else:  # option A (CIFAR ResNets): subsample and zero-pad the channels, no parameters
                self.pad = planes - in_planes
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        elif self.stride != 1 or self.pad:
            identity = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        else:
            identity = x
        return F.relu(out + identity)


def basic_stages(convs: DenseConvs, in_planes: int, widths: List[int], counts: List[int], shortcut: str):
    """Stages of basic blocks; every stage after the first halves the resolution in its first block."""
    blocks: List[nn.Module] = []
    for s, (planes, count) in enumerate(zip(widths, counts)):
        for b in range(count):
            stride = 2 if (s > 0 and b == 0) else 1
            blocks.append(BasicBlock(convs, in_planes, planes, stride, (s, b), shortcut=shortcut))
            in_planes = planes
    return nn.Sequential(*blocks)


class CifarResNet(nn.Module):
    """3 stages of widths 16/32/64 (times ``width``), ``depth = 6n + 2``."""

    def __init__(self, convs: DenseConvs, depth: int, num_classes: int = 10, in_channels: int = 3, width: int = 1):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"leanconv: CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        self.blocks = basic_stages(convs, widths[0], widths, [n] * 3, shortcut="pad")
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class CifarResNet18(nn.Module):
    """ResNet-18 in the CIFAR layout (3x3 stem, no max-pool; stages 64..512), as in the FSNet paper."""

    def __init__(self, convs: DenseConvs, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True))
        self.blocks = basic_stages(convs, 64, [64, 128, 256, 512], [2, 2, 2, 2], shortcut="conv")
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ImageNetResNet(nn.Module):
    """ResNet-18/34 (basic blocks) in the ImageNet layout: 7x7 stem, max-pool, 4 stages of 64..512."""

    def __init__(self, convs: DenseConvs, layers: List[int], num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        self.blocks = basic_stages(convs, 64, [64, 128, 256, 512], layers, shortcut="conv")
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet20(num_classes: int = 10, in_channels: int = 3, conv: str = "dense", **conv_options) -> nn.Module:
    return build(lambda c: CifarResNet(c, 20, num_classes, in_channels), conv, **conv_options)


def wide_resnet(depth: int = 20, width: int = 4, num_classes: int = 10, in_channels: int = 3, conv: str = "dense",
                **conv_options) -> nn.Module:
    """The CIFAR ResNet of ``depth`` (6n + 2) at ``width`` times ResNet-20's widths (16/32/64)."""
    return build(lambda c: CifarResNet(c, depth, num_classes, in_channels, width), conv, **conv_options)


def resnet56(num_classes: int = 10, in_channels: int = 3, conv: str = "dense", **conv_options) -> nn.Module:
    return build(lambda c: CifarResNet(c, 56, num_classes, in_channels), conv, **conv_options)


def resnet18(num_classes: int = 1000, in_channels: int = 3, conv: str = "dense", **conv_options) -> nn.Module:
    return build(lambda c: ImageNetResNet(c, [2, 2, 2, 2], num_classes, in_channels), conv, **conv_options)


def resnet34(num_classes: int = 1000, in_channels: int = 3, conv: str = "dense", **conv_options) -> nn.Module:
    return build(lambda c: ImageNetResNet(c, [3, 4, 6, 3], num_classes, in_channels), conv, **conv_options)


def resnet18_cifar(num_classes: int = 10, in_channels: int = 3, conv: str = "dense", **conv_options) -> nn.Module:
    return build(lambda c: CifarResNet18(c, num_classes, in_channels), conv, **conv_options)
