// Argument checks shared by every kernel, so Python and C++ callers see the same messages.
// Each message names the argument and says what was expected and what was given.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>
#include <string_view>

#include "eigen_conv.h"
#include "filter_summary.h"
#include "ring_permutation.h"

namespace leanconv::checks {

inline void check_floating(const at::Tensor& t, std::string_view name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()),
              "leanconv: ", name, " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, std::string_view name) {
  TORCH_CHECK(t.dim() == dim, "leanconv: ", name, " must be ", dim, "-D, got a ", t.dim(),
              "-D tensor of shape ", t.sizes());
}

inline void check_same_device(const at::Tensor& a, std::string_view a_name, const at::Tensor& b,
                              std::string_view b_name) {
  TORCH_CHECK(a.device() == b.device(), "leanconv: ", a_name, " and ", b_name,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

inline void check_same_dtype(const at::Tensor& a, std::string_view a_name, const at::Tensor& b,
                             std::string_view b_name) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "leanconv: ", a_name, " and ", b_name,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// a * b and a + b for sizes and indices, or a clear error: no size product may wrap around.
inline int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t result = 0;
  TORCH_CHECK(!__builtin_mul_overflow(a, b, &result), "leanconv: ", what, " overflows int64 (", a, " * ", b, ")");
  return result;
}

inline int64_t checked_add(int64_t a, int64_t b, std::string_view what) {
  int64_t result = 0;
  TORCH_CHECK(!__builtin_add_overflow(a, b, &result), "leanconv: ", what, " overflows int64 (", a, " + ", b, ")");
  return result;
}

// A conv module's input: (C, H, W) or (N, C, H, W) with the module's channel count. Same words as the
// Python modules' check (leanconv/nn/_conv_args.py).
inline void check_conv_input(const at::Tensor& input, int64_t in_channels, std::string_view module) {
  TORCH_CHECK(input.dim() == 3 || input.dim() == 4, "leanconv: ", module,
              " expects a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape ", input.sizes());
  TORCH_CHECK(input.size(-3) == in_channels, "leanconv: ", module, " expects ", in_channels, " input channels, got ",
              input.size(-3), " (input shape ", input.sizes(), ")");
}

inline void check_conv_arguments(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "leanconv: stride, padding and dilation must have two elements, got ", stride, ", ", padding, " and ",
              dilation);
  TORCH_CHECK(stride[0] > 0 && stride[1] > 0 && dilation[0] > 0 && dilation[1] > 0 && padding[0] >= 0 &&
                  padding[1] >= 0,
              "leanconv: stride and dilation must be positive and padding non-negative, got stride ", stride,
              ", padding ", padding, ", dilation ", dilation);
}

// ---- generated-weight family --------------------------------------------------------------------

inline void check_ring(const at::Tensor& ring) {
  check_dim(ring, 1, "ring");
  TORCH_CHECK(ring.numel() > 0, "leanconv: ring must not be empty");
  check_floating(ring, "ring");
}

// A contiguous range [offset, offset + numel) of the virtual weight sequence [0, total). Compared without
// forming offset + numel, which could wrap around for an offset near the int64 limit.
inline void check_ring_range(int64_t total, int64_t offset, int64_t numel) {
  TORCH_CHECK(total > 0,
              "leanconv: the ring's virtual weight sequence is empty (total = ", total,
              "): create the layers that draw on a ring before generating weights from it");
  TORCH_CHECK(total <= common::kMaxRingTotal, "leanconv: total must be at most 2^62, got ", total);
  TORCH_CHECK(offset >= 0, "leanconv: offset must be non-negative, got ", offset);
  TORCH_CHECK(numel >= 0, "leanconv: the generated shape must have non-negative sizes, got numel ", numel);
  TORCH_CHECK(offset <= total && numel <= total - offset, "leanconv: the range [offset, offset + numel) = [", offset,
              ", ", offset, " + ", numel, ") lies outside the ring's virtual weight sequence [0, ", total, ")");
}

inline int64_t checked_numel(at::IntArrayRef shape) {
  for (const auto size : shape) TORCH_CHECK(size >= 0, "leanconv: shape must have non-negative sizes, got ", shape);
  for (const auto size : shape) {
    if (size == 0) return 0;  // empty, whatever the other sizes
  }
  int64_t numel = 1;
  for (const auto size : shape) numel = checked_mul(numel, size, "the number of elements of the shape");
  return numel;
}

