"""Low-rank (DeCEF) convolution: each input channel's filters are spanned by R learned basis filters.

``W[o, i] = sum_r coeff[o, i*R + r] * basis[i, r]`` with ``basis`` (C_in, R, kh, kw) and ``coeff`` (C_out, C_in*R):
a depthwise conv with the bases (channel multiplier R) followed by a 1x1 conv with ``coeff``. The layer learns
C_in*R*k^2 + C_out*C_in*R weights instead of C_out*C_in*k^2.

Two execution paths compute the same function:
- ``fused``: ``leanconv::eigen_conv2d``, which never stores the C_in*R intermediate (forward and backward);
- ``materialized``: the dense weight W = coeff x basis once per call, then ``F.conv2d`` (oneDNN / cuDNN).
``path='auto'`` picks per device from a cost model shared with the C++ module
(:func:`leanconv.ops.eigen_conv2d_fused_is_cheaper`); :meth:`EigenConv2d.chosen_path` says which.
"""
import math
import numbers
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..lowrank import effective_rank, factorize
from ._convs import DenseConvs, Scope
from ._conv_args import (apply_padding_mode, arguments_of, check_conv_input, conv_extra_repr, conv_geometry, copy_bias,
                         dense_conv_like)

PATHS = ("auto", "fused", "materialized")


def checked_rank(rank, taps: int) -> int:
    """``rank`` as an int: an integral number (a float such as 2.5 would be silently truncated, so it is refused)."""
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"leanconv: rank must be an int between 1 and kh*kw = {taps}, got {rank!r}")
    return int(rank)
_DEVICE_TYPES = ("cpu", "cuda")


class EigenConv2d(nn.Module):
    """A conv whose filters, per input channel, lie in the span of ``rank`` learned basis filters (DeCEF).

    Same arguments as ``nn.Conv2d`` (``groups`` must be 1) plus ``rank`` (1..kh*kw) and ``path``
    ('auto', 'fused' or 'materialized').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 rank: int, path: str = "auto"):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = conv_geometry(
            "EigenConv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode)
        if groups != 1:
            raise ValueError(f"leanconv: EigenConv2d factorises a groups=1 conv, got groups={groups}; a depthwise or "
                             "grouped conv has too few filters per input channel to share a basis: keep nn.Conv2d")
        taps = self.kernel_size[0] * self.kernel_size[1]
        rank = checked_rank(rank, taps)
        if not 1 <= rank <= taps:
            raise ValueError(f"leanconv: rank must be between 1 and kh*kw = {taps}, got {rank}")
        if path not in PATHS:
            raise ValueError(f"leanconv: path must be one of {PATHS}, got {path!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, 1
        self.padding_mode, self.rank, self.path = padding_mode, int(rank), path
        factory = {"device": device, "dtype": dtype}
        self.basis = nn.Parameter(torch.empty(in_channels, self.rank, *self.kernel_size, **factory))
        self.coeff = nn.Parameter(torch.empty(out_channels, in_channels * self.rank, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        # Fixed by the shape, so computed once: the forward only looks it up (torch.compile sees a constant).
        self._fused_cheaper = {t: ops.eigen_conv2d_fused_is_cheaper(t, in_channels, out_channels, self.kernel_size,
                                                                     self.rank) for t in _DEVICE_TYPES}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Orthonormal bases per channel and coeff uniform in +-1/sqrt(C_in*R) give the dense weight the variance
        # of nn.Conv2d's default init (uniform in +-1/sqrt(C_in*k*k)).
        taps = self.kernel_size[0] * self.kernel_size[1]
        with torch.no_grad():
            gaussian = torch.randn(self.in_channels, taps, self.rank, dtype=torch.float64)
            q = torch.linalg.qr(gaussian).Q  # (C_in, k^2, R), orthonormal columns
            self.basis.copy_(q.transpose(1, 2).reshape(self.basis.shape))
        nn.init.uniform_(self.coeff, -1.0 / math.sqrt(self.in_channels * self.rank),
                         1.0 / math.sqrt(self.in_channels * self.rank))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_channels * taps)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def weight(self) -> Tensor:
        """The dense equivalent weight (C_out, C_in, kh, kw), differentiable with respect to basis and coeff."""
        return ops.eigen_weight(self.basis, self.coeff)

    def chosen_path(self, device=None) -> str:
        """'fused' or 'materialized': the path a forward on ``device`` (default: the parameters') takes."""
        if self.path != "auto":
            return self.path
        device_type = torch.device(device).type if device is not None else self.coeff.device.type
        return "fused" if self._fused_cheaper.get(device_type, False) else "materialized"

    def forward(self, input: Tensor) -> Tensor:
        check_conv_input("EigenConv2d", input, self.in_channels)
        input, padding = apply_padding_mode(input, self)
        if self.chosen_path(input.device.type) == "materialized":
            return F.conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation)
        unbatched = input.dim() == 3
        x = input.unsqueeze(0) if unbatched else input
        y = ops.eigen_conv2d(x, self.basis, self.coeff, self.bias, self.stride, padding, self.dilation)
        return y.squeeze(0) if unbatched else y

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, rank: Optional[int] = None, energy: float = 0.99,
                  **options) -> "EigenConv2d":
        """A layer initialised from a trained dense conv by a per-channel SVD (:func:`leanconv.lowrank.factorize`).

        ``rank`` defaults to the layer's effective rank at ``energy``. With rank = min(C_out, kh*kw) the layer
        computes the dense conv's function exactly (up to rounding)."""
        if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
            raise ValueError("leanconv: EigenConv2d.from_conv takes an nn.Conv2d with groups=1")
        if conv.weight.is_meta:  # a layer of the right shapes, without values (as nn.Conv2d on the meta device)
            if rank is None:
                raise ValueError("leanconv: EigenConv2d.from_conv of a meta-device conv needs a rank: its weight has "
                                 "no values to choose one by energy")
            return cls(**arguments_of(conv), rank=rank, **options)
        if rank is None:
            rank = effective_rank(conv, energy)
        layer = cls(**arguments_of(conv), rank=rank, **options)
        basis, coeff = factorize(conv.weight.detach(), layer.rank)
        with torch.no_grad():
            layer.basis.copy_(basis)
            layer.coeff.copy_(coeff)
        copy_bias(layer, conv)
        return layer

    def materialize(self) -> nn.Conv2d:
        """An ``nn.Conv2d`` computing the same function, with the reconstructed weight copied in."""
        return dense_conv_like(self, self.weight.detach(), self.bias)

    def num_learned_params(self) -> int:
        return self.basis.numel() + self.coeff.numel() + (0 if self.bias is None else self.bias.numel())

    def num_dense_params(self) -> int:
        taps = self.kernel_size[0] * self.kernel_size[1]
        return self.out_channels * self.in_channels * taps + (0 if self.bias is None else self.bias.numel())

    def multiply_adds(self, input: Tensor, output: Tensor) -> int:
        """The depthwise conv with the R bases, then the 1x1 conv with the coefficients."""
        kh, kw = self.kernel_size
        pixels = output.numel() // self.out_channels
        return pixels * self.in_channels * self.rank * (kh * kw + self.out_channels)

    def extra_repr(self) -> str:
        compression = self.num_dense_params() / self.num_learned_params()
        choices = ", ".join(f"{t}: {self.chosen_path(t)}" for t in _DEVICE_TYPES)
        path = f"auto ({choices})" if self.path == "auto" else self.path
        return conv_extra_repr(self) + f", rank={self.rank}, compression={compression:.2f}x, path={path}"


