// segment_conv2d and its backward composed of aten's 1x1 conv (cuBLAS / cuDNN) and the shifted sum's kernels: the
// kernels of every device but the CPU, whose kernels (cpu/filter_summary_direct.cpp) never store z whole.
#include <ATen/ops/conv2d.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include "common/filter_summary_checks.h"
#include "leanconv/ops/filter_summary.h"
#include "composite/filter_summary.h"

namespace leanconv::composite {

at::Tensor segment_conv2d_grad_z(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments,
                                 int64_t kernel_h, int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto s =
      checks::segment_conv2d_geometry(input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  checks::check_conv_grad_output(grad_output, input, input.size(0), s.channels, s);
  return ops::shifted_sum_backward(grad_output, kernel_h, kernel_w, channel_step, stride, padding, dilation,
                              {input.sym_size(2), input.sym_size(3)});
}

at::Tensor segment_conv2d_composite(const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
                                    int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                    at::IntArrayRef padding, at::IntArrayRef dilation) {
  checks::segment_conv2d_geometry(input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation);
  const auto z = at::conv2d(input, segments.unsqueeze(-1).unsqueeze(-1));
  return ops::shifted_sum(z, kernel_h, kernel_w, channel_step, stride, padding, dilation);
}

std::tuple<at::Tensor, at::Tensor> segment_conv2d_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
    int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    std::array<bool, 2> output_mask) {
  if (input.numel() == 0) {  // aten's conv refuses empty images
    segment_conv2d_grad_z(grad_output, input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation);
    return {output_mask[0] ? at::zeros_like(input) : at::Tensor(),
            output_mask[1] ? at::zeros_like(segments) : at::Tensor()};
  }
  const auto grad_z = segment_conv2d_grad_z(grad_output, input, segments, kernel_h, kernel_w, channel_step, stride,
                                            padding, dilation);
  auto [grad_input, grad_weight, grad_bias] =
      at::convolution_backward(grad_z, input, segments.unsqueeze(-1).unsqueeze(-1), std::nullopt, {1, 1}, {0, 0},
                               {1, 1}, false, {0, 0}, 1, {output_mask[0], output_mask[1], false});
  return {grad_input, grad_weight.defined() ? grad_weight.flatten(1) : grad_weight};
}

}  // namespace leanconv::composite

namespace leanconv::composite {

TORCH_LIBRARY_IMPL(leanconv, CompositeExplicitAutograd, m) {
  m.impl("segment_conv2d", &composite::segment_conv2d_composite);
  m.impl("segment_conv2d_backward", &composite::segment_conv2d_backward_composite);
}

}  // namespace leanconv::composite
