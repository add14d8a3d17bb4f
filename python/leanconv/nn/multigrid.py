"""Multigrid-in-channels (MGIC) modules (docs/multigrid.md): grouped convolutions on a hierarchy of channel levels,
so parameters grow linearly with width for a fixed group size.

A V-cycle over channel widths c_0 = c, c_1 = c/2, ... (halving while the next width is at least ``coarsest``):

- down: ``x_{k+1} = R_k x_k``, R_k a grouped 1x1 conv c_k -> c_k/2 with c_k/g groups (g = ``group_size``);
- the coarsest level: full (ungrouped) convs;
- up, at each finer level: the coarse-grid correction ``z_k = x_k + BN(P_k(x_c - R_k x_k))``, P_k a grouped 1x1
  conv c_k/2 -> c_k, with ``R_k x_k`` the value the down pass computed (reused, not recomputed), then the level's
  grouped convs (c_k/g groups), whose output is the next finer level's x_c.

:class:`MultigridBlock` is the paper's ResNet-block replacement (a full residual block at the coarsest level, a
grouped residual block of two 3x3 convs per level on the way up). :class:`MultigridConv2d` is the drop-in for one
k x k conv (one full conv + BN + ReLU at the coarsest, one grouped conv + BN + ReLU per level up, the finest level's
grouped conv last and alone: the host's BatchNorm and ReLU follow it). A block or conv
whose stride or width changes starts with a 3x3 conv with groups = gcd(in, out) (= in_channels when out is a
multiple of it, the paper's choice), BN and ReLU.

Every grouped conv, and the coarsest level's full convs, is a :class:`GroupedConv2d`: an ``nn.Conv2d`` that runs on
leanconv's small-group kernel where that is measured faster than aten for its shape and device (``leanconv.ops.grouped_conv2d_uses_kernel``;
``leanconv.multigrid.tune`` measures a model's shapes), else on aten. The corrections run as
``leanconv::coarse_grid_correction``: the prolongation, then BatchNorm + the residual add in one fused pass; the
blocks' BatchNorm + add + ReLU tails are :class:`leanconv.nn.FusedBatchNorm2d` passes.
"""
import math
import numbers
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from ..ops.multigrid import grouped_conv2d, grouped_conv2d_uses_kernel
from ._convs import DenseConvs, Scope
from .block_epilogue import FoldedBatchNorm2d, FusedBatchNorm2d


@torch._dynamo.assume_constant_result
def _uses_kernel(device_type: str, dtype: torch.dtype, channels_last: bool, in_channels: int, out_channels: int,
                 groups: int, kernel: int, stride: int, height: int, width: int) -> bool:
    # A constant to torch.compile: the choice is made once per traced shape, outside the graph.
    return grouped_conv2d_uses_kernel(device_type, dtype, channels_last, in_channels, out_channels, groups, kernel,
                                      stride, (height, width))


