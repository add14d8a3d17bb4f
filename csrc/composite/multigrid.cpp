#include "composite/multigrid.h"

#include "composite/conv_by_taps.h"

namespace leanconv::composite {

at::Tensor grouped_conv2d_composite(const at::Tensor& input, const at::Tensor& weight,
                                    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  return composite::convolution(input, weight, bias, stride, padding, dilation, groups);
}

std::tuple<at::Tensor, at::Tensor> grouped_conv2d_backward_composite(const at::Tensor& grad_output,
                                                                     const at::Tensor& input, const at::Tensor& weight,
                                                                     at::IntArrayRef stride, at::IntArrayRef padding,
                                                                     at::IntArrayRef dilation, int64_t groups,
                                                                     std::array<bool, 2> output_mask) {
  auto [grad_input, grad_weight] =
      composite::convolution_backward(grad_output, input, weight, stride, padding, dilation, groups, output_mask);
  return {grad_input, output_mask[1] ? grad_weight.contiguous() : at::Tensor()};
}

}  // namespace leanconv::composite
