// Schemas and public C++ entry points of the low-rank (DeCEF) ops (the fused conv, the materialised path's
// weight), and the choice between the fused kernel and the materialised dense conv.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

#include "leanconv/ops/lowrank.h"
#include "ops/autocast.h"

namespace leanconv::ops {

at::Tensor eigen_conv2d(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                        const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("leanconv::eigen_conv2d", "").typed<decltype(eigen_conv2d)>();
  return op.call(input, basis, coeff, bias, stride, padding, dilation);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward(const at::Tensor& grad_output,
                                                                     const at::Tensor& input, const at::Tensor& basis,
                                                                     const at::Tensor& coeff, at::IntArrayRef stride,
                                                                     at::IntArrayRef padding, at::IntArrayRef dilation,
                                                                     std::array<bool, 3> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::eigen_conv2d_backward", "")
                       .typed<decltype(eigen_conv2d_backward)>();
  return op.call(grad_output, input, basis, coeff, stride, padding, dilation, output_mask);
}

at::Tensor eigen_weight(const at::Tensor& basis, const at::Tensor& coeff) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("leanconv::eigen_weight", "").typed<decltype(eigen_weight)>();
  return op.call(basis, coeff);
}

std::tuple<at::Tensor, at::Tensor> eigen_weight_backward(const at::Tensor& grad_weight, const at::Tensor& basis,
                                                         const at::Tensor& coeff, std::array<bool, 2> output_mask) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("leanconv::eigen_weight_backward", "")
                       .typed<decltype(eigen_weight_backward)>();
  return op.call(grad_weight, basis, coeff, output_mask);
}

bool eigen_conv2d_fused_is_cheaper(c10::DeviceType device, int64_t in_channels, int64_t out_channels,
                                   int64_t kernel_h, int64_t kernel_w, int64_t rank) {
  // Per output pixel: the fused kernel does C_out*C_in*R multiplies in a GEMM plus C_in*R*k^2 in the
  // depthwise stage, which runs at a fraction of GEMM speed; the dense conv does C_out*C_in*k^2.
  const double taps = double(kernel_h) * double(kernel_w);
  const double pointwise = double(out_channels) * in_channels * rank, depthwise = double(in_channels) * rank * taps;
  const double dense = double(out_channels) * in_channels * taps;
  if (device == c10::DeviceType::CPU) {
    constexpr double kDepthwiseCostPerMultiply = 4.0;  // measured, benchmarks/NOTES.md
    // Per-tile GEMMs against oneDNN's blocked conv; with few output channels (the GEMM's M) they lose more.
    const double gemm_penalty = 1.25 * std::sqrt(std::max(1.0, 64.0 / double(out_channels)));
    return gemm_penalty * pointwise + kDepthwiseCostPerMultiply * depthwise < dense;
  }
  // On CUDA the dense conv runs on tensor cores (cuDNN); the fused kernel is plain FMA code and is chosen
  // only when asked for, until GPU measurements say otherwise.
  return false;
}

}  // namespace leanconv::ops

TORCH_LIBRARY_FRAGMENT(leanconv, m) {
  m.def("eigen_conv2d(Tensor input, Tensor basis, Tensor coeff, Tensor? bias, int[2] stride, int[2] padding, "
        "int[2] dilation) -> Tensor");
  m.def("eigen_conv2d_backward(Tensor grad_output, Tensor input, Tensor basis, Tensor coeff, int[2] stride, "
        "int[2] padding, int[2] dilation, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def("eigen_weight(Tensor basis, Tensor coeff) -> Tensor");
  m.def("eigen_weight_backward(Tensor grad_weight, Tensor basis, Tensor coeff, bool[2] output_mask) -> "
        "(Tensor, Tensor)");
  // The path choice as an op too, so Python reaches the one cost model with or without the _C extension.
  m.def("eigen_conv2d_fused_is_cheaper(str device_type, int in_channels, int out_channels, int kernel_h, "
        "int kernel_w, int rank) -> bool",
        [](std::string_view device_type, int64_t in_channels, int64_t out_channels, int64_t kernel_h, int64_t kernel_w,
           int64_t rank) {
          return leanconv::ops::eigen_conv2d_fused_is_cheaper(c10::Device(std::string(device_type)).type(),
                                                              in_channels, out_channels, kernel_h, kernel_w, rank);
        });
}

// The eigen-filter conv is a convolution: like aten::conv2d it runs in the autocast dtype (ops/autocast.h).
namespace leanconv::autocast {
namespace {

template <c10::DeviceType device_type>
at::Tensor eigen_conv2d_autocast(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation) {
  return in_autocast_dtype<device_type>(ops::eigen_conv2d, input, basis, coeff, bias, stride, padding, dilation);
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, AutocastCPU, m) { m.impl("eigen_conv2d", &eigen_conv2d_autocast<c10::DeviceType::CPU>); }
TORCH_LIBRARY_IMPL(leanconv, AutocastCUDA, m) { m.impl("eigen_conv2d", &eigen_conv2d_autocast<c10::DeviceType::CUDA>); }

}  // namespace leanconv::autocast
