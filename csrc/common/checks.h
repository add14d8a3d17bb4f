// Argument checks every family shares, so Python and C++ callers see the same messages: tensor kinds, devices
// and dtypes, overflow-checked size arithmetic, and the conv window (kernel, stride, padding, dilation, sizes).
// Each message names the argument and says what was expected and what was given. A family's own checks are in
// common/<family>_checks.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <optional>
#include <limits>
#include <string_view>

#include "conv_window.h"

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

// a * b and a + b of non-negative sizes, held at INT64_MAX where they would wrap: for bounds that a min() then
// clips (a band's rows, a stride's reach), where "more than any size" is the right answer and no error is due.
inline int64_t saturating_mul(int64_t a, int64_t b) {
  int64_t result = 0;
  return __builtin_mul_overflow(a, b, &result) ? std::numeric_limits<int64_t>::max() : result;
}

inline int64_t saturating_add(int64_t a, int64_t b) {
  int64_t result = 0;
  return __builtin_add_overflow(a, b, &result) ? std::numeric_limits<int64_t>::max() : result;
}

// A conv module's input: (C, H, W) or (N, C, H, W) with the module's channel count. Same words as the
// Python modules' check (leanconv/nn/_conv_args.py).
inline void check_conv_input(const at::Tensor& input, int64_t in_channels, std::string_view module) {
  TORCH_CHECK(input.dim() == 3 || input.dim() == 4, "leanconv: ", module,
              " expects a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape ", input.sizes());
  TORCH_CHECK(input.size(-3) == in_channels, "leanconv: ", module, " expects ", in_channels, " input channels, got ",
              input.size(-3), " (input shape ", input.sizes(), ")");
}

// A C++ conv module's options, checked as nn.Conv2d's arguments are (same words as leanconv/nn/_conv_args.py).
template <typename Options>
void check_conv_options(const Options& o, std::string_view module, int64_t groups = 1) {
  TORCH_CHECK(o.in_channels() > 0 && o.out_channels() > 0, "leanconv: ", module,
              " in_channels and out_channels must be positive, got ", o.in_channels(), " and ", o.out_channels());
  TORCH_CHECK(groups > 0 && o.in_channels() % groups == 0 && o.out_channels() % groups == 0, "leanconv: ", module,
              " groups must divide in_channels and out_channels, got groups=", groups, " for ", o.in_channels(),
              " -> ", o.out_channels());
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK((*o.kernel_size())[i] > 0 && (*o.stride())[i] > 0 && (*o.dilation())[i] > 0 && (*o.padding())[i] >= 0,
                "leanconv: ", module, " kernel_size, stride and dilation must be positive and padding non-negative");
  }
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

inline int64_t checked_numel(at::IntArrayRef shape) {
  for (const auto size : shape) TORCH_CHECK(size >= 0, "leanconv: shape must have non-negative sizes, got ", shape);
  for (const auto size : shape) {
    if (size == 0) return 0;  // empty, whatever the other sizes
  }
  int64_t numel = 1;
  for (const auto size : shape) numel = checked_mul(numel, size, "the number of elements of the shape");
  return numel;
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


// A conv's optional bias: (out_channels,) on the input's device, in its dtype.
inline void check_conv_bias(const std::optional<at::Tensor>& bias, const at::Tensor& input, int64_t out_channels) {
  if (!bias.has_value() || !bias->defined()) return;
  check_same_device(input, "input", *bias, "bias");
  check_same_dtype(input, "input", *bias, "bias");
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == out_channels, "leanconv: bias must have shape (", out_channels,
              "), got ", bias->sizes());
}

// A conv backward's grad_output: the forward output's shape (batch, out_channels, out_h, out_w), on the input's
// device, in its dtype.
inline void check_conv_grad_output(const at::Tensor& grad_output, const at::Tensor& input, int64_t batch,
                                   int64_t out_channels, const common::ConvWindow& w) {
  check_same_device(input, "input", grad_output, "grad_output");
  check_same_dtype(input, "input", grad_output, "grad_output");
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == batch && grad_output.size(1) == out_channels &&
                  grad_output.size(2) == w.out_h && grad_output.size(3) == w.out_w,
              "leanconv: grad_output must have the output's shape (", batch, ", ", out_channels, ", ", w.out_h, ", ",
              w.out_w, "), got ", grad_output.sizes());
}

}  // namespace leanconv::checks
