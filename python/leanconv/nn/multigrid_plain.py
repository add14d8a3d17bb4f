"""A multigrid module (:class:`leanconv.nn.MultigridBlock` or :class:`leanconv.nn.MultigridConv2d`) as plain PyTorch:
``nn.Conv2d`` (grouped) layers, ``nn.BatchNorm2d`` with separate adds and ReLUs, no leanconv op. What
``module.materialize()`` (and so ``leanconv.materialize``) gives, with copies of the module's parameters and buffers
(frozen where the module's are), computing the module's function in training and eval mode. The restriction of
each level is computed once, on the way down, as in the module; the authors' code computes it again in the
correction (``leanconv.reference.multigrid``, the tests' and benchmarks' version)."""
import torch.nn.functional as F
from torch import nn


def _plain_conv(conv: nn.Conv2d) -> nn.Conv2d:
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, conv.bias is not None, device=conv.weight.device,
                      dtype=conv.weight.dtype)
    plain.load_state_dict(conv.state_dict())
    return _trained_as(plain, conv)


def _trained_as(plain: nn.Module, source: nn.Module) -> nn.Module:
    """The copy's parameters are frozen where the source's are (same module type, so the same order)."""
    for copied, original in zip(plain.parameters(), source.parameters()):
        copied.requires_grad_(original.requires_grad)
    return plain


def _plain_bn(bn: nn.Module) -> nn.Module:
    if isinstance(bn, nn.Identity):  # MultigridConv2d's finest level: its conv alone
        return nn.Identity()
    plain = nn.BatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                           device=bn.weight.device, dtype=bn.weight.dtype)
    plain.load_state_dict(bn.state_dict())
    return _trained_as(plain, bn)


def _plain_list(modules, make):
    return nn.ModuleList(make(m) for m in modules)


class PlainMultigrid(nn.Module):
    def __init__(self, module):
        super().__init__()
        # A block has a residual block per level (two convs), a conv a conv per level.
        self.block = hasattr(module, "coarse_conv1")
        if not hasattr(module, "levels") or not hasattr(module, "restrict"):
            raise TypeError(f"leanconv: {type(self).__name__} takes a MultigridBlock or MultigridConv2d, got "
                            f"{type(module).__name__}")
        self.levels = list(module.levels)
        self.entry = None if module.entry is None else nn.Sequential(
            _plain_conv(module.entry[0]), _plain_bn(module.entry[1]), nn.ReLU())
        self.restrict = _plain_list(module.restrict, _plain_conv)
        self.prolong = _plain_list(module.prolong, _plain_conv)
        self.correction_bn = _plain_list(module.correction_bn, _plain_bn)
        if self.block:
            self.coarse = nn.ModuleList([_plain_conv(module.coarse_conv1), _plain_bn(module.coarse_bn1),
                                         _plain_conv(module.coarse_conv2), _plain_bn(module.coarse_bn2)])
            self.up = nn.ModuleList(
                nn.ModuleList([_plain_conv(c1), _plain_bn(b1), _plain_conv(c2), _plain_bn(b2)])
                for c1, b1, c2, b2 in zip(module.level_conv1, module.level_bn1, module.level_conv2, module.level_bn2))
        else:
            self.coarse = nn.ModuleList([_plain_conv(module.coarse_conv), _plain_bn(module.coarse_bn)])
            self.up = nn.ModuleList(nn.ModuleList([_plain_conv(c), _plain_bn(b)])
                                    for c, b in zip(module.level_conv, module.level_bn))

    def _residual_block(self, layers, x):
        conv1, bn1, conv2, bn2 = layers
        h = F.relu(bn1(conv1(x)))
        return F.relu(x + bn2(conv2(h)))

    def _conv_level(self, layers, x):
        conv, bn = layers
        y = bn(conv(x))
        return y if isinstance(bn, nn.Identity) else F.relu(y)

    def restricted(self, level: int, fine: list):
        """R_level x_level for the correction at `level`: the down pass's."""
        return fine[level + 1]

    def forward(self, x):
        if self.entry is not None:
            x = self.entry(x)
        fine = [x]
        for restrict in self.restrict:
            fine.append(restrict(fine[-1]))
        smooth = self._residual_block if self.block else self._conv_level
        out = smooth(self.coarse, fine[-1])
        for level in reversed(range(len(self.levels) - 1)):
            x_k = fine[level]
            z = x_k + self.correction_bn[level](self.prolong[level](out - self.restricted(level, fine)))
            out = smooth(self.up[level], z)
        return out


__all__ = ["PlainMultigrid"]
