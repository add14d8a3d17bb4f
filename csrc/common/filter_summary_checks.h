// Argument checks and geometry of the overlapping-segment ops: the summary layout and the shifted sum.
#pragma once

#include <utility>

#include "checks.h"
#include "filter_summary.h"

namespace leanconv::checks {

// A summary layout whose every index, and every unwrapped position the overlap-add walks, fits in int64.
inline common::SummaryLayout summary_layout(int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                            int64_t kernel_w, int64_t summary_stride) {
  TORCH_CHECK(out_channels > 0 && in_channels > 0, "leanconv: out_channels and in_channels must be positive, got ",
              out_channels, " and ", in_channels);
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0, "leanconv: kernel size must be positive, got ", kernel_h, "x", kernel_w);
  TORCH_CHECK(summary_stride >= 1, "leanconv: the summary stride s must be at least 1, got ", summary_stride,
              " (a compression above C_in*k*k gives s < 1)");
  const int64_t filter_length =
      checked_mul(checked_mul(in_channels, kernel_h, "C_in*kh*kw"), kernel_w, "C_in*kh*kw");
  checked_mul(out_channels, filter_length, "the weight's number of elements C_out*C_in*kh*kw");
  const int64_t length = checked_mul(out_channels, summary_stride, "the summary length C_out*s");
  checked_add(checked_add(length, filter_length, "the summary positions"), length, "the summary positions");
  return common::SummaryLayout{out_channels, in_channels, kernel_h, kernel_w, summary_stride, length};
}

inline common::SummaryLayout check_summary_layout(const at::Tensor& summary, int64_t out_channels, int64_t in_channels,
                                                  int64_t kernel_h, int64_t kernel_w, int64_t summary_stride) {
  check_dim(summary, 1, "summary");
  check_floating(summary, "summary");
  const auto layout = summary_layout(out_channels, in_channels, kernel_h, kernel_w, summary_stride);
  TORCH_CHECK(summary.numel() == layout.length, "leanconv: summary length must be C_out * s = ", out_channels, " * ",
              summary_stride, " = ", layout.length, ", got ", summary.numel());
  return layout;
}

inline common::SummaryLayout check_summary_gradient(const at::Tensor& grad_weight, int64_t length,
                                                    int64_t summary_stride) {
  check_dim(grad_weight, 4, "grad_weight");
  check_floating(grad_weight, "grad_weight");
  TORCH_CHECK(grad_weight.numel() > 0, "leanconv: grad_weight (C_out, C_in, kh, kw) must not be empty, got shape ",
              grad_weight.sizes());
  const auto layout = summary_layout(grad_weight.size(0), grad_weight.size(1), grad_weight.size(2), grad_weight.size(3),
                                     summary_stride);
  TORCH_CHECK(length == layout.length, "leanconv: summary length ", length,
              " must be C_out * s = ", grad_weight.size(0), " * ", summary_stride, " = ", layout.length);
  return layout;
}

// A shifted sum over `channels` channels (M), before its spatial sizes are known.
inline common::ShiftedSum shifted_sum_window(int64_t channels, int64_t kernel_h, int64_t kernel_w,
                                             int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                             at::IntArrayRef dilation) {
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0, "leanconv: kernel size must be positive, got ", kernel_h, "x", kernel_w);
  check_conv_arguments(stride, padding, dilation);
  TORCH_CHECK(channel_step >= 0, "leanconv: channel_step must be non-negative, got ", channel_step);
  checked_mul(checked_mul(kernel_h, kernel_w, "the number of taps"), channels, "taps * channels");
  common::ShiftedSum s{};
  s.channels = channels;
  // Only the step modulo M matters; reduced, tap * step < taps * M cannot overflow.
  s.step = channel_step % s.channels;
  set_window_arguments(s, kernel_h, kernel_w, stride, padding, dilation);
  return s;
}

inline common::ShiftedSum check_shifted_sum(const at::Tensor& t, std::string_view name, int64_t kernel_h,
                                            int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                            at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_dim(t, 4, name);
  check_floating(t, name);
  TORCH_CHECK(t.size(1) > 0, "leanconv: ", name, " must have at least one channel");
  return shifted_sum_window(t.size(1), kernel_h, kernel_w, channel_step, stride, padding, dilation);
}

// The geometry of a shifted sum over `batch` inputs of spatial size in_h x in_w, with its output size. The output
// and the M-channel input (the backward's result) must have int64 strides, even for an empty batch, and sizes.
inline common::ShiftedSum with_sizes(common::ShiftedSum s, int64_t batch, int64_t in_h, int64_t in_w) {
  set_window_sizes(s, in_h, in_w);
  for (const auto& [h, w] : {std::pair{s.out_h, s.out_w}, std::pair{in_h, in_w}}) {
    checked_numel({s.channels, h, w});
    checked_numel({batch, s.channels, h, w});
  }
  return s;
}

// The forward's geometry, from z.
inline common::ShiftedSum shifted_sum_geometry(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w,
                                               int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation) {
  const auto s = check_shifted_sum(z, "z", kernel_h, kernel_w, channel_step, stride, padding, dilation);
  return with_sizes(s, z.size(0), z.size(2), z.size(3));
}

// The geometry of segment_conv2d (a 1x1 conv against the segments, then the shifted sum), from its operands:
// input (N, C_in, H, W) and segments (M, C_in) of one dtype and device.
inline common::ShiftedSum segment_conv2d_geometry(const at::Tensor& input, const at::Tensor& segments,
                                                  int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                                  at::IntArrayRef dilation) {
  check_dim(input, 4, "input");
  check_dim(segments, 2, "segments");
  check_floating(input, "input");
  check_same_device(input, "input", segments, "segments");
  check_same_dtype(input, "input", segments, "segments");
  TORCH_CHECK(segments.size(1) == input.size(1), "leanconv: segments (M, C_in) must have one column per input "
              "channel: got segments of shape ", segments.sizes(), " for an input of shape ", input.sizes());
  TORCH_CHECK(segments.size(0) > 0, "leanconv: segments must have at least one row (output channel)");
  return with_sizes(shifted_sum_window(segments.size(0), kernel_h, kernel_w, channel_step, stride, padding, dilation),
                    input.size(0), input.size(2), input.size(3));
}

// The backward's geometry, from the output gradient and the forward input's size.
inline common::ShiftedSum shifted_sum_backward_geometry(const at::Tensor& grad_output, int64_t kernel_h,
                                                        int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                                        at::IntArrayRef input_size) {
  auto s = check_shifted_sum(grad_output, "grad_output", kernel_h, kernel_w, channel_step, stride, padding, dilation);
  TORCH_CHECK(input_size.size() == 2, "leanconv: input_size must have two elements");
  s = with_sizes(s, grad_output.size(0), input_size[0], input_size[1]);
  TORCH_CHECK(grad_output.size(2) == s.out_h && grad_output.size(3) == s.out_w, "leanconv: grad_output's spatial size ",
              grad_output.sizes().slice(2), " does not match the output size (", s.out_h, ", ", s.out_w, ")");
  return s;
}

}  // namespace leanconv::checks
