// The low-rank family's ops (docs/lowrank.md).
// Each function goes through the PyTorch dispatcher, so the CPU, CUDA, autograd and autocast registrations apply
// exactly as they do for torch.ops.leanconv.* from Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>

namespace leanconv::ops {

// The eigen-filter conv, fused: y = pointwise_coeff(depthwise_basis(input)) + bias, i.e.
// y[n, o] = bias[o] + sum_{c, r} coeff[o, c*R + r] * (basis[c, r] (*) input[n, c]), where (*) is the 2-D
// cross-correlation with the given stride, padding and dilation. input (N, C_in, H, W), basis (C_in, R, kh, kw),
// coeff (C_out, C_in*R), bias (C_out) or none. The C_in*R intermediate is never stored.
at::Tensor eigen_conv2d(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                        const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation);

// Gradients of eigen_conv2d with respect to (input, basis, coeff), each computed only where output_mask says
// (undefined otherwise). The bias gradient is grad_output summed over (N, H, W).
std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward(const at::Tensor& grad_output,
                                                                     const at::Tensor& input, const at::Tensor& basis,
                                                                     const at::Tensor& coeff, at::IntArrayRef stride,
                                                                     at::IntArrayRef padding, at::IntArrayRef dilation,
                                                                     std::array<bool, 3> output_mask);

// The dense weight (C_out, C_in, kh, kw) of the factors: weight[o, c] = sum_r coeff[o, c*R + r] * basis[c, r].
at::Tensor eigen_weight(const at::Tensor& basis, const at::Tensor& coeff);

// Gradients of eigen_weight with respect to (basis, coeff), each computed only where output_mask says.
std::tuple<at::Tensor, at::Tensor> eigen_weight_backward(const at::Tensor& grad_weight, const at::Tensor& basis,
                                                         const at::Tensor& coeff, std::array<bool, 2> output_mask);

// Whether the fused kernel is expected to beat the materialised path (weight = coeff x basis, then the dense
// conv through oneDNN / cuDNN) for a layer of this shape on this device type. The cost model and its
// calibration are in benchmarks/NOTES.md.
bool eigen_conv2d_fused_is_cheaper(c10::DeviceType device, int64_t in_channels, int64_t out_channels,
                                   int64_t kernel_h, int64_t kernel_w, int64_t rank);

}  // namespace leanconv::ops
