"""Deep Anchored CNNs (DACNN): networks whose convs share one weight, the anchor, as in the reference code.

- ``plain``: stem 3 -> C conv + BN + ReLU; residual blocks ``h = relu(BN1(W*x)); h = BN2(W*h); out = relu(h + x)``
  all using one anchor W (C, C, 3, 3); a 2x2 max-pool after each stage; global average pool; linear head.
- ``mix``: stem 3 -> 64; one anchor per stage width (64, 128, 256, 512). A stage whose width differs from its input
  starts with a block whose first conv is an ordinary conv + BN + ReLU, with a 1x1 conv + BN shortcut; every other
  conv uses the stage's anchor. ``rotate`` rotates the channels around each block's second use (the reference
  code's ``cat(x[:, r:], x[:, :r])``, folded into the anchor: see :mod:`leanconv.nn.shared`). The released mix code
  rotates two more tensors, the output of the block's second BatchNorm by r and the shortcut by 2r:
  ``released_rotation=True`` adds them (docs/shared.md).
- ``vgg``: the plain VGG-style network: stem conv, then the anchor's uses, each conv -> ReLU -> BN (one BN per
  use); a 2x2 max-pool after the stem and after each stage (5 for 4 stages); global average pool; linear head.

``unshared=True`` builds the same network with an ordinary ``nn.Conv2d`` for every use instead of the anchors: the
dense network of the same depth that DACNN is compared with (the rotation is then only a fixed permutation of a
free weight's input channels, and is left out).

``regulators=True`` adds a :class:`leanconv.nn.Regulator` per residual block, after its second conv and BN. Every
parameter is used in every forward (DDP needs no ``find_unused_parameters``), and each anchor is registered once,
on the model (``model.anchors``).
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn._checked_options import CheckedOptions
from ..nn.block_epilogue import FusedBatchNorm2d
from ..nn.shared import AnchoredConv2d, ConvAnchor, Regulator
from ..ops.block_epilogue import affine_epilogue

VARIANTS = ("plain", "mix", "vgg")
MIX_WIDTHS = (64, 128, 256, 512)


class AnchoredBlock(CheckedOptions, nn.Module):
    """``h = relu(BN1(conv1(x))); h = BN2(conv2(h)); [h = R(h)]; out = relu(h + shortcut(x))``.

    The BatchNorms are :class:`leanconv.nn.FusedBatchNorm2d`: BN1 applies its ReLU, and BN2 (or, with a regulator,
    one affine epilogue after it) the residual add and the ReLU, each in one pass over the feature map.

    ``rotate_output=r`` adds the released mix code's other two rotations: ``out = relu(roll(h, -r) +
    roll(shortcut(x), -2r))``, computed as ``roll(relu(h + roll(shortcut(x), -r)), -r)``. It changes the function,
    not the parameters, so it is in the state_dict and a checkpoint of another value is refused."""

    def __init__(self, conv1: nn.Module, conv2: nn.Module, channels: int, regulator: bool,
                 shortcut: nn.Module = None, rotate_output: int = 0):
        super().__init__()
        self.conv1, self.bn1 = conv1, FusedBatchNorm2d(channels, relu=True)
        self.conv2, self.bn2 = conv2, FusedBatchNorm2d(channels, relu=not regulator)
        self.regulator = Regulator(channels) if regulator else None
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.rotate_output = int(rotate_output)

    def forward(self, x):
        h = self.bn1(self.conv1(x))
        shortcut = self.shortcut(x)
        if self.rotate_output:
            shortcut = torch.roll(shortcut, -self.rotate_output, dims=1)
        if self.regulator is None:
            out = self.bn2(self.conv2(h), residual=shortcut)
        else:
            out = affine_epilogue(self.regulator(self.bn2(self.conv2(h))), residual=shortcut, relu=True)
        return torch.roll(out, -self.rotate_output, dims=1) if self.rotate_output else out

    def checked_options(self):
        return {"rotate_output": self.rotate_output}

    def option_mismatch(self, name, stored):
        return (f"the checkpoint's block rotates its output by {stored} channels, this one by {self.rotate_output}: "
                "build the model with the same released_rotation")


class DACNN(nn.Module):
    def __init__(self, variant: str = "plain", blocks: Sequence[int] = (3, 4, 6, 3), width: int = 128,
                 regulators: bool = False, rotate: int = 0, num_classes: int = 100, in_channels: int = 3,
                 unshared: bool = False, released_rotation: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"leanconv: dacnn variant must be one of {VARIANTS}, got {variant!r}")
        if released_rotation and (variant != "mix" or not rotate):
            raise ValueError("leanconv: released_rotation is the mix variant's, with a rotate > 0 (the released code's "
                             "is 1)")
        rotate_output = rotate if released_rotation else 0
        if not blocks or min(blocks) < 1:
            raise ValueError(f"leanconv: dacnn blocks must be positive counts per stage, got {tuple(blocks)}")
        self.variant = variant
        self.anchors = nn.ModuleDict()
        if variant == "mix":
            widths = [MIX_WIDTHS[min(s, len(MIX_WIDTHS) - 1)] for s in range(len(blocks))]
            stem_width = widths[0]
        else:
            widths, stem_width = [width] * len(blocks), width
        if not unshared:
            for w in sorted(set(widths)):
                self.anchors[f"w{w}"] = ConvAnchor(w, 3)

        def use(w, rotation=0):  # one conv of the anchor of width w
            if unshared:
                return nn.Conv2d(w, w, 3, padding=1, bias=False)
            return AnchoredConv2d(self.anchors[f"w{w}"], rotate=rotation)
        stem = [nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False)]
        stem += [nn.ReLU(inplace=True), nn.BatchNorm2d(stem_width)] if variant == "vgg" else \
            [nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True)]
        layers = [nn.Sequential(*stem)]
        if variant == "vgg":
            layers.append(nn.MaxPool2d(2))
        channels = stem_width
        for count, w in zip(blocks, widths):
            for b in range(count):
                if variant == "vgg":
                    layers.append(nn.Sequential(use(w), nn.ReLU(inplace=True), nn.BatchNorm2d(w)))
                elif channels != w:  # mix: the width-changing block
                    layers.append(AnchoredBlock(
                        nn.Conv2d(channels, w, 3, padding=1, bias=False), use(w, rotate), w,
                        regulators, nn.Sequential(nn.Conv2d(channels, w, 1, bias=False), nn.BatchNorm2d(w)),
                        rotate_output))
                else:
                    layers.append(AnchoredBlock(use(w), use(w, rotate), w, regulators, rotate_output=rotate_output))
                channels = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def dacnn(variant: str = "plain", blocks: Sequence[int] = (3, 4, 6, 3), width: int = 128, regulators: bool = False,
          rotate: int = 0, num_classes: int = 100, in_channels: int = 3, unshared: bool = False,
          released_rotation: bool = False) -> nn.Module:
    """A Deep Anchored CNN (see the module docstring); ``rotate`` applies to each block's second use, and with
    ``released_rotation`` (mix) also to each block's output and, twice, to its shortcut, as the released code."""
    return DACNN(variant, blocks, width, regulators, rotate, num_classes, in_channels, unshared, released_rotation)
