// leanconv's operators as C++ functions. Each goes through the PyTorch dispatcher, so the CPU, CUDA and
// autograd registrations apply exactly as they do for torch.ops.leanconv.* from Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/core/DeviceType.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>

namespace leanconv::ops {

// Generated-weight (RPG) family.
//
// Returns a tensor of `shape` holding positions [offset, offset + numel) of a model's virtual weight
// sequence of length `total`: out[j] = scale * s(offset + j) * ring[pi(offset + j) mod ring.numel()],
// with pi and s fixed by `seed` (see csrc/common/ring_permutation.h). Differentiable w.r.t. `ring`.
at::Tensor generate_weights(const at::Tensor& ring, int64_t seed, int64_t total, int64_t offset,
                            at::IntArrayRef shape, double scale);

// The adjoint of generate_weights: reduces `grad` (any shape, numel elements) into a ring of `ring_size`
// entries. Without atomics, and so deterministic, whenever deterministic algorithms are requested.
// ring_size is a SymInt so the op traces with symbolic shapes (torch.compile, torch.export).
at::Tensor generate_weights_backward(const at::Tensor& grad, c10::SymInt ring_size, int64_t seed, int64_t total,
                                     int64_t offset, double scale);

}  // namespace leanconv::ops

namespace leanconv::ops {

// Overlapping-segment (FSNet) family.
//
// The dense weight (C_out, C_in, kh, kw) of a filter-summary layer:
// weight[o, c, i, j] = summary[(o*stride + (i*kw + j)*C_in + c) mod L], L = summary.numel() = C_out*stride.
at::Tensor filter_summary_weight(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                 int64_t kernel_h, int64_t kernel_w, int64_t stride);

// The adjoint of filter_summary_weight (overlap-add of the weight gradient into the summary), without
// atomics: every summary entry sums its contributors in one fixed order.
at::Tensor filter_summary_weight_backward(const at::Tensor& grad_weight, c10::SymInt length, int64_t stride);

// The direct path's shifted sum over the taps of a kh x kw kernel:
// y[n, o, p, q] = sum_{i,j} z[n, (o + (i*kw + j)*channel_step) mod M, p*sh - ph + i*dh, q*sw - pw + j*dw].
at::Tensor shifted_sum(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation);

// The adjoint of shifted_sum, for an input z of spatial size input_size (H, W).
at::Tensor shifted_sum_backward(const at::Tensor& grad_output, int64_t kernel_h, int64_t kernel_w,
                                int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, c10::SymIntArrayRef input_size);

}  // namespace leanconv::ops

namespace leanconv::ops {

// Low-rank (DeCEF) family.
//
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

// Whether the fused kernel is expected to beat the materialised path (weight = coeff x basis, then the dense
// conv through oneDNN / cuDNN) for a layer of this shape on this device type. The cost model and its
// calibration are in benchmarks/NOTES.md.
bool eigen_conv2d_fused_is_cheaper(c10::DeviceType device, int64_t in_channels, int64_t out_channels,
                                   int64_t kernel_h, int64_t kernel_w, int64_t rank);

}  // namespace leanconv::ops