// ---- overlapping-segment (FSNet) family ------------------------------------------------------------

// A summary layout whose every index, and every unwrapped position the overlap-add walks, fits in int64.
inline common::SummaryLayout summary_layout(int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                            int64_t kernel_w, int64_t stride) {
  TORCH_CHECK(out_channels > 0 && in_channels > 0, "leanconv: out_channels and in_channels must be positive, got ",
              out_channels, " and ", in_channels);
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0, "leanconv: kernel size must be positive, got ", kernel_h, "x", kernel_w);
  TORCH_CHECK(stride >= 1, "leanconv: the summary stride s must be at least 1, got ", stride,
              " (a compression above C_in*k*k gives s < 1)");
  const int64_t filter_length =
      checked_mul(checked_mul(in_channels, kernel_h, "C_in*kh*kw"), kernel_w, "C_in*kh*kw");
  checked_mul(out_channels, filter_length, "the weight's number of elements C_out*C_in*kh*kw");
  const int64_t length = checked_mul(out_channels, stride, "the summary length C_out*s");
  checked_add(checked_add(length, filter_length, "the summary positions"), length, "the summary positions");
  return common::SummaryLayout{out_channels, in_channels, kernel_h, kernel_w, stride, length};
}

inline common::SummaryLayout check_summary_layout(const at::Tensor& summary, int64_t out_channels,
                                                  int64_t in_channels, int64_t kernel_h, int64_t kernel_w,
                                                  int64_t stride) {
  check_dim(summary, 1, "summary");
  check_floating(summary, "summary");
  const auto layout = summary_layout(out_channels, in_channels, kernel_h, kernel_w, stride);
  TORCH_CHECK(summary.numel() == layout.length, "leanconv: summary length must be C_out * s = ", out_channels, " * ",
              stride, " = ", layout.length, ", got ", summary.numel());
  return layout;
}

inline common::SummaryLayout check_summary_gradient(const at::Tensor& grad_weight, int64_t length, int64_t stride) {
  check_dim(grad_weight, 4, "grad_weight");
  check_floating(grad_weight, "grad_weight");
  TORCH_CHECK(grad_weight.numel() > 0, "leanconv: grad_weight (C_out, C_in, kh, kw) must not be empty, got shape ",
              grad_weight.sizes());
  const auto layout =
      summary_layout(grad_weight.size(0), grad_weight.size(1), grad_weight.size(2), grad_weight.size(3), stride);
  TORCH_CHECK(length == layout.length, "leanconv: summary length ", length, " must be C_out * s = ",
              grad_weight.size(0), " * ", stride, " = ", layout.length);
  return layout;
}

// The output size of one conv axis, or a clear error when the (overflow-checked) padded input is smaller
// than the dilated kernel. Returns 0 only for an empty input axis of a valid geometry.
inline int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = checked_add(checked_mul(dilation, kernel - 1, "the dilated kernel"), 1, "the dilated kernel");
  const int64_t padded = checked_add(in, checked_mul(2, pad, "the padding"), "the padded input");
  TORCH_CHECK(padded >= span, "leanconv: the input (size ", in, " along an axis, padded to ", padded,
              ") is smaller than the dilated kernel (", span, ")");
  return (padded - span) / stride + 1;
}

