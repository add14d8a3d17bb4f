// Autocast registrations. The eigen-filter conv is a convolution: like aten::conv2d it runs in the autocast
// dtype (half or bfloat16), and its kernels accumulate in float. The shifted sum is bandwidth-bound: under autocast it runs in the autocast dtype
// (half or bfloat16; the kernels accumulate in float), like the convolution that produces its input. The
// gathers (filter_summary_weight, generate_weights) are exact copies and need no policy: they run in the
// parameter's dtype and the following conv casts as autocast says.
#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include "leanconv/ops.h"

namespace leanconv::autocast {
namespace {

template <c10::DeviceType device_type, c10::DispatchKey autocast_key>
at::Tensor shifted_sum_autocast(const at::Tensor& z, int64_t kernel_h, int64_t kernel_w, int64_t channel_step,
                                at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  const auto dtype = at::autocast::get_autocast_dtype(device_type);
  return ops::shifted_sum(at::autocast::cached_cast(dtype, z, device_type), kernel_h, kernel_w, channel_step,
                          stride, padding, dilation);
}

template <c10::DeviceType device_type, c10::DispatchKey autocast_key>
at::Tensor eigen_conv2d_autocast(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  const auto dtype = at::autocast::get_autocast_dtype(device_type);
  const auto cast = [&](const at::Tensor& t) { return at::autocast::cached_cast(dtype, t, device_type); };
  std::optional<at::Tensor> bias_cast;
  if (bias.has_value() && bias->defined()) bias_cast = cast(*bias);
  return ops::eigen_conv2d(cast(input), cast(basis), cast(coeff), bias_cast, stride, padding, dilation);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, AutocastCPU, m) {
  m.impl("shifted_sum", &shifted_sum_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
  m.impl("eigen_conv2d", &eigen_conv2d_autocast<c10::DeviceType::CPU, c10::DispatchKey::AutocastCPU>);
}

TORCH_LIBRARY_IMPL(leanconv, AutocastCUDA, m) {
  m.impl("shifted_sum", &shifted_sum_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
  m.impl("eigen_conv2d", &eigen_conv2d_autocast<c10::DeviceType::CUDA, c10::DispatchKey::AutocastCUDA>);
}

}  // namespace leanconv::autocast