class GroupedConv2d(nn.Conv2d):
    """``nn.Conv2d`` run on leanconv's small-group kernel where that is faster for the shape (same parameters,
    state_dict and numbers as ``nn.Conv2d``): the levels' grouped convs and the coarsest level's full convs, whose
    few channels a group oneDNN runs slowly. ``path``: ``"auto"`` (the per-shape choice), ``"kernel"`` or
    ``"aten"``."""

    def __init__(self, *args, path: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if path not in ("auto", "kernel", "aten"):
            raise ValueError(f"leanconv: GroupedConv2d path must be 'auto', 'kernel' or 'aten', got {path!r}")
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError("leanconv: GroupedConv2d supports zero padding given as numbers only")
        self.path = path

    def uses_kernel(self, input: Tensor) -> bool:
        if self.path != "auto":
            return self.path == "kernel"
        if input.dim() != 4:
            return False
        channels_last = input.is_contiguous(memory_format=torch.channels_last) and not input.is_contiguous()
        return _uses_kernel(input.device.type, input.dtype, channels_last, self.in_channels, self.out_channels,
                            self.groups, self.kernel_size[0], self.stride[0], input.shape[2], input.shape[3])

    def forward(self, input: Tensor) -> Tensor:
        if self.uses_kernel(input):
            return grouped_conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def materialize(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` with a copy of the weights: the same function on aten's convolution."""
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.groups, self.bias is not None, device=self.weight.device,
                         dtype=self.weight.dtype)
        conv.load_state_dict(self.state_dict())
        return conv

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.path == "auto" else f", path={self.path!r}")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"leanconv: {name} must be a positive int, got {value!r}")
    return int(value)


def channel_levels(channels: int, group_size: int = 32, coarsest: int = 16) -> List[int]:
    """The V-cycle's widths: ``channels``, halved while the width is a multiple of ``group_size`` (its convs have
    width / group_size groups) and the half is at least ``coarsest``. A width with a coarser level must be a
    multiple of ``group_size``, and ``group_size`` even (a restriction maps a group of g channels to g/2)."""
    channels = _positive_int(channels, "channels")
    group_size = _positive_int(group_size, "group_size")
    coarsest = _positive_int(coarsest, "coarsest")
    if coarsest > channels:
        raise ValueError(f"leanconv: coarsest = {coarsest} must not exceed the channels ({channels})")
    if channels // 2 >= coarsest and (channels % group_size or group_size % 2):
        raise ValueError(f"leanconv: {channels} channels are not divisible by group_size = {group_size} (or the "
                         f"group size is odd): the multigrid levels below {channels} need an even group size "
                         f"dividing it")
    levels = [channels]
    while levels[-1] % group_size == 0 and levels[-1] % 2 == 0 and levels[-1] // 2 >= coarsest:
        levels.append(levels[-1] // 2)
    return levels


def _bn(channels, relu=False, factory=None):
    return FusedBatchNorm2d(channels, relu=relu, **(factory or {}))


class _VCycle(nn.Module):
    """The levels, the restrictions and the corrections a multigrid module shares; subclasses add the coarsest
    level's and the up levels' convs (``coarsest_level``, ``smooth``)."""

    def __init__(self, in_channels: int, channels: int, stride, group_size: int, coarsest: int, entry_kernel: int,
                 entry_padding, factory):
        super().__init__()
        self.in_channels, self.channels = _positive_int(in_channels, "in_channels"), channels
        self.stride = _pair(stride)
        self.group_size, self.coarsest = group_size, coarsest
        self.levels = channel_levels(channels, group_size, coarsest)
        if len(self.levels) < 2:
            raise ValueError(f"leanconv: {type(self).__name__}({in_channels}, {channels}, group_size={group_size}, "
                             f"coarsest={coarsest}) has one channel level: no multigrid structure, only a dense conv; "
                             f"give coarsest <= {channels // 2} and a group size dividing {channels}")
        self.entry = None
        if self.stride != (1, 1) or in_channels != channels:
            groups = math.gcd(in_channels, channels)
            self.entry = nn.Sequential(
                GroupedConv2d(in_channels, channels, entry_kernel, self.stride, entry_padding, groups=groups,
                              bias=False, **factory), _bn(channels, relu=True, factory=factory))
        self.restrict = nn.ModuleList(
            GroupedConv2d(c, c // 2, 1, groups=c // group_size, bias=False, **factory) for c in self.levels[:-1])
        self.prolong = nn.ModuleList(
            GroupedConv2d(c // 2, c, 1, groups=c // group_size, bias=False, **factory) for c in self.levels[:-1])
        self.correction_bn = nn.ModuleList(_bn(c, factory=factory) for c in self.levels[:-1])

    def reset_parameters(self) -> None:
        """The authors' initialisation: every conv (entry, restrictions, prolongations, level and coarsest convs)
        Kaiming-normal with fan_out and the ReLU gain; every BatchNorm weight 1, bias 0, fresh statistics."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()

    def correct(self, level: int, fine: Tensor, coarse: Tensor, restricted: Tensor) -> Tensor:
        """``fine + BN(P(coarse - restricted))`` at ``level``: one op (the prolongation, then BN + add fused)."""
        conv, bn = self.prolong[level], self.correction_bn[level]
        if isinstance(bn, FoldedBatchNorm2d):  # leanconv.shared.fold: the eval-mode BN as a scale and shift
            return bn(conv(coarse - restricted), residual=fine)
        running_mean, running_var, training, momentum = bn.step_arguments()
        return torch.ops.leanconv.coarse_grid_correction(
            fine, coarse, restricted, conv.weight, conv.groups, bn.weight, bn.bias, running_mean, running_var,
            training, momentum, bn.eps, conv.uses_kernel(coarse))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"leanconv: {type(self).__name__} expects a 4-D (N, {self.in_channels}, H, W) input, "
                             f"got shape {tuple(x.shape)}")
        if self.entry is not None:
            x = self.entry(x)
        fine = [x]
        for restrict in self.restrict:
            fine.append(restrict(fine[-1]))
        out = self.coarsest_level(fine[-1])
        for level in reversed(range(len(self.levels) - 1)):
            # fine[level + 1] is R_level(fine[level]), computed once on the way down.
            z = self.correct(level, fine[level], out, fine[level + 1])
            out = self.smooth(level, z)
        return out

    def num_learned_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def materialize(self) -> nn.Module:
        """The module as plain PyTorch (``nn.Conv2d``, ``nn.BatchNorm2d``, ReLU; no leanconv op) computing its function:
        no single conv does (its levels hold BatchNorms and ReLUs). See :mod:`leanconv.nn.multigrid_plain`."""
        from .multigrid_plain import PlainMultigrid  # (it reads this module's layers)

        return PlainMultigrid(self)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.channels}, stride={self.stride}, group_size={self.group_size}, "
                f"coarsest={self.coarsest}, levels={self.levels}, compression={self.num_dense_params() / self.num_learned_params():.2f}")


class MultigridConv2d(_VCycle):
    """Drop-in multigrid replacement for one ``nn.Conv2d(in_channels, out_channels, kernel_size, stride,
    padding)`` (output size as that conv's, ``padding`` = kernel_size // 2 by default): the V-cycle with a full
    k x k conv + BN + ReLU at the coarsest level, a grouped k x k conv + BN + ReLU per level up, and the finest
    level's grouped conv last, without BN or ReLU: the host block's follow, as they follow the conv replaced."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=None,
                 group_size: int = 32, coarsest: int = 16, device=None, dtype=None):
        k = _positive_int(kernel_size if isinstance(kernel_size, numbers.Integral) else _pair(kernel_size)[0],
                          "kernel_size")
        if _pair(kernel_size) != (k, k):
            raise ValueError(f"leanconv: MultigridConv2d needs a square kernel, got {kernel_size}")
        if k % 2 == 0:
            raise ValueError(f"leanconv: MultigridConv2d needs an odd kernel_size (its levels keep the image size with "
                             f"padding kernel_size // 2), got {k}")
        padding = k // 2 if padding is None else padding
        factory = {"device": device, "dtype": dtype}
        super().__init__(in_channels, _positive_int(out_channels, "out_channels"), stride, group_size, coarsest, k,
                         padding, factory)
        if self.entry is None and _pair(padding) != (k // 2, k // 2):
            raise ValueError(f"leanconv: MultigridConv2d keeps the image size: with stride 1 and equal widths the "
                             f"padding must be kernel_size // 2 = {k // 2}, got {padding}")
        self.out_channels, self.kernel_size, self.padding = out_channels, (k, k), _pair(padding)
        self.coarse_conv = GroupedConv2d(self.levels[-1], self.levels[-1], k, 1, k // 2, bias=False, **factory)
        self.coarse_bn = _bn(self.levels[-1], relu=True, factory=factory)
        self.level_conv = nn.ModuleList(
            GroupedConv2d(c, c, k, 1, k // 2, groups=c // group_size, bias=False, **factory)
            for c in self.levels[:-1])
        # The finest level ends in its conv: the host block's BatchNorm and ReLU follow the drop-in, as they follow
        # the conv it replaces. The coarser levels are the cycle's hidden layers, with their own.
        self.level_bn = nn.ModuleList([nn.Identity()] + [_bn(c, relu=True, factory=factory) for c in self.levels[1:-1]])
        self.reset_parameters()

    def coarsest_level(self, x: Tensor) -> Tensor:
        return self.coarse_bn(self.coarse_conv(x))

    def smooth(self, level: int, z: Tensor) -> Tensor:
        return self.level_bn[level](self.level_conv[level](z))

    def num_dense_params(self) -> int:
        return self.in_channels * self.out_channels * self.kernel_size[0] * self.kernel_size[1]


class MultigridBlock(_VCycle):
    """The MGIC ResNet block: ``MultigridBlock(in_channels, channels, stride)`` in place of a basic residual block
    (two 3x3 convs): a full residual block at the coarsest level and a grouped residual block per level up."""

    def __init__(self, in_channels: int, channels: int, stride=1, group_size: int = 32, coarsest: int = 16,
                 device=None, dtype=None):
        factory = {"device": device, "dtype": dtype}
        super().__init__(in_channels, _positive_int(channels, "channels"), stride, group_size, coarsest, 3, 1, factory)
        width = self.levels[-1]
        self.coarse_conv1 = GroupedConv2d(width, width, 3, 1, 1, bias=False, **factory)
        self.coarse_bn1 = _bn(width, relu=True, factory=factory)
        self.coarse_conv2 = GroupedConv2d(width, width, 3, 1, 1, bias=False, **factory)
        self.coarse_bn2 = _bn(width, relu=True, factory=factory)  # relu(x + BN(conv(h)))
        self.level_conv1 = nn.ModuleList(GroupedConv2d(c, c, 3, 1, 1, groups=c // group_size, bias=False, **factory)
                                         for c in self.levels[:-1])
        self.level_bn1 = nn.ModuleList(_bn(c, relu=True, factory=factory) for c in self.levels[:-1])
        self.level_conv2 = nn.ModuleList(GroupedConv2d(c, c, 3, 1, 1, groups=c // group_size, bias=False, **factory)
                                         for c in self.levels[:-1])
        self.level_bn2 = nn.ModuleList(_bn(c, relu=True, factory=factory) for c in self.levels[:-1])
        self.reset_parameters()

    def coarsest_level(self, x: Tensor) -> Tensor:
        h = self.coarse_bn1(self.coarse_conv1(x))
        return self.coarse_bn2(self.coarse_conv2(h), x)

    def smooth(self, level: int, z: Tensor) -> Tensor:
        h = self.level_bn1[level](self.level_conv1[level](z))
        return self.level_bn2[level](self.level_conv2[level](h), z)

    def num_dense_params(self) -> int:
        """The basic residual block it replaces: two 3x3 convs and their BatchNorms, plus a 1x1 projection + BN
        when the stride or width changes."""
        dense = self.in_channels * self.channels * 9 + self.channels * self.channels * 9 + 4 * self.channels
        if self.entry is not None:
            dense += self.in_channels * self.channels + 2 * self.channels
        return dense


def multigrid_applies(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding=None,
                      dilation=1, group_size: int = 32, coarsest: int = 16) -> bool:
    """Whether a conv of this shape has a multigrid replacement that saves parameters: a square odd kernel, no
    dilation, "same" padding (``'same'`` or k // 2), at least two channel levels at ``out_channels`` (a single level
    would be the dense conv itself), and fewer learned parameters than the conv."""
    k = _pair(kernel_size)
    if k[0] != k[1] or k[0] % 2 == 0 or _pair(dilation) != (1, 1):
        return False
    if padding == "same":
        padding = k[0] // 2
    if padding is not None and _pair(padding) != (k[0] // 2, k[0] // 2):
        return False
    try:
        levels = channel_levels(out_channels, group_size, coarsest)
    except ValueError:
        return False
    if len(levels) < 2 or in_channels < 1:
        return False
    # A narrow conv (a stem's 3 -> 32, say) can cost less than its V-cycle: then it stays dense.
    with torch.device("meta"):
        cycle = MultigridConv2d(in_channels, out_channels, k[0], stride, group_size=group_size, coarsest=coarsest)
    return cycle.num_learned_params() < cycle.num_dense_params()


# ---- the family's conv factory (leanconv.families) ----------------------------------------------------------------

class MultigridConvs(DenseConvs):
    """Multigrid-in-channels convs (:class:`MultigridConv2d`) for every conv a V-cycle replaces with fewer parameters
    (``multigrid_applies``); the others stay dense. 1x1 convs too: the MobileNetV2 variant's pointwise convs become
    V-cycles of grouped 1x1 convs."""

    def __init__(self, group_size: int = 32, coarsest: int = 16):
        self.group_size, self.coarsest = group_size, coarsest

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if not multigrid_applies(in_channels, out_channels, kernel_size, stride, padding, 1, self.group_size,
                                 self.coarsest):
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return MultigridConv2d(in_channels, out_channels, kernel_size, stride, padding, group_size=self.group_size,
                               coarsest=self.coarsest)

    @staticmethod
    def from_conv(conv: nn.Conv2d, group_size: int = 32, coarsest: int = 16) -> nn.Module:
        """``leanconv.convert``'s layer for a conv: a freshly initialised MultigridConv2d of its shape (a V-cycle of
        grouped convs has no exact counterpart of a dense weight, so nothing is copied), or the conv itself where no
        V-cycle applies."""
        if conv.padding_mode != "zeros" or conv.stride[0] != conv.stride[1] or not multigrid_applies(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride[0], conv.padding, conv.dilation,
                group_size, coarsest):
            return conv
        padding = conv.kernel_size[0] // 2 if conv.padding == "same" else conv.padding  # (checked: "same")
        return MultigridConv2d(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride, padding,
                               group_size=group_size, coarsest=coarsest, device=conv.weight.device,
                               dtype=conv.weight.dtype)


__all__ = ["GroupedConv2d", "MultigridBlock", "MultigridConv2d"]
