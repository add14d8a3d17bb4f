"""The DeCEF layer as the papers' code writes it, in plain PyTorch, for benchmarks: a depthwise conv with channel
multiplier R (the bases) and then a 1x1 conv (the coefficients). The C_in*R intermediate is a full tensor that
autograd keeps for the 1x1 conv's backward."""
import torch.nn.functional as F
from torch import nn


class PlainEigenConv2d(nn.Module):
    """Shares the parameters of an :class:`leanconv.nn.EigenConv2d` (no copies), so both compute one function."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        m = self.layer
        c_in, rank, kh, kw = m.basis.shape
        z = F.conv2d(x, m.basis.reshape(c_in * rank, 1, kh, kw), None, m.stride, m.padding, m.dilation, groups=c_in)
        return F.conv2d(z, m.coeff.reshape(m.out_channels, c_in * rank, 1, 1), m.bias)


def plain_copy(model: nn.Module) -> nn.Module:
    """The model with every EigenConv2d wrapped as a PlainEigenConv2d (parameters shared)."""
    from ..nn import EigenConv2d

    for name, child in model.named_children():
        if isinstance(child, EigenConv2d):
            setattr(model, name, PlainEigenConv2d(child))
        else:
            plain_copy(child)
    return model
