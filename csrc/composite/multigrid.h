// The grouped conv and its backward as aten convolutions: the path for geometries the direct kernels do not
// take, and the differentiable backward (double backward, torch.func) of leanconv::grouped_conv2d.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

namespace leanconv::composite {

at::Tensor grouped_conv2d_composite(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_composite(const at::Tensor& grad_output,
                                                                     const at::Tensor& input, const at::Tensor& weight,
                                                                     at::IntArrayRef stride, at::IntArrayRef padding,
                                                                     at::IntArrayRef dilation, int64_t groups,
                                                                     std::array<bool, 2> output_mask);

}  // namespace leanconv::composite
