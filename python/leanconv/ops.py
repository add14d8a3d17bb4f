"""Python wrappers of leanconv's operators (torch.ops.leanconv.*), with argument docs."""
from typing import Optional, Sequence

import torch
from torch import Tensor



def generate_weights(ring: Tensor, seed: int, total: int, offset: int, shape: Sequence[int], scale: float) -> Tensor:
    """Positions ``[offset, offset + prod(shape))`` of a generated-weight model's virtual weight sequence.

    ``out[j] = scale * s(offset + j) * ring[pi(offset + j) % ring.numel()]`` where ``pi`` is a fixed
    pseudo-random bijection of ``[0, total)`` and ``s`` a fixed pseudo-random sign, both from ``seed``.
    Differentiable with respect to ``ring``.
    """
    return torch.ops.leanconv.generate_weights(ring, int(seed), int(total), int(offset), list(shape), float(scale))


def generate_weights_backward(grad: Tensor, ring_size: int, seed: int, total: int, offset: int, scale: float) -> Tensor:
    """The adjoint of :func:`generate_weights`: reduces ``grad`` into a ring of ``ring_size`` entries."""
    return torch.ops.leanconv.generate_weights_backward(grad, int(ring_size), int(seed), int(total), int(offset),
                                                        float(scale))


__all__ = ["generate_weights", "generate_weights_backward"]


def filter_summary_weight(summary: Tensor, out_channels: int, in_channels: int, kernel_size: Sequence[int],
                          stride: int) -> Tensor:
    """The dense weight of a filter-summary layer:
    ``weight[o, c, i, j] = summary[(o * stride + (i * kw + j) * in_channels + c) % len(summary)]``."""
    kh, kw = kernel_size
    return torch.ops.leanconv.filter_summary_weight(summary, int(out_channels), int(in_channels), int(kh), int(kw),
                                                    int(stride))


def filter_summary_weight_backward(grad_weight: Tensor, length: int, stride: int) -> Tensor:
    """The adjoint of :func:`filter_summary_weight`: overlap-add of ``grad_weight`` into a summary."""
    return torch.ops.leanconv.filter_summary_weight_backward(grad_weight, int(length), int(stride))


def shifted_sum(z: Tensor, kernel_size: Sequence[int], channel_step: int, stride=(1, 1), padding=(0, 0),
                dilation=(1, 1)) -> Tensor:
    """``y[n, o, p, q] = sum_{i,j} z[n, (o + (i*kw + j) * channel_step) % M, p*sh - ph + i*dh, q*sw - pw + j*dw]``."""
    kh, kw = kernel_size
    return torch.ops.leanconv.shifted_sum(z, int(kh), int(kw), int(channel_step), list(stride), list(padding),
                                          list(dilation))


__all__ += ["filter_summary_weight", "filter_summary_weight_backward", "shifted_sum"]


def eigen_conv2d(input: Tensor, basis: Tensor, coeff: Tensor, bias: Optional[Tensor] = None, stride=(1, 1),
                 padding=(0, 0), dilation=(1, 1)) -> Tensor:
    """The eigen-filter (DeCEF) conv, fused: a depthwise conv of ``input`` with ``basis`` (C_in, R, kh, kw) followed
    by a 1x1 conv with ``coeff`` (C_out, C_in*R), plus ``bias``; the C_in*R intermediate is never stored."""
    return torch.ops.leanconv.eigen_conv2d(input, basis, coeff, bias, list(stride), list(padding), list(dilation))


def eigen_conv2d_fused_is_cheaper(device, in_channels: int, out_channels: int, kernel_size: Sequence[int],
                                  rank: int) -> bool:
    """Whether the fused kernel is expected to beat weight materialisation + the dense conv for this layer shape
    on this device (the cost model is in C++, shared with the C++ module)."""
    kh, kw = kernel_size
    return torch.ops.leanconv.eigen_conv2d_fused_is_cheaper(torch.device(device).type, int(in_channels),
                                                            int(out_channels), int(kh), int(kw), int(rank))


__all__ += ["eigen_conv2d", "eigen_conv2d_fused_is_cheaper"]
