// Schemas and public C++ entry points of the overlapping-segment (FSNet) ops.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "leanconv/ops/filter_summary.h"
#include "ops/autocast.h"

namespace leanconv::ops {

at::Tensor filter_summary_weight(const at::Tensor& summary, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                 int64_t kernel_w, int64_t summary_stride) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::filter_summary_weight", "")
                       .typed<decltype(filter_summary_weight)>();
  return op.call(summary, out_channels, in_channels, kernel_h, kernel_w, summary_stride);
}

at::Tensor filter_summary_weight_backward(const at::Tensor& grad_weight, c10::SymInt length, int64_t summary_stride) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::filter_summary_weight_backward", "")
                       .typed<decltype(filter_summary_weight_backward)>();
  return op.call(grad_weight, std::move(length), summary_stride);
}

at::Tensor shifted_sum(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("leanconv::shifted_sum", "").typed<decltype(shifted_sum)>();
  return op.call(z, kernel_h, kernel_w, channel_step, stride, padding, dilation);
}

at::Tensor shifted_sum_backward(const at::Tensor& grad_output, int64_t kernel_h, int64_t kernel_w,
                                int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, c10::SymIntArrayRef input_size) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::shifted_sum_backward", "")
                       .typed<decltype(shifted_sum_backward)>();
  return op.call(grad_output, kernel_h, kernel_w, channel_step, stride, padding, dilation, input_size);
}

at::Tensor segment_conv2d(const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h, int64_t kernel_w,
                          int64_t channel_step, at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::segment_conv2d", "")
                       .typed<decltype(segment_conv2d)>();
  return op.call(input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation);
}

std::tuple<at::Tensor, at::Tensor> segment_conv2d_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                                           const at::Tensor& segments, int64_t kernel_h,
                                                           int64_t kernel_w, int64_t channel_step,
                                                           at::IntArrayRef stride, at::IntArrayRef padding,
                                                           at::IntArrayRef dilation, std::array<bool, 2> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::segment_conv2d_backward", "")
                       .typed<decltype(segment_conv2d_backward)>();
  return op.call(grad_output, input, segments, kernel_h, kernel_w, channel_step, stride, padding, dilation,
                 output_mask);
}

}  // namespace leanconv::ops

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def(
      "filter_summary_weight(Tensor summary, int out_channels, int in_channels, int kernel_h, int kernel_w, "
      "int summary_stride) -> Tensor");
  m.def("filter_summary_weight_backward(Tensor grad_weight, SymInt length, int summary_stride) -> Tensor");
  m.def("shifted_sum(Tensor z, int kernel_h, int kernel_w, int channel_step, int[2] stride, int[2] padding, "
        "int[2] dilation) -> Tensor");
  m.def("shifted_sum_backward(Tensor grad_output, int kernel_h, int kernel_w, int channel_step, int[2] stride, "
        "int[2] padding, int[2] dilation, SymInt[2] input_size) -> Tensor");
  m.def("segment_conv2d(Tensor input, Tensor segments, int kernel_h, int kernel_w, int channel_step, int[2] stride, "
        "int[2] padding, int[2] dilation) -> Tensor");
  m.def("segment_conv2d_backward(Tensor grad_output, Tensor input, Tensor segments, int kernel_h, int kernel_w, "
        "int channel_step, int[2] stride, int[2] padding, int[2] dilation, bool[2] output_mask) -> (Tensor, Tensor)");
}

// The shifted sum is bandwidth-bound: under autocast it runs in the autocast dtype, like the 1x1 conv that
// produces its input, and so does segment_conv2d, which is that 1x1 conv and the shifted sum (ops/autocast.h).
namespace leanconv::autocast {
namespace {

template <c10::DeviceType device_type>
at::Tensor shifted_sum_autocast(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  return in_autocast_dtype<device_type>(ops::shifted_sum, z, kernel_h, kernel_w, channel_step, stride, padding,
                                        dilation);
}

template <c10::DeviceType device_type>
at::Tensor segment_conv2d_autocast(const at::Tensor& input, const at::Tensor& segments, int64_t kernel_h,
                                   int64_t kernel_w, int64_t channel_step, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation) {
  return in_autocast_dtype<device_type>(ops::segment_conv2d, input, segments, kernel_h, kernel_w, channel_step, stride,
                                        padding, dilation);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, AutocastCPU, m) {
  m.impl("shifted_sum", &shifted_sum_autocast<c10::DeviceType::CPU>);
  m.impl("segment_conv2d", &segment_conv2d_autocast<c10::DeviceType::CPU>);
}
TORCH_LIBRARY_IMPL(leanconv, AutocastCUDA, m) {
  m.impl("shifted_sum", &shifted_sum_autocast<c10::DeviceType::CUDA>);
  m.impl("segment_conv2d", &segment_conv2d_autocast<c10::DeviceType::CUDA>);
}

}  // namespace leanconv::autocast
