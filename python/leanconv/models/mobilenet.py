"""MobileNetV2 (Sandler et al. 2018) with its pointwise convs from a conv factory.

Inverted residuals: 1x1 expansion (factor t) + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 projection + BN, with
the identity added when the stride is 1 and the width stays. The 1x1 convs come from the factory, so
``conv="multigrid"`` gives the MGIC variant (grouped 1x1 convs on the channel levels); the stem, the depthwise
convs and the classifier stay ordinary. ``layout="cifar"`` uses a stride-1 stem and stride 1 in the second stage
(the usual CIFAR adaptation), ``"imagenet"`` the paper's strides.
"""
from torch import nn

from ..families import build
from ..nn._convs import DenseConvs

# (expansion t, output channels c, repeats n, first stride s), the paper's table 2.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    def __init__(self, convs: DenseConvs, in_channels: int, out_channels: int, stride: int, expansion: int, scope):
        super().__init__()
        hidden = in_channels * expansion
        layers = []
        if expansion != 1:
            layers += [convs.conv(in_channels, hidden, 1, 1, 0, scope=scope), nn.BatchNorm2d(hidden), nn.ReLU6(True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(True), convs.conv(hidden, out_channels, 1, 1, 0, scope=scope), nn.BatchNorm2d(out_channels)]
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        out = self.body(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self, convs: DenseConvs, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 layout: str = "imagenet"):
        super().__init__()
        if layout not in ("cifar", "imagenet"):
            raise ValueError(f"leanconv: mobilenet_v2 layout must be 'cifar' or 'imagenet', got {layout!r}")
        width = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        stem_stride = 1 if layout == "cifar" else 2
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU6(True))
        blocks = []
        for stage, (t, c, n, s) in enumerate(SETTINGS):
            out = _make_divisible(c * width_mult)
            if layout == "cifar" and stage == 1:
                s = 1
            for i in range(n):
                blocks.append(InvertedResidual(convs, width, out, s if i == 0 else 1, t, (stage, i)))
                width = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(convs.conv(width, last, 1, 1, 0, scope=(len(SETTINGS), 0)), nn.BatchNorm2d(last),
                                  nn.ReLU6(True))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0, layout: str = "imagenet",
                 conv: str = "dense", **conv_options) -> nn.Module:
    return build(lambda c: MobileNetV2(c, num_classes, in_channels, width_mult, layout), conv, **conv_options)
