"""The multigrid family's grouped conv (docs/multigrid.md). Autocast: it runs in the autocast dtype, like
aten::conv2d.

The Python wrappers of the op (``torch.ops.leanconv.grouped_conv2d``), its fake (meta) kernels for torch.compile
and torch.export, and the per-shape choice between leanconv's kernels and aten's convolution (kept in C++, shared
with the C++ modules).
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._meta import conv_out, memory_format, register_fake


def grouped_conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=(1, 1), padding=(0, 0),
                   dilation=(1, 1), groups: int = 1) -> Tensor:
    """``F.conv2d(input, weight, bias, stride, padding, dilation, groups)`` by leanconv's direct kernels, written for
    small groups (4-64 channels per group): weight (C_out, C_in/groups, kh, kw)."""
    return torch.ops.leanconv.grouped_conv2d(input, weight, bias, list(stride), list(padding), list(dilation),
                                             int(groups))


def _shape_args(device, dtype, channels_last, in_channels, out_channels, groups, kernel, stride, in_size):
    return (torch.device(device).type, dtype, bool(channels_last), int(in_channels), int(out_channels), int(groups),
            int(kernel), int(stride), int(in_size[0]), int(in_size[1]))


def grouped_conv2d_uses_kernel(device, dtype, channels_last: bool, in_channels: int, out_channels: int, groups: int,
                               kernel: int, stride: int, in_size) -> bool:
    """Whether leanconv's kernel (rather than aten's convolution) runs a grouped conv of this shape: a recorded
    measurement (``record_grouped_conv2d_choice``, ``leanconv.multigrid.tune``), else the rule fitted to the
    benchmarks."""
    return torch.ops.leanconv.grouped_conv2d_uses_kernel(
        *_shape_args(device, dtype, channels_last, in_channels, out_channels, groups, kernel, stride, in_size))


def grouped_conv2d_rule(device, dtype, channels_last: bool, in_channels: int, out_channels: int, groups: int,
                        kernel: int, stride: int, in_size) -> bool:
    """The fitted rule alone (what an unmeasured shape gets)."""
    return torch.ops.leanconv.grouped_conv2d_rule(
        *_shape_args(device, dtype, channels_last, in_channels, out_channels, groups, kernel, stride, in_size))


def record_grouped_conv2d_choice(device, dtype, channels_last: bool, in_channels: int, out_channels: int,
                                 groups: int, kernel: int, stride: int, in_size, use_kernel: bool) -> None:
    torch.ops.leanconv.record_grouped_conv2d_choice(
        *_shape_args(device, dtype, channels_last, in_channels, out_channels, groups, kernel, stride, in_size),
        bool(use_kernel))


def grouped_conv2d_choices() -> List[str]:
    """The recorded choices, ``"<device> <dtype> <layout> <C_in>-><C_out> g<groups> k<kernel> s<stride> <H>x<W>:
    leanconv|aten"``."""
    return list(torch.ops.leanconv.grouped_conv2d_choices())


def clear_grouped_conv2d_choices() -> None:
    torch.ops.leanconv.clear_grouped_conv2d_choices()


# ---- fake kernels ----

@register_fake("leanconv::grouped_conv2d")
def _grouped_conv2d_fake(input, weight, bias, stride, padding, dilation, groups):
    torch._check(input.dim() == 4 and weight.dim() == 4,
                 lambda: f"leanconv: grouped_conv2d expects a 4-D input and weight, got {input.dim()}-D and "
                         f"{weight.dim()}-D")
    torch._check(groups >= 1 and input.shape[1] % groups == 0 and weight.shape[0] % groups == 0,
                 lambda: f"leanconv: grouped_conv2d groups = {groups} must divide the input channels "
                         f"({input.shape[1]}) and the output channels ({weight.shape[0]})")
    torch._check(weight.shape[1] * groups == input.shape[1],
                 lambda: "leanconv: grouped_conv2d weight must be (C_out, C_in/groups, kh, kw)")
    out_h = conv_out(input.shape[2], weight.shape[2], stride[0], padding[0], dilation[0])
    out_w = conv_out(input.shape[3], weight.shape[3], stride[1], padding[1], dilation[1])
    out = input.new_empty((input.shape[0], weight.shape[0], out_h, out_w))
    return out.contiguous(memory_format=memory_format(input))


@register_fake("leanconv::grouped_conv2d_backward")
def _grouped_conv2d_backward_fake(grad_output, input, weight, stride, padding, dilation, groups, output_mask):
    grad_input = torch.empty_like(input, memory_format=memory_format(input)) if output_mask[0] else None
    grad_weight = torch.empty_like(weight, memory_format=torch.contiguous_format) if output_mask[1] else None
    return grad_input, grad_weight


__all__ = ["grouped_conv2d", "grouped_conv2d_uses_kernel", "grouped_conv2d_choices"]
