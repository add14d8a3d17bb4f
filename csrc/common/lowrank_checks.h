// Argument checks and geometry of the low-rank (eigen-filter) conv.
#pragma once

#include <algorithm>
#include <optional>

#include "checks.h"
#include "lowrank.h"

namespace leanconv::checks {

// The eigen-filter conv's operands: input (N, C_in, H, W), basis (C_in, R, kh, kw) with 1 <= R <= kh*kw,
// coeff (C_out, C_in*R), bias (C_out) or none; all on one device with one dtype.
inline common::EigenConv eigen_conv_geometry(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                             at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(input.dim() == 4, "leanconv: eigen_conv2d expects a 4-D (N, C_in, H, W) input, got shape ",
              input.sizes());
  check_floating(input, "input");
  check_dim(basis, 4, "basis (C_in, R, kh, kw)");
  check_dim(coeff, 2, "coeff (C_out, C_in*R)");
  check_same_device(input, "input", basis, "basis");
  check_same_device(input, "input", coeff, "coeff");
  check_same_dtype(input, "input", basis, "basis");
  check_same_dtype(input, "input", coeff, "coeff");
  check_conv_arguments(stride, padding, dilation);
  common::EigenConv g{};
  g.batch = input.size(0);
  g.in_channels = basis.size(0);
  g.rank = basis.size(1);
  set_window_arguments(g, basis.size(2), basis.size(3), stride, padding, dilation);
  g.out_channels = coeff.size(0);
  TORCH_CHECK(g.in_channels > 0 && g.kernel_h > 0 && g.kernel_w > 0 && g.out_channels > 0,
              "leanconv: basis and coeff must not be empty, got basis ", basis.sizes(), " and coeff ", coeff.sizes());
  TORCH_CHECK(input.size(1) == g.in_channels, "leanconv: basis has C_in = ", g.in_channels,
              " channels but the input has ", input.size(1), " (input shape ", input.sizes(), ")");
  TORCH_CHECK(g.rank >= 1 && g.rank <= g.kernel_h * g.kernel_w, "leanconv: rank R = basis.size(1) must be between 1 and kh*kw = ",
              g.kernel_h * g.kernel_w, ", got ", g.rank);
  TORCH_CHECK(coeff.size(1) == g.in_channels * g.rank, "leanconv: coeff must be (C_out, C_in*R) = (", g.out_channels,
              ", ", g.in_channels * g.rank, "), got ", coeff.sizes());
  check_conv_bias(bias, input, g.out_channels);
  set_window_sizes(g, input.size(2), input.size(3));
  // The strides of the output and of the C_in*R intermediate, even of an empty batch, and their sizes.
  const int64_t widest = std::max(g.out_channels, checked_mul(g.in_channels, g.rank, "C_in*R"));
  checked_numel({widest, g.out_h, g.out_w});
  checked_numel({g.batch, widest, g.out_h, g.out_w});
  return g;
}

// The backward's operands: the forward's, plus grad_output of the forward output's shape.
inline common::EigenConv eigen_conv_backward_geometry(const at::Tensor& grad_output, const at::Tensor& input,
                                                      const at::Tensor& basis, const at::Tensor& coeff,
                                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                                      at::IntArrayRef dilation) {
  const auto g = eigen_conv_geometry(input, basis, coeff, std::nullopt, stride, padding, dilation);
  check_conv_grad_output(grad_output, input, g.batch, g.out_channels, g);
  return g;
}

// The dense weight's factors: basis (C_in, R, kh, kw) with 1 <= R <= kh*kw and coeff (C_out, C_in*R), on one
// device with one dtype. Returns (C_out, C_in, R, kh*kw).
struct EigenWeightSizes {
  int64_t out_channels, in_channels, rank, taps;
};

inline EigenWeightSizes eigen_weight_sizes(const at::Tensor& basis, const at::Tensor& coeff) {
  check_dim(basis, 4, "basis (C_in, R, kh, kw)");
  check_dim(coeff, 2, "coeff (C_out, C_in*R)");
  check_floating(basis, "basis");
  check_same_device(basis, "basis", coeff, "coeff");
  check_same_dtype(basis, "basis", coeff, "coeff");
  const EigenWeightSizes w{coeff.size(0), basis.size(0), basis.size(1), basis.size(2) * basis.size(3)};
  TORCH_CHECK(w.in_channels > 0 && w.taps > 0 && w.out_channels > 0,
              "leanconv: basis and coeff must not be empty, got basis ", basis.sizes(), " and coeff ", coeff.sizes());
  TORCH_CHECK(w.rank >= 1 && w.rank <= w.taps, "leanconv: rank R = basis.size(1) must be between 1 and kh*kw = ",
              w.taps, ", got ", w.rank);
  TORCH_CHECK(coeff.size(1) == w.in_channels * w.rank, "leanconv: coeff must be (C_out, C_in*R) = (", w.out_channels,
              ", ", w.in_channels * w.rank, "), got ", coeff.sizes());
  checked_mul(checked_mul(w.out_channels, w.in_channels, "C_out*C_in"), w.taps, "the weight's number of elements");
  return w;
}

// The weight's backward: grad_weight (C_out, C_in, kh, kw) of the factors' weight, on their device, in their dtype.
inline EigenWeightSizes eigen_weight_backward_sizes(const at::Tensor& grad_weight, const at::Tensor& basis,
                                                    const at::Tensor& coeff) {
  const auto w = eigen_weight_sizes(basis, coeff);
  check_same_device(basis, "basis", grad_weight, "grad_weight");
  check_same_dtype(basis, "basis", grad_weight, "grad_weight");
  TORCH_CHECK(grad_weight.dim() == 4 && grad_weight.size(0) == w.out_channels && grad_weight.size(1) == w.in_channels &&
                  grad_weight.size(2) == basis.size(2) && grad_weight.size(3) == basis.size(3),
              "leanconv: grad_weight must have the weight's shape (", w.out_channels, ", ", w.in_channels, ", ",
              basis.size(2), ", ", basis.size(3), "), got ", grad_weight.sizes());
  return w;
}

}  // namespace leanconv::checks
