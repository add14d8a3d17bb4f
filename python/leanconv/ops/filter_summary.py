"""Overlapping-segment ops (docs/filter_summary.md). Autocast: the shifted sum runs in the autocast dtype; the gathers need none.

The Python wrappers of the family's ops (``torch.ops.leanconv.*``, with argument docs), their fake (meta) kernels
for torch.compile and torch.export, and the family's autocast choice (registered in C++ beside the schema).
"""
from typing import Sequence

import torch
from torch import Tensor

from ._meta import conv_out, memory_format, register_fake


def filter_summary_weight(summary: Tensor, out_channels: int, in_channels: int, kernel_size: Sequence[int],
                          summary_stride: int) -> Tensor:
    """The dense weight of a filter-summary layer:
    ``weight[o, c, i, j] = summary[(o * summary_stride + (i * kw + j) * in_channels + c) % len(summary)]``."""
    kh, kw = kernel_size
    return torch.ops.leanconv.filter_summary_weight(summary, int(out_channels), int(in_channels), int(kh), int(kw),
                                                    int(summary_stride))


def filter_summary_weight_backward(grad_weight: Tensor, length: int, summary_stride: int) -> Tensor:
    """The adjoint of :func:`filter_summary_weight`: overlap-add of ``grad_weight`` into a summary."""
    return torch.ops.leanconv.filter_summary_weight_backward(grad_weight, int(length), int(summary_stride))


def shifted_sum(z: Tensor, kernel_size: Sequence[int], channel_step: int, stride=(1, 1), padding=(0, 0),
                dilation=(1, 1)) -> Tensor:
    """``y[n, o, p, q] = sum_{i,j} z[n, (o + (i*kw + j) * channel_step) % M, p*sh - ph + i*dh, q*sw - pw + j*dw]``."""
    kh, kw = kernel_size
    return torch.ops.leanconv.shifted_sum(z, int(kh), int(kw), int(channel_step), list(stride), list(padding),
                                          list(dilation))


def segment_conv2d(input: Tensor, segments: Tensor, kernel_size: Sequence[int], channel_step: int, stride=(1, 1),
                   padding=(0, 0), dilation=(1, 1)) -> Tensor:
    """The direct path of a filter-summary conv: ``shifted_sum(z, ...)`` of the 1x1 conv
    ``z[n, m] = sum_c segments[m, c] * input[n, c]`` with segments (M, C_in). The CPU kernel computes z a band of
    rows at a time and never stores it whole."""
    kh, kw = kernel_size
    return torch.ops.leanconv.segment_conv2d(input, segments, int(kh), int(kw), int(channel_step), list(stride),
                                             list(padding), list(dilation))


# ---- fake kernels ----

@register_fake("leanconv::filter_summary_weight")
def _filter_summary_weight_fake(summary, out_channels, in_channels, kernel_h, kernel_w, summary_stride):
    torch._check(summary.dim() == 1, lambda: f"leanconv: summary must be 1-D, got {summary.dim()}-D")
    torch._check(summary_stride >= 1,
                 lambda: f"leanconv: the summary stride s must be at least 1, got {summary_stride}")
    torch._check(summary.shape[0] == out_channels * summary_stride,
                 lambda: f"leanconv: summary length must be C_out * s = {out_channels * summary_stride}")
    return summary.new_empty((out_channels, in_channels, kernel_h, kernel_w))


@register_fake("leanconv::filter_summary_weight_backward")
def _filter_summary_weight_backward_fake(grad_weight, length, summary_stride):
    return grad_weight.new_empty((length,))


@register_fake("leanconv::shifted_sum")
def _shifted_sum_fake(z, kernel_h, kernel_w, channel_step, stride, padding, dilation):
    torch._check(z.dim() == 4, lambda: f"leanconv: z must be 4-D, got {z.dim()}-D")
    out_h = conv_out(z.shape[2], kernel_h, stride[0], padding[0], dilation[0])
    out_w = conv_out(z.shape[3], kernel_w, stride[1], padding[1], dilation[1])
    return z.new_empty((z.shape[0], z.shape[1], out_h, out_w)).contiguous(memory_format=memory_format(z))


@register_fake("leanconv::shifted_sum_backward")
def _shifted_sum_backward_fake(grad_output, kernel_h, kernel_w, channel_step, stride, padding, dilation, input_size):
    out = grad_output.new_empty((grad_output.shape[0], grad_output.shape[1], input_size[0], input_size[1]))
    return out.contiguous(memory_format=memory_format(grad_output))


@register_fake("leanconv::segment_conv2d")
def _segment_conv2d_fake(input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation):
    torch._check(input.dim() == 4, lambda: f"leanconv: input must be 4-D, got {input.dim()}-D")
    torch._check(segments.dim() == 2, lambda: f"leanconv: segments must be 2-D, got {segments.dim()}-D")
    torch._check(segments.shape[1] == input.shape[1],
                 lambda: f"leanconv: segments (M, C_in) must have one column per input channel: got segments of "
                         f"shape {tuple(segments.shape)} for an input of shape {tuple(input.shape)}")
    torch._check(segments.dtype == input.dtype, lambda: f"leanconv: input and segments must have the same dtype, got "
                                                         f"{input.dtype} and {segments.dtype}")
    out_h = conv_out(input.shape[2], kernel_h, stride[0], padding[0], dilation[0])
    out_w = conv_out(input.shape[3], kernel_w, stride[1], padding[1], dilation[1])
    out = input.new_empty((input.shape[0], segments.shape[0], out_h, out_w))
    return out.contiguous(memory_format=memory_format(input))


@register_fake("leanconv::segment_conv2d_backward")
def _segment_conv2d_backward_fake(grad_output, input, segments, kernel_h, kernel_w, channel_step, stride, padding,
                                  dilation, output_mask):
    grad_input = torch.empty_like(input, memory_format=memory_format(input)) if output_mask[0] else None
    grad_segments = torch.empty_like(segments, memory_format=torch.contiguous_format) if output_mask[1] else None
    return grad_input, grad_segments


__all__ = ["filter_summary_weight", "filter_summary_weight_backward", "shifted_sum", "segment_conv2d"]
