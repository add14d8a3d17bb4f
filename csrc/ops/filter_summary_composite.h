// The piece of segment_conv2d's backward that every device shares: the gradient of the 1x1 conv's output z,
// the shifted sum's adjoint of grad_output, after the checks of the backward's arguments.
#pragma once

#include <ATen/core/Tensor.h>

namespace leanconv::ops {

at::Tensor segment_conv2d_grad_z(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments,
                                 int64_t kernel_h, int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation);

}  // namespace leanconv::ops
