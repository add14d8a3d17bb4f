#include "composite/lowrank.h"

#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/einsum.h>
#include <torch/library.h>

#include <vector>

#include "common/lowrank_checks.h"
#include "composite/conv_by_taps.h"

namespace leanconv::composite {
namespace {

const std::vector<int64_t> kOnes{1, 1}, kZeros{0, 0};

at::Tensor depthwise_weight(const at::Tensor& basis) {
  return basis.reshape({basis.size(0) * basis.size(1), 1, basis.size(2), basis.size(3)});
}

at::Tensor pointwise_weight(const at::Tensor& coeff) { return coeff.reshape({coeff.size(0), coeff.size(1), 1, 1}); }

}  // namespace

at::Tensor eigen_conv2d_composite(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto z = composite::convolution(input, depthwise_weight(basis), std::nullopt, stride, padding, dilation,
                                  basis.size(0));
  return at::convolution(z, pointwise_weight(coeff), bias, kOnes, kZeros, kOnes, false, kZeros, 1);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> mask) {
  const auto depthwise = depthwise_weight(basis), pointwise = pointwise_weight(coeff);
  const auto z = composite::convolution(input, depthwise, std::nullopt, stride, padding, dilation, basis.size(0));
  const bool need_z_grad = mask[0] || mask[1];
  auto [grad_z, grad_pointwise, unused_bias] = at::convolution_backward(
      grad_output, z, pointwise, std::nullopt, kOnes, kZeros, kOnes, false, kZeros, 1, {need_z_grad, mask[2], false});
  at::Tensor grad_input, grad_depthwise;
  if (need_z_grad) {
    std::tie(grad_input, grad_depthwise) = composite::convolution_backward(grad_z, input, depthwise, stride, padding,
                                                                     dilation, basis.size(0), {mask[0], mask[1]});
  }
  return {grad_input, mask[1] ? grad_depthwise.reshape(basis.sizes()).contiguous() : at::Tensor(),
          mask[2] ? grad_pointwise.reshape(coeff.sizes()).contiguous() : at::Tensor()};
}

at::Tensor eigen_weight_composite(const at::Tensor& basis, const at::Tensor& coeff) {
  const auto w = checks::eigen_weight_sizes(basis, coeff);
  const auto factors = coeff.reshape({w.out_channels, w.in_channels, w.rank});
  return at::einsum("oir,irt->oit", {factors, basis.reshape({w.in_channels, w.rank, w.taps})})
      .reshape({w.out_channels, w.in_channels, basis.size(2), basis.size(3)})
      .contiguous();
}

std::tuple<at::Tensor, at::Tensor> eigen_weight_backward_composite(const at::Tensor& grad_weight,
                                                                   const at::Tensor& basis, const at::Tensor& coeff,
                                                                   std::array<bool, 2> output_mask) {
  const auto w = checks::eigen_weight_backward_sizes(grad_weight, basis, coeff);
  const auto grad = grad_weight.reshape({w.out_channels, w.in_channels, w.taps});
  at::Tensor grad_basis, grad_coeff;
  if (output_mask[0]) {
    grad_basis = at::einsum("oir,oit->irt", {coeff.reshape({w.out_channels, w.in_channels, w.rank}), grad})
                     .reshape(basis.sizes())
                     .contiguous();
  }
  if (output_mask[1]) {
    grad_coeff = at::einsum("oit,irt->oir", {grad, basis.reshape({w.in_channels, w.rank, w.taps})})
                     .reshape(coeff.sizes())
                     .contiguous();
  }
  return {grad_basis, grad_coeff};
}

}  // namespace leanconv::composite

namespace leanconv::composite {

TORCH_LIBRARY_IMPL(leanconv, CompositeExplicitAutograd, m) {
  m.impl("eigen_weight", &composite::eigen_weight_composite);
  m.impl("eigen_weight_backward", &composite::eigen_weight_backward_composite);
}

}  // namespace leanconv::composite
