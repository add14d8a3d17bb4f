// segment_conv2d's backward composed of aten ops, and the piece of it every device shares: the gradient of the
// 1x1 conv's output z, the shifted sum's adjoint of grad_output, after the checks of the backward's arguments.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <tuple>

namespace leanconv::composite {

at::Tensor segment_conv2d_grad_z(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments,
                                 int64_t kernel_h, int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation);

// segment_conv2d as aten's 1x1 conv (cuDNN / oneDNN) and the shifted sum: the kernel of every device but the CPU,
// and the CPU's for half and bfloat16.
at::Tensor segment_conv2d_composite(const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
                                   int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation);

// segment_conv2d's gradients through aten's 1x1 conv backward (cuDNN / oneDNN): the kernel of every device but
// the CPU, and the CPU's for half and bfloat16.
std::tuple<at::Tensor, at::Tensor> segment_conv2d_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
    int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    std::array<bool, 2> output_mask);

}  // namespace leanconv::composite
