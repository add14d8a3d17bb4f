#include "ops/multigrid_composite.h"

#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>

#include <vector>

namespace leanconv::ops {

at::Tensor grouped_conv2d_composite(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return at::convolution(input, weight, bias, stride, padding, dilation, false, std::vector<int64_t>{0, 0}, groups);
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_composite(const at::Tensor& grad_output,
                                                                     const at::Tensor& input, const at::Tensor& weight,
                                                                     at::IntArrayRef stride, at::IntArrayRef padding,
                                                                     at::IntArrayRef dilation, int64_t groups,
                                                                     std::array<bool, 2> output_mask) {
  auto [grad_input, grad_weight, unused_bias] =
      at::convolution_backward(grad_output, input, weight, std::nullopt, stride, padding, dilation, false,
                               std::vector<int64_t>{0, 0}, groups, {output_mask[0], output_mask[1], false});
  return {grad_input, output_mask[1] ? grad_weight.contiguous() : at::Tensor()};
}

}  // namespace leanconv::ops