inline common::Strides4 strides_of(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// Sets a window's kernel, stride, padding and dilation (checked by check_conv_arguments).
inline void set_window_arguments(common::ConvWindow& w, int64_t kernel_h, int64_t kernel_w, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation) {
  w.kernel_h = kernel_h;
  w.kernel_w = kernel_w;
  w.stride_h = stride[0];
  w.stride_w = stride[1];
  w.pad_h = padding[0];
  w.pad_w = padding[1];
  w.dil_h = dilation[0];
  w.dil_w = dilation[1];
}

// Sets a window's input size and its output size, which must not be empty.
inline void set_window_sizes(common::ConvWindow& w, int64_t in_h, int64_t in_w) {
  w.in_h = in_h;
  w.in_w = in_w;
  TORCH_CHECK(in_h >= 0 && in_w >= 0, "leanconv: the input size must be non-negative, got ", in_h, "x", in_w);
  w.out_h = conv_output_size(in_h, w.kernel_h, w.stride_h, w.pad_h, w.dil_h);
  w.out_w = conv_output_size(in_w, w.kernel_w, w.stride_w, w.pad_w, w.dil_w);
}

inline common::ShiftedSum check_shifted_sum(const at::Tensor& t, std::string_view name, int64_t kernel_h,
                                            int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                            at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_dim(t, 4, name);
  check_floating(t, name);
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0, "leanconv: kernel size must be positive, got ", kernel_h, "x", kernel_w);
  check_conv_arguments(stride, padding, dilation);
  TORCH_CHECK(t.size(1) > 0, "leanconv: ", name, " must have at least one channel");
  TORCH_CHECK(channel_step >= 0, "leanconv: channel_step must be non-negative, got ", channel_step);
  checked_mul(checked_mul(kernel_h, kernel_w, "the number of taps"), t.size(1), "taps * channels");
  common::ShiftedSum s{};
  s.channels = t.size(1);
  // Only the step modulo M matters; reduced, tap * step < taps * M cannot overflow.
  s.step = channel_step % s.channels;
  set_window_arguments(s, kernel_h, kernel_w, stride, padding, dilation);
  return s;
}

// The geometry of a shifted sum over an input of spatial size in_h x in_w, with its output size.
inline common::ShiftedSum with_sizes(common::ShiftedSum s, int64_t in_h, int64_t in_w) {
  set_window_sizes(s, in_h, in_w);
  return s;
}

// The forward's geometry, from z.
inline common::ShiftedSum shifted_sum_geometry(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w,
                                               int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation) {
  const auto s = check_shifted_sum(z, "z", kernel_h, kernel_w, channel_step, stride, padding, dilation);
  return with_sizes(s, z.size(2), z.size(3));
}

// The backward's geometry, from the output gradient and the forward input's size.
inline common::ShiftedSum shifted_sum_backward_geometry(const at::Tensor& grad_output, int64_t kernel_h,
                                                        int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                                        at::IntArrayRef padding, at::IntArrayRef dilation,
                                                        at::IntArrayRef input_size) {
  auto s = check_shifted_sum(grad_output, "grad_output", kernel_h, kernel_w, channel_step, stride, padding, dilation);
  TORCH_CHECK(input_size.size() == 2, "leanconv: input_size must have two elements");
  s = with_sizes(s, input_size[0], input_size[1]);
  TORCH_CHECK(grad_output.size(2) == s.out_h && grad_output.size(3) == s.out_w, "leanconv: grad_output's spatial size ",
              grad_output.sizes().slice(2), " does not match the output size (", s.out_h, ", ", s.out_w, ")");
  return s;
}

// ---- low-rank (DeCEF) family -----------------------------------------------------------------------


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
  if (bias.has_value() && bias->defined()) {
    check_same_device(input, "input", *bias, "bias");
    check_same_dtype(input, "input", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.out_channels, "leanconv: bias must have shape (",
                g.out_channels, "), got ", bias->sizes());
  }
  set_window_sizes(g, input.size(2), input.size(3));
  return g;
}

// The backward's operands: the forward's, plus grad_output of the forward output's shape.
inline common::EigenConv eigen_conv_backward_geometry(const at::Tensor& grad_output, const at::Tensor& input,
                                                      const at::Tensor& basis, const at::Tensor& coeff,
                                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                                      at::IntArrayRef dilation) {
  const auto g = eigen_conv_geometry(input, basis, coeff, std::nullopt, stride, padding, dilation);
  check_same_device(input, "input", grad_output, "grad_output");
  check_same_dtype(input, "input", grad_output, "grad_output");
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.batch && grad_output.size(1) == g.out_channels &&
                  grad_output.size(2) == g.out_h && grad_output.size(3) == g.out_w,
              "leanconv: grad_output must have the output's shape (", g.batch, ", ", g.out_channels, ", ", g.out_h,
              ", ", g.out_w, "), got ", grad_output.sizes());
  return g;
}

// ---- generated-weight backward ----------------------------------------------------------------------

inline void check_ring_backward(const at::Tensor& grad, int64_t ring_size, int64_t total, int64_t offset) {
  check_floating(grad, "grad");
  TORCH_CHECK(ring_size > 0, "leanconv: ring_size must be positive, got ", ring_size);
  check_ring_range(total, offset, grad.numel());
}

}  // namespace leanconv::checks
