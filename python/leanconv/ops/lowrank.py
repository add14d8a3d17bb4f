"""Low-rank (eigen-filter) ops (docs/lowrank.md). Autocast: the conv runs in the autocast dtype, like aten::conv2d.

The Python wrappers of the family's ops (``torch.ops.leanconv.*``, with argument docs), their fake (meta) kernels
for torch.compile and torch.export, and the family's autocast choice (registered in C++ beside the schema).
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

from ._meta import conv_out, memory_format, register_fake


def eigen_conv2d(input: Tensor, basis: Tensor, coeff: Tensor, bias: Optional[Tensor] = None, stride=(1, 1),
                 padding=(0, 0), dilation=(1, 1)) -> Tensor:
    """The eigen-filter (DeCEF) conv, fused: a depthwise conv of ``input`` with ``basis`` (C_in, R, kh, kw) followed
    by a 1x1 conv with ``coeff`` (C_out, C_in*R), plus ``bias``; the C_in*R intermediate is never stored."""
    return torch.ops.leanconv.eigen_conv2d(input, basis, coeff, bias, list(stride), list(padding), list(dilation))


def eigen_weight(basis: Tensor, coeff: Tensor) -> Tensor:
    """The dense weight (C_out, C_in, kh, kw) of the factors: ``weight[o, c] = sum_r coeff[o, c*R + r] * basis[c, r]``,
    one op (and one op for its backward) where the same einsum in aten takes several per layer and step."""
    return torch.ops.leanconv.eigen_weight(basis, coeff)


def eigen_conv2d_fused_is_cheaper(device, in_channels: int, out_channels: int, kernel_size: Sequence[int],
                                  rank: int) -> bool:
    """Whether the fused kernel is expected to beat weight materialisation + the dense conv for this layer shape
    on this device (the cost model is in C++, shared with the C++ module)."""
    kh, kw = kernel_size
    return torch.ops.leanconv.eigen_conv2d_fused_is_cheaper(torch.device(device).type, int(in_channels),
                                                            int(out_channels), int(kh), int(kw), int(rank))


# ---- fake kernels ----

@register_fake("leanconv::eigen_conv2d")
def _eigen_conv2d_fake(input, basis, coeff, bias, stride, padding, dilation):
    torch._check(input.dim() == 4, lambda: f"leanconv: eigen_conv2d expects a 4-D input, got {input.dim()}-D")
    torch._check(basis.dim() == 4 and coeff.dim() == 2, lambda: "leanconv: basis must be 4-D and coeff 2-D")
    torch._check(input.shape[1] == basis.shape[0],
                 lambda: f"leanconv: basis has C_in = {basis.shape[0]} channels but the input has {input.shape[1]}")
    torch._check(coeff.shape[1] == basis.shape[0] * basis.shape[1],
                 lambda: "leanconv: coeff must be (C_out, C_in*R)")
    out_h = conv_out(input.shape[2], basis.shape[2], stride[0], padding[0], dilation[0])
    out_w = conv_out(input.shape[3], basis.shape[3], stride[1], padding[1], dilation[1])
    out = input.new_empty((input.shape[0], coeff.shape[0], out_h, out_w))
    return out.contiguous(memory_format=memory_format(input))


@register_fake("leanconv::eigen_conv2d_backward")
def _eigen_conv2d_backward_fake(grad_output, input, basis, coeff, stride, padding, dilation, output_mask):
    grad_input = torch.empty_like(input, memory_format=memory_format(input)) if output_mask[0] else None
    grad_basis = torch.empty_like(basis, memory_format=torch.contiguous_format) if output_mask[1] else None
    grad_coeff = torch.empty_like(coeff, memory_format=torch.contiguous_format) if output_mask[2] else None
    return grad_input, grad_basis, grad_coeff


@register_fake("leanconv::eigen_weight")
def _eigen_weight_fake(basis, coeff):
    torch._check(basis.dim() == 4 and coeff.dim() == 2, lambda: "leanconv: basis must be 4-D and coeff 2-D")
    torch._check(coeff.shape[1] == basis.shape[0] * basis.shape[1], lambda: "leanconv: coeff must be (C_out, C_in*R)")
    torch._check(basis.dtype == coeff.dtype, lambda: f"leanconv: basis and coeff must have the same dtype, got "
                                                     f"{basis.dtype} and {coeff.dtype}")
    return basis.new_empty((coeff.shape[0], basis.shape[0], basis.shape[2], basis.shape[3]))


@register_fake("leanconv::eigen_weight_backward")
def _eigen_weight_backward_fake(grad_weight, basis, coeff, output_mask):
    grad_basis = torch.empty_like(basis, memory_format=torch.contiguous_format) if output_mask[0] else None
    grad_coeff = torch.empty_like(coeff, memory_format=torch.contiguous_format) if output_mask[1] else None
    return grad_basis, grad_coeff


__all__ = ["eigen_conv2d", "eigen_conv2d_fused_is_cheaper", "eigen_weight"]
