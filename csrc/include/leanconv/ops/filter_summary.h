// The overlapping-segment family's ops (docs/filter_summary.md).
// Each function goes through the PyTorch dispatcher, so the CPU, CUDA, autograd and autocast registrations apply
// exactly as they do for torch.ops.leanconv.* from Python.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <cstdint>
#include <tuple>

namespace leanconv::ops {

// The dense weight (C_out, C_in, kh, kw) of a filter-summary layer:
// weight[o, c, i, j] = summary[(o*s + (i*kw + j)*C_in + c) mod L] with s = summary_stride (the summary stride; the
// modules' compression is C_in*k*k / s) and L = summary.numel() = C_out*s.
at::Tensor filter_summary_weight(const at::Tensor& summary, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                 int64_t kernel_w, int64_t summary_stride);

// The adjoint of filter_summary_weight (overlap-add of the weight gradient into the summary), without
// atomics: every summary entry sums its contributors in one fixed order.
at::Tensor filter_summary_weight_backward(const at::Tensor& grad_weight, c10::SymInt length, int64_t summary_stride);

// The direct path's shifted sum over the taps of a kh x kw kernel:
// y[n, o, p, q] = sum_{i,j} z[n, (o + (i*kw + j)*channel_step) mod M, p*sh - ph + i*dh, q*sw - pw + j*dw].
at::Tensor shifted_sum(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation);

// The adjoint of shifted_sum, for an input z of spatial size input_size (H, W).
at::Tensor shifted_sum_backward(const at::Tensor& grad_output, int64_t kernel_h, int64_t kernel_w,
                                int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, c10::SymIntArrayRef input_size);

// The direct path of a filter-summary conv: a 1x1 conv of input (N, C_in, H, W) against segments (M, C_in),
// then the shifted sum of that intermediate:
// y = shifted_sum(z), z[n, m, h, w] = sum_c segments[m, c] * input[n, c, h, w].
// The CPU kernel computes z a band of rows at a time and never stores it whole.
at::Tensor segment_conv2d(const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h, int64_t kernel_w,
                          int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation);

// The gradients of segment_conv2d with respect to input and segments (those output_mask asks for; the others are
// undefined): the shifted sum's adjoint, then the 1x1 conv's backward. The segments' gradient sums over the
// batch in a fixed order whatever the thread count.
std::tuple<at::Tensor, at::Tensor> segment_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                           const at::Tensor& segments, int64_t kernel_h,
                                                           int64_t kernel_w, int64_t channel_step,
                                                           at::IntArrayRef stride, at::IntArrayRef padding,
                                                           at::IntArrayRef dilation, std::array<bool, 2> output_mask);

}  // namespace leanconv::ops
