// The eigen-filter conv composed of aten convolutions: the depthwise conv with the bases (channel multiplier R),
// then the 1x1 conv with the coefficients. Device-generic and differentiable in every argument; it stores the
// C_in*R intermediate. Used where the fused kernels do not apply: double backward, the CUDA backward (in batch
// chunks), and CPU geometries whose dilated kernel spans far more than the image (tile buffers would not fit).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

namespace leanconv::composite {

at::Tensor eigen_conv2d_composite(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation);

// (grad_input, grad_basis, grad_coeff), each only where output_mask says.
std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward_composite(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> output_mask);

// The dense weight from its factors, and its gradients, as batched matrix products: device-generic and
// differentiable (the double backward of eigen_weight, and its kernels on every device but the CPU).
at::Tensor eigen_weight_composite(const at::Tensor& basis, const at::Tensor& coeff);
std::tuple<at::Tensor, at::Tensor> eigen_weight_backward_composite(const at::Tensor& grad_weight,
                                                                   const at::Tensor& basis, const at::Tensor& coeff,
                                                                   std::array<bool, 2> output_mask);

}  // namespace leanconv::composite
