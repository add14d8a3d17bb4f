#include "ops/multigrid_composite.h"

#include "ops/conv_by_taps.h"

namespace leanconv::ops {

at::Tensor grouped_conv2d_composite(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return ops::convolution(input, weight, bias, stride, padding, dilation, groups);
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_composite(const at::Tensor& grad_output,
                                                                     const at::Tensor& input, const at::Tensor& weight,
                                                                     at::IntArrayRef stride, at::IntArrayRef padding,
                                                                     at::IntArrayRef dilation, int64_t groups,
                                                                     std::array<bool, 2> output_mask) {
  auto [grad_input, grad_weight] =
      ops::convolution_backward(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
  return {grad_input, output_mask[1] ? grad_weight.contiguous() : at::Tensor()};
}

}  // namespace leanconv::ops
