// Argument checks and geometry of the grouped conv.
#pragma once

#include <optional>

#include "checks.h"
#include "multigrid.h"

namespace leanconv::checks {

// The grouped conv's operands: input (N, C_in, H, W), weight (C_out, C_in/groups, kh, kw), bias (C_out) or none,
// groups dividing C_in and C_out; all on one device with one dtype.
inline common::GroupedConv grouped_conv_geometry(const at::Tensor& input, const at::Tensor& weight,
                                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                                 at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.dim() == 4, "leanconv: grouped_conv2d expects a 4-D (N, C_in, H, W) input, got shape ",
              input.sizes());
  check_floating(input, "input");
  check_dim(weight, 4, "weight (C_out, C_in/groups, kh, kw)");
  check_same_device(input, "input", weight, "weight");
  check_same_dtype(input, "input", weight, "weight");
  check_conv_arguments(stride, padding, dilation);
  TORCH_CHECK(groups >= 1, "leanconv: grouped_conv2d groups must be positive, got ", groups);
  common::GroupedConv g{};
  g.batch = input.size(0);
  g.in_channels = input.size(1);
  g.out_channels = weight.size(0);
  g.groups = groups;
  set_window_arguments(g, weight.size(2), weight.size(3), stride, padding, dilation);
  TORCH_CHECK(g.out_channels > 0 && weight.size(1) > 0 && g.kernel_h > 0 && g.kernel_w > 0,
              "leanconv: grouped_conv2d weight must not be empty, got shape ", weight.sizes());
  TORCH_CHECK(g.in_channels % groups == 0 && g.out_channels % groups == 0, "leanconv: grouped_conv2d groups = ",
              groups, " must divide the input channels (", g.in_channels, ") and the output channels (",
              g.out_channels, ")");
  TORCH_CHECK(weight.size(1) == g.in_channels / groups, "leanconv: grouped_conv2d weight must be (C_out, C_in/groups",
              ", kh, kw) with C_in/groups = ", g.in_channels / groups, ", got shape ", weight.sizes());
  check_conv_bias(bias, input, g.out_channels);
  set_window_sizes(g, input.size(2), input.size(3));
  checked_numel({g.out_channels, g.out_h, g.out_w});  // the strides of an output, even of an empty batch
  checked_numel({g.batch, g.out_channels, g.out_h, g.out_w});
  return g;
}

// The backward's operands: the forward's, plus grad_output of the forward output's shape.
inline common::GroupedConv grouped_conv_backward_geometry(const at::Tensor& grad_output, const at::Tensor& input,
                                                          const at::Tensor& weight, at::IntArrayRef stride,
                                                          at::IntArrayRef padding, at::IntArrayRef dilation,
                                                          int64_t groups) {
  const auto g = grouped_conv_geometry(input, weight, std::nullopt, stride, padding, dilation, groups);
  check_conv_grad_output(grad_output, input, g.batch, g.out_channels, g);
  return g;
}

}  // namespace leanconv::checks