# ---- the family's conv factory (leanconv.families) ----------------------------------------------------------------

RankRule = Union[int, Sequence[int], Callable[[int, int, int, Scope], int]]


class LowrankConvs(DenseConvs):
    """Low-rank (DeCEF) convs for every k x k conv (k > 1); 1x1 convs stay dense (rank 1 would not save anything).

    ``rank`` is the rule: an int for every layer, a sequence indexed by stage (the effective rank falls with
    depth, so a falling schedule such as ``(6, 5, 4)`` follows it), or a callable
    ``rank(in_channels, out_channels, kernel_size, scope) -> int``. Ranks above k*k are clipped to k*k."""

    def __init__(self, rank: RankRule = 4, path: str = "auto"):
        self.rank, self.path = rank, path

    def rank_of(self, in_channels, out_channels, kernel_size, scope: Scope) -> int:
        if callable(self.rank):
            rank = self.rank(in_channels, out_channels, kernel_size, scope)
        elif isinstance(self.rank, numbers.Number):
            rank = self.rank  # checked below: a float rank is refused, not truncated
        else:
            if scope[0] >= len(self.rank):
                raise ValueError(f"leanconv: the rank schedule {tuple(self.rank)} has no entry for stage {scope[0]}")
            rank = self.rank[scope[0]]
        return min(checked_rank(rank, kernel_size * kernel_size), kernel_size * kernel_size)

    def conv(self, in_channels, out_channels, kernel_size, stride=1, padding=0, scope: Scope = (0, 0)):
        if kernel_size == 1:
            return super().conv(in_channels, out_channels, kernel_size, stride, padding, scope)
        return EigenConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False,
                           rank=self.rank_of(in_channels, out_channels, kernel_size, scope), path=self.path)

    @staticmethod
    def from_conv(conv: nn.Conv2d, rank=None, energy: float = 0.99, path: str = "auto") -> nn.Module:
        """``leanconv.convert``'s layer for a trained conv: :meth:`EigenConv2d.from_conv`, a rank above k*k being the
        full rank k*k, as the model builders take it."""
        if rank is not None:
            taps = conv.kernel_size[0] * conv.kernel_size[1]
            rank = min(checked_rank(rank, taps), taps)
        return EigenConv2d.from_conv(conv, rank=rank, energy=energy, path=path)


__all__ = ["EigenConv2d"]
